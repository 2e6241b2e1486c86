//! The options of one cleanup pass: defaults from the environment, overridden by the invocation
//! (a scheduled event's input or the command line).

use std::time::Duration;

use shared::config::{self, ConfigError};

/// How long a decided trigger may wait for the decision path's own publish before the cleanup
/// re-publishes it (`CLEANUP_OUTBOX_GRACE_MINUTES`).
pub const DEFAULT_OUTBOX_GRACE: Duration = Duration::from_secs(5 * 60);

/// The most outbox entries one pass re-publishes; the rest wait for the next pass, oldest first.
pub const DEFAULT_OUTBOX_BATCH: usize = 1000;

const DAY: u64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Count what would be done; change nothing.
    pub dry_run: bool,
    /// Groups last updated longer ago than this are deleted.
    pub retention: Duration,
    pub outbox_grace: Duration,
    pub outbox_batch: usize,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            retention: Duration::from_secs(30 * DAY),
            outbox_grace: DEFAULT_OUTBOX_GRACE,
            outbox_batch: DEFAULT_OUTBOX_BATCH,
        }
    }
}

impl CleanupOptions {
    /// `PROACTIVE_RETENTION_DAYS` (default 30), `CLEANUP_OUTBOX_GRACE_MINUTES` (default 5),
    /// `CLEANUP_DRY_RUN` (default false).
    pub fn from_env() -> Result<Self, ConfigError> {
        let options = Self {
            dry_run: config::flag("CLEANUP_DRY_RUN", false)?,
            retention: shared::proactive::retention_from_env()?,
            outbox_grace: Duration::from_secs(
                60 * config::parsed(
                    "CLEANUP_OUTBOX_GRACE_MINUTES",
                    DEFAULT_OUTBOX_GRACE.as_secs() / 60,
                )?,
            ),
            outbox_batch: DEFAULT_OUTBOX_BATCH,
        };
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
