//! The embedded conversation store: one SQLite row per conversation, its JSON body beside the columns
//! the listings are served from: `(user_id, created_at)` for a user's newest first, `(created_at, id)`
//! for the sync's oldest-first paging, and a partial index of the running conversations' ids (on the
//! body's status, so that databases created before it need no migration) for the cleanup. Times are kept in nanoseconds so that a
//! cursor taken from a conversation compares exactly with the stored row. The `epoch` column is the
//! highest owner epoch that wrote the loop's state; each write is one `UPDATE` of the body's fields
//! (`json_set`) whose `WHERE` holds the fence, so no writer replaces another's fields.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::db::{EmbeddedDb, corrupt, unavailable, write_transaction};
use crate::domain::{Conversation, ConversationId, CreatedCursor, UserId};
use crate::ports::{ConversationStore, LoopState, OwnerWrite, StoreError, WriteOutcome};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body       TEXT NOT NULL,
    epoch      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS conversations_by_creation ON conversations (created_at, id);
CREATE INDEX IF NOT EXISTS conversations_running ON conversations (id)
    WHERE json_extract(body, '$.status') = 'running';
";

/// The running conversations after an id; its condition repeats the partial index's, so that SQLite
/// serves it from that index.
const RUNNING_AFTER: &str = "SELECT body FROM conversations
    WHERE json_extract(body, '$.status') = 'running' AND id > ?1 ORDER BY id LIMIT ?2";

/// The `epoch` column, added to a database created before it.
const ADD_EPOCH: &str = "ALTER TABLE conversations ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0";

/// Writes the loop's state (`?3`..`?6`, JSON) into the body. With an owner's epoch (`?2`), only if no
/// higher epoch has written, raising the stored one; without (NULL), whatever the stored epoch.
const WRITE_STATE: &str = "UPDATE conversations SET epoch = coalesce(?2, epoch),
    body = json_set(body, '$.status', json(?3), '$.agent_state', json(?4),
                    '$.last_updated_at', json(?5), '$.remote_agent', json(?6))
    WHERE id = ?1 AND epoch <= coalesce(?2, epoch)";

#[derive(Clone)]
pub struct EmbeddedConversationStore {
    db: EmbeddedDb,
}

impl EmbeddedConversationStore {
    pub async fn open(db: EmbeddedDb) -> Result<Self, StoreError> {
        db.run(|conn| {
            conn.execute_batch(SCHEMA).map_err(unavailable)?;
            // In a write transaction: another process may be opening the same file.
            let transaction = write_transaction(conn)?;
            let has_epoch: bool = transaction
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_table_info('conversations') WHERE name = 'epoch'",
                    [],
                    |row| row.get(0),
                )
                .map_err(unavailable)?;
            if !has_epoch {
                transaction.execute(ADD_EPOCH, []).map_err(unavailable)?;
            }
            transaction.commit().map_err(unavailable)
        })
        .await?;
        Ok(Self { db })
    }

    /// Writes the loop's state under `epoch` (see [`WRITE_STATE`]); whether a row was written.
    async fn write_state(
        &self,
        id: &ConversationId,
        epoch: Option<u64>,
        state: &LoopState,
    ) -> Result<bool, StoreError> {
        let epoch = epoch.map(epoch_value).transpose()?;
        let args = (
            id.as_str().to_owned(),
            epoch,
            json_text(&state.status)?,
            json_text(&state.agent_state)?,
            json_text(&state.last_updated_at)?,
            json_text(&state.remote_agent)?,
        );
        self.db
            .run(move |conn| {
                let written = conn.execute(WRITE_STATE, args).map_err(unavailable)?;
                Ok(written == 1)
            })
            .await
    }

    /// Runs a listing query whose rows are JSON bodies.
    async fn bodies(
        &self,
        sql: &'static str,
        args: Vec<Value>,
    ) -> Result<Vec<Conversation>, StoreError> {
        let rows: Vec<String> = self
            .db
            .run(move |conn| {
                let mut statement = conn.prepare_cached(sql).map_err(unavailable)?;
                let rows = statement
                    .query_map(params_from_iter(args), |row| row.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await?;
        rows.iter()
            .map(|raw| serde_json::from_str(raw).map_err(corrupt))
            .collect()
    }
}

/// Nanoseconds since the epoch: exact, and ordered like the instants (representable until 2262).
fn nanos(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("time out of range: {at}")))
}

