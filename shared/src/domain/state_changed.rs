//! `ConversationStateChanged`: published on the event bus for every agent state change, so that other
//! services subscribe by rule (the original invoked per-conversation callbacks in-process).
//! Its JSON schema (the event's `detail`) is `events/schemas/ConversationStateChanged.schema.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation::{AgentState, ConversationId};
use super::ids::{TriggerId, UserId};

/// EventBridge `source` of the events the conversation node publishes.
pub const NODE_SOURCE: &str = "proactive.conversations";
/// EventBridge `detail-type` of a state change.
pub const STATE_CHANGED_DETAIL_TYPE: &str = "ConversationStateChanged";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationStateChanged {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub old_state: Option<AgentState>,
    pub new_state: AgentState,
    pub trigger_id: Option<TriggerId>,
    /// The id of the `agent_state_changed` event that records the change: orders a conversation's
    /// changes however the bus delivers them.
    pub event_id: u64,
    pub changed_at: DateTime<Utc>,
}
