//! The options of one cleanup pass: defaults from the environment, overridden by the invocation
//! (a scheduled event's input or the command line).

use std::time::Duration;

use shared::config::{self, ConfigError};

/// How long a decided trigger may wait for the decision path's own publish before the cleanup
/// re-publishes it (`CLEANUP_OUTBOX_GRACE_MINUTES`).
pub(crate) const DEFAULT_OUTBOX_GRACE: Duration = Duration::from_secs(5 * 60);

/// The most outbox entries one pass re-publishes; the rest wait for the next pass, oldest first.
pub(crate) const DEFAULT_OUTBOX_BATCH: usize = 1000;

/// How long a node must have been silent for the cleanup to reap it (`CLEANUP_NODE_SILENCE_MINUTES`):
/// far beyond the live nodes' own reaping (two heartbeats), so that while any node lives, it reaps
/// first and takes the dead node's conversations over.
pub(crate) const DEFAULT_NODE_SILENCE: Duration = Duration::from_secs(10 * 60);

/// How long a conversation recorded as running but run by no live lease must have gone without an
/// update before the cleanup marks it stopped (`CLEANUP_RUNNING_GRACE_MINUTES`): a start, a takeover
/// or a restart between its store write and its claim is never mistaken for a stale one.
pub(crate) const DEFAULT_RUNNING_GRACE: Duration = Duration::from_secs(10 * 60);

/// How many running conversations one read of the store (and one lease check) covers.
pub(crate) const DEFAULT_RUNNING_BATCH: usize = 100;

/// How long a group may go on collecting after its last update before the reconciliation asks GitHub
/// about it (`PROACTIVE_RECONCILE_AFTER_MINUTES`).
pub(crate) const DEFAULT_RECONCILE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Groups quiet for longer than this are not re-checked (a day: CI runs that long are rare).
pub(crate) const DEFAULT_RECONCILE_WITHIN: Duration = Duration::from_secs(DAY);
/// The most groups one pass re-checks; the rest wait for the next pass, oldest first.
pub(crate) const DEFAULT_RECONCILE_BATCH: usize = 100;

const DAY: u64 = 24 * 3600;
const MINUTE: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Count what would be done; change nothing.
    pub dry_run: bool,
    /// Groups last updated longer ago than this are deleted.
    pub retention: Duration,
    pub outbox_grace: Duration,
    pub outbox_batch: usize,
    pub node_silence: Duration,
    pub running_grace: Duration,
    pub running_batch: usize,
    pub reconcile_after: Duration,
    pub reconcile_within: Duration,
    pub reconcile_batch: usize,
    /// Only the frequent steps: the reconciliation and the outbox (the 5-minute schedule).
    pub reconcile_only: bool,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            retention: Duration::from_secs(30 * DAY),
            outbox_grace: DEFAULT_OUTBOX_GRACE,
            outbox_batch: DEFAULT_OUTBOX_BATCH,
            node_silence: DEFAULT_NODE_SILENCE,
            running_grace: DEFAULT_RUNNING_GRACE,
            running_batch: DEFAULT_RUNNING_BATCH,
            reconcile_after: DEFAULT_RECONCILE_AFTER,
            reconcile_within: DEFAULT_RECONCILE_WITHIN,
            reconcile_batch: DEFAULT_RECONCILE_BATCH,
            reconcile_only: false,
        }
    }
}

impl CleanupOptions {
    /// `PROACTIVE_RETENTION_DAYS` (default 30), `CLEANUP_OUTBOX_GRACE_MINUTES` (default 5),
    /// `PROACTIVE_RECONCILE_AFTER_MINUTES` (default 10),
    /// `CLEANUP_NODE_SILENCE_MINUTES` and `CLEANUP_RUNNING_GRACE_MINUTES` (default 10, at least 1),
    /// `CLEANUP_DRY_RUN` (default false).
    pub fn from_env() -> Result<Self, ConfigError> {
        let options = Self {
            dry_run: config::flag("CLEANUP_DRY_RUN", false)?,
            retention: shared::proactive::retention_from_env()?,
            outbox_grace: minutes("CLEANUP_OUTBOX_GRACE_MINUTES", DEFAULT_OUTBOX_GRACE)?,
            outbox_batch: DEFAULT_OUTBOX_BATCH,
            node_silence: minutes("CLEANUP_NODE_SILENCE_MINUTES", DEFAULT_NODE_SILENCE)?,
            running_grace: minutes("CLEANUP_RUNNING_GRACE_MINUTES", DEFAULT_RUNNING_GRACE)?,
            running_batch: DEFAULT_RUNNING_BATCH,
            reconcile_after: minutes("PROACTIVE_RECONCILE_AFTER_MINUTES", DEFAULT_RECONCILE_AFTER)?,
            reconcile_within: DEFAULT_RECONCILE_WITHIN,
            reconcile_batch: DEFAULT_RECONCILE_BATCH,
            reconcile_only: false,
        };
        for (name, value) in [
            ("CLEANUP_NODE_SILENCE_MINUTES", options.node_silence),
            ("CLEANUP_RUNNING_GRACE_MINUTES", options.running_grace),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    name,
                    reason:
                        "must be at least 1: 0 would take live nodes and conversations for dead"
                            .into(),
                });
            }
        }
        if options.retention.is_zero() {
            return Err(ConfigError::Invalid {
                name: "PROACTIVE_RETENTION_DAYS",
                reason: "must be at least 1: 0 would delete every workflow-run group".into(),
            });
        }
        Ok(options)
    }

    pub fn with_retention_days(mut self, days: u64) -> Self {
        self.retention = Duration::from_secs(days * DAY);
        self
    }

    /// Whole days of the retention window, for the summary.
    pub fn retention_days(&self) -> u64 {
        self.retention.as_secs() / DAY
    }
}

/// A whole number of minutes from `name`, else `default`.
fn minutes(name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(
        MINUTE * config::parsed(name, default.as_secs() / MINUTE)?,
    ))
}
