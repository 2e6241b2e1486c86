//! The agent side of a conversation:
//! - [`state`]: the state machine of the agent loop.
//! - [`session`]: the loop itself, one task per conversation this node owns.
//! - [`runtime`]: the port a loop's agent runs behind (`AGENT_RUNTIME`): [`chat`] (`builtin`, `llm`)
//!   or [`openhands`] (an OpenHands agent-server).
//! - [`llm`]: the OpenAI-compatible chat-completions client; [`prompt`]: what a turn sends it (the
//!   system prompt, the newest turns that fit the model's input budget).
//! - [`builtin`]: the deterministic agent used when no model is configured.
//! - [`title`]: a conversation's title from its first message, by its owner's model.

pub(crate) mod builtin;
pub(crate) mod chat;
pub(crate) mod llm;
pub(crate) mod openhands;
pub(crate) mod prompt;
pub(crate) mod runtime;
pub(crate) mod session;
pub(crate) mod state;
pub(crate) mod title;

use shared::domain::{ChatMessage, ChatRole, ModelSettings};

use crate::metrics::NodeMetrics;
use llm::LlmClient;

/// Why the agent could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AgentError {
    #[error("the model is rate limited: {0}")]
    RateLimited(String),
    #[error("the model is unavailable: {0}")]
    Unavailable(String),
    #[error("the agent runtime is unavailable: {0}")]
    RuntimeUnavailable(String),
}

/// One counted call of the model.
async fn ask<M: serde::Serialize + Sync>(
    client: &LlmClient,
    messages: &[M],
    metrics: &NodeMetrics,
) -> Result<String, AgentError> {
    metrics.llm_requests.inc();
    let answer = client.complete(messages).await;
    if answer.is_err() {
        metrics.llm_failures.inc();
    }
    answer
}

/// Who answers: a model, or the built-in agent.
#[derive(Clone)]
pub(crate) enum Agent {
    Builtin,
    Model(LlmClient),
}

impl Agent {
    /// The answer to a conversation's turn: `history` ends with the message to answer. A model gets
    /// the system prompt and the newest part of the history that fits its input budget.
    pub(crate) async fn answer(
        &self,
        history: &[ChatMessage],
        metrics: &NodeMetrics,
    ) -> Result<String, AgentError> {
        match self {
            Self::Builtin => Ok(builtin::answer(history)),
            Self::Model(client) => {
                let config = client.config();
                let system = ChatMessage::new(ChatRole::System, &config.system_prompt);
                let request = prompt::turn_request(&system, history, config.max_input_tokens);
                ask(client, &request, metrics).await
            }
        }
    }

    /// A chat completion of `messages` as given (`request_llm_completion`).
    pub(crate) async fn complete(
        &self,
        messages: &[ChatMessage],
        metrics: &NodeMetrics,
    ) -> Result<String, AgentError> {
        match self {
            Self::Builtin => Ok(builtin::answer(messages)),
            Self::Model(client) => ask(client, messages, metrics).await,
        }
    }

    /// The agent of a conversation with its own model (`None` for the built-in agent: it has none).
    pub(crate) fn with_settings(&self, settings: &ModelSettings) -> Option<Self> {
        match self {
            Self::Builtin => None,
            Self::Model(client) => Some(Self::Model(client.with_settings(settings))),
        }
    }

    /// How the agent shows in `/health`: the model's name, or the built-in label.
    pub(crate) fn label(&self) -> &str {
        match self {
            Self::Builtin => "built-in (no model configured)",
            Self::Model(client) => client.model(),
        }
    }
}
