//! The outbox step: triggers decided more than the grace period ago whose publish failed are
//! published again, oldest first, one batch per pass (listed only, under `dry_run`). Consumers
//! deduplicate on `trigger_id`, so a re-publish after a publish whose clear failed is harmless.

use chrono::{DateTime, Utc};
use shared::ports::{EventBus, ProactiveStore};
use shared::proactive::republish_pending;

use crate::{CleanupOptions, OutboxReport, StepOutcome};

pub(crate) async fn run(
    store: &dyn ProactiveStore,
    bus: Option<&dyn EventBus>,
    options: &CleanupOptions,
    now: DateTime<Utc>,
) -> StepOutcome<OutboxReport> {
    let Ok(grace) = chrono::Duration::from_std(options.outbox_grace) else {
        return StepOutcome::Failed {
            error: "the outbox grace period is out of range".into(),
        };
    };
    let Some(bus) = bus else {
        return StepOutcome::Skipped {
            reason: "no event bus is configured (EVENT_BUS_NAME)".into(),
        };
    };
    let decided_before = now - grace;
    let report = |due, published, failed| OutboxReport {
        grace_seconds: options.outbox_grace.as_secs(),
        decided_before,
        due,
        published,
        failed,
    };
    let outcome = if options.dry_run {
        store
            .pending_outbox(decided_before, options.outbox_batch)
            .await
            .map(|due| report(due.len(), 0, 0))
    } else {
        republish_pending(store, bus, decided_before, options.outbox_batch)
            .await
            .map(|done| report(done.published + done.failed, done.published, done.failed))
    };
    match outcome {
        Ok(report) => StepOutcome::Done(report),
        Err(error) => {
            tracing::error!(%error, "outbox step failed");
            StepOutcome::Failed {
                error: error.to_string(),
            }
        }
    }
}
