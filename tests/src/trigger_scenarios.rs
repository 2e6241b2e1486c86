//! End-to-end scenarios of the proactive trigger: signed `workflow_run` deliveries through the webhook
//! service, the real GitHub client against the GitHub fake, a store adapter, and the bus. Written once,
//! run against every store adapter with `e2e::trigger_scenarios!(fresh_store);`.

use std::sync::Arc;

use chrono::Utc;
use futures::future::join_all;
use http::StatusCode;
use serde_json::json;
use shared::adapters::eventbridge::EventBridgeBus;
use shared::adapters::in_process_bus::InProcessBus;
use shared::domain::GroupState;
use shared::github::Permission;
use shared::ports::EventBus;
use shared::proactive::republish_pending;

use crate::fakes::github::FakePullRequest;
use crate::trigger_world::{
    ACTOR, BRANCH, Delivery, REPO, Run, TriggerWorld, delivery, lifecycle, sha,
    shuffled_with_repeats, triggered_count,
};

pub use crate::trigger_world::Store;

const PR: u64 = 2;

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
            a_bots_run_is_skipped_without_asking_github,
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

fn run<'a>(head: &'a str, id: u64, name: &'a str) -> Run<'a> {
    Run {
        pr: PR,
        head,
        id,
        name,
    }
}

/// The `completed` delivery of `run`'s first attempt, concluding `conclusion` at `second`.
fn completion(id: &str, run: Run<'_>, conclusion: &str, second: u32) -> Delivery {
    delivery(id, run, "completed", Some(conclusion), 1, second)
}

pub async fn two_hundred_concurrent_shuffled_duplicated_deliveries_trigger_once(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("burst");
    let runs: Vec<(u64, String)> = (1..=10).map(|id| (id, format!("workflow-{id}"))).collect();
    let named: Vec<(u64, &str)> = runs.iter().map(|(id, name)| (*id, name.as_str())).collect();
    world.open_pr_with_runs(PR, &head, &named);

    let distinct: Vec<Delivery> = named
        .iter()
        .flat_map(|&(id, name)| {
            let conclusion = if matches!(id, 3 | 7) {
                "failure"
            } else {
                "success"
            };
            lifecycle(run(&head, id, name), conclusion)
        })
        .collect();
    // 200 deliveries, duplicated and redelivered, shuffled, and sent all at once.
    let deliveries = shuffled_with_repeats(distinct, 200);
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
    assert_eq!(
        world.group_state(PR, &head).await,
        Some(GroupState::Triggered)
    );
}

pub async fn a_green_commit_never_triggers(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("green");
    world.open_pr_with_runs(PR, &head, &[(1, "build"), (2, "test")]);
    for (id, name) in [(1, "build"), (2, "test")] {
        for d in lifecycle(run(&head, id, name), "success") {
            assert_eq!(world.send(&d).await.status, StatusCode::ACCEPTED);
        }
    }
    assert!(world.triggers().await.is_empty());
    assert_eq!(
        world.group_state(PR, &head).await,
        Some(GroupState::Collecting)
    );
}

pub async fn nothing_triggers_while_a_run_is_pending(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("pending");
    world.open_pr_with_runs(PR, &head, &[(1, "build"), (2, "test")]);
    for d in lifecycle(run(&head, 1, "build"), "failure") {
        world.send(&d).await;
    }
    let answer = world
        .send(&delivery(
            "p-2-prog",
            run(&head, 2, "test"),
            "in_progress",
            None,
            1,
            22,
        ))
        .await;
    assert_eq!(answer.body["pull_requests"][0]["pending"], 1, "{answer:?}");
    assert!(world.triggers().await.is_empty(), "run 2 is still pending");

    let done = world
        .send(&completion(
            "p-2-done",
            run(&head, 2, "test"),
            "cancelled",
            23,
        ))
        .await;
    assert_eq!(done.body["pull_requests"][0]["triggered"], true, "{done:?}");
    assert_eq!(world.triggers().await.len(), 1);
}

pub async fn a_stale_commit_never_triggers(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let (old, new) = (sha("stale-old"), sha("stale-new"));
    world.open_pr_with_runs(PR, &old, &[(1, "build")]);
    // The PR moved on: its head is now a newer commit.
    world
        .github
        .put_pull_request(REPO, FakePullRequest::open(PR, &new, BRANCH));
    let answer = world
        .send(&completion("s-1", run(&old, 1, "build"), "failure", 13))
        .await;
    assert_eq!(
        answer.body,
        json!({ "ignored": "no open pull request has this commit as its head" })
    );
    assert!(world.triggers().await.is_empty());
    assert_eq!(
        world.group_state(PR, &old).await,
        None,
        "nothing recorded for a stale commit"
    );
}

pub async fn an_actor_without_write_permission_never_triggers(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("stranger");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    world.github.set_permission(REPO, ACTOR, Permission::Read);
    let answer = world
        .send(&completion("x-1", run(&head, 1, "build"), "failure", 13))
        .await;
    assert_eq!(
        answer.body,
        json!({ "ignored": format!("actor `{ACTOR}` has no write permission") })
    );
    assert!(world.triggers().await.is_empty());
}

pub async fn a_bots_run_is_skipped_without_asking_github(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("dependabot");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let mut delivery = completion("bot-1", run(&head, 1, "build"), "failure", 13);
    let mut body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    let bot = json!({ "login": "dependabot[bot]", "id": 49699333, "type": "Bot" });
    body["workflow_run"]["triggering_actor"] = bot.clone();
    body["sender"] = bot;
    delivery.body = body.to_string().into_bytes();
    let asked_before = world.github.requests().len();

    let answer = world.send(&delivery).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["ignored"], "bot_actor");
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap()
            .contains("dependabot[bot]")
    );
    assert_eq!(
        world.github.requests().len(),
        asked_before,
        "GitHub was not asked"
    );
    assert!(world.triggers().await.is_empty());
    assert_eq!(world.group_state(PR, &head).await, None, "nothing recorded");
}

pub async fn a_rerun_that_turns_red_after_green_triggers_once(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("rerun");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    for d in lifecycle(run(&head, 1, "build"), "success") {
        world.send(&d).await;
    }
    assert!(world.triggers().await.is_empty(), "green first");

    let rerun = [
        delivery("r-2-req", run(&head, 1, "build"), "requested", None, 2, 100),
        delivery(
            "r-2-done",
            run(&head, 1, "build"),
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
    for d in lifecycle(run(&head, 1, "build"), "success")
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
    let mut world = TriggerWorld::with_bus(store, Arc::new(failing), InProcessBus::default()).await;
    let head = sha("outbox");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);

    let red = completion("o-1", run(&head, 1, "build"), "timed_out", 13);
    let answer = world.send(&red).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert!(
        answer.body["trigger_id"]
            .as_str()
            .unwrap()
            .starts_with("trg-")
    );
    assert_eq!(
        world.group_state(PR, &head).await,
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
    let world = TriggerWorld::with_bus(store, bus, InProcessBus::default()).await;
    let head = sha("eventbridge");
    world.open_pr_with_runs(PR, &head, &[(1, "build"), (2, "lint")]);
    let mut decided = None;
    for d in lifecycle(run(&head, 1, "build"), "failure")
        .iter()
        .chain(&lifecycle(run(&head, 2, "lint"), "success"))
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
