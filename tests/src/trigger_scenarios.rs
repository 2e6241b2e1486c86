//! End-to-end scenarios of the proactive trigger: signed `workflow_run` deliveries through the webhook
//! service, the real GitHub client against the GitHub fake, a store adapter, and the bus. Written once,
//! run against every store adapter with `e2e::trigger_scenarios!(fresh_store);`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::future::join_all;
use http::{HeaderMap, HeaderValue, StatusCode};
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::adapters::in_process_bus::InProcessBus;
use shared::domain::{GroupKey, GroupState, HeadSha, RepoId, Repository, TRIGGER_DETAIL_TYPE};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig, Permission};
use shared::ports::{BusEvent, EventBus, ProactiveStore};
use shared::proactive::republish_pending;
use shared::webhook::signature::sign;
use shared::webhook::{WebhookAnswer, WebhookService, WebhookSettings};
use tokio::sync::broadcast;

use crate::fakes::github::{FakeGitHub, FakePullRequest, FakeRun};

pub type Store = Arc<dyn ProactiveStore>;

const SECRET: &str = "trigger-scenarios-secret";
const REPO: &str = "octo-org/octo-repo";
const REPO_GITHUB_ID: u64 = 186853002;
const PR: u64 = 2;
const BRANCH: &str = "fix-ci";
const ACTOR: &str = "Codertocat";

/// Runs every scenario against the store adapter `$make` builds (an async fn returning a fresh store).
#[macro_export]
macro_rules! trigger_scenarios {
    ($make:path) => {
        $crate::trigger_scenarios!(@cases $make, [
            two_hundred_concurrent_shuffled_duplicated_deliveries_trigger_once,
            a_green_commit_never_triggers,
            nothing_triggers_while_a_run_is_pending,
            a_stale_commit_never_triggers,
            an_actor_without_write_permission_never_triggers,
            a_rerun_that_turns_red_after_green_triggers_once,
            a_failed_publish_stays_in_the_outbox_and_is_republished_once,
        ]);
    };
    (@cases $make:path, [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::trigger_scenarios::$case($make().await).await;
            }
        )+
    };
}

/// A commit id derived from a label, so each scenario names its commits.
fn sha(label: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(40);
    for byte in label.bytes().cycle().take(20) {
        let _ = write!(out, "{:02x}", byte);
    }
    out
}

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(second.into())
}

/// One GitHub delivery: event payload plus its delivery id.
#[derive(Clone)]
struct Delivery {
    id: String,
    body: Vec<u8>,
}

/// What a scenario works with: the fake GitHub, the service under test, and what reached the bus.
struct World {
    github: FakeGitHub,
    store: Store,
    service: WebhookService,
    published: broadcast::Receiver<BusEvent>,
    bus: InProcessBus,
}

impl World {
    async fn new(store: Store) -> Self {
        let bus = InProcessBus::default();
        Self::with_bus(store, Arc::new(bus.clone()), bus).await
    }

    /// A world whose service publishes through `bus`; `observed` is where successful publishes show.
    async fn with_bus(store: Store, bus: Arc<dyn EventBus>, observed: InProcessBus) -> Self {
        let github = FakeGitHub::start().await;
        github.set_permission(REPO, ACTOR, Permission::Write);
        let client = GitHubClient::new(GitHubConfig {
            api_url: github.url().to_owned(),
            auth: GitHubAuth::Anonymous,
        })
        .expect("GitHub client");
        store
            .put_repository(&Repository {
                id: RepoId::from_github(REPO_GITHUB_ID),
                owner: "octo-org".into(),
                name: "octo-repo".into(),
                installation_id: None,
                account: "octo-org".into(),
                user_id: "github:21031067".into(),
                proactive_enabled: true,
            })
            .await
            .expect("register the repository");
        let service = WebhookService::new(
            Arc::clone(&store),
            bus,
            client,
            WebhookSettings::with_secret(SECRET),
        );
        Self {
            github,
            store,
            service,
            published: observed.subscribe(),
            bus: observed,
        }
    }

