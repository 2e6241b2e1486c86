//! The agent-runtime port: what turns a conversation's user actions into agent events. The node keeps
//! everything else (leases, fencing, the inbox, rooms, replay, takeover, the per-user limit); a runtime
//! is opened by the loop that owns the conversation and closed when that loop ends.
//!
//! Two kinds sit behind it: chat runtimes answer each message at once (the built-in agent, a model),
//! remote runtimes take the message and produce events of their own as their agent works (the
//! OpenHands agent-server).

use std::collections::HashSet;
use std::time::Instant;

use async_trait::async_trait;
use shared::domain::{
    AgentState, ChatMessage, Conversation, ConversationEvent, ConversationId, RemoteAgent,
    RemoteEventRef,
};

use super::AgentError;

/// What a runtime is opened with: the events of it the store already holds (after a takeover, so
/// that a resumed relay neither skips nor repeats one).
#[derive(Debug, Default, Clone)]
pub(crate) struct Relayed {
    /// The runtime's ids of the stored events.
    pub ids: HashSet<String>,
    /// The newest stored one.
    pub last: Option<RemoteEventRef>,
}

impl Relayed {
    pub(crate) fn remember(&mut self, event: &ConversationEvent) {
        if let Some(remote) = &event.remote {
            self.ids.insert(remote.id.clone());
            self.last = Some(remote.clone());
        }
    }
}

/// How the runtime takes a user's message.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The agent's answer: the turn is over.
    Answer(String),
    /// The agent works on it; what it does arrives from [`RuntimeSession::next`].
    Accepted,
}

/// What the runtime produced on its own.
#[derive(Debug)]
pub(crate) enum Output {
    /// Events to store, in order, and the agent state they lead to, if it changed; `received`: when
    /// the first of them reached the node (the relay's latency is timed from it).
    Events {
        events: Vec<RuntimeEvent>,
        received: Instant,
    },
    /// The runtime stays unreachable past the retry budget: the conversation goes to `error`.
    Failed(AgentError),
}

#[derive(Debug)]
pub(crate) enum RuntimeEvent {
    /// An event to store (its id is set when it is recorded).
    Event(ConversationEvent),
    /// The agent's state as the runtime reports it (stored, under the runtime's id, when it changes
    /// the conversation's).
    State(AgentState, RemoteEventRef),
}

/// How the loop that opened a runtime session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Stopped (by the user, the limit or idleness): the agent stops working.
    Stopped,
    /// Another node carries on (hand-over, lost lease): the agent keeps working.
    Leaving,
}

/// The runtimes of the node's conversations.
#[async_trait]
pub(crate) trait AgentRuntime: Send + Sync {
    /// How the runtime shows in `/health`.
    fn label(&self) -> &str;

    /// Whether a conversation may choose its own model (the runtime has a model to replace).
    fn takes_model_settings(&self) -> bool;

    /// The runtime side of `conversation`, which this node now owns; `history` is its chat so far.
    async fn open(
        &self,
        conversation: &Conversation,
        relayed: &Relayed,
        history: &[ChatMessage],
    ) -> Result<Box<dyn RuntimeSession>, AgentError>;

    /// The whole of an event the runtime produced for `conversation` (its id there: `remote_id`), as
    /// the runtime keeps it; `None` when it has no such event (or keeps none).
    async fn remote_event(
        &self,
        _conversation: &ConversationId,
        _remote_id: &str,
    ) -> Result<Option<serde_json::Value>, AgentError> {
        Ok(None)
    }

    /// Stops what the runtime started (the node is stopping).
    async fn shutdown(&self) {}
}

/// One conversation's runtime, held by its loop.
#[async_trait]
pub(crate) trait RuntimeSession: Send + Sync {
    /// Where the agent runs, when that is elsewhere: recorded in the conversation's metadata.
    fn remote_agent(&self) -> Option<RemoteAgent> {
        None
    }

    /// Hands the agent the user's message, the last of `history`.
    async fn message(&mut self, history: &[ChatMessage]) -> Result<Reply, AgentError>;

    /// Whether a turn recorded but left unanswered by a previous owner must be handed to the agent
    /// again (a remote agent may have it already).
    async fn needs_resent(&mut self, _history: &[ChatMessage]) -> bool {
        true
    }

    async fn pause(&mut self) -> Result<(), AgentError> {
        Ok(())
    }

    async fn resume(&mut self) -> Result<(), AgentError> {
        Ok(())
    }

    /// The user's answer to the action the agent asked to confirm.
    async fn confirm(&mut self, _accept: bool) -> Result<(), AgentError> {
        Ok(())
    }

    /// The runtime's next events; never resolves for a runtime that only answers.
    async fn next(&mut self) -> Output {
        std::future::pending().await
    }

    async fn close(&mut self, _closing: Closing) {}
}
