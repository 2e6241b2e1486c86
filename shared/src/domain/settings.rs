//! A product user's settings that the backend acts on.

use serde::{Deserialize, Serialize};

/// A user's own choices; `None` follows the deployment's default (`PROACTIVE_DEFAULT`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSettings {
    /// Whether a red pull request of theirs opens a conversation for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proactive_conversations: Option<bool>,
}
