//! The embedded event store: events and per-conversation heads as SQLite tables. Each fence or append is
//! one transaction that checks the head and moves it together with the events.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::db::{EmbeddedDb, corrupt, unavailable, write_transaction};
use crate::domain::{ConversationEvent, ConversationId, InboxId};
use crate::ports::StoreError;
use crate::ports::event_store::{
    AppendOutcome, EventBatch, EventHead, EventPage, EventStore, FenceOutcome,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversation_event_heads (
    conversation_id TEXT PRIMARY KEY,
    next_id         INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    inbox_cursor    TEXT
);
CREATE TABLE IF NOT EXISTS conversation_events (
    conversation_id TEXT NOT NULL,
    event_id        INTEGER NOT NULL,
    body            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, event_id)
) WITHOUT ROWID;
";

#[derive(Clone)]
pub struct EmbeddedEventStore {
    db: EmbeddedDb,
}

impl EmbeddedEventStore {
    pub async fn open(db: EmbeddedDb) -> Result<Self, StoreError> {
        db.run(|conn| conn.execute_batch(SCHEMA).map_err(unavailable))
            .await?;
        Ok(Self { db })
    }
}

fn read_head(conn: &Connection, conversation: &str) -> Result<EventHead, StoreError> {
    let row = conn
        .query_row(
            "SELECT next_id, epoch, inbox_cursor FROM conversation_event_heads
             WHERE conversation_id = ?1",
            [conversation],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            },
        )
        .optional()
        .map_err(unavailable)?;
    Ok(row
        .map(|(next_id, epoch, cursor)| EventHead {
            next_id: next_id as u64,
            epoch: epoch as u64,
            inbox_cursor: cursor.map(InboxId),
        })
        .unwrap_or_default())
}

fn write_head(
    tx: &Transaction<'_>,
    conversation: &str,
    head: &EventHead,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO conversation_event_heads (conversation_id, next_id, epoch, inbox_cursor)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (conversation_id) DO UPDATE
         SET next_id = excluded.next_id, epoch = excluded.epoch, inbox_cursor = excluded.inbox_cursor",
        params![
            conversation,
            head.next_id as i64,
            head.epoch as i64,
            head.inbox_cursor.as_ref().map(InboxId::as_str)
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl EventStore for EmbeddedEventStore {
    async fn head(&self, conversation: &ConversationId) -> Result<EventHead, StoreError> {
        let conversation = conversation.as_str().to_owned();
        self.db
            .run(move |conn| read_head(conn, &conversation))
            .await
    }

    async fn fence(
        &self,
        conversation: &ConversationId,
        epoch: u64,
    ) -> Result<FenceOutcome, StoreError> {
        let conversation = conversation.as_str().to_owned();
        self.db
            .run(move |conn| {
                let tx = write_transaction(conn)?;
                let mut head = read_head(&tx, &conversation)?;
                if head.epoch > epoch {
                    return Ok(FenceOutcome::Superseded { epoch: head.epoch });
                }
                head.epoch = epoch;
                write_head(&tx, &conversation, &head)?;
                tx.commit().map_err(unavailable)?;
                Ok(FenceOutcome::Fenced(head))
            })
            .await
    }

    async fn append(
        &self,
        conversation: &ConversationId,
        owner_epoch: u64,
        events: &EventBatch,
        consumed: Option<&InboxId>,
    ) -> Result<AppendOutcome, StoreError> {
        let conversation = conversation.as_str().to_owned();
        let rows = events
            .events()
            .iter()
            .map(|event| {
                Ok((
                    event.id as i64,
                    serde_json::to_string(event).map_err(corrupt)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (first_id, next_id) = (events.first_id(), events.next_id());
        let consumed = consumed.cloned();
        self.db
            .run(move |conn| {
                let tx = write_transaction(conn)?;
                let head = read_head(&tx, &conversation)?;
                if head.epoch > owner_epoch {
                    return Ok(AppendOutcome::Fenced { epoch: head.epoch });
                }
                if head.next_id != first_id {
                    return Ok(AppendOutcome::IdConflict {
                        next_id: head.next_id,
                    });
                }
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO conversation_events (conversation_id, event_id, body)
                             VALUES (?1, ?2, ?3)",
                        )
                        .map_err(unavailable)?;
                    for (id, body) in &rows {
                        insert
                            .execute(params![conversation, id, body])
                            .map_err(unavailable)?;
                    }
                }
                let moved = EventHead {
                    next_id,
                    epoch: owner_epoch,
                    inbox_cursor: consumed.or(head.inbox_cursor),
                };
                write_head(&tx, &conversation, &moved)?;
                tx.commit().map_err(unavailable)?;
                Ok(AppendOutcome::Appended)
            })
            .await
    }

    async fn page(
        &self,
        conversation: &ConversationId,
        start_id: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let conversation = conversation.as_str().to_owned();
        let limit = limit.max(1);
        // One row more than asked tells whether more follow.
        let bodies: Vec<String> = self
            .db
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT body FROM conversation_events
                         WHERE conversation_id = ?1 AND event_id >= ?2
                         ORDER BY event_id LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(
                        params![
                            conversation,
                            start_id.min(i64::MAX as u64) as i64,
                            limit as i64 + 1
                        ],
                        |row| row.get(0),
                    )
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await?;
        let has_more = bodies.len() > limit;
        let events = bodies
            .iter()
            .take(limit)
            .map(|body| serde_json::from_str::<ConversationEvent>(body).map_err(corrupt))
            .collect::<Result<_, _>>()?;
        Ok(EventPage { events, has_more })
    }
}
