//! P3, P4 and R1: the trigger decision's latency, bursts, and exactly-once under randomized delivery,
//! on the embedded store and on DynamoDB (moto, the real SDK client).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::moto;
use e2e::trigger_world::{
    Delivery, Run, TriggerWorld, delivery, lifecycle, sha, shuffled_with_repeats, triggered_count,
};
use futures::stream::{self, StreamExt};
use rand::Rng;
use shared::adapters::dynamo::ProactiveTable;
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::domain::{GroupKey, HeadSha, RepoId, WorkflowRun};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig};
use shared::ports::ProactiveStore;
use shared::proactive::{RunDelivery, store_workflow_information};

use crate::stats::{Samples, ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    Embedded,
    Dynamodb,
}

/// How big each measurement is.
pub(crate) struct Sizes {
    pub latency_samples: usize,
    /// Deliveries of the one-commit burst (P4: 200).
    pub burst: usize,
    /// Commits of ten runs each, in parallel (P4: 50).
    pub parallel_commits: u64,
    pub r1_deliveries: usize,
}

impl Sizes {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                latency_samples: 100,
                burst: 60,
                parallel_commits: 4,
                r1_deliveries: 300,
            }
        } else {
            Self {
                latency_samples: 5_000,
                burst: 200,
                parallel_commits: 50,
                r1_deliveries: 10_000,
            }
        }
    }
}

/// A fresh store (and what keeps it alive: the embedded store's directory).
async fn fresh_store(backend: Backend) -> (Arc<dyn ProactiveStore>, Option<tempfile::TempDir>) {
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let db = EmbeddedDb::open(dir.path()).expect("open the embedded store");
            (
                Arc::new(EmbeddedProactiveStore::open(db).await.expect("schema")),
                Some(dir),
            )
        }
        Backend::Dynamodb => {
            let client = moto::dynamodb().await;
            let tables = moto::unique_tables(&client).await;
            (
                Arc::new(ProactiveTable::new(client, tables.proactive)),
                None,
            )
        }
    }
}

pub(crate) async fn run(backend: Backend, sizes: &Sizes) {
    println!("== trigger decision, {backend:?} store");
    latency(backend, sizes.latency_samples).await;
    bursts(backend, sizes).await;
    exactly_once(backend, sizes.r1_deliveries).await;
}

/// P3: one `workflow_run` delivery through the handler (GitHub on loopback: the fake), and the decision
/// alone (store only, no network), each delivery a real write of a newer run state.
async fn latency(backend: Backend, samples: usize) {
    let (store, _dir) = fresh_store(backend).await;
    let world = TriggerWorld::new(Arc::clone(&store)).await;
    let head = sha("latency");
    let runs: Vec<(u64, String)> = (1..=20).map(|id| (id, format!("wf-{id}"))).collect();
    let named: Vec<(u64, &str)> = runs.iter().map(|(id, n)| (*id, n.as_str())).collect();
    world.open_pr_with_runs(1, &head, &named);

    let mut through_handler = Samples::default();
    for i in 0..samples {
        let (id, name) = named[i % named.len()];
        let run = Run {
            pr: 1,
            head: &head,
            id,
            name,
        };
        let d = delivery(
            &format!("lat-{i}"),
            run,
            "in_progress",
            None,
            1,
            10 + i as u32,
        );
        let started = Instant::now();
        let answer = world.send(&d).await;
        through_handler.push(started.elapsed());
        assert!(answer.status.is_success(), "{answer:?}");
    }

    let github = GitHubClient::new(GitHubConfig {
        api_url: world.github.url().to_owned(),
        auth: GitHubAuth::Anonymous,
    })
    .expect("GitHub client");
    let repository = store
        .get_repository(&RepoId::from_github(e2e::trigger_world::REPO_GITHUB_ID))
        .await
        .unwrap()
        .unwrap();
    let key = GroupKey {
        repo_id: repository.id.clone(),
        pr_number: 1,
        head_sha: HeadSha::parse(&head).unwrap(),
    };
    let mut decision_only = Samples::default();
    for i in 0..samples {
        let (id, name) = named[i % named.len()];
        let run = WorkflowRun {
            id,
            name: name.to_owned(),
            status: shared::domain::RunStatus::Pending,
            conclusion: None,
            attempt: 1,
            updated_at: e2e::trigger_world::at(10 + (samples + i) as u32),
            html_url: String::new(),
        };
        let delivery = RunDelivery {
            repository: &repository,
            owner: &repository.user_id,
            key: key.clone(),
            head_branch: "main",
            run,
        };
        let started = Instant::now();
        store_workflow_information(store.as_ref(), &github, delivery)
            .await
            .expect("decision");
        decision_only.push(started.elapsed());
    }
    println!(
        "P3 through the handler (GitHub fake on loopback): p50 {:.3} ms, p99 {:.3} ms over {} deliveries",
        ms(through_handler.percentile(50.0)),
        ms(through_handler.percentile(99.0)),
        through_handler.len()
    );
    println!(
        "P3 decision only (store, no network): p50 {:.3} ms, p99 {:.3} ms over {} deliveries",
        ms(decision_only.percentile(50.0)),
        ms(decision_only.percentile(99.0)),
        decision_only.len()
    );
}

