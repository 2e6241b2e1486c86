//! Starting and stopping conversations, on demand (the node's periodic work is [`crate::maintenance`]):
//! - starting claims the lease (with the per-user limit, evicting the oldest or refusing) and spawns the
//!   loop; a new conversation's metadata is written only once its lease is claimed;
//! - user actions go to the inbox, and a message to a conversation nobody runs (re)starts it;
//! - stops reach the owner wherever it is; with no owner, the metadata is marked stopped here;
//! - a conversation whose owner died (reaped) or left (handed over) is taken from the cluster's
//!   hand-over list and taken over, a bounded number at once;
//! - on shutdown every loop hands its conversation over.
//!
//! [`Lifecycle`] is what the REST and Socket.IO handlers, the dispatcher, maintenance and the starter
//! share: the loops' context, the calls to owners, the limits, and the node's transient tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, StatusUpdate, UserAction, UserId,
};
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Lease, LeaseEnd, OwnerReply, OwnerRequest,
    RoomMessage, StopReason,
};
use shared::ports::{StoreError, WriteOutcome};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::task::TaskTracker;

use crate::agent::session::{LoopContext, Session};
use crate::calls::{CallError, OwnerCalls};
use crate::config::Limits;
use crate::sessions::{Control, Reservation, Sessions};

/// How many takeovers a node runs at once: a dead node's conversations resume concurrently, without
/// every one of them reading the stores at the same moment.
const CONCURRENT_TAKEOVERS: usize = 16;

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
pub(crate) enum Started {
    /// A loop starts on this node.
    Now,
    /// It runs already (here or elsewhere).
    AlreadyRunning,
    /// Its user is at the limit and the policy refuses.
    LimitReached,
}

/// The result of creating a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    Started,
    /// A conversation with this id exists already (a redelivered trigger); nothing changed.
    Exists,
    LimitReached,
}

/// Starting and stopping conversations on this node.
pub(crate) struct Lifecycle {
    loops: Arc<LoopContext>,
    calls: OwnerCalls,
    limits: Limits,
    /// The node's transient work (agent loops, takeovers, evictions, answers to other nodes): spawned
    /// here, so that shutdown waits for it after the hand-over.
    tasks: TaskTracker,
    /// Set once SIGTERM (or the test's shutdown) arrives: no new loops start.
    shutting_down: AtomicBool,
    takeovers: Arc<Semaphore>,
    /// A drain of the hand-over list runs, and whether it was asked for again meanwhile.
    draining: AtomicBool,
    handovers_wanted: AtomicBool,
}

impl Lifecycle {
    pub(crate) fn new(loops: Arc<LoopContext>, calls: OwnerCalls, limits: Limits) -> Self {
        Self {
            loops,
            calls,
            limits,
            tasks: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
            takeovers: Arc::new(Semaphore::new(CONCURRENT_TAKEOVERS)),
            draining: AtomicBool::new(false),
            handovers_wanted: AtomicBool::new(false),
        }
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.loops.sessions
    }

