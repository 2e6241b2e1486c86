//! The agent loops running on this node: one slot per conversation, reserved before its lease is
//! claimed (so one node never starts two loops for a conversation), then holding the loop's handle.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};

use shared::domain::{AgentState, ConversationId};
use shared::ports::coordination::{Lease, StopReason};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a loop is told from outside.
#[derive(Debug)]
pub(crate) enum Control {
    /// New user actions wait in the inbox.
    InboxReady,
    /// Stop the conversation; `done` fires once it is stopped and recorded.
    Stop {
        reason: StopReason,
        done: Option<oneshot::Sender<()>>,
    },
    /// The lease is gone: end at once, appending nothing.
    LeaseLost,
    /// The node is leaving: hand the conversation over without stopping it.
    HandOver { done: oneshot::Sender<()> },
}

/// What the idle sweep reads about a loop.
pub(crate) struct Activity {
    inner: Mutex<(Instant, AgentState)>,
}

impl Activity {
    pub(crate) fn new(state: AgentState) -> Self {
        Self {
            inner: Mutex::new((Instant::now(), state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Instant, AgentState)> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn touch(&self, state: AgentState) {
        *self.lock() = (Instant::now(), state);
    }

    /// When the conversation last did something, and its agent state.
    pub(crate) fn read(&self) -> (Instant, AgentState) {
        *self.lock()
    }
}

#[derive(Clone)]
pub(crate) struct SessionHandle {
    pub control: mpsc::Sender<Control>,
    pub lease: Lease,
    pub activity: Arc<Activity>,
}

enum Slot {
    Starting,
    Running(SessionHandle),
}

#[derive(Default)]
pub(crate) struct Sessions {
    slots: Mutex<HashMap<ConversationId, Slot>>,
}

/// A reserved slot; dropped without [`Reservation::fill`], it frees the slot again.
pub(crate) struct Reservation<'a> {
    sessions: &'a Sessions,
    conversation: Option<ConversationId>,
}

impl Reservation<'_> {
    pub(crate) fn fill(mut self, handle: SessionHandle) {
        if let Some(conversation) = self.conversation.take() {
            self.sessions
                .lock()
                .insert(conversation, Slot::Running(handle));
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(conversation) = self.conversation.take() {
            self.sessions.lock().remove(&conversation);
        }
    }
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves the conversation's slot; `None` when a loop runs or starts here already.
    pub(crate) fn reserve(&self, conversation: &ConversationId) -> Option<Reservation<'_>> {
        match self.lock().entry(conversation.clone()) {
            Entry::Occupied(_) => None,
            Entry::Vacant(slot) => {
                slot.insert(Slot::Starting);
                Some(Reservation {
                    sessions: self,
                    conversation: Some(conversation.clone()),
                })
            }
        }
    }

    pub(crate) fn get(&self, conversation: &ConversationId) -> Option<SessionHandle> {
        match self.lock().get(conversation) {
            Some(Slot::Running(handle)) => Some(handle.clone()),
            _ => None,
        }
    }

    /// Frees the slot of the loop holding `lease` (a newer loop's slot is left alone).
    pub(crate) fn remove(&self, lease: &Lease) {
        let mut slots = self.lock();
        if let Some(Slot::Running(handle)) = slots.get(&lease.conversation)
            && handle.lease.epoch == lease.epoch
        {
            slots.remove(&lease.conversation);
        }
    }

    pub(crate) fn running(&self) -> Vec<SessionHandle> {
        self.lock()
            .values()
            .filter_map(|slot| match slot {
                Slot::Running(handle) => Some(handle.clone()),
                Slot::Starting => None,
            })
            .collect()
    }
}
