//! The cleanup function's pass against a store adapter and a bus: exact counts, nothing recent touched,
//! due triggers re-published exactly once; and its cluster steps against real Redis (a server of each
//! case's own, whose command statistics show that no pass walks the key space): a dead node's state
//! gone, stale running conversations stopped, every live key and conversation untouched. Written once,
//! run on every adapter with `e2e::cleanup_scenarios!(fresh_stack);`, where `fresh_stack` builds a
//! [`Stack`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use cleanup::{
    Cleanup, CleanupError, CleanupOptions, CleanupSummary, ClusterPorts, DeadNodesReport,
    StaleRunningReport, StepOutcome,
};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::adapters::redis::Keys;
use shared::adapters::redis::{RedisCoordination, RedisJanitor, RedisSettings};
use shared::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, GroupKey, GroupState, HeadSha,
    NodeId, OutboxEntry, ProactiveConversationRequested, RepoId, Repository, RunStatus,
    TRIGGER_DETAIL_TYPE, UserId, WorkflowRun, WorkflowRunGroup,
};
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, Lease, LeaseEnd, Leases, LimitPolicy, Liveness, Messaging,
};
use shared::ports::{
    BusEvent, ConversationStore, EventBus, Expected, ProactiveStore, WriteOutcome,
};
use tokio::sync::broadcast;

use crate::moto::EventObserver;
use crate::redis::{PrivateRedis, no_key_scans, unique_prefix};

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
            cluster_dry_run_counts_exactly_and_changes_nothing,
            cluster_pass_reaps_dead_nodes_and_stops_stale_conversations_only,
            without_redis_the_cluster_steps_are_skipped,
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

/// The stores, the bus the cleanup publishes on, and where its publishes are observed.
pub struct Stack {
    pub store: Store,
    pub conversations: Arc<dyn ConversationStore>,
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
        user_id: UserId::from_github(1),
        proactive_enabled: true,
    };
    let event = ProactiveConversationRequested::for_group(
        &decided,
        &repository,
        "fix-ci",
        &repository.user_id,
        decided_at,
    );
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

/// How long the seeded leases live: longer than any case, so that only the cleanup ends them.
const SEEDED_LEASE_TTL: Duration = Duration::from_secs(600);
const ALICE: &str = "alice";

/// A cluster on a Redis of the case's own, as a crash leaves it: a node silent for an hour with two
/// leases and clients of two conversations, a live node with the same kinds of state, and their
/// conversations in the store, running (old and recent) or stopped.
struct ClusterWorld {
    redis: PrivateRedis,
    prefix: String,
    keys: Keys,
    dead: NodeId,
    live: NodeId,
    /// Keeps the live node's connection open through the case.
    live_node: RedisCoordination,
    /// Run by the dead node, updated an hour ago: stopped by the pass.
    dead_old: Conversation,
    /// Run by the dead node, updated just now: its lease freed, the conversation left running.
    dead_recent: Conversation,
    /// Run by the live node, updated an hour ago: untouched.
    live_old: Conversation,
    /// In its user's running set, no lease (its node handed it over and nobody took it), updated an
    /// hour ago: stopped by the pass.
    orphan_old: Conversation,
    /// Stopped an hour ago: untouched.
    stopped_old: Conversation,
}

