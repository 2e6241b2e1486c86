//! Requests to a conversation's owner (a stop, an extra LLM completion), wherever it runs: served in
//! place when the loop is local, otherwise sent to the owner node with a correlation id and awaited with
//! a timeout; the reply comes back as a directed message. Abandoned requests (timed out, caller gone)
//! are removed by a drop guard, so a late reply finds nothing and is ignored.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use std::sync::Arc;
use std::time::Duration;

use shared::domain::{ChatMessage, ConversationId, NodeId};
use shared::ports::StoreError;
use shared::ports::coordination::{
    CoordinationError, Destination, NodeMessage, OwnerReply, OwnerRequest,
};
use tokio::sync::oneshot;

use crate::agent::Agent;
use crate::agent::session::LoopContext;
use crate::sessions::{Control, SessionHandle};

/// Requests to owners, and the answers to other nodes' requests. Holds the loops' context: a
/// completion is served by the loop's agent, a stop by the loop.
pub(crate) struct OwnerCalls {
    node_id: NodeId,
    loops: Arc<LoopContext>,
    /// How long a request to another node may take.
    timeout: Duration,
    pending: Mutex<HashMap<String, oneshot::Sender<OwnerReply>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the conversation's owner did not answer in time")]
    Timeout,
    #[error(transparent)]
    Coordination(#[from] CoordinationError),
}

/// Why `request_llm_completion` failed.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    #[error("the conversation is not running")]
    NotRunning,
    #[error("the model failed: {0}")]
    Model(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Removes a pending call when the caller stops waiting for it.
struct PendingGuard<'a> {
    calls: &'a OwnerCalls,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.id);
    }
}

impl OwnerCalls {
    pub(crate) fn new(node_id: NodeId, loops: Arc<LoopContext>, timeout: Duration) -> Self {
        Self {
            node_id,
            loops,
            timeout,
            pending: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<OwnerReply>>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands a reply from another node to the caller still waiting for it.
    pub(crate) fn complete(&self, id: &str, reply: OwnerReply) {
        if let Some(waiting) = self.lock().remove(id) {
            let _ = waiting.send(reply);
        }
    }

    /// Sends `request` to the conversation's owner and waits for its reply; `None` when nobody runs it.
    pub(crate) async fn request(
        &self,
        conversation: &ConversationId,
        request: OwnerRequest,
    ) -> Result<Option<OwnerReply>, CallError> {
        if let Some(handle) = self.loops.sessions.get(conversation) {
            return Ok(Some(self.serve(&handle, request).await));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (sender, reply) = oneshot::channel();
        self.lock().insert(id.clone(), sender);
        let _guard = PendingGuard {
            calls: self,
            id: id.clone(),
        };
        let message = NodeMessage::Request {
            id,
            reply_to: self.node_id.clone(),
            conversation: conversation.clone(),
            request,
        };
        let sent = self
            .loops
            .rooms
            .send(&Destination::OwnerOf(conversation.clone()), &message)
            .await?;
        if sent.is_none() {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(reply)) => Ok(Some(reply)),
            Ok(Err(_)) | Err(_) => Err(CallError::Timeout),
        }
    }

    /// Serves a request for a loop running here.
    async fn serve(&self, handle: &SessionHandle, request: OwnerRequest) -> OwnerReply {
        match request {
            OwnerRequest::Stop { reason } => {
                let (done, stopped) = oneshot::channel();
                let control = Control::Stop {
                    reason,
                    done: Some(done),
                };
                if handle.control.send(control).await.is_err() {
                    return OwnerReply::NotOwner;
                }
                match stopped.await {
                    Ok(()) => OwnerReply::Stopped,
                    // The loop ended another way (its lease was lost) or declined the stop.
                    Err(_) => OwnerReply::NotOwner,
                }
            }
            OwnerRequest::Completion { messages } => OwnerReply::Completion {
                result: match self.completions_of(&handle.lease.conversation).await {
                    Ok(agent) => agent
                        .complete(&messages, &self.loops.metrics)
                        .await
                        .map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                },
            },
        }
    }

    /// What answers a conversation's completions: its own model when it chose one (its user's
    /// messages go to no other), else the node's.
    async fn completions_of(&self, conversation: &ConversationId) -> Result<Agent, StoreError> {
        let own = self
            .loops
            .conversations
            .get_conversation(conversation)
            .await?
            .and_then(|meta| meta.model);
        let agent = &self.loops.completions;
        Ok(own
            .and_then(|settings| agent.with_settings(&settings))
            .unwrap_or_else(|| agent.clone()))
    }

    /// Answers a request another node sent to this one.
    pub(crate) async fn answer(
        &self,
        id: String,
        reply_to: NodeId,
        conversation: ConversationId,
        request: OwnerRequest,
    ) {
        let reply = match self.loops.sessions.get(&conversation) {
            Some(handle) => self.serve(&handle, request).await,
            None => OwnerReply::NotOwner,
        };
        let message = NodeMessage::Reply { id, reply };
        if let Err(error) = self
            .loops
            .rooms
            .send(&Destination::Node(reply_to), &message)
            .await
        {
            tracing::warn!(%conversation, reason = %error, "cannot reply to the calling node");
        }
    }

    /// Whether owners have a model to ask (every node of a cluster runs the same agent): the built-in
    /// agent has none, and its completions only echo.
    pub(crate) fn has_model(&self) -> bool {
        matches!(self.loops.completions, Agent::Model(_))
    }

    /// An extra completion through the conversation's model, run on its owner node.
    pub(crate) async fn request_llm_completion(
        &self,
        conversation: &ConversationId,
        messages: Vec<ChatMessage>,
    ) -> Result<String, CompletionError> {
        let request = OwnerRequest::Completion { messages };
        match self.request(conversation, request).await? {
            Some(OwnerReply::Completion { result }) => result.map_err(CompletionError::Model),
            Some(OwnerReply::Stopped | OwnerReply::NotOwner) | None => {
                Err(CompletionError::NotRunning)
            }
        }
    }
}
