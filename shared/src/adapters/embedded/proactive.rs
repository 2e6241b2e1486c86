//! The embedded proactive store: the registry, groups, deliveries and outbox as SQLite tables.
//! A group row carries its JSON body, its version (the optimistic-concurrency condition) and, while a
//! decided trigger is unpublished, the outbox event; each `save_group` is one conditional statement.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::db::{EmbeddedDb, corrupt, unavailable};
use crate::domain::{
    DeliveryId, GroupKey, OutboxEntry, RepoId, Repository, UserId, UserSettings, WorkflowRunGroup,
};
use crate::ports::{CommentClaim, Expected, ProactiveStore, StoreError, WriteOutcome};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS repositories (
    id          TEXT PRIMARY KEY,
    lookup_name TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS user_settings (
    user_id TEXT PRIMARY KEY,
    body    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pr_comments (
    repo_id       TEXT NOT NULL,
    pr            INTEGER NOT NULL,
    comment_id    INTEGER,
    claimed_until INTEGER NOT NULL,
    PRIMARY KEY (repo_id, pr)
);
CREATE TABLE IF NOT EXISTS processed_deliveries (
    id         TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workflow_run_groups (
    group_key         TEXT PRIMARY KEY,
    version           INTEGER NOT NULL,
    body              TEXT NOT NULL,
    last_updated_at   INTEGER NOT NULL,
    outbox            TEXT,
    outbox_decided_at INTEGER
);
CREATE INDEX IF NOT EXISTS groups_by_last_update ON workflow_run_groups (last_updated_at);
CREATE INDEX IF NOT EXISTS groups_with_outbox ON workflow_run_groups (outbox_decided_at)
    WHERE outbox IS NOT NULL;
";

#[derive(Clone)]
pub struct EmbeddedProactiveStore {
    db: EmbeddedDb,
}

impl EmbeddedProactiveStore {
    pub async fn open(db: EmbeddedDb) -> Result<Self, StoreError> {
        db.run(|conn| conn.execute_batch(SCHEMA).map_err(unavailable))
            .await?;
        Ok(Self { db })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(corrupt)
}

#[async_trait]
impl ProactiveStore for EmbeddedProactiveStore {
    async fn put_repository(&self, repository: &Repository) -> Result<(), StoreError> {
        let (id, lookup) = (
            repository.id.as_str().to_owned(),
            Repository::lookup_name(&repository.owner, &repository.name),
        );
        let body = to_json(repository)?;
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO repositories (id, lookup_name, body) VALUES (?1, ?2, ?3)",
                    params![id, lookup, body],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn remove_repository(&self, id: &RepoId) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.db
            .run(move |conn| {
                conn.execute("DELETE FROM repositories WHERE id = ?1", [id])
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn get_repository(&self, id: &RepoId) -> Result<Option<Repository>, StoreError> {
        let id = id.as_str().to_owned();
        let body: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row("SELECT body FROM repositories WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(unavailable)
            })
            .await?;
        body.as_deref().map(from_json).transpose()
    }

    async fn get_repo_id(&self, owner: &str, name: &str) -> Result<Option<RepoId>, StoreError> {
        let lookup = Repository::lookup_name(owner, name);
        let id: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT id FROM repositories WHERE lookup_name = ?1",
                    [lookup],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        id.map(|raw| RepoId::try_from(raw).map_err(corrupt))
            .transpose()
    }

    async fn get_user_settings(&self, user: &UserId) -> Result<UserSettings, StoreError> {
        let user = user.as_str().to_owned();
        let body: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT body FROM user_settings WHERE user_id = ?1",
                    [user],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        Ok(body
            .as_deref()
            .map(from_json)
            .transpose()?
            .unwrap_or_default())
    }

    async fn put_user_settings(
        &self,
        user: &UserId,
        settings: &UserSettings,
    ) -> Result<(), StoreError> {
        let (user, body) = (user.as_str().to_owned(), to_json(settings)?);
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO user_settings (user_id, body) VALUES (?1, ?2)",
                    params![user, body],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn claim_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        until: DateTime<Utc>,
    ) -> Result<CommentClaim, StoreError> {
        let (repo, pr) = (repo.as_str().to_owned(), pr as i64);
        let (now, until) = (Utc::now().timestamp_millis(), until.timestamp_millis());
        self.db
            .run(move |conn| {
                // One statement: a new claim, or a lapsed one taken over, never a recorded comment.
                let won = conn
                    .execute(
                        "INSERT INTO pr_comments (repo_id, pr, comment_id, claimed_until)
                         VALUES (?1, ?2, NULL, ?3)
                         ON CONFLICT (repo_id, pr) DO UPDATE SET claimed_until = excluded.claimed_until
                         WHERE comment_id IS NULL AND claimed_until < ?4",
                        params![repo, pr, until, now],
                    )
                    .map_err(unavailable)?;
                if won == 1 {
                    return Ok(CommentClaim::Won);
                }
                let recorded: Option<i64> = conn
                    .query_row(
                        "SELECT comment_id FROM pr_comments WHERE repo_id = ?1 AND pr = ?2",
                        params![repo, pr],
                        |row| row.get(0),
                    )
                    .map_err(unavailable)?;
                Ok(match recorded {
                    Some(id) => CommentClaim::Recorded(id as u64),
                    None => CommentClaim::Taken,
                })
            })
            .await
    }

    async fn release_pr_comment(&self, repo: &RepoId, pr: u64) -> Result<(), StoreError> {
        let (repo, pr) = (repo.as_str().to_owned(), pr as i64);
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE pr_comments SET claimed_until = 0
                     WHERE repo_id = ?1 AND pr = ?2 AND comment_id IS NULL",
                    params![repo, pr],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn record_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        comment_id: u64,
    ) -> Result<(), StoreError> {
        let (repo, pr, id) = (repo.as_str().to_owned(), pr as i64, comment_id as i64);
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO pr_comments (repo_id, pr, comment_id, claimed_until)
                     VALUES (?1, ?2, ?3, 0)
                     ON CONFLICT (repo_id, pr) DO UPDATE SET comment_id = excluded.comment_id",
                    params![repo, pr, id],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn is_delivery_processed(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        let (id, now) = (id.as_str().to_owned(), Utc::now().timestamp());
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT 1 FROM processed_deliveries WHERE id = ?1 AND expires_at > ?2",
                    params![id, now],
                    |_| Ok(()),
                )
                .optional()
                .map(|found| found.is_some())
                .map_err(unavailable)
            })
            .await
    }

    async fn mark_delivery_processed(
        &self,
        id: &DeliveryId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, expires_at, now) = (
            id.as_str().to_owned(),
            expires_at.timestamp(),
            Utc::now().timestamp(),
        );
        self.db
            .run(move |conn| {
                // Expired ids are dropped as new ones arrive, as DynamoDB's TTL would.
                conn.execute(
                    "DELETE FROM processed_deliveries WHERE expires_at <= ?1",
                    [now],
                )
                .map_err(unavailable)?;
                conn.execute(
                    "INSERT OR REPLACE INTO processed_deliveries (id, expires_at) VALUES (?1, ?2)",
                    params![id, expires_at],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }

    async fn get_group(&self, key: &GroupKey) -> Result<Option<WorkflowRunGroup>, StoreError> {
        let key = key.to_string();
        let body: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT body FROM workflow_run_groups WHERE group_key = ?1",
                    [key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        body.as_deref().map(from_json).transpose()
    }

    async fn save_group(
        &self,
        group: &WorkflowRunGroup,
        expected: Expected,
        outbox: Option<&OutboxEntry>,
    ) -> Result<WriteOutcome, StoreError> {
        let key = group.key.to_string();
        let body = to_json(group)?;
        let (version, updated) = (
            group.version as i64,
            group.last_updated_at.timestamp_millis(),
        );
        let outbox_json = outbox.map(to_json).transpose()?;
        let decided_at = outbox.map(|entry| entry.event.decided_at.timestamp_millis());
        self.db
            .run(move |conn| {
                let changed = match expected {
                    Expected::Absent => conn.execute(
                        "INSERT INTO workflow_run_groups
                             (group_key, version, body, last_updated_at, outbox, outbox_decided_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (group_key) DO NOTHING",
                        params![key, version, body, updated, outbox_json, decided_at],
                    ),
                    // An update never clears a pending outbox entry: only `clear_outbox` does.
                    Expected::Version(read) => conn.execute(
                        "UPDATE workflow_run_groups
                         SET version = ?2, body = ?3, last_updated_at = ?4,
                             outbox = COALESCE(?5, outbox),
                             outbox_decided_at = COALESCE(?6, outbox_decided_at)
                         WHERE group_key = ?1 AND version = ?7",
                        params![
                            key,
                            version,
                            body,
                            updated,
                            outbox_json,
                            decided_at,
                            read as i64
                        ],
                    ),
                }
                .map_err(unavailable)?;
                Ok(if changed == 1 {
                    WriteOutcome::Written
                } else {
                    WriteOutcome::Conflict
                })
            })
            .await
    }

    async fn delete_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = cutoff.timestamp_millis();
        self.db
            .run(move |conn| {
                conn.execute(
                    "DELETE FROM workflow_run_groups WHERE last_updated_at < ?1",
                    [cutoff],
                )
                .map(|n| n as u64)
                .map_err(unavailable)
            })
            .await
    }

    async fn count_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = cutoff.timestamp_millis();
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM workflow_run_groups WHERE last_updated_at < ?1",
                    [cutoff],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| n as u64)
                .map_err(unavailable)
            })
            .await
    }

    async fn pending_outbox(
        &self,
        decided_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let (before, limit) = (decided_before.timestamp_millis(), limit as i64);
        let rows: Vec<String> = self
            .db
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT outbox FROM workflow_run_groups
                         WHERE outbox IS NOT NULL AND outbox_decided_at < ?1
                         ORDER BY outbox_decided_at LIMIT ?2",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(params![before, limit], |row| row.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await?;
        rows.iter().map(|raw| from_json(raw)).collect()
    }

    async fn collecting_groups_updated_between(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkflowRunGroup>, StoreError> {
        let (after, before) = (after.timestamp_millis(), before.timestamp_millis());
        let limit = limit as i64;
        let rows: Vec<String> = self
            .db
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT body FROM workflow_run_groups
                         WHERE last_updated_at BETWEEN ?1 AND ?2
                           AND json_extract(body, '$.state') = 'collecting'
                         ORDER BY last_updated_at LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = statement
                    .query_map(params![after, before, limit], |row| row.get(0))
                    .map_err(unavailable)?;
                rows.collect::<Result<_, _>>().map_err(unavailable)
            })
            .await?;
        rows.iter().map(|raw| from_json(raw)).collect()
    }

    async fn clear_outbox(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let key = entry.key().to_string();
        let decided_at = entry.event.decided_at.timestamp_millis();
        self.db
            .run(move |conn| {
                // Only this entry: a later follow-up in its place stays.
                conn.execute(
                    "UPDATE workflow_run_groups SET outbox = NULL, outbox_decided_at = NULL
                     WHERE group_key = ?1 AND outbox_decided_at = ?2",
                    params![key, decided_at],
                )
                .map_err(unavailable)?;
                Ok(())
            })
            .await
    }
}
