//! User actions: what a client sends (`oh_user_action`, `oh_action`, or the REST events endpoint), as
//! `{"action": ..., "args": {...}}` like the original. Parsed at the node that receives them, so that only
//! valid actions enter a conversation's inbox.

use serde::{Deserialize, Serialize};

use super::conversation::AgentState;

/// The longest message accepted, in bytes: a user action travels through the inbox and the event store.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "args", rename_all = "snake_case")]
pub enum UserAction {
    /// A chat message to the agent.
    Message {
        content: String,
        #[serde(default)]
        image_urls: Vec<String>,
        #[serde(default)]
        file_urls: Vec<String>,
    },
    /// Pause, resume or stop the agent.
    ChangeAgentState { agent_state: AgentState },
}

/// Why a client's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAction {
    #[error("not a user action: {0}")]
    Shape(String),
    #[error("the message is empty")]
    EmptyMessage,
    #[error("the message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
    #[error("the agent state {0:?} cannot be requested")]
    UnsupportedState(AgentState),
    #[error("client_action_id must be 1-{MAX_CLIENT_ACTION_ID} letters, digits, '-', '_' or '.'")]
    ClientActionId,
}

/// The longest client action id accepted.
pub const MAX_CLIENT_ACTION_ID: usize = 128;

/// The optional `client_action_id` beside an action: a client that retries an action (over
/// Socket.IO or REST) sends the same one, and the action is stored once.
pub fn client_action_id(raw: &serde_json::Value) -> Result<Option<String>, InvalidAction> {
    match raw.get("client_action_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id))
            if !id.is_empty()
                && id.len() <= MAX_CLIENT_ACTION_ID
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Ok(Some(id.clone()))
        }
        Some(_) => Err(InvalidAction::ClientActionId),
    }
}

impl UserAction {
    pub fn message(content: &str) -> Self {
        Self::Message {
            content: content.to_owned(),
            image_urls: Vec::new(),
            file_urls: Vec::new(),
        }
    }

    /// Parses and checks a client's JSON.
    pub fn parse(raw: serde_json::Value) -> Result<Self, InvalidAction> {
        let action: Self =
            serde_json::from_value(raw).map_err(|e| InvalidAction::Shape(e.to_string()))?;
        match &action {
            Self::Message { content, .. } if content.trim().is_empty() => {
                Err(InvalidAction::EmptyMessage)
            }
            Self::Message { content, .. } if content.len() > MAX_MESSAGE_BYTES => {
                Err(InvalidAction::TooLong)
            }
            Self::ChangeAgentState { agent_state }
                if !matches!(
                    agent_state,
                    AgentState::Running
                        | AgentState::Paused
                        | AgentState::Stopped
                        | AgentState::UserConfirmed
                        | AgentState::UserRejected
                ) =>
            {
                Err(InvalidAction::UnsupportedState(*agent_state))
            }
            _ => Ok(action),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_original_shapes_and_refuses_the_rest() {
        let action = UserAction::parse(json!({"action": "message", "args": {"content": "hi"}}));
        assert_eq!(action, Ok(UserAction::message("hi")));
        let pause = json!({"action": "change_agent_state", "args": {"agent_state": "paused"}});
        assert_eq!(
            UserAction::parse(pause),
            Ok(UserAction::ChangeAgentState {
                agent_state: AgentState::Paused
            })
        );
        assert_eq!(
            UserAction::parse(json!({"action": "message", "args": {"content": "  "}})),
            Err(InvalidAction::EmptyMessage)
        );
        assert!(matches!(
            UserAction::parse(json!({"action": "run", "args": {"command": "ls"}})),
            Err(InvalidAction::Shape(_))
        ));
        assert!(matches!(
            UserAction::parse(json!("hello")),
            Err(InvalidAction::Shape(_))
        ));
        let loading = json!({"action": "change_agent_state", "args": {"agent_state": "loading"}});
        assert_eq!(
            UserAction::parse(loading),
            Err(InvalidAction::UnsupportedState(AgentState::Loading))
        );
    }
}
