//! One conversation's agent loop, on the node holding its lease. It fences the event store with the
//! lease epoch, resumes from the store (events, inbox cursor), opens the conversation's agent runtime,
//! then consumes the inbox in order: each user action is recorded (with its inbox id, atomically) and
//! handed to the runtime, whose answer or own events are recorded in turn; every event is published
//! to the conversation's room after it is durable. The loop's metadata is written under the lease
//! epoch as well: a lost lease, a refused append or a refused metadata write (a newer owner has
//! written) ends the loop without another write; a stop records `stopped`, writes the metadata and
//! releases the lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::domain::status::{LLM_RATE_LIMITED, LLM_UNAVAILABLE, RUNTIME_UNAVAILABLE};
use shared::domain::{
    AgentState, ChatMessage, ChatRole, Conversation, ConversationEvent, ConversationStateChanged,
    ConversationStatus, EventSource, InboxId, RemoteEventRef, StatusUpdate, UserAction,
};
use shared::ports::coordination::{
    Inbox, InboxEntry, Lease, LeaseEnd, Leases, Messaging, RoomMessage, StopReason,
};
use shared::ports::event_store::{AppendOutcome, EventBatch, FenceOutcome};
use shared::ports::{ConversationStore, EventStore, LoopState, OwnerWrite, StoreError};
use shared::retry::RetryPolicy;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::runtime::{AgentRuntime, Closing, Output, Relayed, Reply, RuntimeEvent, RuntimeSession};
use super::state::{self, Input};
use super::{Agent, AgentError};
use crate::callbacks::StateCallbacks;
use crate::metrics::NodeMetrics;
use crate::sessions::{Activity, Control, SessionHandle, Sessions};

/// Inbox entries read at a time.
const INBOX_BATCH: usize = 16;
/// Events read at a time when the loop rebuilds its history.
const HISTORY_PAGE: usize = 100;
/// How an append that fails for lack of the store is retried before the loop gives up.
const APPEND_RETRY: RetryPolicy = RetryPolicy::EVENT_APPEND;
const CONTROL_CAPACITY: usize = 16;
/// The shortest time between two metadata writes of one conversation.
const METADATA_COALESCING: Duration = Duration::from_millis(50);

/// How a loop ends.
enum Ending {
    Stop {
        reason: StopReason,
        done: Option<oneshot::Sender<()>>,
    },
    LeaseLost,
    HandOver {
        done: Option<oneshot::Sender<()>>,
    },
    StoreFailed,
}

/// Something to record: a chat message, an input to the state machine, an event of the runtime or
/// the state it reports.
enum Draft {
    Message(EventSource, String),
    State(Input, &'static str),
    Relayed(ConversationEvent),
    RuntimeState(AgentState, RemoteEventRef),
}

/// Whether this loop may still write the conversation's metadata: `Lost` once a write was refused
/// because a newer owner has written it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    Held,
    Lost,
}

/// What woke the loop.
enum Wake {
    Control(Option<Control>),
    Runtime(Output),
}

/// What a conversation's loop needs from its node: the stores, the inbox, its lease and the rooms of
/// the cluster, the agent runtime (and the model for extra completions), the state-change callbacks,
/// the node's registry of loops (a loop frees its slot as it ends) and its counters.
pub(crate) struct LoopContext {
    pub events: Arc<dyn EventStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub inbox: Arc<dyn Inbox>,
    pub leases: Arc<dyn Leases>,
    pub rooms: Arc<dyn Messaging>,
    pub runtime: Arc<dyn AgentRuntime>,
    /// What answers `request_llm_completion`.
    pub completions: Agent,
    pub callbacks: StateCallbacks,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<NodeMetrics>,
    /// How long a conversation with no client may idle before it stops.
    pub close_delay: Duration,
}

pub(crate) struct Session {
    context: Arc<LoopContext>,
    meta: Conversation,
    lease: Lease,
    next_id: u64,
    inbox_cursor: Option<InboxId>,
    history: Vec<ChatMessage>,
    /// The conversation's agent runtime, once opened.
    runtime: Option<Box<dyn RuntimeSession>>,
    /// The runtime's events the store holds, until the runtime is opened with them.
    relayed: Relayed,
    activity: Arc<Activity>,
    control: mpsc::Receiver<Control>,
    inbox_waiting: bool,
    metadata: Option<watch::Sender<Conversation>>,
    metadata_writer: Option<JoinHandle<Fence>>,
    /// When the agent's current turn began (a user's message taken, or the agent set running).
    turn_started: Option<Instant>,
    /// When this node took the conversation over, until its loop has resumed.
    takeover_started: Option<Instant>,
}

