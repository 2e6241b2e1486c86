//! The proactive store port: the repository registry, users' settings, workflow-run groups, processed
//! delivery ids and the trigger outbox. Adapters: `adapters::dynamo::ProactiveTable` and
//! `adapters::embedded::EmbeddedProactiveStore`; both pass the contract suite in
//! `tests/src/contract/proactive_store.rs` (run by `tests/tests/stores/proactive_store_{dynamo,embedded}.rs`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{
    DeliveryId, GroupKey, OutboxEntry, RepoId, Repository, UserId, UserSettings, WorkflowRunGroup,
};

/// The condition a group write is made under: optimistic concurrency on the version read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The group must not exist yet.
    Absent,
    /// The stored group must still have this version.
    Version(u64),
}

/// Whether a conditional write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Another writer got there first: read again and retry.
    Conflict,
}

/// Who writes a pull request's one comment ([`ProactiveStore::claim_pr_comment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentClaim {
    /// This caller creates it, then records its id; until then (or the claim lapses) others wait.
    Won,
    /// The comment exists: edit it.
    Recorded(u64),
    /// Another caller is creating it.
    Taken,
}

#[async_trait]
pub trait ProactiveStore: Send + Sync {
    /// Adds or replaces a repository in the registry.
    async fn put_repository(&self, repository: &Repository) -> Result<(), StoreError>;

    async fn remove_repository(&self, id: &RepoId) -> Result<(), StoreError>;

    async fn get_repository(&self, id: &RepoId) -> Result<Option<Repository>, StoreError>;

    /// Resolves `owner/name` (case-insensitively) to the registered repository's id.
    async fn get_repo_id(&self, owner: &str, name: &str) -> Result<Option<RepoId>, StoreError>;

    /// A user's settings (the defaults when they never chose).
    async fn get_user_settings(&self, user: &UserId) -> Result<UserSettings, StoreError>;

    async fn put_user_settings(
        &self,
        user: &UserId,
        settings: &UserSettings,
    ) -> Result<(), StoreError>;

    /// Claims the creation of PR `pr`'s comment in `repo` until `until`, atomically: one caller wins
    /// while no comment is recorded and no live claim holds; the others learn which case holds.
    async fn claim_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        until: DateTime<Utc>,
    ) -> Result<CommentClaim, StoreError>;

    /// Gives a won claim up (its winner failed to create the comment): the next caller wins.
    async fn release_pr_comment(&self, repo: &RepoId, pr: u64) -> Result<(), StoreError>;

    /// Records the comment the claim's winner created.
    async fn record_pr_comment(
        &self,
        repo: &RepoId,
        pr: u64,
        comment_id: u64,
    ) -> Result<(), StoreError>;

    async fn is_delivery_processed(&self, id: &DeliveryId) -> Result<bool, StoreError>;

    /// Remembers a delivery id until `expires_at`, so that a redelivery is answered as a duplicate.
    async fn mark_delivery_processed(
        &self,
        id: &DeliveryId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A consistent read of one group.
    async fn get_group(&self, key: &GroupKey) -> Result<Option<WorkflowRunGroup>, StoreError>;

    /// Writes `group` (whose `version` is already the new one) if `expected` still holds, together
    /// with `outbox` in the same atomic write when the write decides a trigger.
    async fn save_group(
        &self,
        group: &WorkflowRunGroup,
        expected: Expected,
        outbox: Option<&OutboxEntry>,
    ) -> Result<WriteOutcome, StoreError>;

    /// Deletes the groups last updated before `cutoff`; returns how many.
    async fn delete_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    /// How many groups were last updated before `cutoff`, changing nothing (the cleanup's dry run).
    async fn count_groups_updated_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Outbox entries decided before `decided_before`, oldest first, at most `limit`.
    async fn pending_outbox(
        &self,
        decided_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Groups still collecting whose last update lies between `after` and `before`, oldest first, at
    /// most `limit` (the reconciliation re-checks them with GitHub).
    async fn collecting_groups_updated_between(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkflowRunGroup>, StoreError>;

    /// Clears a group's outbox entry once its event is published: only this entry (a later one that
    /// replaced it stays); a no-op when already clear.
    async fn clear_outbox(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// Deletes groups whose `last_updated_at` is older than `retention`; returns how many.
    async fn clean_old_convos(&self, retention: Duration) -> Result<u64, StoreError> {
        let retention = chrono::Duration::from_std(retention)
            .map_err(|_| StoreError::Unavailable("retention out of range".into()))?;
        self.delete_groups_updated_before(Utc::now() - retention)
            .await
    }
}
