//! What an agent-server event becomes in the conversation's record, in the original service's event
//! shape: the agent's messages and its finish as `message` actions, its tool calls as actions named
//! by the tool (the SDK's action as `args`), their results as observations (the text as `content`),
//! errors as `error` observations, execution status changes as the agent's state. The runtime's own
//! bookkeeping (the system prompt, the echo of the user's message, the finish's observation,
//! statistics) is not stored.

use serde_json::{Map, Value, json};
use shared::domain::{
    AgentState, ConversationEvent, EventBody, EventSource, RemoteEventRef, content_text,
};

use super::super::runtime::RuntimeEvent;

/// What one agent-server event is to the node.
#[derive(Debug)]
pub(super) enum Relay {
    /// Stored and shown, under the runtime's id.
    Event(ConversationEvent),
    /// The agent's state, as of this remote event.
    State(AgentState, RemoteEventRef),
    /// Nothing the user needs.
    Skip,
    /// Not an event this runtime can read (no id, not an object).
    Malformed,
}

impl Relay {
    pub(super) fn into_runtime_event(self) -> Option<RuntimeEvent> {
        match self {
            Self::Event(event) => Some(RuntimeEvent::Event(event)),
            Self::State(state, remote) => Some(RuntimeEvent::State(state, remote)),
            Self::Skip | Self::Malformed => None,
        }
    }
}

/// The remote id of an event, when it has one.
pub(super) fn remote_ref(raw: &Value) -> Option<RemoteEventRef> {
    Some(RemoteEventRef {
        id: raw.get("id")?.as_str()?.to_owned(),
        timestamp: raw.get("timestamp")?.as_str()?.to_owned(),
    })
}

pub(super) fn relay(raw: &Value) -> Relay {
    let (Some(kind), Some(remote)) = (raw.get("kind").and_then(Value::as_str), remote_ref(raw))
    else {
        return Relay::Malformed;
    };
    let source = match raw.get("source").and_then(Value::as_str) {
        Some("user") => EventSource::User,
        Some("environment") => EventSource::Environment,
        _ => EventSource::Agent,
    };
    let event = match kind {
        "ConversationStateUpdateEvent" => return state_update(raw, remote),
        "SystemPromptEvent" | "TokenEvent" | "StreamingDeltaEvent" | "LLMCompletionLogEvent" => {
            return Relay::Skip;
        }
        // The node recorded the user's message when it took it; a finish is the agent's message.
        "MessageEvent" if source == EventSource::User => return Relay::Skip,
        "ObservationEvent" if raw["tool_name"] == "finish" => return Relay::Skip,
        "MessageEvent" => {
            ConversationEvent::message(0, source, &content_text(&raw["llm_message"]["content"]))
        }
        "ActionEvent" => action(raw, source),
        "ObservationEvent" => observation(
            raw["tool_name"].as_str().unwrap_or("observation"),
            &raw["observation"],
        ),
        "AgentErrorEvent" | "ConversationErrorEvent" => {
            let reason = raw["error"]
                .as_str()
                .or_else(|| raw["detail"].as_str())
                .unwrap_or("the agent failed");
            ConversationEvent::error(0, reason)
        }
        other => generic(other, raw, source),
    };
    Relay::Event(
        ConversationEvent {
            remote: Some(remote),
            ..event
        }
        .fitted(),
    )
}

/// An `execution_status` change (alone, or in the full state sent first on a connect).
fn state_update(raw: &Value, remote: RemoteEventRef) -> Relay {
    let status = match raw["key"].as_str() {
        Some("execution_status") => &raw["value"],
        Some("full_state") => &raw["value"]["execution_status"],
        _ => return Relay::Skip,
    };
    let state = match status.as_str() {
        Some("idle") => AgentState::AwaitingUserInput,
        Some("running") => AgentState::Running,
        Some("paused") => AgentState::Paused,
        Some("waiting_for_confirmation") => AgentState::AwaitingUserConfirmation,
        Some("finished") => AgentState::Finished,
        Some("error" | "stuck") => AgentState::Error,
        _ => return Relay::Skip,
    };
    Relay::State(state, remote)
}

fn action(raw: &Value, source: EventSource) -> ConversationEvent {
    let tool = raw["tool_name"].as_str().unwrap_or("action");
    let action = &raw["action"];
    // The agent's last word, as the chat runtimes' answers are.
    if tool == "finish" {
        let message = action["message"].as_str().unwrap_or_default();
        return ConversationEvent::message(0, EventSource::Agent, message);
    }
    let thought = content_text(&raw["thought"]);
    let message = match raw["summary"].as_str() {
        Some(summary) if thought.is_empty() => summary.to_owned(),
        _ => thought,
    };
    ConversationEvent {
        message,
        body: EventBody::Action {
            action: tool.to_owned(),
            args: action.clone(),
        },
        ..ConversationEvent::message(0, source, "")
    }
}