impl Session {
    /// A loop for `meta` under `lease`, and the handle the node keeps for it; `takeover_started`: when
    /// this node began taking it over, if it does. Nothing runs until [`Session::run`].
    pub(crate) fn new(
        context: Arc<LoopContext>,
        meta: Conversation,
        lease: Lease,
        takeover_started: Option<Instant>,
    ) -> (Self, SessionHandle) {
        let (control_sender, control) = mpsc::channel(CONTROL_CAPACITY);
        let writer_control = control_sender.downgrade();
        let activity = Arc::new(Activity::new(meta.agent_state));
        let handle = SessionHandle {
            control: control_sender,
            lease: lease.clone(),
            activity: Arc::clone(&activity),
        };
        // Counted from now, so that a loop shows in the gauge as soon as it is registered.
        context.metrics.running_conversations.inc();
        let (metadata, updates) = watch::channel(meta.clone());
        let writer = tokio::spawn(write_metadata(
            Arc::clone(&context.conversations),
            lease.clone(),
            writer_control,
            updates,
        ));
        let session = Self {
            context,
            meta,
            lease,
            next_id: 0,
            inbox_cursor: None,
            history: Vec::new(),
            runtime: None,
            relayed: Relayed::default(),
            activity,
            control,
            inbox_waiting: true,
            metadata: Some(metadata),
            metadata_writer: Some(writer),
            turn_started: None,
            takeover_started,
        };
        (session, handle)
    }

    pub(crate) async fn run(mut self) {
        self.context.metrics.conversations_started.inc();
        tracing::info!(conversation_id = %self.lease.conversation, epoch = self.lease.epoch, "agent loop starts");
        let ending = match self.resume().await {
            Ok(()) => self.serve().await,
            Err(ending) => ending,
        };
        self.finish(ending).await;
        self.context.metrics.running_conversations.dec();
    }

    /// Fences the store, rebuilds the history and marks the conversation running (its metadata was read
    /// after the lease was claimed).
    async fn resume(&mut self) -> Result<(), Ending> {
        let conversation = &self.lease.conversation;
        // The phases' times, logged: what a takeover's clients wait for.
        let started = Instant::now();
        match self
            .context
            .events
            .fence(conversation, self.lease.epoch)
            .await
        {
            Ok(FenceOutcome::Fenced(head)) => {
                self.next_id = head.next_id;
                self.inbox_cursor = head.inbox_cursor;
            }
            Ok(FenceOutcome::Superseded { epoch }) => {
                tracing::warn!(%conversation, epoch, "a newer owner fenced the conversation");
                return Err(Ending::LeaseLost);
            }
            Err(error) => {
                tracing::error!(%conversation, reason = %error, "cannot fence the event store");
                return Err(Ending::StoreFailed);
            }
        }
        let fenced = started.elapsed();
        let mut start_id = 0;
        let mut last_state = None;
        loop {
            let page = self
                .context
                .events
                .page(conversation, start_id, HISTORY_PAGE)
                .await
                .map_err(|error| {
                    tracing::error!(%conversation, reason = %error, "cannot read the events");
                    Ending::StoreFailed
                })?;
            for event in &page.events {
                start_id = event.id + 1;
                self.relayed.remember(event);
                if let Some(state) = event.agent_state() {
                    last_state = Some(state);
                }
                let role = match event.source {
                    EventSource::User => ChatRole::User,
                    EventSource::Agent => ChatRole::Assistant,
                    EventSource::Environment => continue,
                };
                if let Some(content) = event.message_content() {
                    self.history.push(ChatMessage::new(role, content));
                }
            }
            if !page.has_more || page.events.is_empty() {
                break;
            }
        }
        let read = started.elapsed();
        self.record(
            vec![
                Draft::State(Input::Start, ""),
                Draft::State(Input::Ready, ""),
            ],
            None,
        )
        .await?;
        tracing::info!(
            conversation_id = %self.lease.conversation,
            fenced_ms = fenced.as_millis(),
            history_read_ms = (read - fenced).as_millis(),
            first_events_ms = (started.elapsed() - read).as_millis(),
            "agent loop resumed"
        );
        if let Some(takeover_started) = self.takeover_started.take() {
            self.context
                .metrics
                .takeover
                .observe(takeover_started.elapsed().as_secs_f64());
        }
        // Marked running by the metadata writer, off the path to the first event (a takeover's
        // clients wait for it); the append above was fenced already.
        self.meta.status = ConversationStatus::Running;
        self.meta.last_updated_at = Utc::now();
        self.write_metadata_soon();
        // A remote agent keeps working while its conversation changes owner: re-attach at once.
        if let Err(error) = self.open_runtime().await {
            self.fail(error).await?;
        }
        // A turn the previous owner recorded but did not answer (it left or died) is answered now,
        // unless the runtime has it already.
        let interrupted = last_state == Some(AgentState::Running)
            && self
                .history
                .last()
                .is_some_and(|message| message.role == ChatRole::User);
        let needs_resent = match self.runtime.as_mut() {
            Some(runtime) if interrupted => runtime.needs_resent(&self.history).await,
            _ => false,
        };
        if needs_resent {
            self.record(vec![Draft::State(Input::UserMessage, "resumed")], None)
                .await?;
            self.take_turn().await?;
        }
        Ok(())
    }