/// P4: 200 concurrent deliveries for one commit, then 50 commits x 10 runs in parallel.
async fn bursts(backend: Backend, sizes: &Sizes) {
    let (store, _dir) = fresh_store(backend).await;
    let mut world = TriggerWorld::new(store).await;
    let head = sha("p4-burst");
    let runs: Vec<(u64, String)> = (1..=10).map(|id| (id, format!("wf-{id}"))).collect();
    let named: Vec<(u64, &str)> = runs.iter().map(|(id, n)| (*id, n.as_str())).collect();
    world.open_pr_with_runs(1, &head, &named);
    let distinct = named
        .iter()
        .flat_map(|&(id, name)| {
            lifecycle(
                Run {
                    pr: 1,
                    head: &head,
                    id,
                    name,
                },
                if id == 4 { "failure" } else { "success" },
            )
        })
        .collect();
    let deliveries = shuffled_with_repeats(distinct, sizes.burst);
    let started = Instant::now();
    let answers = futures::future::join_all(deliveries.iter().map(|d| world.send(d))).await;
    let wall = started.elapsed();
    let events = world.triggers().await.len();
    assert_eq!(
        (triggered_count(&answers), events),
        (1, 1),
        "P4 burst violated exactly-once"
    );
    println!(
        "P4 {} concurrent deliveries, one commit: {:.0} ms wall, triggers decided {}, events {} (want 1, 1)",
        deliveries.len(),
        ms(wall),
        triggered_count(&answers),
        events
    );

    let commits: Vec<Commit> = (0..sizes.parallel_commits)
        .map(|c| Commit::new(c, 10, c % 2 == 0))
        .collect();
    for commit in &commits {
        commit.open(&world);
    }
    let deliveries: Vec<Delivery> = commits.iter().flat_map(Commit::deliveries).collect();
    let started = Instant::now();
    let answers = futures::future::join_all(deliveries.iter().map(|d| world.send(d))).await;
    let wall = started.elapsed();
    let events = world.triggers().await.len();
    let red = commits.iter().filter(|c| c.is_red()).count();
    assert_eq!(
        (triggered_count(&answers), events),
        (red, red),
        "P4 parallel commits violated exactly-once"
    );
    println!(
        "P4 {} commits x 10 runs in parallel ({} deliveries): {:.0} ms wall, triggers {}, events {} (want {red}, {red})",
        commits.len(),
        deliveries.len(),
        ms(wall),
        triggered_count(&answers),
        events,
    );
}

