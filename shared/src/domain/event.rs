//! Conversation events: the append-only record of a conversation, in the original service's JSON shape
//! (`id`, `timestamp`, `source`, `message`, then `action` + `args` or `observation` + `content` + `extras`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::conversation::AgentState;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    User,
    Agent,
    Environment,
}

/// What an event is: an action someone took, or an observation of its effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventBody {
    Action {
        action: String,
        args: Value,
    },
    Observation {
        observation: String,
        content: String,
        extras: Value,
    },
}

/// One stored event of a conversation. Ids are 0, 1, 2... per conversation, without gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationEvent {
    pub id: u64,
    pub timestamp: DateTime<Utc>,
    pub source: EventSource,
    pub message: String,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The observation name of an agent state change.
pub(super) const AGENT_STATE_CHANGED: &str = "agent_state_changed";

impl ConversationEvent {
    /// A chat message from the user or the agent (`action: "message"`).
    pub fn message(id: u64, source: EventSource, content: &str) -> Self {
        Self {
            id,
            timestamp: Utc::now(),
            source,
            message: content.to_owned(),
            body: EventBody::Action {
                action: "message".into(),
                args: json!({
                    "content": content,
                    "image_urls": [],
                    "file_urls": [],
                    "wait_for_response": source == EventSource::Agent,
                }),
            },
        }
    }

    /// The `agent_state_changed` observation the environment records for each state change.
    pub fn agent_state_changed(id: u64, state: AgentState, reason: &str) -> Self {
        Self {
            id,
            timestamp: Utc::now(),
            source: EventSource::Environment,
            message: String::new(),
            body: EventBody::Observation {
                observation: AGENT_STATE_CHANGED.into(),
                content: String::new(),
                extras: json!({ "agent_state": state, "reason": reason }),
            },
        }
    }

    /// The state an `agent_state_changed` event records, `None` for any other event.
    pub fn agent_state(&self) -> Option<AgentState> {
        match &self.body {
            EventBody::Observation {
                observation,
                extras,
                ..
            } if observation == AGENT_STATE_CHANGED => {
                serde_json::from_value(extras.get("agent_state")?.clone()).ok()
            }
            _ => None,
        }
    }

    /// The content of a chat message event, `None` for any other event.
    pub fn message_content(&self) -> Option<&str> {
        match &self.body {
            EventBody::Action { action, args } if action == "message" => {
                args.get("content").and_then(Value::as_str)
            }
            _ => None,
        }
    }
}

/// The position of a user action in its conversation's inbox (opaque: the coordination adapter's id,
/// e.g. a Redis stream id). The event store remembers the last one consumed, so that after a takeover
/// the new owner processes every acknowledged action exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InboxId(pub String);

impl InboxId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's two numbers when it has the stream form `<unix ms>-<seq>` that both coordination
    /// adapters use.
    pub fn stream_parts(&self) -> Option<(u64, u64)> {
        let (millis, seq) = self.0.split_once('-')?;
        Some((millis.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for InboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_in_the_original_shape() {
        let event = ConversationEvent::agent_state_changed(3, AgentState::AwaitingUserInput, "");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["id"], 3);
        assert_eq!(json["source"], "environment");
        assert_eq!(json["observation"], "agent_state_changed");
        assert_eq!(json["extras"]["agent_state"], "awaiting_user_input");
        assert!(json.get("action").is_none());
        let back: ConversationEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.agent_state(), Some(AgentState::AwaitingUserInput));

        let message = ConversationEvent::message(4, EventSource::User, "fix it");
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["action"], "message");
        assert_eq!(json["args"]["content"], "fix it");
        assert_eq!(json["message"], "fix it");
        let back: ConversationEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back.message_content(), Some("fix it"));
        assert_eq!(back.agent_state(), None);
    }
}
