//! The inbox: user actions, durable once acknowledged, consumed in order by the conversation's owner.

use std::time::Duration;

use async_trait::async_trait;

use super::CoordinationError;
use crate::domain::{ConversationId, InboxId, NodeId, UserAction};

/// How long a client's action id is remembered, so that its retries are stored once.
pub const ACTION_ID_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// One durable user action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub id: InboxId,
    pub action: UserAction,
}

/// The result of `push_action`: the entry is durable; `owner` is the node told about it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub id: InboxId,
    pub owner: Option<NodeId>,
}

#[async_trait]
pub trait Inbox: Send + Sync {
    /// Stores a user action durably in the conversation's inbox and tells its owner, if any. A client's
    /// retry (the same `client_action_id` for the conversation, within [`ACTION_ID_MEMORY`]) is stored
    /// once: it answers the first push's inbox id.
    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError>;

    /// Inbox entries after `after` (from the start when `None`), oldest first, at most `limit`.
    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError>;

    /// Drops inbox entries up to and including `through` (they are recorded in the event store).
    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError>;
}
