//! Status updates: the `oh_event` payloads that are not stored events, in the original's shape
//! `{status_update: true, type: "info"|"error", id, message}`, and the ids and texts the original used.

use serde::{Deserialize, Serialize};

/// The status sent to a conversation evicted by the per-user limit.
pub const TOO_MANY_CONVERSATIONS: &str = "AGENT_ERROR$TOO_MANY_CONVERSATIONS";
pub const TOO_MANY_CONVERSATIONS_MESSAGE: &str = "Too many conversations at once. If you are still using this one, try reactivating it by prompting the agent to continue";
/// The status sent when the model stays unavailable after the retries.
pub const LLM_UNAVAILABLE: &str = "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE";
/// The status sent when the agent runtime (an agent-server) stays unreachable after the retries.
pub const RUNTIME_UNAVAILABLE: &str = "STATUS$ERROR_RUNTIME_DISCONNECTED";
/// The status sent when the model keeps answering 429 after the retries.
pub const LLM_RATE_LIMITED: &str = "STATUS$ERROR_LLM_RATE_LIMITED";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// Always `true`: how clients tell a status update from an event.
    pub status_update: bool,
    #[serde(rename = "type")]
    pub kind: StatusKind,
    pub id: String,
    pub message: String,
}

impl StatusUpdate {
    pub fn error(id: &str, message: &str) -> Self {
        Self {
            status_update: true,
            kind: StatusKind::Error,
            id: id.to_owned(),
            message: message.to_owned(),
        }
    }

    pub fn too_many_conversations() -> Self {
        Self::error(TOO_MANY_CONVERSATIONS, TOO_MANY_CONVERSATIONS_MESSAGE)
    }
}
