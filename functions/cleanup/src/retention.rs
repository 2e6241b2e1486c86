//! The retention step: workflow-run groups last updated before `now - retention` are deleted
//! (counted under `dry_run`). The count is exact: a group updated while the pass runs is kept.

use chrono::{DateTime, Utc};
use shared::ports::ProactiveStore;

use crate::{CleanupOptions, RetentionReport, StepOutcome};

pub(crate) async fn run(
    store: &dyn ProactiveStore,
    options: &CleanupOptions,
    now: DateTime<Utc>,
) -> StepOutcome<RetentionReport> {
    let Ok(retention) = chrono::Duration::from_std(options.retention) else {
        return StepOutcome::Failed {
            error: "the retention window is out of range".into(),
        };
    };
    let cutoff = now - retention;
    let counted = if options.dry_run {
        store.count_groups_updated_before(cutoff).await
    } else {
        store.delete_groups_updated_before(cutoff).await
    };
    match counted {
        Ok(groups) => StepOutcome::Done(RetentionReport {
            retention_days: options.retention_days(),
            cutoff,
            groups,
        }),
        Err(error) => {
            tracing::error!(%error, "retention step failed");
            StepOutcome::Failed {
                error: error.to_string(),
            }
        }
    }
}
