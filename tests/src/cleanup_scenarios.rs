//! The cleanup function's pass against a store adapter and a bus: exact counts, nothing recent touched,
//! due triggers re-published exactly once. Written once, run on every adapter with
//! `e2e::cleanup_scenarios!(fresh_stack);`, where `fresh_stack` builds a [`Stack`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use cleanup::{Cleanup, CleanupError, CleanupOptions, CleanupSummary, StepOutcome};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::domain::{
    GroupKey, GroupState, HeadSha, OutboxEntry, ProactiveConversationRequested, RepoId, Repository,
    RunStatus, TRIGGER_DETAIL_TYPE, WorkflowRun, WorkflowRunGroup,
};
use shared::ports::{BusEvent, EventBus, Expected, ProactiveStore, WriteOutcome};
use tokio::sync::broadcast;

use crate::moto::EventObserver;

pub type Store = Arc<dyn ProactiveStore>;

/// Runs every scenario against the stack `$make` builds (an async fn returning a fresh [`Stack`]).
#[macro_export]
macro_rules! cleanup_scenarios {
    ($make:path) => {
        $crate::cleanup_scenarios!(@cases $make, [
            a_dry_run_counts_exactly_and_changes_nothing,
            a_pass_deletes_past_retention_and_republishes_due_triggers_once,
            without_a_bus_the_outbox_is_skipped_and_kept,
            a_failing_bus_fails_the_pass_and_keeps_the_triggers,
        ]);
    };
    (@cases $make:path, [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cleanup_scenarios::$case($make().await).await;
            }
        )+
    };
}

/// Where published events are seen: the in-process bus's channel, or an SQS queue behind EventBridge.
pub enum Published {
    InProcess(broadcast::Receiver<BusEvent>),
    EventBridge(EventObserver),
}

impl Published {
    /// The trigger ids published since the last call, waiting up to a few seconds for more than
    /// `expected` so that an extra event would be seen.
    async fn trigger_ids(&mut self, expected: usize) -> Vec<String> {
        let details: Vec<serde_json::Value> = match self {
            Self::InProcess(receiver) => {
                let mut found = Vec::new();
                while let Ok(Ok(event)) =
                    tokio::time::timeout(Duration::from_millis(200), receiver.recv()).await
                {
                    assert_eq!(event.detail_type, TRIGGER_DETAIL_TYPE);
                    found.push(event.detail);
                }
                found
            }
            Self::EventBridge(observer) => observer
                .receive(expected + 1, Duration::from_secs(3))
                .await
                .into_iter()
                .map(|event| {
                    assert_eq!(event["detail-type"], TRIGGER_DETAIL_TYPE);
                    event["detail"].clone()
                })
                .collect(),
        };
        details
            .iter()
            .map(|detail| {
                detail["trigger_id"]
                    .as_str()
                    .expect("a trigger id")
                    .to_owned()
            })
            .collect()
    }
}

/// A store, the bus the cleanup publishes on, and where its publishes are observed.
pub struct Stack {
    pub store: Store,
    pub bus: Arc<dyn EventBus>,
    pub published: Published,
}

fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::milliseconds(1))
        .expect("truncate to milliseconds")
}

fn key(n: u64) -> GroupKey {
    GroupKey {
        repo_id: RepoId::from_github(7_000 + n),
        pr_number: n,
        head_sha: HeadSha::parse(&format!("{n:040x}")).expect("a sha"),
    }
}

/// A group with one failed run, last updated at `updated_at`.
fn group(n: u64, updated_at: DateTime<Utc>) -> WorkflowRunGroup {
    let mut group = WorkflowRunGroup::new(key(n), updated_at);
    group.merge(WorkflowRun {
        id: n,
        name: "build".into(),
        status: RunStatus::Failure,
        conclusion: Some("failure".into()),
        attempt: 1,
        updated_at,
        html_url: format!("https://github.com/octo/hello/actions/runs/{n}"),
    });
    group.version = 1;
    group
}

async fn seed(store: &Store, group: &WorkflowRunGroup, outbox: Option<&OutboxEntry>) {
    let outcome = store.save_group(group, Expected::Absent, outbox).await;
    assert_eq!(outcome.expect("seed a group"), WriteOutcome::Written);
}

