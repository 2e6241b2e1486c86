//! Starting and stopping conversations, on demand (the node's periodic work is [`crate::maintenance`]):
//! - starting claims the lease (with the per-user limit, evicting the oldest or refusing) and spawns the
//!   loop; a new conversation's metadata is written only once its lease is claimed;
//! - user actions go to the inbox, and a message to a conversation nobody runs (re)starts it;
//! - stops reach the owner wherever it is; with no owner, the metadata is marked stopped here;
//! - a conversation whose owner died is taken over;
//! - on shutdown every loop hands its conversation over.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shared::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, StatusUpdate, UserAction,
};
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Lease, LeaseEnd, OwnerReply, OwnerRequest,
    RoomMessage, StopReason,
};
use shared::ports::{StoreError, WriteOutcome};
use tokio::sync::oneshot;

use crate::agent::session::Session;
use crate::calls::{self, CallError};
use crate::metrics::inc;
use crate::sessions::{Control, Reservation};
use crate::state::{Node, NodeState};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Coordination(#[from] CoordinationError),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// The result of asking for a conversation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A loop starts on this node.
    Now,
    /// It runs already (here or elsewhere).
    AlreadyRunning,
    /// Its user is at the limit and the policy refuses.
    LimitReached,
}

/// The result of creating a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Started,
    /// A conversation with this id exists already (a redelivered trigger); nothing changed.
    Exists,
    LimitReached,
}

fn claim_request(
    node: &NodeState,
    conversation: &ConversationId,
    user_id: &str,
    min_epoch: u64,
) -> ClaimRequest {
    ClaimRequest {
        conversation: conversation.clone(),
        user_id: user_id.to_owned(),
        max_running: node.limits.max_running,
        policy: node.limits.policy,
        min_epoch,
    }
}

/// Spawns the loop of a claimed conversation.
fn spawn_loop(node: &Node, meta: Conversation, lease: Lease, reservation: Reservation<'_>) {
    let (session, handle) = Session::new(Arc::clone(node), meta, lease);
    reservation.fill(handle);
    node.tasks.spawn(session.run());
}

/// Makes sure the conversation runs somewhere, starting it here if nobody runs it.
pub async fn ensure_running(
    node: &Node,
    conversation: &ConversationId,
    user_id: &str,
) -> Result<Started, LifecycleError> {
    if node.is_shutting_down() {
        return Err(LifecycleError::ShuttingDown);
    }
    let Some(reservation) = node.sessions.reserve(conversation) else {
        return Ok(Started::AlreadyRunning);
    };
    let head = node.events.head(conversation).await?;
    let request = claim_request(node, conversation, user_id, head.epoch + 1);
    match node.coordination.claim(&request).await? {
        ClaimOutcome::Held { .. } => Ok(Started::AlreadyRunning),
        ClaimOutcome::LimitReached => Ok(Started::LimitReached),
        ClaimOutcome::Claimed { lease, evicted } => {
            // The loop reads the metadata afresh when it starts.
            let Some(meta) = node.conversations.get_conversation(conversation).await? else {
                node.coordination.release(&lease, LeaseEnd::Stopped).await?;
                return Ok(Started::AlreadyRunning);
            };
            evict(node, evicted);
            spawn_loop(node, meta, lease, reservation);
            Ok(Started::Now)
        }
    }
}

/// Creates a conversation and starts it, its first message (if any) waiting in its inbox. The lease is
/// claimed first, so a refused start writes nothing.
pub async fn create(
    node: &Node,
    meta: Conversation,
    first_message: Option<UserAction>,
) -> Result<Created, LifecycleError> {
    if node.is_shutting_down() {
        return Err(LifecycleError::ShuttingDown);
    }
    let Some(reservation) = node.sessions.reserve(&meta.id) else {
        return Ok(Created::Exists);
    };
    let request = claim_request(node, &meta.id, &meta.user_id, 1);
    let (lease, evicted) = match node.coordination.claim(&request).await? {
        ClaimOutcome::Held { .. } => return Ok(Created::Exists),
        ClaimOutcome::LimitReached => return Ok(Created::LimitReached),
        ClaimOutcome::Claimed { lease, evicted } => (lease, evicted),
    };
    match node.conversations.create_conversation(&meta).await {
        Ok(WriteOutcome::Written) => {}
        Ok(WriteOutcome::Conflict) => {
            node.coordination.release(&lease, LeaseEnd::Stopped).await?;
            return Ok(Created::Exists);
        }
        Err(error) => {
            let _ = node.coordination.release(&lease, LeaseEnd::Stopped).await;
            return Err(error.into());
        }
    }
    if let Some(message) = first_message
        && let Err(error) = node
            .coordination
            .push_action(&meta.id, &message, None)
            .await
    {
        // Without its first message the conversation does not start: it is recorded stopped.
        let _ = node.coordination.release(&lease, LeaseEnd::Stopped).await;
        let stopped = Conversation {
            status: ConversationStatus::Stopped,
            agent_state: AgentState::Stopped,
            ..meta
        };
        let _ = node.conversations.update_conversation(&stopped).await;
        return Err(error.into());
    }
    evict(node, evicted);
    spawn_loop(node, meta, lease, reservation);
    Ok(Created::Started)
}

