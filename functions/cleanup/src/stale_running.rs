//! The stale-running step: conversations recorded as running that no live node's lease runs, last
//! updated before `now - running_grace`, are marked stopped (status and agent state `stopped`, as a
//! node records a stop) and leave their user's running set, where they held one of the user's slots.
//! They are what no takeover picked up: their node died with no survivor, or while Redis was restarted
//! empty, or a takeover failed. Read from the store's index of running conversations, one batch at a
//! time; counted only, under `dry_run`.
//!
//! A node may claim such a conversation while the pass looks at it (its user sends a message). The
//! lease and then the stored record are re-read right before the write (the record must be unchanged),
//! which leaves a window of one store write: a conversation claimed in it reads as stopped until its
//! node's next write of the record, which rewrites it whole, status included.

use chrono::{DateTime, Utc};
use shared::domain::{AgentState, Conversation, ConversationId, ConversationStatus};
use shared::ports::{ClusterJanitor, ConversationStore};

use crate::{CleanupOptions, StaleRunningReport, StepOutcome};

pub(crate) async fn run(
    cluster: Option<(&dyn ConversationStore, &dyn ClusterJanitor)>,
    options: &CleanupOptions,
    now: DateTime<Utc>,
) -> StepOutcome<StaleRunningReport> {
    let Ok(grace) = chrono::Duration::from_std(options.running_grace) else {
        return StepOutcome::Failed {
            error: "the running grace period is out of range".into(),
        };
    };
    let Some((store, janitor)) = cluster else {
        return StepOutcome::Skipped {
            reason: crate::NO_CLUSTER.into(),
        };
    };
    let mut report = StaleRunningReport {
        grace_seconds: options.running_grace.as_secs(),
        updated_before: now - grace,
        recorded_running: 0,
        live: 0,
        stopped: 0,
    };
    match sweep(store, janitor, options, &mut report).await {
        Ok(()) => StepOutcome::Done(report),
        Err(error) => {
            tracing::error!(%error, stopped = report.stopped, "stale-running step failed");
            StepOutcome::Failed { error }
        }
    }
}

async fn sweep(
    store: &dyn ConversationStore,
    janitor: &dyn ClusterJanitor,
    options: &CleanupOptions,
    report: &mut StaleRunningReport,
) -> Result<(), String> {
    let updated_before = report.updated_before;
    let mut after: Option<ConversationId> = None;
    loop {
        let page = store
            .list_running(after.as_ref(), options.running_batch)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.id.clone());
        report.recorded_running += page.len();
        let ids: Vec<ConversationId> = page.iter().map(|c| c.id.clone()).collect();
        let live = janitor
            .live_runs(&ids, options.node_silence)
            .await
            .map_err(|e| e.to_string())?;
        report.live += live.len();
        let stale = page
            .iter()
            .filter(|c| !live.contains(&c.id) && c.last_updated_at < updated_before);
        for conversation in stale {
            if options.dry_run || stop(store, janitor, options, conversation, report).await? {
                report.stopped += 1;
            }
        }
    }
}

/// Stops one stale conversation unless it came back to life since it was read; returns whether it
/// stopped it.
async fn stop(
    store: &dyn ConversationStore,
    janitor: &dyn ClusterJanitor,
    options: &CleanupOptions,
    read: &Conversation,
    report: &mut StaleRunningReport,
) -> Result<bool, String> {
    let id = std::slice::from_ref(&read.id);
    if !janitor
        .live_runs(id, options.node_silence)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        report.live += 1;
        return Ok(false);
    }
    let current = store
        .get_conversation(&read.id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(mut current) = current.filter(|current| current == read) else {
        return Ok(false);
    };
    // The running set first: should the store write fail, the next pass finds the conversation
    // still recorded as running and finishes the stop.
    janitor
        .forget_running(&current.id, &current.user_id)
        .await
        .map_err(|e| e.to_string())?;
    current.status = ConversationStatus::Stopped;
    current.agent_state = AgentState::Stopped;
    current.last_updated_at = Utc::now();
    store
        .update_conversation(&current)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(conversation = %current.id, "stale running conversation stopped");
    Ok(true)
}