fn epoch_value(epoch: u64) -> Result<i64, StoreError> {
    i64::try_from(epoch).map_err(|_| StoreError::Corrupt(format!("epoch out of range: {epoch}")))
}

fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn limit_value(limit: usize) -> Value {
    Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX))
}

fn columns(conversation: &Conversation) -> Result<(String, String, i64, String), StoreError> {
    Ok((
        conversation.id.as_str().to_owned(),
        conversation.user_id.as_str().to_owned(),
        nanos(conversation.created_at)?,
        serde_json::to_string(conversation).map_err(corrupt)?,
    ))
}

#[async_trait]
impl ConversationStore for EmbeddedConversationStore {
    async fn create_conversation(
        &self,
        conversation: &Conversation,
    ) -> Result<WriteOutcome, StoreError> {
        let (id, user_id, created_at, body) = columns(conversation)?;
        self.db
            .run(move |conn| {
                let inserted = conn
                    .execute(
                        "INSERT INTO conversations (id, user_id, created_at, body)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                        params![id, user_id, created_at, body],
                    )
                    .map_err(unavailable)?;
                Ok(if inserted == 1 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Conflict
                })
            })
            .await
    }

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        let id = id.as_str().to_owned();
        let body: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT body FROM conversations WHERE id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        body.map(|raw| serde_json::from_str(&raw).map_err(corrupt))
            .transpose()
    }

    async fn update_owned(
        &self,
        id: &ConversationId,
        epoch: u64,
        state: &LoopState,
    ) -> Result<OwnerWrite, StoreError> {
        if self.write_state(id, Some(epoch), state).await? {
            return Ok(OwnerWrite::Written);
        }
        // Refused: the stored epoch says why (read after the write, only to report it).
        let id = id.as_str().to_owned();
        let stored: Option<i64> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT epoch FROM conversations WHERE id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        Ok(match stored {
            Some(epoch) => OwnerWrite::Fenced {
                epoch: u64::try_from(epoch).unwrap_or_default(),
            },
            None => OwnerWrite::Missing,
        })
    }

    async fn update_conversation(&self, conversation: &Conversation) -> Result<(), StoreError> {
        self.write_state(&conversation.id, None, &LoopState::of(conversation))
            .await
            .map(drop)
    }

    async fn set_title_if_none(
        &self,
        id: &ConversationId,
        title: &str,
    ) -> Result<bool, StoreError> {
        let args = (id.as_str().to_owned(), title.to_owned());
        self.db
            .run(move |conn| {
                let written = conn
                    .execute(
                        "UPDATE conversations SET body = json_set(body, '$.title', ?2)
                         WHERE id = ?1 AND json_extract(body, '$.title') IS NULL",
                        args,
                    )
                    .map_err(unavailable)?;
                Ok(written == 1)
            })
            .await
    }

    async fn list_user_conversations(
        &self,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.bodies(
            "SELECT body FROM conversations WHERE user_id = ?1
             ORDER BY created_at DESC LIMIT ?2",
            vec![Value::Text(user_id.as_str().to_owned()), limit_value(limit)],
        )
        .await
    }

    async fn list_created_after(
        &self,
        after: &CreatedCursor,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        // A row-value comparison: SQLite serves it from the (created_at, id) index.
        self.bodies(
            "SELECT body FROM conversations WHERE (created_at, id) > (?1, ?2)
             ORDER BY created_at, id LIMIT ?3",
            vec![
                Value::Integer(nanos(after.created_at)?),
                Value::Text(after.id.as_str().to_owned()),
                limit_value(limit),
            ],
        )
        .await
    }

    async fn list_running(
        &self,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError> {
        self.bodies(
            RUNNING_AFTER,
            vec![
                Value::Text(after.map_or("", ConversationId::as_str).to_owned()),
                limit_value(limit),
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::{AgentState, ConversationStatus};

    fn conversation(id: &str, user: &str, created_at: DateTime<Utc>) -> Conversation {
        Conversation {
            id: ConversationId::parse(id).unwrap(),
            user_id: UserId::parse(user).unwrap(),
            title: Some(format!("title of {id}")),
            created_at,
            last_updated_at: created_at,
            status: ConversationStatus::Running,
            agent_state: AgentState::Loading,
            trigger_id: None,
            repository: None,
            checkout: None,
            confirmation_mode: false,
            model: None,
            remote_agent: None,
        }
    }

    #[tokio::test]
    async fn pages_oldest_first_in_created_then_id_order() {
        let store = EmbeddedConversationStore::open(EmbeddedDb::in_memory().unwrap())
            .await
            .unwrap();
        let t0 = Utc::now();
        // Two conversations share an instant: the id breaks the tie.
        for (id, offset) in [("c", 2), ("b", 1), ("a", 1), ("d", 3), ("z", 0)] {
            let c = conversation(id, "u1", t0 + Duration::nanoseconds(offset));
            assert_eq!(
                store.create_conversation(&c).await.unwrap(),
                WriteOutcome::Written
            );
        }
        let mut cursor = CreatedCursor::before(t0);
        let mut seen = Vec::new();
        loop {
            let page = store.list_created_after(&cursor, 2).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = CreatedCursor::of(last);
            seen.extend(page.iter().map(|c| c.id.as_str().to_owned()));
        }
        assert_eq!(seen, ["z", "a", "b", "c", "d"]);
        let after_a = CreatedCursor::of(&conversation("a", "u1", t0 + Duration::nanoseconds(1)));
        let rest = store.list_created_after(&after_a, 10).await.unwrap();
        assert_eq!(rest.first().unwrap().id.as_str(), "b");
    }

    #[tokio::test]
    async fn creates_once_updates_and_lists_a_users_newest_first() {
        let store = EmbeddedConversationStore::open(EmbeddedDb::in_memory().unwrap())
            .await
            .unwrap();
        let t0 = Utc::now();
        let first = conversation("first", "u1", t0);
        store.create_conversation(&first).await.unwrap();
        assert_eq!(
            store.create_conversation(&first).await.unwrap(),
            WriteOutcome::Conflict
        );
        store
            .create_conversation(&conversation("second", "u1", t0 + Duration::seconds(1)))
            .await
            .unwrap();
        store
            .create_conversation(&conversation("other", "u2", t0))
            .await
            .unwrap();

        let mut stopped = first.clone();
        stopped.status = ConversationStatus::Stopped;
        store.update_conversation(&stopped).await.unwrap();
        assert_eq!(
            store.get_conversation(&first.id).await.unwrap(),
            Some(stopped)
        );
        let missing = conversation("missing", "u1", t0);
        store.update_conversation(&missing).await.unwrap();
        assert_eq!(store.get_conversation(&missing.id).await.unwrap(), None);

        let mine: Vec<_> = store
            .list_user_conversations(&UserId::parse("u1").unwrap(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id.as_str().to_owned())
            .collect();
        assert_eq!(mine, ["second", "first"]);
        assert_eq!(
            store
                .list_user_conversations(&UserId::parse("u1").unwrap(), 1)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_database_from_before_the_epoch_column_gets_it() {
        let db = EmbeddedDb::in_memory().unwrap();
        let old = conversation("old", "u1", Utc::now());
        let body = serde_json::to_string(&old).unwrap();
        db.run(move |conn| {
            conn.execute_batch(
                "CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
                 created_at INTEGER NOT NULL, body TEXT NOT NULL)",
            )
            .map_err(unavailable)?;
            conn.execute(
                "INSERT INTO conversations VALUES ('old', 'u1', 0, ?1)",
                [body],
            )
            .map_err(unavailable)
        })
        .await
        .unwrap();
        let store = EmbeddedConversationStore::open(db.clone()).await.unwrap();
        EmbeddedConversationStore::open(db).await.unwrap();
        let state = LoopState::of(&old);
        assert_eq!(
            store.update_owned(&old.id, 2, &state).await.unwrap(),
            OwnerWrite::Written
        );
        assert_eq!(
            store.update_owned(&old.id, 1, &state).await.unwrap(),
            OwnerWrite::Fenced { epoch: 2 }
        );
    }

    #[tokio::test]
    async fn running_conversations_are_read_from_their_partial_index() {
        let db = EmbeddedDb::in_memory().unwrap();
        EmbeddedConversationStore::open(db.clone()).await.unwrap();
        let plan: Vec<String> = db
            .run(|conn| {
                let mut statement = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {RUNNING_AFTER}"))
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(params!["", 10], |row| row.get::<_, String>(3))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await
            .unwrap();
        assert_eq!(
            plan,
            ["SEARCH conversations USING INDEX conversations_running (id>?)"]
        );
    }
}
