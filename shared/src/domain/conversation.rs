//! Conversations: their ids, metadata, status and agent state.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{HeadSha, InvalidId, TriggerId, UserId};
use super::model_settings::ModelSettings;

/// A conversation id: 1 to 64 characters of `[A-Za-z0-9_-]` (UUID simple form for ordinary ones,
/// derived from the trigger id for proactive ones, so that a redelivered trigger names the same one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationId(String);

impl ConversationId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId {
                kind: "conversation id",
                reason: "expected 1 to 64 of [A-Za-z0-9_-]",
            })
        }
    }

    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id of the conversation a proactive trigger starts.
    pub fn for_trigger(trigger: &TriggerId) -> Self {
        Self(format!(
            "proactive-{}",
            trigger.as_str().trim_start_matches("trg-")
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationId {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<ConversationId> for String {
    fn from(id: ConversationId) -> Self {
        id.0
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Running,
    Stopped,
}

/// The agent loop's state, spelled as the original service spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Loading,
    Running,
    AwaitingUserInput,
    /// The agent waits for the user to accept or reject its next action (confirmation mode).
    AwaitingUserConfirmation,
    /// The user's answers to a confirmation: actions only, never a conversation's state.
    UserConfirmed,
    UserRejected,
    Finished,
    Paused,
    Stopped,
    Error,
    RateLimited,
}

/// A conversation's metadata as the conversation store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub user_id: UserId,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_updated_at: DateTime<Utc>,
    pub status: ConversationStatus,
    pub agent_state: AgentState,
    /// Set on proactive conversations.
    pub trigger_id: Option<TriggerId>,
    /// `owner/name` of the repository the conversation works on.
    pub repository: Option<String>,
    /// What the agent's workspace starts as (a proactive conversation: the pull request's head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    /// Whether the agent asks the user before each action (a runtime with tools: `openhands`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirmation_mode: bool,
    /// The model its agent uses instead of the node's (chosen on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSettings>,
    /// Where its agent runs when that is elsewhere (`openhands`): recorded by the loop that opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_agent: Option<RemoteAgent>,
}

impl Conversation {
    /// The longest title, in characters (one given on create, or one made from the first message).
    pub const MAX_TITLE_CHARS: usize = 200;
}

/// A conversation's agent on an agent-server: the server and the remote conversation there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAgent {
    /// The agent-server's base URL.
    pub server: String,
    pub conversation_id: String,
}

/// A repository at a commit: where a proactive conversation's workspace starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// `owner/name`.
    pub repository: String,
    pub commit: HeadSha,
    /// The pull request whose head `commit` is (`refs/pull/<n>/head` reaches it from a fork too).
    pub pull_request: u64,
    /// The GitHub App installation whose token reads the repository.
    pub installation_id: Option<u64>,
}

/// A position in the "oldest first" order of conversations: `(created_at, id)`. The sync's watermark.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CreatedCursor {
    pub created_at: DateTime<Utc>,
    pub id: ConversationId,
}

impl CreatedCursor {
    /// The cursor just before every conversation created at or after `instant`.
    pub fn before(instant: DateTime<Utc>) -> Self {
        Self {
            created_at: instant,
            id: ConversationId(String::new()),
        }
    }

    pub fn of(conversation: &Conversation) -> Self {
        Self {
            created_at: conversation.created_at,
            id: conversation.id.clone(),
        }
    }
}