/// A commit of a pull request with its runs and their conclusions.
struct Commit {
    pr: u64,
    head: String,
    runs: Vec<(u64, String, &'static str)>,
}

impl Commit {
    fn new(index: u64, runs: u64, red: bool) -> Self {
        let runs = (0..runs)
            .map(|r| {
                let conclusion = if red && r == runs / 2 {
                    "failure"
                } else {
                    "success"
                };
                (index * 100 + r + 1, format!("wf-{r}"), conclusion)
            })
            .collect();
        Self {
            pr: index + 1,
            head: sha(&format!("commit-{index}")),
            runs,
        }
    }

    fn random(index: u64, rng: &mut impl Rng) -> Self {
        let count = rng.random_range(1..=6);
        let runs = (0..count)
            .map(|r| {
                let conclusion = match rng.random_range(0..10) {
                    0 => "failure",
                    1 => "timed_out",
                    2 => "cancelled",
                    3 => "skipped",
                    _ => "success",
                };
                (index * 100 + r + 1, format!("wf-{r}"), conclusion)
            })
            .collect();
        Self {
            pr: index + 1,
            head: sha(&format!("random-{index}")),
            runs,
        }
    }

    fn is_red(&self) -> bool {
        self.runs
            .iter()
            .any(|(_, _, c)| matches!(*c, "failure" | "timed_out"))
    }

    fn open(&self, world: &TriggerWorld) {
        let named: Vec<(u64, &str)> = self
            .runs
            .iter()
            .map(|(id, n, _)| (*id, n.as_str()))
            .collect();
        world.open_pr_with_runs(self.pr, &self.head, &named);
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.runs
            .iter()
            .flat_map(|(id, name, conclusion)| {
                lifecycle(
                    Run {
                        pr: self.pr,
                        head: &self.head,
                        id: *id,
                        name,
                    },
                    conclusion,
                )
            })
            .collect()
    }
}

/// R1: at least `target` randomized deliveries (duplicated, redelivered, reordered, concurrent) over
/// many commits: every red commit triggers exactly once, no other commit triggers.
async fn exactly_once(backend: Backend, target: usize) {
    let (store, _dir) = fresh_store(backend).await;
    let mut world = TriggerWorld::new(store).await;
    let mut rng = rand::rng();
    let (mut commits, mut deliveries) = (Vec::new(), Vec::new());
    while deliveries.len() < target {
        let commit = Commit::random(commits.len() as u64, &mut rng);
        commit.open(&world);
        let own = commit.deliveries();
        let with_repeats = own.len() + own.len() * rng.random_range(0..=2) / 2;
        deliveries.extend(shuffled_with_repeats(own, with_repeats));
        commits.push(commit);
    }
    use rand::seq::SliceRandom;
    deliveries.shuffle(&mut rng);

    let started = Instant::now();
    let failures = stream::iter(deliveries.iter())
        .map(|d| world.send(d))
        .buffer_unordered(64)
        .filter(|answer| futures::future::ready(!answer.status.is_success()))
        .count()
        .await;
    let wall = started.elapsed();

    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in world.triggers_within(Duration::from_millis(500)).await {
        *seen
            .entry(
                event["pull_request"]["head_sha"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    let red: Vec<&Commit> = commits.iter().filter(|c| c.is_red()).collect();
    let missed = red.iter().filter(|c| !seen.contains_key(&c.head)).count();
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    let wrong = commits
        .iter()
        .filter(|c| !c.is_red() && seen.contains_key(&c.head))
        .count();
    println!(
        "R1 {} deliveries over {} commits ({} red) in {:.1} s: missed {missed}, duplicated {duplicated}, \
         green commits triggered {wrong}, failed answers {failures}",
        deliveries.len(),
        commits.len(),
        red.len(),
        wall.as_secs_f64()
    );
    assert_eq!(
        (missed, duplicated, wrong, failures),
        (0, 0, 0, 0),
        "R1 violated"
    );
}