    /// The PR is open with `head` as its head; GitHub lists `runs` (all in progress at time 0) for it.
    fn open_pr_with_runs(&self, head: &str, runs: &[(u64, &str)]) {
        self.github
            .put_pull_request(REPO, FakePullRequest::open(PR, head, BRANCH));
        for &(id, name) in runs {
            let mut run = FakeRun::in_progress(id, name, head);
            run.head_branch = BRANCH.into();
            run.updated_at = at(0);
            self.github.put_run(REPO, run);
        }
    }

    async fn send(&self, delivery: &Delivery) -> WebhookAnswer {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static("workflow_run"));
        headers.insert(
            "x-github-delivery",
            HeaderValue::from_str(&delivery.id).unwrap(),
        );
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&sign(SECRET.as_bytes(), &delivery.body)).unwrap(),
        );
        self.service.handle(&headers, &delivery.body).await
    }

    /// Every trigger published so far (waiting briefly for stragglers).
    async fn triggers(&mut self) -> Vec<Value> {
        let mut found = Vec::new();
        while let Ok(Ok(event)) =
            tokio::time::timeout(Duration::from_millis(200), self.published.recv()).await
        {
            assert_eq!(event.detail_type, TRIGGER_DETAIL_TYPE);
            found.push(event.detail);
        }
        found
    }

    async fn group_state(&self, head: &str) -> Option<GroupState> {
        let key = GroupKey {
            repo_id: RepoId::from_github(REPO_GITHUB_ID),
            pr_number: PR,
            head_sha: HeadSha::parse(head).unwrap(),
        };
        self.store
            .get_group(&key)
            .await
            .expect("read the group")
            .map(|group| group.state)
    }
}

/// A `workflow_run` delivery in GitHub's shape (the fixture's, with this run's values).
fn delivery(
    id: &str,
    head: &str,
    run: (u64, &str),
    action: &str,
    conclusion: Option<&str>,
    attempt: u32,
    second: u32,
) -> Delivery {
    let body = json!({
        "action": action,
        "workflow_run": {
            "id": run.0, "name": run.1, "head_sha": head, "head_branch": BRANCH,
            "status": if action == "completed" { "completed" } else { "in_progress" },
            "conclusion": conclusion, "run_attempt": attempt, "updated_at": at(second),
            "html_url": format!("https://github.com/{REPO}/actions/runs/{}", run.0),
            "pull_requests": [{ "number": PR, "head": { "ref": BRANCH, "sha": head } }],
            "triggering_actor": { "login": ACTOR, "id": 21031067 },
            "head_repository": { "owner": { "login": "octo-org" } }
        },
        "repository": { "id": REPO_GITHUB_ID, "name": "octo-repo", "full_name": REPO },
        "sender": { "login": ACTOR, "id": 21031067 }
    });
    Delivery {
        id: id.to_owned(),
        body: body.to_string().into_bytes(),
    }
}

/// requested, in_progress, then completed with `conclusion`, at rising times.
fn lifecycle(head: &str, run: (u64, &str), conclusion: &str) -> Vec<Delivery> {
    let base = run.0 as u32 * 10;
    vec![
        delivery(
            &format!("{head}-{}-req", run.0),
            head,
            run,
            "requested",
            None,
            1,
            base + 1,
        ),
        delivery(
            &format!("{head}-{}-prog", run.0),
            head,
            run,
            "in_progress",
            None,
            1,
            base + 2,
        ),
        delivery(
            &format!("{head}-{}-done", run.0),
            head,
            run,
            "completed",
            Some(conclusion),
            1,
            base + 3,
        ),
    ]
}

