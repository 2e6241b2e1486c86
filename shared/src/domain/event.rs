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
    /// Where an event relayed from an agent runtime came from (its id there dedupes a relay resumed
    /// by another node); `None` for the node's own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteEventRef>,
}

/// An agent runtime's own id and timestamp of an event the node relayed (as the runtime wrote them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEventRef {
    pub id: String,
    pub timestamp: String,
}

/// The most one stored event may take as JSON: DynamoDB holds 400 KB per item, with the item's other
/// attributes beside the event.
pub const MAX_EVENT_BYTES: usize = 320 * 1024;

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
            remote: None,
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
            remote: None,
        }
    }

    /// An `error` observation: what went wrong, for the user to read.
    pub fn error(id: u64, reason: &str) -> Self {
        Self {
            id,
            timestamp: Utc::now(),
            source: EventSource::Environment,
            message: reason.to_owned(),
            body: EventBody::Observation {
                observation: "error".into(),
                content: reason.to_owned(),
                extras: json!({}),
            },
            remote: None,
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

    /// The event cut to fit [`MAX_EVENT_BYTES`]: its long texts (the message, an action's `content`
    /// argument, an observation's content) keep their beginning and end with a marker saying how long
    /// they were. An event that fits is returned as it is.
    pub fn fitted(self) -> Self {
        if self.json_len() <= MAX_EVENT_BYTES {
            return self;
        }
        // Each try cuts the original texts to a smaller share (JSON escaping can double a text).
        let mut budget = MAX_EVENT_BYTES / 2;
        loop {
            let mut cut = self.clone();
            for text in cut.texts_mut() {
                shorten(text, budget);
            }
            if cut.json_len() <= MAX_EVENT_BYTES || budget <= 64 {
                return cut;
            }
            budget /= 2;
        }
    }

    /// The event's size as stored (JSON), counted without building the text (every append asks).
    pub fn json_len(&self) -> usize {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        match serde_json::to_writer(&mut count, self) {
            Ok(()) => count.0,
            Err(_) => usize::MAX,
        }
    }

    /// Every text of the event: the message, and each string in the action's arguments or the
    /// observation's content and extras (an agent's tool call can carry a whole file).
    fn texts_mut(&mut self) -> Vec<&mut String> {
        let mut texts = vec![&mut self.message];
        match &mut self.body {
            EventBody::Action { args, .. } => strings_mut(args, &mut texts),
            EventBody::Observation {
                content, extras, ..
            } => {
                texts.push(content);
                strings_mut(extras, &mut texts);
            }
        }
        texts
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

fn strings_mut<'a>(value: &'a mut Value, texts: &mut Vec<&'a mut String>) {
    match value {
        Value::String(text) => texts.push(text),
        Value::Array(items) => items.iter_mut().for_each(|item| strings_mut(item, texts)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|field| strings_mut(field, texts)),
        _ => {}
    }
}

/// Cuts `text` to about `budget` bytes, keeping its first and last halves around a marker.
fn shorten(text: &mut String, budget: usize) {
    if text.len() <= budget {
        return;
    }
    let half = budget / 2;
    let head_end = (0..=half)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let tail_start = (text.len() - half..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    let shortened = format!(
        "{}\n\n[... truncated: {} bytes in full ...]\n\n{}",
        &text[..head_end],
        text.len(),
        &text[tail_start..]
    );
    *text = shortened;
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
    fn an_event_that_fits_is_kept_and_a_big_one_is_cut_with_a_marker() {
        let small = ConversationEvent::message(1, EventSource::Agent, "short");
        assert_eq!(small.clone().fitted(), small);

        let big_text = format!("BEGIN{}END", "é\"\n".repeat(400_000));
        let big = ConversationEvent::message(2, EventSource::Agent, &big_text).fitted();
        assert!(
            big.json_len() <= MAX_EVENT_BYTES,
            "{} bytes",
            big.json_len()
        );
        let content = big.message_content().unwrap();
        assert!(content.starts_with("BEGIN") && content.ends_with("END"));
        assert!(content.contains(&format!(
            "[... truncated: {} bytes in full ...]",
            big_text.len()
        )));
        assert_eq!(big.message, content);

        let observation = ConversationEvent {
            body: EventBody::Observation {
                observation: "run".into(),
                content: "x".repeat(2 << 20),
                extras: json!({ "command": "cat big.txt" }),
            },
            ..ConversationEvent::message(3, EventSource::Environment, "")
        }
        .fitted();
        assert!(observation.json_len() <= MAX_EVENT_BYTES);
        let EventBody::Observation { extras, .. } = &observation.body else {
            panic!("still an observation");
        };
        assert_eq!(extras["command"], "cat big.txt");

        // A tool call carrying a whole file in a nested argument.
        let create = ConversationEvent {
            body: EventBody::Action {
                action: "file_editor".into(),
                args: json!({ "command": "create", "edits": [{ "file_text": "y".repeat(1 << 20) }] }),
            },
            ..ConversationEvent::message(4, EventSource::Agent, "")
        }
        .fitted();
        assert!(create.json_len() <= MAX_EVENT_BYTES);
        let EventBody::Action { args, .. } = &create.body else {
            panic!("still an action");
        };
        assert_eq!(args["command"], "create");
        assert!(
            args["edits"][0]["file_text"]
                .as_str()
                .unwrap()
                .contains("[... truncated: 1048576 bytes in full ...]")
        );
    }

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
