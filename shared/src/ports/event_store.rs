//! The event store port: each conversation's append-only events, ids 0, 1, 2... without gaps, and the
//! fence that keeps a node that lost a conversation's lease from appending to it.
//!
//! Every conversation has a *head*: the next event id, the highest owner epoch seen, and the last inbox
//! entry consumed. An owner first raises the fence to its lease epoch ([`EventStore::fence`]); every
//! append is conditional on the head still naming the expected next id and no higher epoch, and moves
//! the head in the same atomic write as the events. Adapters: `adapters::embedded::EmbeddedEventStore`
//! and `adapters::dynamo::EventTable`; both pass `tests/src/contract/event_store.rs`.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{ConversationEvent, ConversationId, InboxId, MAX_EVENT_BYTES};

/// Where a conversation's events stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventHead {
    /// The id the next appended event gets (the number of events so far).
    pub next_id: u64,
    /// The highest owner epoch that fenced or appended; 0 when none has.
    pub epoch: u64,
    /// The last inbox entry whose action is recorded in the events.
    pub inbox_cursor: Option<InboxId>,
}

/// The result of raising the fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceOutcome {
    /// The caller's epoch now holds the conversation; it resumes from this head.
    Fenced(EventHead),
    /// A higher epoch already holds it: the caller is not the owner any more.
    Superseded { epoch: u64 },
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended,
    /// The first event's id is not the head's next id (the caller's view is stale); nothing written.
    IdConflict {
        next_id: u64,
    },
    /// A higher epoch holds the conversation; nothing written.
    Fenced {
        epoch: u64,
    },
}

/// The most bytes of events one append carries (DynamoDB's transaction holds 4 MB).
pub const MAX_APPEND_BYTES: usize = 3 * 1024 * 1024;

/// The most events one append carries (DynamoDB's transaction holds 100 items, one is the head).
pub const MAX_APPEND_BATCH: usize = 99;

/// The events of one append: 1 to [`MAX_APPEND_BATCH`] events with consecutive ids, each fitted to
/// what a store holds (`ConversationEvent::fitted`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch(Vec<ConversationEvent>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event batch: {0}")]
pub struct InvalidBatch(&'static str);

impl EventBatch {
    pub fn new(events: Vec<ConversationEvent>) -> Result<Self, InvalidBatch> {
        let Some(first) = events.first().map(|event| event.id) else {
            return Err(InvalidBatch("no events"));
        };
        if events.len() > MAX_APPEND_BATCH {
            return Err(InvalidBatch("more events than one append carries"));
        }
        if !events.iter().zip(first..).all(|(event, id)| event.id == id) {
            return Err(InvalidBatch("ids are not consecutive"));
        }
        let events: Vec<_> = events.into_iter().map(ConversationEvent::fitted).collect();
        if events.len() * MAX_EVENT_BYTES > MAX_APPEND_BYTES
            && events.iter().map(|event| event.json_len()).sum::<usize>() > MAX_APPEND_BYTES
        {
            return Err(InvalidBatch("more bytes than one append carries"));
        }
        Ok(Self(events))
    }

    pub fn first_id(&self) -> u64 {
        // Never empty: `new` refuses an empty batch.
        self.0[0].id
    }

    /// The head's next id once the batch is appended.
    pub fn next_id(&self) -> u64 {
        self.first_id() + self.0.len() as u64
    }

    pub fn events(&self) -> &[ConversationEvent] {
        &self.0
    }

    pub fn into_events(self) -> Vec<ConversationEvent> {
        self.0
    }
}

/// A page of events in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<ConversationEvent>,
    /// Whether events follow the last one returned.
    pub has_more: bool,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// The conversation's head (all zero for a conversation without events).
    async fn head(&self, conversation: &ConversationId) -> Result<EventHead, StoreError>;

    /// Raises the fence to `epoch` unless a higher epoch holds it. Raising to the current epoch again is
    /// allowed (idempotent for the same owner).
    async fn fence(
        &self,
        conversation: &ConversationId,
        epoch: u64,
    ) -> Result<FenceOutcome, StoreError>;

    /// Appends `events` if their first id is the head's next id and no epoch above `owner_epoch` holds
    /// the conversation, raising the fence to `owner_epoch` and recording `consumed` as the inbox cursor
    /// in the same atomic write.
    async fn append(
        &self,
        conversation: &ConversationId,
        owner_epoch: u64,
        events: &EventBatch,
        consumed: Option<&InboxId>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Events with id >= `start_id`, in id order, at most `limit` (0 is read as 1).
    async fn page(
        &self,
        conversation: &ConversationId,
        start_id: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventSource;

    fn message(id: u64, bytes: usize) -> ConversationEvent {
        ConversationEvent::message(id, EventSource::Agent, &"x".repeat(bytes))
    }

    #[test]
    fn a_batch_fits_its_events_and_refuses_more_bytes_than_an_append_carries() {
        let batch = EventBatch::new(vec![message(0, 1 << 20), message(1, 10)]).unwrap();
        assert!(batch.events()[0].json_len() <= MAX_EVENT_BYTES);
        assert_eq!(batch.next_id(), 2);
        let many: Vec<_> = (0..30).map(|id| message(id, 1 << 20)).collect();
        assert_eq!(
            EventBatch::new(many),
            Err(InvalidBatch("more bytes than one append carries"))
        );
    }
}
