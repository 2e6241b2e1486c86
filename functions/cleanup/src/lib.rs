//! The cleanup function: one pass over the product's state, run on a schedule (EventBridge Scheduler ->
//! Lambda) or from the command line.
//!
//! Each step lives in its own module and reports into one [`CleanupSummary`], in this order:
//! - `reconcile`: re-checks with GitHub the workflow-run groups still collecting well after their
//!   last delivery, deciding (and publishing) the triggers a lost delivery would have;
//! - `outbox`: re-publishes decided triggers whose publish failed, once a grace period has left the
//!   decision path time to publish its own;
//! - `retention`: deletes workflow-run groups last updated before the retention window (DynamoDB's TTL
//!   on the same attribute is only a backstop: its deletes lag by up to two days);
//! - `dead_nodes`: reaps cluster nodes silent far longer than the live nodes tolerate, freeing the
//!   Redis state nobody is left to free;
//! - `stale_running`: marks stopped the conversations recorded as running that no live node runs.
//!
//! A `reconcile_only` pass (the frequent schedule's) runs the first two steps only. The reconciliation
//! needs GitHub and the bus; the two cluster steps need the cluster's Redis (`REDIS_URL`); without it they are skipped: a
//! standalone node's cluster lives in its own process and leaves nothing behind.
//!
//! A step that fails does not stop the others; the pass then ends in [`CleanupError::StepsFailed`],
//! carrying the summary. Under `dry_run` every step counts what it would do and changes nothing.

mod dead_nodes;
mod invocation;
mod options;
mod outbox;
mod reconcile;
mod retention;
mod stale_running;
mod summary;

use std::sync::Arc;

use chrono::Utc;
use shared::config::{BusBackend, StoreBackend};
use shared::github::{GitHubClient, GitHubConfig};
use shared::ports::{ClusterJanitor, ConversationStore, EventBus, ProactiveStore};
use shared::wiring::{self, AwsContext, WiringError};

pub use invocation::{InvocationError, Overrides};
pub use options::CleanupOptions;
pub use summary::{
    CleanupSummary, DeadNodesReport, OutboxReport, ReconcileReport, RetentionReport,
    StaleRunningReport, StepOutcome,
};

/// Why the daily steps are skipped in the frequent pass.
const RECONCILE_ONLY: &str = "a reconcile-only pass";

/// A daily step in the frequent pass.
fn skipped<T>() -> StepOutcome<T> {
    StepOutcome::Skipped {
        reason: RECONCILE_ONLY.into(),
    }
}

/// Why the cluster steps are skipped.
const NO_CLUSTER: &str = "no cluster Redis is configured (REDIS_URL)";

/// A pass that did not complete every step; the summary says which failed and why.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("cleanup steps failed: {}", .0.failed_steps().join(", "))]
    StepsFailed(Box<CleanupSummary>),
}

/// What the cleanup works on. `bus` is `None` when no event bus is configured: the outbox step is then
/// skipped rather than "publishing" triggers to a bus nobody listens to and clearing them. `cluster`
/// is `None` when the cluster's state is not in Redis: the cluster steps are then skipped.
#[derive(Clone)]
pub struct Cleanup {
    store: Arc<dyn ProactiveStore>,
    bus: Option<Arc<dyn EventBus>>,
    /// What the reconciliation asks about a commit's runs (`None`: the step is skipped).
    github: Option<GitHubClient>,
    cluster: Option<ClusterPorts>,
}

/// What the cluster steps work on: the conversations' records and the cluster's coordination state.
#[derive(Clone)]
pub struct ClusterPorts {
    pub conversations: Arc<dyn ConversationStore>,
    pub janitor: Arc<dyn ClusterJanitor>,
}

impl Cleanup {
    pub fn new(store: Arc<dyn ProactiveStore>, bus: Option<Arc<dyn EventBus>>) -> Self {
        Self {
            store,
            bus,
            github: None,
            cluster: None,
        }
    }

    /// This cleanup with the reconciliation, asking `github`.
    pub fn with_github(mut self, github: GitHubClient) -> Self {
        self.github = Some(github);
        self
    }

    /// This cleanup with the cluster steps.
    pub fn with_cluster(mut self, cluster: ClusterPorts) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The configured stores, the EventBridge bus when `EVENT_BUS_NAME` is set, GitHub (`GITHUB_*`),
    /// and the cluster's Redis when `REDIS_URL` is.
    pub async fn from_env() -> Result<Self, WiringError> {
        let mut aws = AwsContext::default();
        let backend = StoreBackend::from_env();
        let db = wiring::embedded_db(&backend)?;
        let store = wiring::proactive_store(&backend, db.as_ref(), &mut aws).await?;
        let bus = match BusBackend::from_env() {
            BusBackend::InProcess => None,
            // EventBridge: the in-process bus argument goes unused.
            eventbridge => {
                Some(wiring::event_bus(&eventbridge, &Default::default(), &mut aws).await)
            }
        };
        let github = GitHubClient::new(GitHubConfig::from_env()?)?;
        let cleanup = Self::new(store, bus).with_github(github);
        let Some(janitor) = wiring::cluster_janitor() else {
            return Ok(cleanup);
        };
        let conversations = wiring::conversation_store(&backend, db.as_ref(), &mut aws).await?;
        Ok(cleanup.with_cluster(ClusterPorts {
            conversations,
            janitor,
        }))
    }

    /// Runs every step once. `Ok` only when no step failed; the summary is in both cases.
    pub async fn run(&self, options: &CleanupOptions) -> Result<CleanupSummary, CleanupError> {
        let started_at = Utc::now();
        let reconcile = reconcile::run(
            self.store.as_ref(),
            self.github.as_ref(),
            self.bus.as_deref(),
            options,
            started_at,
        )
        .await;
        // The outbox before retention: a trigger whose group is past retention is still published
        // before the group (and its outbox entry with it) is deleted.
        let outbox = outbox::run(
            self.store.as_ref(),
            self.bus.as_deref(),
            options,
            started_at,
        )
        .await;
        let (retention, dead_nodes, stale_running) = if options.reconcile_only {
            (skipped(), skipped(), skipped())
        } else {
            let retention = retention::run(self.store.as_ref(), options, started_at).await;
            let cluster = self.cluster.as_ref();
            // Dead nodes first: their leases gone, their conversations no longer count as live.
            let dead_nodes = dead_nodes::run(cluster.map(|c| c.janitor.as_ref()), options).await;
            let stale_running = stale_running::run(
                cluster.map(|c| (c.conversations.as_ref(), c.janitor.as_ref())),
                options,
                started_at,
            )
            .await;
            (retention, dead_nodes, stale_running)
        };
        let summary = CleanupSummary {
            dry_run: options.dry_run,
            started_at,
            finished_at: Utc::now(),
            reconcile,
            outbox,
            retention,
            dead_nodes,
            stale_running,
        };
        if summary.failed_steps().is_empty() {
            Ok(summary)
        } else {
            Err(CleanupError::StepsFailed(Box::new(summary)))
        }
    }
}
