//! The chat runtimes (`AGENT_RUNTIME=builtin` or `llm`): each message is answered at once, by the
//! built-in agent or by a model from the conversation's history.

use std::sync::Arc;

use async_trait::async_trait;
use shared::domain::{ChatMessage, Conversation};

use super::runtime::{AgentRuntime, Relayed, Reply, RuntimeSession};
use super::{Agent, AgentError};
use crate::metrics::NodeMetrics;

pub(crate) struct ChatRuntime {
    agent: Agent,
    metrics: Arc<NodeMetrics>,
}

impl ChatRuntime {
    pub(crate) fn new(agent: Agent, metrics: Arc<NodeMetrics>) -> Self {
        Self { agent, metrics }
    }
}

#[async_trait]
impl AgentRuntime for ChatRuntime {
    fn label(&self) -> &str {
        self.agent.label()
    }

    fn takes_model_settings(&self) -> bool {
        matches!(self.agent, Agent::Model(_))
    }

    async fn open(
        &self,
        conversation: &Conversation,
        _relayed: &Relayed,
        _history: &[ChatMessage],
    ) -> Result<Box<dyn RuntimeSession>, AgentError> {
        let agent = conversation
            .model
            .as_ref()
            .and_then(|settings| self.agent.with_settings(settings));
        Ok(Box::new(ChatSession {
            agent: agent.unwrap_or_else(|| self.agent.clone()),
            metrics: Arc::clone(&self.metrics),
        }))
    }
}

struct ChatSession {
    agent: Agent,
    metrics: Arc<NodeMetrics>,
}

#[async_trait]
impl RuntimeSession for ChatSession {
    async fn message(&mut self, history: &[ChatMessage]) -> Result<Reply, AgentError> {
        self.agent
            .answer(history, &self.metrics)
            .await
            .map(Reply::Answer)
    }
}
