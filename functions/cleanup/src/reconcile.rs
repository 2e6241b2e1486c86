//! The reconciliation step: groups still collecting `reconcile_after` after their last update (the
//! deciding delivery failed, GitHub never redelivers it, or it never came) are re-checked with GitHub
//! through the same exactly-once write a delivery makes; a trigger it decides is published at once
//! (a failed publish stays in the outbox for the outbox step). Groups older than
//! `reconcile_within` are left to retention; one batch per pass, oldest first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::github::GitHubClient;
use shared::ports::{EventBus, ProactiveStore};
use shared::proactive::{Decision, PublishError, publish_trigger, reconcile_group};

use crate::{CleanupOptions, ReconcileReport, StepOutcome};

pub(crate) async fn run(
    store: &dyn ProactiveStore,
    github: Option<&GitHubClient>,
    bus: Option<&dyn EventBus>,
    options: &CleanupOptions,
    now: DateTime<Utc>,
) -> StepOutcome<ReconcileReport> {
    let (Ok(after), Ok(within)) = (
        chrono::Duration::from_std(options.reconcile_after),
        chrono::Duration::from_std(options.reconcile_within),
    ) else {
        return StepOutcome::Failed {
            error: "the reconciliation window is out of range".into(),
        };
    };
    let (Some(github), Some(bus)) = (github, bus) else {
        return StepOutcome::Skipped {
            reason: "the reconciliation needs GitHub and an event bus (EVENT_BUS_NAME)".into(),
        };
    };
    let updated_before = now - after;
    let groups = match store
        .collecting_groups_updated_between(now - within, updated_before, options.reconcile_batch)
        .await
    {
        Ok(groups) => groups,
        Err(error) => {
            tracing::error!(%error, "reconciliation step failed");
            return StepOutcome::Failed {
                error: error.to_string(),
            };
        }
    };
    let mut report = ReconcileReport {
        after_seconds: options.reconcile_after.as_secs(),
        updated_before,
        checked: groups.len(),
        triggered: 0,
        published: 0,
        failed: 0,
    };
    if options.dry_run {
        return StepOutcome::Done(report);
    }
    // A repository's stuck groups (its PRs' commits) share one read of it.
    let mut repositories = HashMap::new();
    for group in groups {
        let key = &group.key;
        let repository = match repositories.get(&key.repo_id) {
            Some(known) => known,
            None => match store.get_repository(&key.repo_id).await {
                Ok(read) => repositories.entry(key.repo_id.clone()).or_insert(read),
                Err(error) => {
                    tracing::warn!(%error, group = %key, "cannot read the group's repository");
                    report.failed += 1;
                    continue;
                }
            },
        };
        // Uninstalled since: retention takes the group.
        let Some(repository) = repository else {
            continue;
        };
        let entry = match reconcile_group(store, github, repository, key).await {
            Ok(Decision::Triggered(entry)) => entry,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, group = %key, "cannot reconcile the group");
                report.failed += 1;
                continue;
            }
        };
        report.triggered += 1;
        let trigger_id = entry.event.trigger_id.to_string();
        tracing::info!(trigger_id, group = %key, "the reconciliation decided a trigger");
        match publish_trigger(store, bus, &entry).await {
            Ok(()) | Err(PublishError::Clear(_)) => report.published += 1,
            Err(error) => {
                tracing::warn!(%error, trigger_id, "trigger publish failed; left in the outbox");
                report.failed += 1;
            }
        }
    }
    StepOutcome::Done(report)
}