fn triggered_count(answers: &[WebhookAnswer]) -> usize {
    answers
        .iter()
        .flat_map(|a| {
            a.body["pull_requests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|pr| pr["triggered"] == json!(true))
        .count()
}

pub async fn two_hundred_concurrent_shuffled_duplicated_deliveries_trigger_once(store: Store) {
    let mut world = World::new(store).await;
    let head = sha("burst");
    let runs: Vec<(u64, String)> = (1..=10).map(|id| (id, format!("workflow-{id}"))).collect();
    let named: Vec<(u64, &str)> = runs.iter().map(|(id, name)| (*id, name.as_str())).collect();
    world.open_pr_with_runs(&head, &named);

    let distinct: Vec<Delivery> = named
        .iter()
        .flat_map(|&run| {
            lifecycle(
                &head,
                run,
                if matches!(run.0, 3 | 7) {
                    "failure"
                } else {
                    "success"
                },
            )
        })
        .collect();
    // 200 deliveries: every distinct one at least once, the rest repeats, half of them redeliveries
    // (same delivery id) and half duplicates under a fresh id; then shuffled and sent all at once.
    let mut deliveries = distinct.clone();
    for n in 0..(200 - distinct.len()) {
        let mut repeat = distinct[n % distinct.len()].clone();
        if n % 2 == 1 {
            repeat.id = format!("{}-dup{n}", repeat.id);
        }
        deliveries.push(repeat);
    }
    deliveries.shuffle(&mut rand::rng());
    let answers = join_all(deliveries.iter().map(|d| world.send(d))).await;

    for answer in &answers {
        assert!(
            answer.status == StatusCode::ACCEPTED || answer.status == StatusCode::OK,
            "{answer:?}"
        );
    }
    assert_eq!(
        triggered_count(&answers),
        1,
        "exactly one delivery decides the trigger"
    );
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1, "exactly one event: {triggers:?}");
    let failed: Vec<u64> = triggers[0]["failed_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, vec![3, 7]);
    assert_eq!(triggers[0]["run_count"], 10);
    assert_eq!(
        triggers[0]["pull_request"],
        json!({ "number": PR, "head_sha": head, "head_branch": BRANCH })
    );
    assert_eq!(world.group_state(&head).await, Some(GroupState::Triggered));
}

pub async fn a_green_commit_never_triggers(store: Store) {
    let mut world = World::new(store).await;
    let head = sha("green");
    world.open_pr_with_runs(&head, &[(1, "build"), (2, "test")]);
    for run in [(1, "build"), (2, "test")] {
        for d in lifecycle(&head, run, "success") {
            assert_eq!(world.send(&d).await.status, StatusCode::ACCEPTED);
        }
    }
    assert!(world.triggers().await.is_empty());
    assert_eq!(world.group_state(&head).await, Some(GroupState::Collecting));
}

pub async fn nothing_triggers_while_a_run_is_pending(store: Store) {
    let mut world = World::new(store).await;
    let head = sha("pending");
    world.open_pr_with_runs(&head, &[(1, "build"), (2, "test")]);
    for d in lifecycle(&head, (1, "build"), "failure") {
        world.send(&d).await;
    }
    let answer = world
        .send(&delivery(
            "p-2-prog",
            &head,
            (2, "test"),
            "in_progress",
            None,
            1,
            22,
        ))
        .await;
    assert_eq!(answer.body["pull_requests"][0]["pending"], 1, "{answer:?}");
    assert!(world.triggers().await.is_empty(), "run 2 is still pending");

    let done = world
        .send(&delivery(
            "p-2-done",
            &head,
            (2, "test"),
            "completed",
            Some("cancelled"),
            1,
            23,
        ))
        .await;
    assert_eq!(done.body["pull_requests"][0]["triggered"], true, "{done:?}");
    assert_eq!(world.triggers().await.len(), 1);
}

pub async fn a_stale_commit_never_triggers(store: Store) {
    let mut world = World::new(store).await;
    let (old, new) = (sha("stale-old"), sha("stale-new"));
    world.open_pr_with_runs(&old, &[(1, "build")]);
    // The PR moved on: its head is now a newer commit.
    world
        .github
        .put_pull_request(REPO, FakePullRequest::open(PR, &new, BRANCH));
    let answer = world
        .send(&delivery(
            "s-1",
            &old,
            (1, "build"),
            "completed",
            Some("failure"),
            1,
            13,
        ))
        .await;
    assert_eq!(
        answer.body,
        json!({ "ignored": "no open pull request has this commit as its head" })
    );
    assert!(world.triggers().await.is_empty());
    assert_eq!(
        world.group_state(&old).await,
        None,
        "nothing recorded for a stale commit"
    );
}

pub async fn an_actor_without_write_permission_never_triggers(store: Store) {
    let mut world = World::new(store).await;
    let head = sha("stranger");
    world.open_pr_with_runs(&head, &[(1, "build")]);
    world.github.set_permission(REPO, ACTOR, Permission::Read);
    let answer = world
        .send(&delivery(
            "x-1",
            &head,
            (1, "build"),
            "completed",
            Some("failure"),
            1,
            13,
        ))
        .await;
    assert_eq!(
        answer.body,
        json!({ "ignored": format!("actor `{ACTOR}` has no write permission") })
    );
    assert!(world.triggers().await.is_empty());
}

pub async fn a_rerun_that_turns_red_after_green_triggers_once(store: Store) {
    let mut world = World::new(store).await;
    let head = sha("rerun");
    world.open_pr_with_runs(&head, &[(1, "build")]);
    for d in lifecycle(&head, (1, "build"), "success") {
        world.send(&d).await;
    }
    assert!(world.triggers().await.is_empty(), "green first");

    let rerun = [
        delivery("r-2-req", &head, (1, "build"), "requested", None, 2, 100),
        delivery(
            "r-2-done",
            &head,
            (1, "build"),
            "completed",
            Some("failure"),
            2,
            101,
        ),
    ];
    for d in &rerun {
        world.send(d).await;
    }
    // Replays of the whole history change nothing further.
    for d in lifecycle(&head, (1, "build"), "success")
        .iter()
        .chain(&rerun)
    {
        let mut replay = d.clone();
        replay.id.push_str("-again");
        world.send(&replay).await;
    }
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["failed_runs"][0]["conclusion"], "failure");
}

pub async fn a_failed_publish_stays_in_the_outbox_and_is_republished_once(store: Store) {
    let failing = EventBridgeBus::new(crate::moto::unreachable_eventbridge(), "proactive");
    let mut world = World::with_bus(store, Arc::new(failing), InProcessBus::default()).await;
    let head = sha("outbox");
    world.open_pr_with_runs(&head, &[(1, "build")]);

    let red = delivery(
        "o-1",
        &head,
        (1, "build"),
        "completed",
        Some("timed_out"),
        1,
        13,
    );
    let answer = world.send(&red).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert!(
        answer.body["trigger_id"]
            .as_str()
            .unwrap()
            .starts_with("trg-")
    );
    assert_eq!(
        world.group_state(&head).await,
        Some(GroupState::Triggered),
        "the decision is durable"
    );

    // GitHub's redelivery finds the trigger decided: no second decision, no publish.
    let again = world.send(&red).await;
    assert_eq!(
        again.body["pull_requests"][0]["triggered"], false,
        "{again:?}"
    );

    let later = Utc::now() + chrono::Duration::seconds(1);
    let pending = world.store.pending_outbox(later, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let report = republish_pending(world.store.as_ref(), &world.bus, later, 10)
        .await
        .unwrap();
    assert_eq!((report.published, report.failed), (1, 0));
    let again = republish_pending(world.store.as_ref(), &world.bus, later, 10)
        .await
        .unwrap();
    assert_eq!(again.published, 0, "cleared after its publish");
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["trigger_id"], answer.body["trigger_id"]);
}

/// Sends the deliveries of one red commit through a service publishing on `bus`; returns the
/// trigger id the deciding answer names. For adapters observed outside the process (EventBridge).
pub async fn send_red_commit(store: Store, bus: Arc<dyn EventBus>) -> String {
    let world = World::with_bus(store, bus, InProcessBus::default()).await;
    let head = sha("eventbridge");
    world.open_pr_with_runs(&head, &[(1, "build"), (2, "lint")]);
    let mut decided = None;
    for d in lifecycle(&head, (1, "build"), "failure")
        .iter()
        .chain(&lifecycle(&head, (2, "lint"), "success"))
    {
        let answer = world.send(d).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
        if answer.body["pull_requests"][0]["triggered"] == json!(true) {
            decided = answer.body["pull_requests"][0]["trigger_id"]
                .as_str()
                .map(str::to_owned);
        }
    }
    decided.expect("the last completion decides the trigger")
}