/// A running conversation of Alice's, last updated at `updated_at`, with a fresh id named after `name`.
pub fn running_conversation(name: &str, updated_at: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::parse(&format!(
            "{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .expect("a conversation id"),
        user_id: crate::user_id(ALICE),
        title: Some(name.into()),
        created_at: updated_at - TimeDelta::hours(1),
        last_updated_at: updated_at,
        status: ConversationStatus::Running,
        agent_state: AgentState::AwaitingUserInput,
        trigger_id: None,
        repository: None,
        checkout: None,
        confirmation_mode: false,
        model: None,
        remote_agent: None,
    }
}

async fn node(redis: &PrivateRedis, prefix: &str, name: &str) -> RedisCoordination {
    let settings = RedisSettings::new(&redis.url(), prefix, SEEDED_LEASE_TTL);
    let (node, _incoming) = RedisCoordination::connect(&settings, NodeId::new(name))
        .await
        .expect("connect a node");
    node.beat().await.expect("a heartbeat");
    node
}

async fn claim(node: &RedisCoordination, conversation: &Conversation) -> Lease {
    let request = ClaimRequest {
        conversation: conversation.id.clone(),
        user_id: conversation.user_id.clone(),
        max_running: 10,
        policy: LimitPolicy::Reject,
        min_epoch: 0,
    };
    match node.claim(&request).await.expect("claim") {
        ClaimOutcome::Claimed { lease, .. } => lease,
        other => panic!("not claimed: {other:?}"),
    }
}

impl ClusterWorld {
    async fn seed(conversations: &Arc<dyn ConversationStore>) -> Self {
        let redis = PrivateRedis::start();
        let prefix = unique_prefix();
        let hour_ago = now() - TimeDelta::hours(1);
        let world = Self {
            keys: Keys::new(&prefix),
            prefix: prefix.clone(),
            dead: NodeId::new("dead-node"),
            live: NodeId::new("live-node"),
            live_node: node(&redis, &prefix, "live-node").await,
            dead_old: running_conversation("dead-old", hour_ago),
            dead_recent: running_conversation("dead-recent", now()),
            live_old: running_conversation("live-old", hour_ago),
            orphan_old: running_conversation("orphan-old", hour_ago),
            stopped_old: Conversation {
                status: ConversationStatus::Stopped,
                agent_state: AgentState::Stopped,
                ..running_conversation("stopped-old", hour_ago)
            },
            redis,
        };
        for conversation in world.all() {
            let created = conversations.create_conversation(conversation).await;
            assert_eq!(created.expect("seed a conversation"), WriteOutcome::Written);
        }

        let live = &world.live_node;
        claim(live, &world.live_old).await;
        let orphan = claim(live, &world.orphan_old).await;
        live.release(&orphan, LeaseEnd::HandedOver)
            .await
            .expect("hand over");
        live.join(&world.live_old.id, "live-client-1")
            .await
            .expect("join");
        live.join(&world.dead_old.id, "live-client-2")
            .await
            .expect("join");

        let dead = node(&world.redis, &prefix, "dead-node").await;
        claim(&dead, &world.dead_old).await;
        claim(&dead, &world.dead_recent).await;
        dead.join(&world.dead_old.id, "dead-client-1")
            .await
            .expect("join");
        dead.join(&world.live_old.id, "dead-client-2")
            .await
            .expect("join");
        drop(dead);
        // Its last heartbeat an hour ago (Redis time, in ms).
        let an_hour_ago = hour_ago.timestamp_millis().to_string();
        world.redis.cli(&[
            "ZADD",
            &world.keys.nodes(),
            an_hour_ago.as_str(),
            world.dead.as_str(),
        ]);
        world
    }

    fn all(&self) -> [&Conversation; 5] {
        [
            &self.dead_old,
            &self.dead_recent,
            &self.live_old,
            &self.orphan_old,
            &self.stopped_old,
        ]
    }

    fn cleanup(&self, stack: &Stack) -> Cleanup {
        let janitor = RedisJanitor::new(&self.redis.url(), &self.prefix);
        Cleanup::new(Arc::clone(&stack.store), None).with_cluster(ClusterPorts {
            conversations: Arc::clone(&stack.conversations),
            janitor: Arc::new(janitor),
        })
    }

    /// Every key the world's nodes wrote, as `DUMP` shows it (empty when absent).
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut keys = vec![
            self.keys.nodes(),
            self.keys.running(&crate::user_id(ALICE)),
            self.keys.claims(),
        ];
        for node in [&self.dead, &self.live] {
            keys.extend([self.keys.owned(node), self.keys.watching(node)]);
        }
        for conversation in self.all() {
            keys.extend([
                self.keys.lease(&conversation.id),
                self.keys.epoch(&conversation.id),
                self.keys.presence(&conversation.id),
            ]);
        }
        keys.into_iter()
            .map(|key| {
                let dump = self.redis.cli(&["DUMP", &key]);
                (key, dump)
            })
            .collect()
    }

    fn lines(&self, command: &[&str]) -> BTreeSet<String> {
        self.redis
            .cli(command)
            .lines()
            .map(str::to_owned)
            .filter(|line| !line.is_empty())
            .collect()
    }
}

fn cluster_options(dry_run: bool) -> CleanupOptions {
    CleanupOptions {
        dry_run,
        ..CleanupOptions::default()
    }
}

/// What a pass over the seeded world reports, dry or not.
fn expected_cluster_counts(summary: &CleanupSummary) -> (DeadNodesReport, StaleRunningReport) {
    let stale = summary.stale_running.report().expect("stale-running done");
    (
        DeadNodesReport {
            silence_seconds: 600,
            nodes: 1,
            leases: 2,
            client_records: 2,
        },
        StaleRunningReport {
            grace_seconds: 600,
            updated_before: stale.updated_before,
            recorded_running: 4,
            live: 1,
            stopped: 2,
        },
    )
}

fn cluster_counts(summary: &CleanupSummary) -> (DeadNodesReport, StaleRunningReport) {
    (
        summary
            .dead_nodes
            .report()
            .expect("dead-nodes done")
            .clone(),
        summary
            .stale_running
            .report()
            .expect("stale-running done")
            .clone(),
    )
}

async fn stored(stack: &Stack, conversation: &Conversation) -> Conversation {
    stack
        .conversations
        .get_conversation(&conversation.id)
        .await
        .expect("read a conversation")
        .expect("the conversation exists")
}