    /// Opens the conversation's runtime if it is not open.
    async fn open_runtime(&mut self) -> Result<(), AgentError> {
        if self.runtime.is_none() {
            let runtime = self
                .context
                .runtime
                .open(&self.meta, &self.relayed, &self.history)
                .await?;
            let remote_agent = runtime.remote_agent();
            if remote_agent.is_some() && remote_agent != self.meta.remote_agent {
                self.meta.remote_agent = remote_agent;
                self.write_metadata_soon();
            }
            self.runtime = Some(runtime);
            // The runtime keeps what it needs of it.
            self.relayed = Relayed::default();
        }
        Ok(())
    }

    async fn serve(&mut self) -> Ending {
        loop {
            if self.inbox_waiting {
                self.inbox_waiting = false;
                if let Err(ending) = self.drain_inbox().await {
                    return ending;
                }
                continue;
            }
            let wake = match self.runtime.as_mut() {
                Some(runtime) => tokio::select! {
                    control = self.control.recv() => Wake::Control(control),
                    output = runtime.next() => Wake::Runtime(output),
                },
                None => Wake::Control(self.control.recv().await),
            };
            let handled = match wake {
                Wake::Control(control) => self.on_control(control).await,
                Wake::Runtime(output) => self.relay(output).await,
            };
            if let Err(ending) = handled {
                return ending;
            }
        }
    }

    /// Records what the runtime produced on its own.
    async fn relay(&mut self, output: Output) -> Result<(), Ending> {
        let (events, received) = match output {
            Output::Events { events, received } => (events, received),
            Output::Failed(error) => return self.fail(error).await,
        };
        let mut drafts = Vec::with_capacity(events.len());
        let mut answers = Vec::new();
        for event in events {
            match event {
                RuntimeEvent::Event(event) => {
                    if event.source == EventSource::Agent
                        && let Some(content) = event.message_content()
                    {
                        answers.push(ChatMessage::new(ChatRole::Assistant, content));
                    }
                    drafts.push(Draft::Relayed(event));
                }
                RuntimeEvent::State(state, remote) => {
                    drafts.push(Draft::RuntimeState(state, remote));
                }
            }
        }
        let relayed = drafts.len() as u64;
        self.record(drafts, None).await?;
        self.context.metrics.runtime_events_relayed.inc_by(relayed);
        self.context
            .metrics
            .runtime_event_relay
            .observe(received.elapsed().as_secs_f64());
        self.history.extend(answers);
        Ok(())
    }

    /// Handles a control message; `Err` ends the loop.
    async fn on_control(&mut self, control: Option<Control>) -> Result<(), Ending> {
        match control {
            Some(Control::InboxReady) => {
                self.inbox_waiting = true;
                Ok(())
            }
            Some(Control::Stop {
                reason: StopReason::Idle,
                done,
            }) if !self.still_idle().await => {
                drop(done);
                Ok(())
            }
            Some(Control::Stop { reason, done }) => Err(Ending::Stop { reason, done }),
            Some(Control::LeaseLost) => Err(Ending::LeaseLost),
            Some(Control::HandOver { done }) => Err(Ending::HandOver { done: Some(done) }),
            None => Err(Ending::HandOver { done: None }),
        }
    }

