//! The cleanup function: one pass over the product's state, run on a schedule (EventBridge Scheduler ->
//! Lambda) or from the command line.
//!
//! Each step lives in its own module and reports into one [`CleanupSummary`], in this order:
//! - [`outbox`]: re-publishes decided triggers whose publish failed, once a grace period has left the
//!   decision path time to publish its own;
//! - [`retention`]: deletes workflow-run groups last updated before the retention window (DynamoDB's TTL
//!   on the same attribute is only a backstop: its deletes lag by up to two days).
//!
//! A step that fails does not stop the others; the pass then ends in [`CleanupError::StepsFailed`],
//! carrying the summary. Under `dry_run` every step counts what it would do and changes nothing. The
//! cluster's steps (a dead node's Redis state, conversations recorded as running on a node that is
//! gone) slot in the same way: a module, a field of the summary, one line in [`Cleanup::run`].

pub mod invocation;
pub mod options;
pub mod outbox;
pub mod retention;
pub mod summary;

use std::sync::Arc;

use chrono::Utc;
use shared::config::{BusBackend, StoreBackend};
use shared::ports::{EventBus, ProactiveStore};
use shared::wiring::{self, AwsContext, WiringError};

pub use invocation::{InvocationError, Overrides};
pub use options::CleanupOptions;
pub use summary::{CleanupSummary, OutboxReport, RetentionReport, StepOutcome};

/// A pass that did not complete every step; the summary says which failed and why.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("cleanup steps failed: {}", .0.failed_steps().join(", "))]
    StepsFailed(Box<CleanupSummary>),
}

/// What the cleanup works on. `bus` is `None` when no event bus is configured: the outbox step is then
/// skipped rather than "publishing" triggers to a bus nobody listens to and clearing them.
#[derive(Clone)]
pub struct Cleanup {
    store: Arc<dyn ProactiveStore>,
    bus: Option<Arc<dyn EventBus>>,
}

impl Cleanup {
    pub fn new(store: Arc<dyn ProactiveStore>, bus: Option<Arc<dyn EventBus>>) -> Self {
        Self { store, bus }
    }

    /// The configured store and, when `EVENT_BUS_NAME` is set, the EventBridge bus.
    pub async fn from_env() -> Result<Self, WiringError> {
        let mut aws = AwsContext::default();
        let store = wiring::proactive_store(&StoreBackend::from_env(), None, &mut aws).await?;
        let bus = match BusBackend::from_env() {
            BusBackend::InProcess => None,
            // EventBridge: the in-process bus argument goes unused.
            eventbridge => {
                Some(wiring::event_bus(&eventbridge, &Default::default(), &mut aws).await)
            }
        };
        Ok(Self::new(store, bus))
    }

    /// Runs every step once. `Ok` only when no step failed; the summary is in both cases.
    pub async fn run(&self, options: &CleanupOptions) -> Result<CleanupSummary, CleanupError> {
        let started_at = Utc::now();
        // The outbox first: a trigger whose group is past retention is still published before the
        // group (and its outbox entry with it) is deleted.
        let outbox = outbox::run(
            self.store.as_ref(),
            self.bus.as_deref(),
            options,
            started_at,
        )
        .await;
        let retention = retention::run(self.store.as_ref(), options, started_at).await;
        let summary = CleanupSummary {
            dry_run: options.dry_run,
            started_at,
            finished_at: Utc::now(),
            outbox,
            retention,
        };
        if summary.failed_steps().is_empty() {
            Ok(summary)
        } else {
            Err(CleanupError::StepsFailed(Box::new(summary)))
        }
    }
}
