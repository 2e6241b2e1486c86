//! A world for driving the proactive trigger from outside: the webhook service over a given store,
//! the real GitHub client against the GitHub fake (one registered repository, an actor with write
//! permission), and signed `workflow_run` deliveries in GitHub's shape. Used by the trigger scenarios
//! and the trigger benchmarks.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use shared::adapters::in_process_bus::InProcessBus;
use shared::domain::{
    GroupKey, GroupState, HeadSha, RepoId, Repository, TRIGGER_DETAIL_TYPE, UserId,
};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig, Permission};
use shared::ports::{BusEvent, EventBus, ProactiveStore};
use shared::proactive::AccountLinks;
use tokio::sync::broadcast;
use webhook::signature::sign;
use webhook::{WebhookAnswer, WebhookService, WebhookSettings};

use crate::fakes::github::{FakeGitHub, FakePullRequest, FakeRun};

pub type Store = Arc<dyn ProactiveStore>;

const SECRET: &str = "trigger-world-secret";
pub const REPO: &str = "octo-org/octo-repo";
pub const REPO_GITHUB_ID: u64 = 186853002;
pub const BRANCH: &str = "fix-ci";
pub const ACTOR: &str = "Codertocat";
/// The product user linked to [`ACTOR`]: whose conversations the world's triggers start.
pub const OWNER: &str = "kc-user-codertocat";

/// [`ACTOR`] linked to [`OWNER`], nobody else linked.
pub fn actor_linked_to_owner() -> AccountLinks {
    AccountLinks::configured(&format!("{ACTOR}={OWNER}")).expect("links")
}

/// A commit id derived from a label, so that scenarios name their commits.
pub fn sha(label: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(40);
    for byte in label.bytes().cycle().take(20) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A fixed instant plus `second` seconds: deliveries order themselves by it.
pub fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(second.into())
}

/// One GitHub delivery: its id and signed-to-be body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub body: Vec<u8>,
}

/// A workflow run as a delivery names it.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub pr: u64,
    pub head: &'a str,
    pub id: u64,
    pub name: &'a str,
}