/// A triggered group whose publish failed at `decided_at`: its outbox entry is pending.
async fn seed_unpublished(
    store: &Store,
    n: u64,
    updated_at: DateTime<Utc>,
    decided_at: DateTime<Utc>,
) -> String {
    let mut decided = group(n, updated_at);
    decided.state = GroupState::Triggered;
    let repository = Repository {
        id: decided.key.repo_id.clone(),
        owner: "octo".into(),
        name: format!("hello-{n}"),
        installation_id: Some(1),
        account: "octo".into(),
        user_id: "github:1".into(),
        proactive_enabled: true,
    };
    let event =
        ProactiveConversationRequested::for_group(&decided, &repository, "fix-ci", decided_at);
    let trigger_id = event.trigger_id.as_str().to_owned();
    seed(store, &decided, Some(&OutboxEntry { event })).await;
    trigger_id
}

/// What every scenario starts from, for a 30-day retention and a 5-minute grace: six groups past
/// retention (one of them with a trigger never published), five recent ones, three due triggers.
pub struct Seeded {
    /// Groups updated 31 to 35 days ago, and the one updated 40 days ago with `due_and_expired`.
    pub expired: Vec<GroupKey>,
    /// Groups updated 29 days ago, a day ago and now, and those of `due` and `in_grace`.
    pub recent: Vec<GroupKey>,
    /// Triggers decided 10 and 20 minutes ago, still unpublished (their groups are recent).
    pub due: BTreeSet<String>,
    /// A trigger decided 40 days ago and never published: re-published, then its group deleted.
    pub due_and_expired: String,
    /// A trigger decided a minute ago: within the grace period, left to the decision path.
    pub in_grace: String,
}

const EXPIRED: u64 = 5;

pub async fn seed_world(store: &Store) -> Seeded {
    let now = now();
    let days = TimeDelta::days;
    let mut expired: Vec<GroupKey> = Vec::new();
    for n in 0..EXPIRED {
        let updated = now - days(31 + n as i64);
        seed(store, &group(n, updated), None).await;
        expired.push(key(n));
    }
    let recent_at = [now - days(29), now - days(1), now];
    let mut recent = Vec::new();
    for (n, updated) in (10..).zip(recent_at) {
        seed(store, &group(n, updated), None).await;
        recent.push(key(n));
    }
    let mut due = BTreeSet::new();
    for (n, minutes) in [(20, 10), (21, 20)] {
        let decided = now - TimeDelta::minutes(minutes);
        due.insert(seed_unpublished(store, n, decided, decided).await);
        recent.push(key(n));
    }
    let long_ago = now - days(40);
    let due_and_expired = seed_unpublished(store, 30, long_ago, long_ago).await;
    expired.push(key(30));
    let in_grace = now - TimeDelta::minutes(1);
    let in_grace = seed_unpublished(store, 40, in_grace, in_grace).await;
    recent.push(key(40));
    Seeded {
        expired,
        recent,
        due,
        due_and_expired,
        in_grace,
    }
}

fn options(dry_run: bool) -> CleanupOptions {
    CleanupOptions {
        dry_run,
        ..CleanupOptions::default().with_retention_days(30)
    }
}

async fn pending_ids(store: &Store) -> BTreeSet<String> {
    store
        .pending_outbox(now() + TimeDelta::hours(1), 100)
        .await
        .expect("list the outbox")
        .into_iter()
        .map(|entry| entry.event.trigger_id.as_str().to_owned())
        .collect()
}

async fn exists(store: &Store, key: &GroupKey) -> bool {
    store.get_group(key).await.expect("read a group").is_some()
}

fn counts(summary: &CleanupSummary) -> (u64, usize, usize, usize) {
    let retention = summary.retention.report().expect("retention done");
    let outbox = summary.outbox.report().expect("outbox done");
    (
        retention.groups,
        outbox.due,
        outbox.published,
        outbox.failed,
    )
}

fn all_triggers(seeded: &Seeded) -> BTreeSet<String> {
    let mut all = seeded.due.clone();
    all.extend([seeded.due_and_expired.clone(), seeded.in_grace.clone()]);
    all
}