fn observation(tool: &str, observation: &Value) -> ConversationEvent {
    let content = content_text(&observation["content"]);
    // Everything but the text, which is `content`.
    let extras = match observation {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| name.as_str() != "content")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<Map<_, _>>(),
        ),
        _ => json!({}),
    };
    ConversationEvent {
        message: String::new(),
        body: EventBody::Observation {
            observation: tool.to_owned(),
            content,
            extras,
        },
        ..ConversationEvent::message(0, EventSource::Environment, "")
    }
}

/// Something the node tells the user about the runtime.
pub(super) fn notice(text: &str) -> ConversationEvent {
    ConversationEvent {
        message: text.to_owned(),
        body: EventBody::Observation {
            observation: "runtime_notice".into(),
            content: text.to_owned(),
            extras: json!({}),
        },
        ..ConversationEvent::message(0, EventSource::Environment, "")
    }
}

/// An event of a kind the node has no shape for: its JSON as the content, so that nothing is lost.
fn generic(kind: &str, raw: &Value, source: EventSource) -> ConversationEvent {
    ConversationEvent {
        message: String::new(),
        body: EventBody::Observation {
            observation: kind.to_owned(),
            content: raw.to_string(),
            extras: json!({}),
        },
        ..ConversationEvent::message(0, source, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, fields: Value) -> Value {
        let mut raw = json!({ "kind": kind, "id": "e1", "timestamp": "2026-12-05T10:00:00.123456", "source": "agent" });
        if let (Value::Object(raw), Value::Object(fields)) = (&mut raw, fields) {
            raw.extend(fields);
        }
        raw
    }

    #[test]
    fn a_terminal_call_and_its_output_keep_the_tool_and_the_remote_id() {
        let call = event(
            "ActionEvent",
            json!({ "tool_name": "terminal", "thought": [{ "type": "text", "text": "let me look" }],
                    "action": { "kind": "TerminalAction", "command": "ls" } }),
        );
        let Relay::Event(call) = relay(&call) else {
            panic!("an event")
        };
        assert_eq!(call.message, "let me look");
        assert_eq!(call.remote.as_ref().unwrap().id, "e1");
        assert!(
            matches!(&call.body, EventBody::Action { action, args } if action == "terminal" && args["command"] == "ls")
        );

        let output = event(
            "ObservationEvent",
            json!({ "source": "environment", "tool_name": "terminal",
                    "observation": { "kind": "TerminalObservation", "exit_code": 0,
                                     "content": [{ "type": "text", "text": "a.txt" }] } }),
        );
        let Relay::Event(output) = relay(&output) else {
            panic!("an event")
        };
        assert_eq!(output.source, EventSource::Environment);
        let EventBody::Observation {
            observation,
            content,
            extras,
        } = &output.body
        else {
            panic!("an observation")
        };
        assert_eq!(
            (observation.as_str(), content.as_str()),
            ("terminal", "a.txt")
        );
        assert_eq!(extras["exit_code"], 0);
        assert!(extras.get("content").is_none());
    }

    #[test]
    fn finish_is_the_agents_message_and_bookkeeping_is_skipped() {
        let finish = event(
            "ActionEvent",
            json!({ "tool_name": "finish", "action": { "kind": "FinishAction", "message": "done" } }),
        );
        let Relay::Event(finish) = relay(&finish) else {
            panic!("an event")
        };
        assert_eq!(finish.message_content(), Some("done"));
        assert!(matches!(
            relay(&event("SystemPromptEvent", json!({}))),
            Relay::Skip
        ));
        assert!(matches!(
            relay(&event("ObservationEvent", json!({ "tool_name": "finish" }))),
            Relay::Skip
        ));
        assert!(matches!(
            relay(&event("MessageEvent", json!({ "source": "user" }))),
            Relay::Skip
        ));
        assert!(matches!(
            relay(&json!({ "kind": "ActionEvent" })),
            Relay::Malformed
        ));
        assert!(matches!(relay(&json!([1, 2])), Relay::Malformed));
    }

    #[test]
    fn execution_status_becomes_the_agent_state() {
        let idle = event(
            "ConversationStateUpdateEvent",
            json!({ "key": "execution_status", "value": "idle" }),
        );
        assert!(matches!(
            relay(&idle),
            Relay::State(AgentState::AwaitingUserInput, _)
        ));
        let full = event(
            "ConversationStateUpdateEvent",
            json!({ "key": "full_state", "value": { "execution_status": "finished" } }),
        );
        assert!(matches!(
            relay(&full),
            Relay::State(AgentState::Finished, _)
        ));
        let stats = event(
            "ConversationStateUpdateEvent",
            json!({ "key": "stats", "value": {} }),
        );
        assert!(matches!(relay(&stats), Relay::Skip));
    }

    #[test]
    fn a_huge_observation_is_cut_to_fit_the_store() {
        let big = event(
            "ObservationEvent",
            json!({ "tool_name": "terminal",
                    "observation": { "content": [{ "type": "text", "text": "x".repeat(1 << 20) }] } }),
        );
        let Relay::Event(big) = relay(&big) else {
            panic!("an event")
        };
        assert!(big.json_len() <= shared::domain::MAX_EVENT_BYTES);
        assert_eq!(big.remote.unwrap().id, "e1");
    }
}