/// A `workflow_run` delivery (the fixture's shape with this run's values).
pub fn delivery(
    id: &str,
    run: Run<'_>,
    action: &str,
    conclusion: Option<&str>,
    attempt: u32,
    second: u32,
) -> Delivery {
    let body = json!({
        "action": action,
        "workflow_run": {
            "id": run.id, "name": run.name, "head_sha": run.head, "head_branch": BRANCH,
            "status": if action == "completed" { "completed" } else { "in_progress" },
            "conclusion": conclusion, "run_attempt": attempt, "updated_at": at(second),
            "html_url": format!("https://github.com/{REPO}/actions/runs/{}", run.id),
            "pull_requests": [{ "number": run.pr, "head": { "ref": BRANCH, "sha": run.head } }],
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

/// `requested`, `in_progress`, then `completed` with `conclusion`, at rising times.
pub fn lifecycle(run: Run<'_>, conclusion: &str) -> Vec<Delivery> {
    let base = (run.id as u32 % 100_000) * 10;
    let id = |step: &str| format!("{}-{}-{}-{step}", run.head, run.pr, run.id);
    vec![
        delivery(&id("req"), run, "requested", None, 1, base + 1),
        delivery(&id("prog"), run, "in_progress", None, 1, base + 2),
        delivery(&id("done"), run, "completed", Some(conclusion), 1, base + 3),
    ]
}

/// `count` deliveries of the given lifecycles: every distinct delivery at least once, the rest repeats
/// (half redeliveries under the same id, half duplicates under a fresh id), shuffled.
pub fn shuffled_with_repeats(distinct: Vec<Delivery>, count: usize) -> Vec<Delivery> {
    use rand::seq::SliceRandom;
    let mut deliveries = distinct.clone();
    for n in 0..count.saturating_sub(distinct.len()) {
        let mut repeat = distinct[n % distinct.len()].clone();
        if n % 2 == 1 {
            repeat.id = format!("{}-dup{n}", repeat.id);
        }
        deliveries.push(repeat);
    }
    deliveries.shuffle(&mut rand::rng());
    deliveries
}

/// The fake GitHub, the service under test, and what reached the observed bus.
pub struct TriggerWorld {
    pub github: FakeGitHub,
    pub store: Store,
    pub service: WebhookService,
    /// Where successful publishes show (the service's own bus unless built `with_bus`).
    pub bus: InProcessBus,
    published: broadcast::Receiver<BusEvent>,
}

impl TriggerWorld {
    pub async fn new(store: Store) -> Self {
        let bus = InProcessBus::new(64 * 1024);
        Self::with_bus(store, Arc::new(bus.clone()), bus).await
    }

    /// A world whose service publishes through `bus`; `observed` is where successful publishes show.
    pub async fn with_bus(store: Store, bus: Arc<dyn EventBus>, observed: InProcessBus) -> Self {
        let settings = WebhookSettings::with_secret(SECRET);
        Self::build(store, bus, observed, actor_linked_to_owner(), settings).await
    }

    /// A world whose runs' owners are found through `links`, its webhook under `settings` (whose
    /// secret is replaced by the world's).
    pub async fn with_links(store: Store, links: AccountLinks, settings: WebhookSettings) -> Self {
        let bus = InProcessBus::new(64 * 1024);
        let settings = WebhookSettings {
            secret: SECRET.as_bytes().to_vec(),
            ..settings
        };
        Self::build(store, Arc::new(bus.clone()), bus, links, settings).await
    }

    async fn build(
        store: Store,
        bus: Arc<dyn EventBus>,
        observed: InProcessBus,
        links: AccountLinks,
        settings: WebhookSettings,
    ) -> Self {
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
                user_id: UserId::from_github(21031067),
                proactive_enabled: true,
            })
            .await
            .expect("register the repository");
        let service = WebhookService::new(Arc::clone(&store), bus, client, links, settings);
        let published = observed.subscribe();
        Self {
            github,
            store,
            service,
            bus: observed,
            published,
        }
    }

    /// PR `pr` is open with `head` as its head; GitHub lists `runs` for it, in progress since time 0.
    pub fn open_pr_with_runs(&self, pr: u64, head: &str, runs: &[(u64, &str)]) {
        self.github
            .put_pull_request(REPO, FakePullRequest::open(pr, head, BRANCH));
        for &(id, name) in runs {
            let mut run = FakeRun::in_progress(id, name, head);
            run.head_branch = BRANCH.into();
            run.updated_at = at(0);
            self.github.put_run(REPO, run);
        }
    }

    pub async fn send(&self, delivery: &Delivery) -> WebhookAnswer {
        self.send_event("workflow_run", delivery).await
    }

    /// A delivery of another GitHub event (`installation`...), signed with the world's secret.
    pub async fn send_event(&self, event: &'static str, delivery: &Delivery) -> WebhookAnswer {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static(event));
        headers.insert(
            "x-github-delivery",
            HeaderValue::from_str(&delivery.id).expect("ASCII id"),
        );
        let signature = sign(SECRET.as_bytes(), &delivery.body);
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&signature).expect("hex"),
        );
        self.service.handle(&headers, &delivery.body).await
    }

    /// Every trigger published so far, waiting `quiet` for stragglers.
    pub async fn triggers_within(&mut self, quiet: Duration) -> Vec<Value> {
        let mut found = Vec::new();
        while let Ok(Ok(event)) = tokio::time::timeout(quiet, self.published.recv()).await {
            assert_eq!(event.detail_type, TRIGGER_DETAIL_TYPE);
            found.push(event.detail);
        }
        found
    }

    pub async fn triggers(&mut self) -> Vec<Value> {
        self.triggers_within(Duration::from_millis(200)).await
    }

    pub async fn group_state(&self, pr: u64, head: &str) -> Option<GroupState> {
        let key = GroupKey {
            repo_id: RepoId::from_github(REPO_GITHUB_ID),
            pr_number: pr,
            head_sha: HeadSha::parse(head).expect("a commit id"),
        };
        self.store
            .get_group(&key)
            .await
            .expect("read the group")
            .map(|group| group.state)
    }
}

/// How many answers say their delivery decided a trigger.
pub fn triggered_count(answers: &[WebhookAnswer]) -> usize {
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
