//! The embedded sync state: one SQLite row per sync (its name), holding the watermark and the run
//! lease. Every change is one conditional statement, so concurrent runs in several processes sharing the
//! file serialise on SQLite's write lock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::db::{EmbeddedDb, corrupt, unavailable, write_transaction};
use crate::domain::{ConversationId, CreatedCursor};
use crate::ports::{Advance, StoreError, SyncStateStore};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_state (
    name             TEXT PRIMARY KEY,
    watermark_at     INTEGER,
    watermark_id     TEXT,
    lease_owner      TEXT,
    lease_expires_at INTEGER
);
";

#[derive(Clone)]
pub struct EmbeddedSyncState {
    db: EmbeddedDb,
    name: String,
}

impl EmbeddedSyncState {
    /// The state of the sync called `name` (e.g. `commonroom`).
    pub async fn open(db: EmbeddedDb, name: &str) -> Result<Self, StoreError> {
        let row = name.to_owned();
        db.run(move |conn| {
            conn.execute_batch(SCHEMA).map_err(unavailable)?;
            conn.execute(
                "INSERT INTO sync_state (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
                [row],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await?;
        Ok(Self {
            db,
            name: name.to_owned(),
        })
    }
}

fn nanos(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Corrupt(format!("time out of range: {at}")))
}

fn millis_from_now(ttl: Duration) -> i64 {
    let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    Utc::now().timestamp_millis().saturating_add(ttl)
}

#[async_trait]
impl SyncStateStore for EmbeddedSyncState {
    async fn watermark(&self) -> Result<Option<CreatedCursor>, StoreError> {
        let name = self.name.clone();
        let row: Option<(i64, String)> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT watermark_at, watermark_id FROM sync_state
                     WHERE name = ?1 AND watermark_at IS NOT NULL",
                    [name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        row.map(|(at, id)| {
            Ok(CreatedCursor {
                created_at: DateTime::from_timestamp_nanos(at),
                id: ConversationId::parse(&id).map_err(corrupt)?,
            })
        })
        .transpose()
    }

    async fn acquire_run_lease(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (name, owner) = (self.name.clone(), owner.to_owned());
        let (now, expires) = (Utc::now().timestamp_millis(), millis_from_now(ttl));
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE sync_state SET lease_owner = ?2, lease_expires_at = ?3
                     WHERE name = ?1
                       AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires_at <= ?4)",
                    params![name, owner, expires, now],
                )
                .map(|changed| changed == 1)
                .map_err(unavailable)
            })
            .await
    }

    async fn advance_watermark(
        &self,
        owner: &str,
        to: &CreatedCursor,
    ) -> Result<Advance, StoreError> {
        let (name, owner) = (self.name.clone(), owner.to_owned());
        let (at, id) = (nanos(to.created_at)?, to.id.as_str().to_owned());
        self.db
            .run(move |conn| {
                let transaction = write_transaction(conn)?;
                let held: Option<String> = transaction
                    .query_row(
                        "SELECT lease_owner FROM sync_state WHERE name = ?1",
                        [&name],
                        |row| row.get(0),
                    )
                    .map_err(unavailable)?;
                if held.as_deref() != Some(owner.as_str()) {
                    return Ok(Advance::LeaseLost);
                }
                let moved = transaction
                    .execute(
                        "UPDATE sync_state SET watermark_at = ?2, watermark_id = ?3
                         WHERE name = ?1
                           AND (watermark_at IS NULL OR (watermark_at, watermark_id) < (?2, ?3))",
                        params![name, at, id],
                    )
                    .map_err(unavailable)?;
                transaction.commit().map_err(unavailable)?;
                Ok(if moved == 1 {
                    Advance::Moved
                } else {
                    Advance::AlreadyPast
                })
            })
            .await
    }

    async fn release_run_lease(&self, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (self.name.clone(), owner.to_owned());
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE sync_state SET lease_owner = NULL, lease_expires_at = NULL
                     WHERE name = ?1 AND lease_owner = ?2",
                    params![name, owner],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }
}
