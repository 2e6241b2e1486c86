//! The sync state port: a sync's watermark (the last conversation it finished, in `(created_at, id)`
//! order) and the lease that keeps two runs of it from overlapping. Adapters:
//! `adapters::embedded::EmbeddedSyncState` and `adapters::dynamo::SyncStateItem`; both pass
//! `tests/tests/stores/sync_state_contract.rs`.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;
use crate::domain::CreatedCursor;

/// What became of a request to move the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    Moved,
    /// The stored watermark is already at or past the new one (a back-fill behind it): left as it is.
    AlreadyPast,
    /// The caller no longer holds the run lease: another run took over; nothing was written.
    LeaseLost,
}

#[async_trait]
pub trait SyncStateStore: Send + Sync {
    /// The watermark, or `None` before the first conversation was ever synced.
    async fn watermark(&self) -> Result<Option<CreatedCursor>, StoreError>;

    /// Takes (or, for its holder, extends) the run lease for `ttl`; `false` when another owner holds an
    /// unexpired one.
    async fn acquire_run_lease(&self, owner: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Moves the watermark forward to `to`, only while `owner` holds the lease.
    async fn advance_watermark(
        &self,
        owner: &str,
        to: &CreatedCursor,
    ) -> Result<Advance, StoreError>;

    /// Gives the lease up (no-op when `owner` no longer holds it).
    async fn release_run_lease(&self, owner: &str) -> Result<(), StoreError>;
}