    /// An idle stop decided by the sweep still holds: nothing happened since and no action waits.
    async fn still_idle(&mut self) -> bool {
        let (last_active, agent_state) = self.activity.read();
        if agent_state == AgentState::Running || last_active.elapsed() < self.context.close_delay {
            return false;
        }
        let waiting = self
            .context
            .inbox
            .read_inbox(&self.lease.conversation, self.inbox_cursor.as_ref(), 1)
            .await;
        match waiting {
            Ok(entries) if entries.is_empty() => true,
            Ok(_) => {
                self.inbox_waiting = true;
                false
            }
            Err(_) => false,
        }
    }

    async fn drain_inbox(&mut self) -> Result<(), Ending> {
        loop {
            let read = self
                .context
                .inbox
                .read_inbox(
                    &self.lease.conversation,
                    self.inbox_cursor.as_ref(),
                    INBOX_BATCH,
                )
                .await;
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    // The next poke or action reads again.
                    tracing::warn!(conversation_id = %self.lease.conversation, reason = %error, "cannot read the inbox");
                    return Ok(());
                }
            };
            let Some(last) = entries.last().map(|entry| entry.id.clone()) else {
                return Ok(());
            };
            for entry in entries {
                self.apply(entry).await?;
            }
            if let Err(error) = self
                .context
                .inbox
                .trim_inbox(&self.lease.conversation, &last)
                .await
            {
                tracing::warn!(conversation_id = %self.lease.conversation, reason = %error, "cannot trim the inbox");
            }
        }
    }

    async fn apply(&mut self, entry: InboxEntry) -> Result<(), Ending> {
        match entry.action {
            UserAction::Message { content, .. } => {
                self.turn_started.get_or_insert_with(Instant::now);
                let drafts = vec![
                    Draft::Message(EventSource::User, content.clone()),
                    Draft::State(Input::UserMessage, ""),
                ];
                self.record(drafts, Some(entry.id)).await?;
                self.history
                    .push(ChatMessage::new(ChatRole::User, &content));
                self.take_turn().await
            }
            UserAction::ChangeAgentState { agent_state } => {
                // A requested stop never reaches the inbox: the receiving node turns it into a stop.
                let input = match agent_state {
                    AgentState::Paused => Input::Pause,
                    AgentState::Running => Input::Resume,
                    AgentState::UserConfirmed => Input::Confirmation(true),
                    AgentState::UserRejected => Input::Confirmation(false),
                    _ => return Ok(()),
                };
                // What does not apply (a pause of a paused agent, an answer with nothing to confirm)
                // is not passed on.
                let applies = state::next(self.meta.agent_state, input).is_some();
                self.record(vec![Draft::State(input, "")], Some(entry.id))
                    .await?;
                let Some(runtime) = self.runtime.as_mut().filter(|_| applies) else {
                    return Ok(());
                };
                let told = match input {
                    Input::Pause => runtime.pause().await,
                    Input::Confirmation(accept) => runtime.confirm(accept).await,
                    _ => runtime.resume().await,
                };
                if let Err(error) = told {
                    tracing::warn!(conversation_id = %self.lease.conversation, reason = %error, "the runtime did not take the user's action");
                }
                Ok(())
            }
        }
    }

    /// Hands the message that ends the history to the runtime, listening for control messages
    /// meanwhile (a stop wins over an answer in flight), and records its answer or its failure.
    async fn take_turn(&mut self) -> Result<(), Ending> {
        if let Err(error) = self.open_runtime().await {
            return self.fail(error).await;
        }
        let Some(mut runtime) = self.runtime.take() else {
            return Ok(());
        };
        // Lent to the runtime rather than copied: a long conversation's history is large.
        let history = std::mem::take(&mut self.history);
        let outcome = {
            let turn = runtime.message(&history);
            tokio::pin!(turn);
            loop {
                tokio::select! {
                    reply = &mut turn => break Ok(reply),
                    control = self.control.recv() => {
                        if let Err(ending) = self.on_control(control).await {
                            break Err(ending);
                        }
                    }
                }
            }
        };
        self.runtime = Some(runtime);
        self.history = history;
        match outcome? {
            Ok(Reply::Answer(answer)) => {
                let drafts = vec![
                    Draft::Message(EventSource::Agent, answer.clone()),
                    Draft::State(Input::Answered, ""),
                ];
                self.record(drafts, None).await?;
                self.history
                    .push(ChatMessage::new(ChatRole::Assistant, &answer));
                Ok(())
            }
            // The runtime's events tell the rest.
            Ok(Reply::Accepted) => Ok(()),
            Err(error) => self.fail(error).await,
        }
    }

    /// Records that the agent could not go on, and tells the clients why.
    async fn fail(&mut self, error: AgentError) -> Result<(), Ending> {
        tracing::warn!(conversation_id = %self.lease.conversation, reason = %error, "the agent could not go on");
        let (status, drafts) = match &error {
            AgentError::RateLimited(_) => (
                LLM_RATE_LIMITED,
                vec![Draft::State(Input::ModelRateLimited, "model unavailable")],
            ),
            AgentError::Unavailable(_) => (
                LLM_UNAVAILABLE,
                vec![Draft::State(Input::ModelFailed, "model unavailable")],
            ),
            AgentError::RuntimeUnavailable(_) => {
                self.context.metrics.runtime_failures.inc();
                (
                    RUNTIME_UNAVAILABLE,
                    vec![
                        Draft::Relayed(ConversationEvent::error(0, &error.to_string())),
                        Draft::State(Input::Runtime(AgentState::Error), "runtime unavailable"),
                    ],
                )
            }
        };
        self.publish(RoomMessage::Status(StatusUpdate::error(
            status,
            &error.to_string(),
        )))
        .await;
        self.record(drafts, None).await
    }

    /// Appends the drafts as events (with `consumed` as the inbox cursor), then publishes them, reports
    /// state changes and updates the metadata. Drafts the state machine ignores record nothing.
    async fn record(
        &mut self,
        drafts: Vec<Draft>,
        consumed: Option<InboxId>,
    ) -> Result<(), Ending> {
        let mut agent_state = self.meta.agent_state;
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for draft in drafts {
            let id = self.next_id + events.len() as u64;
            match draft {
                Draft::Message(source, content) => {
                    events.push(ConversationEvent::message(id, source, &content));
                }
                Draft::State(input, reason) => {
                    if let Some(to) = state::next(agent_state, input) {
                        events.push(ConversationEvent::agent_state_changed(id, to, reason));
                        // The very first event of a conversation has no state before it.
                        changes.push((id, (id > 0).then_some(agent_state), to));
                        agent_state = to;
                    }
                }
                Draft::Relayed(event) => events.push(ConversationEvent { id, ..event }),
                Draft::RuntimeState(state, remote) => {
                    if let Some(to) = state::next(agent_state, Input::Runtime(state)) {
                        events.push(ConversationEvent {
                            remote: Some(remote),
                            ..ConversationEvent::agent_state_changed(id, to, "")
                        });
                        changes.push((id, Some(agent_state), to));
                        agent_state = to;
                    }
                }
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let batch = EventBatch::new(events).map_err(|error| {
            tracing::error!(reason = %error, "an event batch was built wrong");
            Ending::StoreFailed
        })?;
        self.append(&batch, consumed.as_ref()).await?;
        self.next_id = batch.next_id();
        if consumed.is_some() {
            self.inbox_cursor = consumed;
        }
        self.context
            .metrics
            .events_appended
            .inc_by(batch.events().len() as u64);
        for event in batch.into_events() {
            self.publish(RoomMessage::Event(event)).await;
        }
        self.time_turns(&changes);
        let now = Utc::now();
        for (event_id, old, new) in changes {
            self.context.callbacks.notify(ConversationStateChanged {
                conversation_id: self.meta.id.clone(),
                user_id: self.meta.user_id.clone(),
                old_state: old,
                new_state: new,
                trigger_id: self.meta.trigger_id.clone(),
                event_id,
                changed_at: now,
            });
        }
        self.meta.agent_state = agent_state;
        self.meta.last_updated_at = now;
        self.activity.touch(agent_state);
        self.write_metadata_soon();
        Ok(())
    }

    /// Times the agent's turns: one runs while the agent state is `running` (from the user's message
    /// taken, when one started it) and ends, recorded and published, when the state leaves it.
    fn time_turns(&mut self, changes: &[(u64, Option<AgentState>, AgentState)]) {
        for &(_, old, new) in changes {
            if new == AgentState::Running {
                self.turn_started.get_or_insert_with(Instant::now);
            } else if old == Some(AgentState::Running)
                && let Some(started) = self.turn_started.take()
            {
                self.context
                    .metrics
                    .agent_turn
                    .observe(started.elapsed().as_secs_f64());
            }
        }
    }

    /// Hands the metadata to its writer (which coalesces writes).
    fn write_metadata_soon(&self) {
        if let Some(metadata) = &self.metadata {
            metadata.send_replace(self.meta.clone());
        }
    }

    async fn append(&self, batch: &EventBatch, consumed: Option<&InboxId>) -> Result<(), Ending> {
        let conversation = &self.lease.conversation;
        // The retries so far: the attempt's number.
        let retries = AtomicU64::new(0);
        let outcome = APPEND_RETRY
            .run(&retries, || async {
                let attempt = retries.load(Ordering::Relaxed);
                let started = Instant::now();
                let outcome = self
                    .context
                    .events
                    .append(conversation, self.lease.epoch, batch, consumed)
                    .await;
                self.context
                    .metrics
                    .store_append
                    .observe(started.elapsed().as_secs_f64());
                match outcome {
                    // A retried append whose first attempt landed after all.
                    Ok(AppendOutcome::IdConflict { next_id })
                        if attempt > 0 && next_id == batch.next_id() =>
                    {
                        Ok(AppendOutcome::Appended)
                    }
                    Err(error) => {
                        tracing::warn!(%conversation, attempt, reason = %error, "append failed");
                        Err(error)
                    }
                    outcome => outcome,
                }
            })
            .await;
        match outcome {
            Ok(AppendOutcome::Appended) => Ok(()),
            Ok(refused) => {
                tracing::warn!(%conversation, epoch = self.lease.epoch, ?refused, "append refused: this node no longer owns the conversation");
                Err(Ending::LeaseLost)
            }
            Err(error) => {
                tracing::error!(%conversation, reason = %error, "append failed: the loop ends");
                Err(Ending::StoreFailed)
            }
        }
    }

    async fn publish(&self, message: RoomMessage) {
        let conversation = &self.lease.conversation;
        if let Err(error) = self.context.rooms.broadcast(conversation, &message).await {
            // The events are durable: clients catch up from the store.
            tracing::warn!(%conversation, reason = %error, "cannot publish to the conversation's room");
        }
    }

    /// Stops the metadata writer and waits for its last write, so that the next write is the last.
    async fn close_metadata_writer(&mut self) -> Fence {
        self.metadata = None;
        match self.metadata_writer.take() {
            Some(writer) => writer.await.unwrap_or(Fence::Held),
            None => Fence::Held,
        }
    }

    /// The loop's last metadata write; `Lost` when the writer or this write found a newer owner.
    async fn write_final_metadata(&mut self) -> Fence {
        if self.close_metadata_writer().await == Fence::Lost {
            return Fence::Lost;
        }
        self.meta.last_updated_at = Utc::now();
        write_state(self.context.conversations.as_ref(), &self.lease, &self.meta)
            .await
            .unwrap_or_else(|error| {
                tracing::error!(conversation_id = %self.meta.id, reason = %error, "cannot write the conversation's metadata");
                Fence::Held
            })
    }

    async fn release(&self, end: LeaseEnd) {
        if let Err(error) = self.context.leases.release(&self.lease, end).await {
            tracing::warn!(conversation_id = %self.lease.conversation, reason = %error, "cannot release the lease");
        }
    }

    async fn finish(&mut self, ending: Ending) {
        let conversation = self.lease.conversation.clone();
        if let Some(mut runtime) = self.runtime.take() {
            let closing = match ending {
                Ending::Stop { .. } => Closing::Stopped,
                _ => Closing::Leaving,
            };
            runtime.close(closing).await;
        }
        // The slot goes first, so that an action arriving from now on can start a new loop here.
        self.context.sessions.remove(&self.lease);
        match ending {
            Ending::Stop { reason, done } => {
                if reason == StopReason::TooManyConversations {
                    self.context.metrics.evictions.inc();
                    self.publish(RoomMessage::Status(StatusUpdate::too_many_conversations()))
                        .await;
                }
                let reason_text = match reason {
                    StopReason::Explicit => "stopped",
                    StopReason::TooManyConversations => "too many conversations",
                    StopReason::Idle => "idle",
                };
                let fence = match self
                    .record(vec![Draft::State(Input::Stop, reason_text)], None)
                    .await
                {
                    Err(Ending::LeaseLost) => {
                        if let Some(writer) = self.metadata_writer.take() {
                            writer.abort();
                        }
                        Fence::Lost
                    }
                    _ => {
                        self.meta.status = ConversationStatus::Stopped;
                        self.meta.agent_state = AgentState::Stopped;
                        self.write_final_metadata().await
                    }
                };
                match fence {
                    Fence::Held => {
                        self.release(LeaseEnd::Stopped).await;
                        self.context.metrics.conversations_stopped.inc();
                    }
                    Fence::Lost => {
                        self.context.metrics.leases_lost.inc();
                    }
                }
                tracing::info!(%conversation, ?reason, "agent loop stopped");
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Ending::LeaseLost => {
                // The new owner writes the metadata from now on.
                if let Some(writer) = self.metadata_writer.take() {
                    writer.abort();
                }
                self.context.metrics.leases_lost.inc();
                tracing::warn!(%conversation, "agent loop ends: lease lost");
            }
            Ending::HandOver { done } => {
                match self.write_final_metadata().await {
                    Fence::Held => {
                        self.release(LeaseEnd::HandedOver).await;
                        tracing::info!(%conversation, "agent loop handed over");
                    }
                    // A newer owner has it already: nothing to hand over.
                    Fence::Lost => {
                        self.context.metrics.leases_lost.inc();
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Ending::StoreFailed => {
                // Released either way: a release of a lease another node holds changes nothing.
                let _ = self.close_metadata_writer().await;
                self.release(LeaseEnd::HandedOver).await;
                tracing::error!(%conversation, "agent loop ends: the store failed");
            }
        }
    }
}

/// Writes the loop's state under its lease's epoch. A refusal (a newer owner has written the
/// conversation: this node lost the lease) is logged here; the loop writes nothing after it, so it is
/// logged once.
async fn write_state(
    store: &dyn ConversationStore,
    lease: &Lease,
    meta: &Conversation,
) -> Result<Fence, StoreError> {
    let written = store
        .update_owned(&meta.id, lease.epoch, &LoopState::of(meta))
        .await?;
    Ok(match written {
        OwnerWrite::Written => Fence::Held,
        OwnerWrite::Fenced { epoch } => {
            tracing::warn!(conversation_id = %meta.id, epoch = lease.epoch, newer_epoch = epoch, "metadata write refused: a newer owner holds the conversation");
            Fence::Lost
        }
        OwnerWrite::Missing => {
            tracing::warn!(conversation_id = %meta.id, "the conversation's metadata is gone: not written");
            Fence::Held
        }
    })
}

/// Writes the latest metadata whenever it changes, at most once per [`METADATA_COALESCING`]: a busy
/// conversation changes it several times per turn, and only the last state matters. The last change
/// is written even after the loop has dropped its sender. A refused write ends the writer and tells
/// the loop (`control`, weak so that it does not keep the loop's channel open) that the lease is lost.
async fn write_metadata(
    store: Arc<dyn ConversationStore>,
    lease: Lease,
    control: mpsc::WeakSender<Control>,
    mut updates: watch::Receiver<Conversation>,
) -> Fence {
    while updates.changed().await.is_ok() {
        let meta = updates.borrow_and_update().clone();
        match write_state(store.as_ref(), &lease, &meta).await {
            Ok(Fence::Held) => {}
            Ok(Fence::Lost) => {
                // Not waited for: the loop may be waiting for this writer to end. A full channel
                // means the loop is busy; the next lease refresh tells it too.
                if let Some(control) = control.upgrade() {
                    let _ = control.try_send(Control::LeaseLost);
                }
                return Fence::Lost;
            }
            Err(error) => {
                tracing::warn!(conversation_id = %meta.id, reason = %error, "cannot update the conversation's metadata");
            }
        }
        tokio::time::sleep(METADATA_COALESCING).await;
    }
    Fence::Held
}
