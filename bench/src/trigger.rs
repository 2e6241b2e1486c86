//! P3, P4 and R1: the trigger decision's latency, bursts, and exactly-once under randomized delivery,
//! on the embedded store and on DynamoDB (moto, the real SDK client).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cleanup::{Cleanup, CleanupOptions};
use e2e::fakes::github::FakeRun;
use e2e::moto;
use e2e::trigger_world::{
    BRANCH, Delivery, REPO, Run, TriggerWorld, at, delivery, lifecycle, sha, shuffled_with_repeats,
    triggered_count,
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

/// A commit of a pull request with its runs and their conclusions, and the conclusion of a second
/// attempt of each failed run when it was re-run after the first.
struct Commit {
    pr: u64,
    head: String,
    runs: Vec<(u64, String, &'static str)>,
    rerun: Option<&'static str>,
}

fn fails(conclusion: &str) -> bool {
    matches!(conclusion, "failure" | "timed_out")
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
            rerun: None,
        }
    }

    fn random(index: u64, rng: &mut impl Rng) -> Self {
        let count = rng.random_range(1..=6);
        let runs: Vec<(u64, String, &'static str)> = (0..count)
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
        let red = runs.iter().any(|(_, _, conclusion)| fails(conclusion));
        // Half the red commits have their failed runs re-run: mostly to green, sometimes red again.
        let rerun = (red && rng.random_bool(0.5)).then(|| {
            if rng.random_range(0..4) == 0 {
                "failure"
            } else {
                "success"
            }
        });
        Self {
            pr: index + 1,
            head: sha(&format!("random-{index}")),
            runs,
            rerun,
        }
    }

    fn is_red(&self) -> bool {
        self.runs.iter().any(|(_, _, c)| fails(c))
    }

    /// Whether the runs' last attempts leave the commit red.
    fn ends_red(&self) -> bool {
        self.last_attempts()
            .any(|(_, _, conclusion, _)| fails(conclusion))
    }

    /// Each run's last attempt: (id, name, conclusion, attempt).
    fn last_attempts(&self) -> impl Iterator<Item = (u64, &str, &'static str, u32)> {
        self.runs
            .iter()
            .map(|(id, name, conclusion)| match self.rerun {
                Some(again) if fails(conclusion) => (*id, name.as_str(), again, 2),
                _ => (*id, name.as_str(), *conclusion, 1),
            })
    }

    /// What GitHub lists once every run finished: the last attempts, stamped as their deliveries are.
    fn finish_on_github(&self, world: &TriggerWorld) {
        for (id, name, conclusion, attempt) in self.last_attempts() {
            let mut run = FakeRun::completed(id, name, &self.head, conclusion);
            run.head_branch = BRANCH.into();
            run.run_attempt = attempt;
            run.updated_at = at(completed_second(id, attempt));
            world.github.put_run(REPO, run);
        }
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
        let run = |id, name| Run {
            pr: self.pr,
            head: &self.head,
            id,
            name,
        };
        let first = self
            .runs
            .iter()
            .flat_map(|(id, name, conclusion)| lifecycle(run(*id, name), conclusion));
        let again = self
            .last_attempts()
            .filter(|attempt| attempt.3 == 2)
            .flat_map(|(id, name, conclusion, _)| {
                let key = |step: &str| format!("{}-{id}-rerun-{step}", self.head);
                let second = completed_second(id, 2);
                [
                    delivery(&key("req"), run(id, name), "requested", None, 2, second - 1),
                    delivery(
                        &key("done"),
                        run(id, name),
                        "completed",
                        Some(conclusion),
                        2,
                        second,
                    ),
                ]
            });
        first.chain(again).collect()
    }
}

/// When a run's attempt completed, as its `completed` delivery says (`lifecycle` stamps attempt 1).
fn completed_second(id: u64, attempt: u32) -> u32 {
    let base = (id as u32 % 100_000) * 10;
    if attempt == 1 { base + 3 } else { base + 8 }
}

/// R1: at least `target` randomized deliveries (duplicated, redelivered, reordered, concurrent) over
/// many commits, half the red ones re-run after their first attempt, while the reconciliation re-checks
/// stuck groups against GitHub (which shows every run finished from half-way on): every commit that
/// ends red is told red, no event is told twice, each commit's events count up from 0 alternating red
/// and green, and the last one tells how the commit ends.
async fn exactly_once(backend: Backend, target: usize) {
    let (store, _dir) = fresh_store(backend).await;
    let mut world = TriggerWorld::new(Arc::clone(&store)).await;
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
    let github = GitHubClient::new(GitHubConfig {
        api_url: world.github.url().to_owned(),
        auth: GitHubAuth::Anonymous,
    })
    .expect("GitHub client");
    let reconciliation =
        Cleanup::new(Arc::clone(&store), Some(Arc::new(world.bus.clone()))).with_github(github);
    let options = CleanupOptions {
        reconcile_only: true,
        reconcile_after: Duration::ZERO,
        reconcile_batch: 10_000,
        ..CleanupOptions::default()
    };

    let started = Instant::now();
    let (first_half, second_half) = deliveries.split_at(deliveries.len() / 2);
    let mut failures = send_all(&world, first_half).await;
    for commit in &commits {
        commit.finish_on_github(&world);
    }
    // The second half races reconciliation passes that see every run finished on GitHub.
    let sent = AtomicBool::new(false);
    let sending = async {
        let failed = send_all(&world, second_half).await;
        sent.store(true, Ordering::SeqCst);
        failed
    };
    let racing = async {
        let (mut passes, mut decided, mut failed_passes) = (0, 0, 0);
        while !sent.load(Ordering::SeqCst) {
            match reconciliation.run(&options).await {
                Ok(summary) => decided += summary.reconcile.report().map_or(0, |r| r.triggered),
                Err(_) => failed_passes += 1,
            }
            passes += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (passes, decided, failed_passes)
    };
    let (second_failures, (passes, mut reconciled, failed_passes)) = tokio::join!(sending, racing);
    failures += second_failures;
    let last = reconciliation
        .run(&options)
        .await
        .expect("a last reconciliation");
    reconciled += last.reconcile.report().map_or(0, |r| r.triggered);
    let wall = started.elapsed();

    let mut told: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for event in world.triggers_within(Duration::from_millis(500)).await {
        let head = event["pull_request"]["head_sha"]
            .as_str()
            .unwrap_or_default();
        let sequence = event["sequence"].as_u64().unwrap_or_default();
        let outcome = event["outcome"].as_str().unwrap_or_default().to_owned();
        told.entry(head.to_owned())
            .or_default()
            .push((sequence, outcome));
    }
    let (mut missed, mut duplicated, mut wrong) = (0, 0, 0);
    for commit in &commits {
        let mut events = told.remove(&commit.head).unwrap_or_default();
        events.sort();
        let all = events.len();
        events.dedup_by_key(|(sequence, _)| *sequence);
        duplicated += all - events.len();
        let in_order = events.iter().enumerate().all(|(n, (sequence, outcome))| {
            *sequence == n as u64 && outcome == if n % 2 == 0 { "red" } else { "green" }
        });
        let last = events.last().map(|(_, outcome)| outcome.as_str());
        match (commit.ends_red(), last) {
            (true, Some("red")) | (false, None | Some("green")) if in_order => {}
            (true, None) => missed += 1,
            _ => wrong += 1,
        }
    }
    let reruns = commits.iter().filter(|c| c.rerun.is_some()).count();
    println!(
        "R1 {} deliveries over {} commits ({} red, {reruns} re-run) with {passes} racing \
         reconciliation passes ({reconciled} triggers decided by them, {failed_passes} failed) in \
         {:.1} s: missed {missed}, duplicated {duplicated}, wrong {wrong}, failed answers {failures}",
        deliveries.len(),
        commits.len(),
        commits.iter().filter(|c| c.is_red()).count(),
        wall.as_secs_f64()
    );
    assert_eq!(
        (missed, duplicated, wrong, failures, failed_passes),
        (0, 0, 0, 0, 0),
        "R1 violated"
    );
}

/// Sends `deliveries`, 64 at a time; how many were not answered 2xx.
async fn send_all(world: &TriggerWorld, deliveries: &[Delivery]) -> usize {
    stream::iter(deliveries)
        .map(|d| world.send(d))
        .buffer_unordered(64)
        .filter(|answer| futures::future::ready(!answer.status.is_success()))
        .count()
        .await
}
