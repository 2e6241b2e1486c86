//! The one summary of a pass: the Lambda's result, the command line's output, and one structured log
//! line. Counts are what the pass did or, under `dry_run`, what it would have done.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepOutcome<T> {
    Done(T),
    Skipped { reason: String },
    Failed { error: String },
}

impl<T> StepOutcome<T> {
    pub fn report(&self) -> Option<&T> {
        match self {
            Self::Done(report) => Some(report),
            _ => None,
        }
    }

    fn failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    fn status(&self) -> &'static str {
        match self {
            Self::Done(_) => "done",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
        }
    }

    /// Why the step was skipped or failed.
    fn note(&self) -> Option<&str> {
        match self {
            Self::Done(_) => None,
            Self::Skipped { reason } => Some(reason),
            Self::Failed { error } => Some(error),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub retention_days: u64,
    /// Groups last updated before this instant are past retention.
    pub cutoff: DateTime<Utc>,
    /// Groups deleted (or, in a dry run, that would be).
    pub groups: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxReport {
    pub grace_seconds: u64,
    /// Triggers decided before this instant and still unpublished are due.
    pub decided_before: DateTime<Utc>,
    /// Due entries found (at most one batch).
    pub due: usize,
    pub published: usize,
    /// Publishes that failed; their entries stay for the next pass.
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub after_seconds: u64,
    /// Groups still collecting whose last update is before this instant are re-checked.
    pub updated_before: DateTime<Utc>,
    /// Groups re-checked (at most one batch).
    pub checked: usize,
    /// Of those, decided red now.
    pub triggered: usize,
    pub published: usize,
    /// Groups that could not be re-checked, and publishes that failed (left in the outbox).
    pub failed: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadNodesReport {
    /// Nodes whose last heartbeat is older than this are dead.
    pub silence_seconds: u64,
    /// Nodes reaped (or, in a dry run, that would be).
    pub nodes: u64,
    /// Leases they still held, freed.
    pub leases: u64,
    /// Records of their clients (one per node and conversation), forgotten.
    pub client_records: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleRunningReport {
    pub grace_seconds: u64,
    /// Conversations last updated before this instant that no live lease runs are stale.
    pub updated_before: DateTime<Utc>,
    /// Conversations recorded as running, read.
    pub recorded_running: usize,
    /// Of those, run by a live node's lease: left alone.
    pub live: usize,
    /// Of those, marked stopped (or, in a dry run, that would be); each also leaves its user's running
    /// set.
    pub stopped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupSummary {
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub reconcile: StepOutcome<ReconcileReport>,
    pub outbox: StepOutcome<OutboxReport>,
    pub retention: StepOutcome<RetentionReport>,
    pub dead_nodes: StepOutcome<DeadNodesReport>,
    pub stale_running: StepOutcome<StaleRunningReport>,
}

impl CleanupSummary {
    /// The names of the steps that failed. An outbox pass with a failed publish counts: the trigger is
    /// still waiting, and the invocation's error is what alarms watch.
    pub fn failed_steps(&self) -> Vec<&'static str> {
        let outbox_failed =
            self.outbox.failed() || self.outbox.report().is_some_and(|report| report.failed > 0);
        let reconcile_failed = self.reconcile.failed()
            || self
                .reconcile
                .report()
                .is_some_and(|report| report.failed > 0);
        [
            ("reconcile", reconcile_failed),
            ("outbox", outbox_failed),
            ("retention", self.retention.failed()),
            ("dead_nodes", self.dead_nodes.failed()),
            ("stale_running", self.stale_running.failed()),
        ]
        .into_iter()
        .filter_map(|(step, failed)| failed.then_some(step))
        .collect()
    }

    /// Writes the summary as one log line whose fields mirror the JSON (`outbox.due`, `retention.groups`, ...), so
    /// that a log query can read every count without parsing a nested document.
    pub fn log(&self) {
        let reconcile = self.reconcile.report();
        let retention = self.retention.report();
        let outbox = self.outbox.report();
        let dead_nodes = self.dead_nodes.report();
        let stale = self.stale_running.report();
        tracing::info!(
            dry_run = self.dry_run,
            started_at = %self.started_at.to_rfc3339(),
            finished_at = %self.finished_at.to_rfc3339(),
            reconcile.status = self.reconcile.status(),
            reconcile.note = self.reconcile.note(),
            reconcile.after_seconds = reconcile.map(|r| r.after_seconds),
            reconcile.checked = reconcile.map(|r| r.checked),
            reconcile.triggered = reconcile.map(|r| r.triggered),
            reconcile.published = reconcile.map(|r| r.published),
            reconcile.failed = reconcile.map(|r| r.failed),
            outbox.status = self.outbox.status(),
            outbox.note = self.outbox.note(),
            outbox.grace_seconds = outbox.map(|r| r.grace_seconds),
            outbox.decided_before = outbox.map(|r| r.decided_before.to_rfc3339()),
            outbox.due = outbox.map(|r| r.due),
            outbox.published = outbox.map(|r| r.published),
            outbox.failed = outbox.map(|r| r.failed),
            retention.status = self.retention.status(),
            retention.note = self.retention.note(),
            retention.retention_days = retention.map(|r| r.retention_days),
            retention.cutoff = retention.map(|r| r.cutoff.to_rfc3339()),
            retention.groups = retention.map(|r| r.groups),
            dead_nodes.status = self.dead_nodes.status(),
            dead_nodes.note = self.dead_nodes.note(),
            dead_nodes.silence_seconds = dead_nodes.map(|r| r.silence_seconds),
            dead_nodes.nodes = dead_nodes.map(|r| r.nodes),
            dead_nodes.leases = dead_nodes.map(|r| r.leases),
            dead_nodes.client_records = dead_nodes.map(|r| r.client_records),
            stale_running.status = self.stale_running.status(),
            stale_running.note = self.stale_running.note(),
            stale_running.grace_seconds = stale.map(|r| r.grace_seconds),
            stale_running.updated_before = stale.map(|r| r.updated_before.to_rfc3339()),
            stale_running.recorded_running = stale.map(|r| r.recorded_running),
            stale_running.live = stale.map(|r| r.live),
            stale_running.stopped = stale.map(|r| r.stopped),
            "cleanup summary"
        );
    }
}
