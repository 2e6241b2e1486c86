//! Publishing decided triggers. The decision path publishes right after its write and clears the outbox
//! entry; an entry left behind by a failed publish is re-published by the cleanup function. The event's
//! `trigger_id` lets consumers drop the rare repeat (a publish that succeeded but whose clear failed).

use chrono::{DateTime, Utc};

use crate::domain::{OutboxEntry, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE};
use crate::ports::{BusError, BusEvent, EventBus, ProactiveStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("published, but the outbox entry could not be cleared: {0}")]
    Clear(#[from] StoreError),
}

/// The bus event of an outbox entry.
pub fn trigger_event(entry: &OutboxEntry) -> BusEvent {
    BusEvent::new(TRIGGER_SOURCE, TRIGGER_DETAIL_TYPE, &entry.event)
}

/// Publishes one decided trigger, then clears its outbox entry.
pub async fn publish_trigger(
    store: &dyn ProactiveStore,
    bus: &dyn EventBus,
    entry: &OutboxEntry,
) -> Result<(), PublishError> {
    bus.publish(&trigger_event(entry)).await?;
    store.clear_outbox(entry).await?;
    Ok(())
}

/// What a re-publish pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RepublishReport {
    pub published: usize,
    pub failed: usize,
}

/// Re-publishes outbox entries decided before `decided_before` (a grace period that leaves the decision
/// path time to publish its own), at most `limit` of them.
pub async fn republish_pending(
    store: &dyn ProactiveStore,
    bus: &dyn EventBus,
    decided_before: DateTime<Utc>,
    limit: usize,
) -> Result<RepublishReport, StoreError> {
    let mut report = RepublishReport::default();
    for entry in store.pending_outbox(decided_before, limit).await? {
        match publish_trigger(store, bus, &entry).await {
            Ok(()) => report.published += 1,
            Err(error) => {
                report.failed += 1;
                tracing::warn!(trigger_id = %entry.event.trigger_id, %error, "outbox re-publish failed");
            }
        }
    }
    Ok(report)
}