pub async fn a_dry_run_counts_exactly_and_changes_nothing(mut stack: Stack) {
    let seeded = seed_world(&stack.store).await;
    let cleanup = Cleanup::new(Arc::clone(&stack.store), Some(Arc::clone(&stack.bus)));
    for _ in 0..2 {
        let summary = cleanup.run(&options(true)).await.expect("a dry run");
        assert!(summary.dry_run);
        // Six expired groups (one with its trigger), three due triggers, nothing done.
        assert_eq!(counts(&summary), (EXPIRED + 1, 3, 0, 0), "{summary:?}");
    }
    for key in seeded.expired.iter().chain(&seeded.recent) {
        assert!(exists(&stack.store, key).await, "{key} untouched");
    }
    assert_eq!(pending_ids(&stack.store).await, all_triggers(&seeded));
    assert!(stack.published.trigger_ids(0).await.is_empty());
}

pub async fn a_pass_deletes_past_retention_and_republishes_due_triggers_once(mut stack: Stack) {
    let seeded = seed_world(&stack.store).await;
    let cleanup = Cleanup::new(Arc::clone(&stack.store), Some(Arc::clone(&stack.bus)));

    let summary = cleanup.run(&options(false)).await.expect("a pass");
    assert!(!summary.dry_run);
    assert_eq!(counts(&summary), (EXPIRED + 1, 3, 3, 0), "{summary:?}");
    let mut expected = seeded.due.clone();
    expected.insert(seeded.due_and_expired.clone());
    let published: BTreeSet<String> = stack.published.trigger_ids(3).await.into_iter().collect();
    assert_eq!(
        published, expected,
        "each due trigger once, the one in grace not"
    );

    for key in &seeded.expired {
        assert!(!exists(&stack.store, key).await, "{key} deleted");
    }
    for key in &seeded.recent {
        assert!(exists(&stack.store, key).await, "{key} kept");
    }
    assert_eq!(
        pending_ids(&stack.store).await,
        BTreeSet::from([seeded.in_grace.clone()])
    );

    let again = cleanup.run(&options(false)).await.expect("a second pass");
    assert_eq!(counts(&again), (0, 0, 0, 0), "{again:?}");
    assert!(stack.published.trigger_ids(0).await.is_empty());
}

pub async fn without_a_bus_the_outbox_is_skipped_and_kept(mut stack: Stack) {
    let seeded = seed_world(&stack.store).await;
    let cleanup = Cleanup::new(Arc::clone(&stack.store), None);
    let summary = cleanup.run(&options(false)).await.expect("a pass");
    assert!(
        matches!(&summary.outbox, StepOutcome::Skipped { reason } if reason.contains("EVENT_BUS_NAME")),
        "{summary:?}"
    );
    assert_eq!(
        summary.retention.report().map(|r| r.groups),
        Some(EXPIRED + 1)
    );
    // The expired group's trigger went with its group; the others wait for a bus.
    let mut kept = seeded.due.clone();
    kept.insert(seeded.in_grace.clone());
    assert_eq!(pending_ids(&stack.store).await, kept);
    assert!(stack.published.trigger_ids(0).await.is_empty());
}

pub async fn a_failing_bus_fails_the_pass_and_keeps_the_triggers(mut stack: Stack) {
    let seeded = seed_world(&stack.store).await;
    let failing = EventBridgeBus::new(crate::moto::unreachable_eventbridge(), "proactive");
    let cleanup = Cleanup::new(Arc::clone(&stack.store), Some(Arc::new(failing)));
    let error = cleanup
        .run(&options(false))
        .await
        .expect_err("failed publishes fail the pass");
    let CleanupError::StepsFailed(summary) = error;
    assert_eq!(summary.failed_steps(), ["outbox"]);
    assert_eq!(counts(&summary), (EXPIRED + 1, 3, 0, 3), "{summary:?}");
    let mut kept = seeded.due.clone();
    kept.insert(seeded.in_grace.clone());
    assert_eq!(pending_ids(&stack.store).await, kept);
    assert!(stack.published.trigger_ids(0).await.is_empty());
}