/// Asks the owners of evicted conversations to stop them, in the background.
fn evict(node: &Node, evicted: Vec<ConversationId>) {
    for conversation in evicted {
        let owned = Arc::clone(node);
        node.tasks.spawn(async move {
            let node = owned;
            tracing::info!(%conversation, "evicting: the user runs too many conversations");
            if let Err(error) = stop(&node, &conversation, StopReason::TooManyConversations).await {
                tracing::warn!(%conversation, reason = %error, "eviction failed");
            }
        });
    }
}

/// Stops a conversation wherever it runs; with no owner, marks it stopped.
pub async fn stop(
    node: &Node,
    conversation: &ConversationId,
    reason: StopReason,
) -> Result<(), LifecycleError> {
    match calls::owner_request(node, conversation, OwnerRequest::Stop { reason }).await? {
        Some(OwnerReply::Stopped) => Ok(()),
        _ => mark_stopped(node, conversation, reason).await,
    }
}

/// Records a stop of a conversation no loop runs.
async fn mark_stopped(
    node: &Node,
    conversation: &ConversationId,
    reason: StopReason,
) -> Result<(), LifecycleError> {
    let Some(mut meta) = node.conversations.get_conversation(conversation).await? else {
        return Ok(());
    };
    if reason == StopReason::TooManyConversations {
        inc(&node.metrics.evictions);
        let status = RoomMessage::Status(StatusUpdate::too_many_conversations());
        node.coordination.broadcast(conversation, &status).await?;
    }
    if meta.status == ConversationStatus::Running {
        meta.status = ConversationStatus::Stopped;
        meta.agent_state = AgentState::Stopped;
        meta.last_updated_at = Utc::now();
        node.conversations.update_conversation(&meta).await?;
    }
    Ok(())
}

/// Delivers a user action: durable in the inbox first; a message to a conversation nobody runs
/// (re)starts it here. A requested stop is a stop. A client's retry (the same `client_action_id`) is
/// stored once. Returns whether the conversation runs.
pub async fn deliver(
    node: &Node,
    conversation: &ConversationId,
    user_id: &str,
    action: UserAction,
    client_action_id: Option<&str>,
) -> Result<Started, LifecycleError> {
    inc(&node.metrics.user_actions);
    if let UserAction::ChangeAgentState {
        agent_state: AgentState::Stopped,
    } = action
    {
        stop(node, conversation, StopReason::Explicit).await?;
        return Ok(Started::AlreadyRunning);
    }
    let pushed = node
        .coordination
        .push_action(conversation, &action, client_action_id)
        .await?;
    match (pushed.owner, action) {
        (None, UserAction::Message { .. }) => ensure_running(node, conversation, user_id).await,
        _ => Ok(Started::AlreadyRunning),
    }
}

/// Takes a conversation over after its owner left, if it is still meant to run.
pub async fn take_over(node: &Node, conversation: &ConversationId) -> Result<(), LifecycleError> {
    if let Some(meta) = node.conversations.get_conversation(conversation).await?
        && meta.status == ConversationStatus::Running
    {
        ensure_running(node, conversation, &meta.user_id).await?;
    }
    Ok(())
}

/// Hands every conversation of this node over (SIGTERM), waiting up to `within` for the loops.
pub async fn hand_over_all(node: &NodeState, within: Duration) {
    node.begin_shutdown();
    let mut waiting = Vec::new();
    for handle in node.sessions.running() {
        let (done, finished) = oneshot::channel();
        if handle
            .control
            .send(Control::HandOver { done })
            .await
            .is_ok()
        {
            waiting.push(finished);
        }
    }
    let all = futures::future::join_all(waiting);
    if tokio::time::timeout(within, all).await.is_err() {
        tracing::warn!("some agent loops did not hand over in time");
    }
}