    pub(crate) fn calls(&self) -> &OwnerCalls {
        &self.calls
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Stops what the agent runtime started (its agent-server), once the loops have ended.
    pub(crate) async fn stop_runtime(&self) {
        self.loops.runtime.shutdown().await;
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Takes conversations from the cluster's hand-over list (a dead node's, reaped; a leaving node's,
    /// handed over), in the background, while one of this node's takeover permits is free: every
    /// node told of the list pulls at the pace it resumes them, so the work spreads over the cluster
    /// and no node queues more than it can start. Called on every notice; a call while a drain runs
    /// makes that drain look once more before it ends, so that no notice is lost.
    pub(crate) fn spawn_drain_handovers(self: &Arc<Self>) {
        if !self.is_shutting_down() {
            let lifecycle = Arc::clone(self);
            self.tasks
                .spawn(async move { lifecycle.drain_handovers().await });
        }
    }

    async fn drain_handovers(self: &Arc<Self>) {
        self.handovers_wanted.store(true, Ordering::Release);
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        loop {
            self.handovers_wanted.store(false, Ordering::Release);
            self.take_handed_over().await;
            self.draining.store(false, Ordering::Release);
            if !self.handovers_wanted.load(Ordering::Acquire)
                || self.draining.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    }

    async fn take_handed_over(self: &Arc<Self>) {
        while !self.is_shutting_down() {
            let Ok(permit) = Arc::clone(&self.takeovers).acquire_owned().await else {
                return;
            };
            let conversation = match self.loops.leases.take_handed_over(1).await {
                Ok(taken) => match taken.into_iter().next() {
                    Some(conversation) => conversation,
                    None => return,
                },
                Err(error) => {
                    tracing::warn!(reason = %error, "the hand-over list could not be read");
                    return;
                }
            };
            let lifecycle = Arc::clone(self);
            let started = Instant::now();
            self.tasks.spawn(async move {
                if let Err(error) = lifecycle.take_over(&conversation, started).await {
                    tracing::warn!(%conversation, reason = %error, "takeover failed");
                }
                drop(permit);
            });
        }
    }

    /// Spawns the loop of a claimed conversation (taken over since `takeover_started`, if it is).
    fn spawn_loop(
        &self,
        meta: Conversation,
        lease: Lease,
        reservation: Reservation<'_>,
        takeover_started: Option<Instant>,
    ) {
        let (session, handle) =
            Session::new(Arc::clone(&self.loops), meta, lease, takeover_started);
        reservation.fill(handle);
        self.tasks.spawn(session.run());
    }

    fn claim_request(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
        min_epoch: u64,
    ) -> ClaimRequest {
        ClaimRequest {
            conversation: conversation.clone(),
            user_id: user_id.to_owned(),
            max_running: self.limits.max_running,
            policy: self.limits.policy,
            min_epoch,
        }
    }

    /// Makes sure the conversation runs somewhere, starting it here if nobody runs it.
    pub(crate) async fn ensure_running(
        self: &Arc<Self>,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<Started, LifecycleError> {
        self.run_here_unless_running(conversation, user_id, None)
            .await
    }

    /// [`Lifecycle::ensure_running`], for a takeover begun at `takeover_started` if it is one.
    async fn run_here_unless_running(
        self: &Arc<Self>,
        conversation: &ConversationId,
        user_id: &UserId,
        takeover_started: Option<Instant>,
    ) -> Result<Started, LifecycleError> {
        if self.is_shutting_down() {
            return Err(LifecycleError::ShuttingDown);
        }
        let Some(reservation) = self.loops.sessions.reserve(conversation) else {
            return Ok(Started::AlreadyRunning);
        };
        let head = self.loops.events.head(conversation).await?;
        let request = self.claim_request(conversation, user_id, head.epoch + 1);
        match self.loops.leases.claim(&request).await? {
            ClaimOutcome::Held { .. } => Ok(Started::AlreadyRunning),
            ClaimOutcome::LimitReached => Ok(Started::LimitReached),
            ClaimOutcome::Claimed { lease, evicted } => {
                // The loop reads the metadata afresh when it starts.
                let Some(meta) = self
                    .loops
                    .conversations
                    .get_conversation(conversation)
                    .await?
                else {
                    self.loops.leases.release(&lease, LeaseEnd::Stopped).await?;
                    return Ok(Started::AlreadyRunning);
                };
                self.evict(evicted);
                self.spawn_loop(meta, lease, reservation, takeover_started);
                Ok(Started::Now)
            }
        }
    }

    /// Creates a conversation and starts it, its first message (if any) waiting in its inbox. The lease is
    /// claimed first, so a refused start writes nothing.
    pub(crate) async fn create(
        self: &Arc<Self>,
        mut meta: Conversation,
        first_message: Option<UserAction>,
    ) -> Result<Created, LifecycleError> {
        if self.is_shutting_down() {
            return Err(LifecycleError::ShuttingDown);
        }
        let Some(reservation) = self.loops.sessions.reserve(&meta.id) else {
            return Ok(Created::Exists);
        };
        let request = self.claim_request(&meta.id, &meta.user_id, 1);
        let (lease, evicted) = match self.loops.leases.claim(&request).await? {
            ClaimOutcome::Held { .. } => return Ok(Created::Exists),
            ClaimOutcome::LimitReached => return Ok(Created::LimitReached),
            ClaimOutcome::Claimed { lease, evicted } => (lease, evicted),
        };
        match self
            .loops
            .conversations
            .create_conversation_now(&mut meta)
            .await
        {
            Ok(WriteOutcome::Written) => {}
            Ok(WriteOutcome::Conflict) => {
                self.loops.leases.release(&lease, LeaseEnd::Stopped).await?;
                return Ok(Created::Exists);
            }
            Err(error) => {
                let _ = self.loops.leases.release(&lease, LeaseEnd::Stopped).await;
                return Err(error.into());
            }
        }
        if let Some(message) = first_message
            && let Err(error) = self.loops.inbox.push_action(&meta.id, &message, None).await
        {
            // Without its first message the conversation does not start: it is recorded stopped.
            let _ = self.loops.leases.release(&lease, LeaseEnd::Stopped).await;
            let stopped = Conversation {
                status: ConversationStatus::Stopped,
                agent_state: AgentState::Stopped,
                ..meta
            };
            let _ = self.loops.conversations.update_conversation(&stopped).await;
            return Err(error.into());
        }
        self.evict(evicted);
        self.spawn_loop(meta, lease, reservation, None);
        Ok(Created::Started)
    }

    /// Asks the owners of evicted conversations to stop them, in the background.
    fn evict(self: &Arc<Self>, evicted: Vec<ConversationId>) {
        for conversation in evicted {
            let lifecycle = Arc::clone(self);
            self.tasks.spawn(async move {
                tracing::info!(%conversation, "evicting: the user runs too many conversations");
                if let Err(error) = lifecycle
                    .stop(&conversation, StopReason::TooManyConversations)
                    .await
                {
                    tracing::warn!(%conversation, reason = %error, "eviction failed");
                }
            });
        }
    }

    /// Stops a conversation wherever it runs; with no owner, marks it stopped.
    pub(crate) async fn stop(
        &self,
        conversation: &ConversationId,
        reason: StopReason,
    ) -> Result<(), LifecycleError> {
        match self
            .calls
            .request(conversation, OwnerRequest::Stop { reason })
            .await?
        {
            Some(OwnerReply::Stopped) => Ok(()),
            _ => self.mark_stopped(conversation, reason).await,
        }
    }

    /// Records a stop of a conversation no loop runs.
    async fn mark_stopped(
        &self,
        conversation: &ConversationId,
        reason: StopReason,
    ) -> Result<(), LifecycleError> {
        let Some(mut meta) = self
            .loops
            .conversations
            .get_conversation(conversation)
            .await?
        else {
            return Ok(());
        };
        if reason == StopReason::TooManyConversations {
            self.loops.metrics.evictions.inc();
            let status = RoomMessage::Status(StatusUpdate::too_many_conversations());
            self.loops.rooms.broadcast(conversation, &status).await?;
        }
        if meta.status == ConversationStatus::Running {
            meta.status = ConversationStatus::Stopped;
            meta.agent_state = AgentState::Stopped;
            meta.last_updated_at = Utc::now();
            self.loops.conversations.update_conversation(&meta).await?;
        }
        // An evicted conversation whose owner is gone stops counting only now.
        self.loops
            .leases
            .forget_stopped(conversation, &meta.user_id)
            .await?;
        Ok(())
    }

    /// Delivers a user action: durable in the inbox first; a message to a conversation nobody runs
    /// (re)starts it here. A requested stop is a stop. A client's retry (the same `client_action_id`) is
    /// stored once. Returns whether the conversation runs.
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        conversation: &ConversationId,
        user_id: &UserId,
        action: UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Started, LifecycleError> {
        self.loops.metrics.user_actions.inc();
        if let UserAction::ChangeAgentState {
            agent_state: AgentState::Stopped,
        } = action
        {
            self.stop(conversation, StopReason::Explicit).await?;
            return Ok(Started::AlreadyRunning);
        }
        let pushed = self
            .loops
            .inbox
            .push_action(conversation, &action, client_action_id)
            .await?;
        match (pushed.owner, action) {
            (None, UserAction::Message { .. }) => self.ensure_running(conversation, user_id).await,
            _ => Ok(Started::AlreadyRunning),
        }
    }

    /// Takes a conversation over after its owner left (taken off the hand-over list at `started`), if
    /// it is still meant to run; one that stopped meanwhile is forgotten (what a dead owner could not
    /// do: leave the running set, retire its keys).
    async fn take_over(
        self: &Arc<Self>,
        conversation: &ConversationId,
        started: Instant,
    ) -> Result<(), LifecycleError> {
        let Some(meta) = self
            .loops
            .conversations
            .get_conversation(conversation)
            .await?
        else {
            return Ok(());
        };
        if meta.status == ConversationStatus::Running {
            self.run_here_unless_running(conversation, &meta.user_id, Some(started))
                .await?;
        } else {
            self.loops
                .leases
                .forget_stopped(conversation, &meta.user_id)
                .await?;
        }
        Ok(())
    }

    /// Hands every conversation of this node over (SIGTERM), waiting up to `within` for the loops.
    pub(crate) async fn hand_over_all(&self, within: Duration) {
        self.shutting_down.store(true, Ordering::Release);
        let mut waiting = Vec::new();
        for handle in self.loops.sessions.running() {
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
}