pub async fn cluster_dry_run_counts_exactly_and_changes_nothing(stack: Stack) {
    let world = ClusterWorld::seed(&stack.conversations).await;
    let before = world.snapshot();
    let cleanup = world.cleanup(&stack);
    for _ in 0..2 {
        let summary = cleanup
            .run(&cluster_options(true))
            .await
            .expect("a dry run");
        assert_eq!(
            cluster_counts(&summary),
            expected_cluster_counts(&summary),
            "{summary:?}"
        );
    }
    assert_eq!(world.snapshot(), before, "a dry run changes no key");
    for conversation in world.all() {
        assert_eq!(&stored(&stack, conversation).await, conversation);
    }
    no_key_scans(&world.redis);
}

pub async fn cluster_pass_reaps_dead_nodes_and_stops_stale_conversations_only(stack: Stack) {
    let world = ClusterWorld::seed(&stack.conversations).await;
    let before: std::collections::BTreeMap<String, String> = world.snapshot().into_iter().collect();
    let started = Utc::now();
    let cleanup = world.cleanup(&stack);
    let summary = cleanup.run(&cluster_options(false)).await.expect("a pass");
    assert_eq!(
        cluster_counts(&summary),
        expected_cluster_counts(&summary),
        "{summary:?}"
    );

    // The dead node's state is gone: listed no more, its index sets, leases and client records too.
    let keys = &world.keys;
    assert_eq!(
        world.lines(&["ZRANGE", &keys.nodes(), "0", "-1"]),
        BTreeSet::from([world.live.to_string()])
    );
    for key in [
        keys.owned(&world.dead),
        keys.watching(&world.dead),
        keys.lease(&world.dead_old.id),
        keys.lease(&world.dead_recent.id),
    ] {
        assert_eq!(world.redis.cli(&["EXISTS", &key]).trim(), "0", "{key} gone");
    }
    for conversation in [&world.dead_old, &world.live_old] {
        let presence = keys.presence(&conversation.id);
        assert_eq!(
            world.lines(&["HKEYS", &presence]),
            BTreeSet::from([world.live.to_string()]),
            "only the live node's clients of {}",
            conversation.id
        );
    }
    // Every live key as it was.
    for key in [
        keys.owned(&world.live),
        keys.watching(&world.live),
        keys.lease(&world.live_old.id),
        keys.claims(),
    ] {
        assert_eq!(
            world.redis.cli(&["DUMP", &key]),
            before[&key],
            "{key} untouched"
        );
    }
    // The stale ones stopped and out of the running set; the others as they were.
    assert_eq!(
        world.lines(&["ZRANGE", &keys.running(&crate::user_id(ALICE)), "0", "-1"]),
        BTreeSet::from([
            world.dead_recent.id.as_str().to_owned(),
            world.live_old.id.as_str().to_owned(),
        ])
    );
    for conversation in [&world.dead_old, &world.orphan_old] {
        let after = stored(&stack, conversation).await;
        assert_eq!(after.status, ConversationStatus::Stopped);
        assert_eq!(after.agent_state, AgentState::Stopped);
        assert!(after.last_updated_at >= started - TimeDelta::milliseconds(1));
        assert_eq!(
            Conversation {
                status: ConversationStatus::Running,
                agent_state: conversation.agent_state,
                last_updated_at: conversation.last_updated_at,
                ..after
            },
            *conversation,
            "only the stop changed"
        );
    }
    for conversation in [&world.dead_recent, &world.live_old, &world.stopped_old] {
        assert_eq!(&stored(&stack, conversation).await, conversation);
    }

    // A second pass finds nothing left to do.
    let again = cleanup
        .run(&cluster_options(false))
        .await
        .expect("a second pass");
    let (dead_nodes, stale) = cluster_counts(&again);
    assert_eq!(
        (
            dead_nodes.nodes,
            dead_nodes.leases,
            dead_nodes.client_records
        ),
        (0, 0, 0)
    );
    assert_eq!(
        (stale.recorded_running, stale.live, stale.stopped),
        (2, 1, 0)
    );
    no_key_scans(&world.redis);
}

pub async fn without_redis_the_cluster_steps_are_skipped(stack: Stack) {
    let conversation = running_conversation("lonely", now() - TimeDelta::hours(1));
    let created = stack.conversations.create_conversation(&conversation).await;
    assert_eq!(created.expect("seed a conversation"), WriteOutcome::Written);
    let cleanup = Cleanup::new(Arc::clone(&stack.store), None);
    let summary = cleanup.run(&cluster_options(false)).await.expect("a pass");
    for outcome in [
        serde_json::to_value(&summary.dead_nodes).unwrap(),
        serde_json::to_value(&summary.stale_running).unwrap(),
    ] {
        assert_eq!(outcome["status"], "skipped", "{summary:?}");
        assert_eq!(
            outcome["reason"],
            "no cluster Redis is configured (REDIS_URL)"
        );
    }
    assert_eq!(stored(&stack, &conversation).await, conversation);
}
