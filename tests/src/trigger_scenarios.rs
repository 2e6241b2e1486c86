//! End-to-end scenarios of the proactive trigger: signed `workflow_run` deliveries through the webhook
//! service, the real GitHub client against the GitHub fake, a store adapter, and the bus. Written once,
//! run against every store adapter with `e2e::trigger_scenarios!(fresh_store);`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cleanup::{Cleanup, CleanupOptions};
use futures::future::join_all;
use http::StatusCode;
use serde_json::json;
use shared::adapters::eventbridge::EventBridgeBus;
use shared::adapters::in_process_bus::InProcessBus;
use shared::domain::{GroupState, RepoId, UserId, UserSettings};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig, Permission};
use shared::keycloak::{KeycloakClient, KeycloakConfig};
use shared::ports::EventBus;
use shared::proactive::{AccountLinks, republish_pending};
use shared::retry::{Retrier, RetryPolicy};
use shared::secret::Secret;
use webhook::{BotRuns, WebhookAnswer, WebhookSettings};

use crate::fakes::github::{FakePullRequest, FakeRun, Fault, FaultRule};
use crate::fakes::keycloak::{FakeUser, KeycloakFake};
use crate::trigger_world::{
    ACTOR, BRANCH, Delivery, OWNER, REPO, REPO_GITHUB_ID, Run, TriggerWorld, at, delivery,
    lifecycle, sha, shuffled_with_repeats, triggered_count,
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
            under_bot_runs_author_a_bots_run_is_the_pr_authors,
            the_trigger_is_for_the_user_keycloak_links_to_the_actor,
            an_unlinked_actor_gets_no_conversation,
            a_user_or_repository_that_turned_it_off_gets_no_trigger,
            a_deciding_delivery_github_failed_is_triggered_by_the_reconciliation,
            after_the_trigger_each_change_of_outcome_is_one_follow_up,
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
    assert_eq!(triggers[0]["user_id"], OWNER, "the actor's linked user");
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

/// Sends `run`'s lifecycle ending in a failure; the answer to its last delivery.
async fn fail(world: &TriggerWorld, run: Run<'_>) -> WebhookAnswer {
    let mut answer = None;
    for d in lifecycle(run, "failure") {
        answer = Some(world.send(&d).await);
    }
    answer.expect("deliveries")
}

pub async fn under_bot_runs_author_a_bots_run_is_the_pr_authors(store: Store) {
    let links = AccountLinks::configured("alice-dev=kc-alice").unwrap();
    let settings = WebhookSettings {
        bot_runs: BotRuns::Author,
        ..WebhookSettings::with_secret("unused")
    };
    let mut world = TriggerWorld::with_links(store, links, settings).await;
    let head = sha("bot-author");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    world.github.put_pull_request(
        REPO,
        FakePullRequest {
            head_owner: Some("alice-dev".into()),
            ..FakePullRequest::open(PR, &head, BRANCH)
        },
    );
    world
        .github
        .set_permission(REPO, "alice-dev", Permission::Write);
    let bot = json!({ "login": "dependabot[bot]", "id": 49699333, "type": "Bot" });
    for mut delivery in lifecycle(run(&head, 1, "build"), "failure") {
        let mut body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        body["workflow_run"]["triggering_actor"] = bot.clone();
        body["sender"] = bot.clone();
        delivery.body = body.to_string().into_bytes();
        world.send(&delivery).await;
    }
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0]["user_id"], "kc-alice", "the PR author's user");
}

pub async fn the_trigger_is_for_the_user_keycloak_links_to_the_actor(store: Store) {
    let keycloak = KeycloakFake::start(
        "product",
        "webhook",
        "webhook-secret",
        Duration::from_secs(60),
    )
    .await;
    for (id, github) in [
        ("3f1d-linked-to-actor", ACTOR),
        ("9c2e-the-installer", "octo-org"),
    ] {
        keycloak.add_user(FakeUser {
            id: id.into(),
            username: github.to_ascii_lowercase(),
            email: None,
            github: Some(github.into()),
        });
    }
    let client = KeycloakClient::new(
        reqwest::Client::new(),
        KeycloakConfig {
            server_url: keycloak.url().parse().unwrap(),
            realm: "product".into(),
            client_id: "webhook".into(),
            client_secret: Secret::new("webhook-secret"),
            github_idp_alias: "github".into(),
        },
        Arc::new(Retrier::new(RetryPolicy::ACCOUNT_LINK)),
    );
    let links = AccountLinks::keycloak(client, Duration::from_secs(60));
    let settings = WebhookSettings::with_secret("unused");
    let mut world = TriggerWorld::with_links(store, links, settings).await;
    let head = sha("linked");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let answer = fail(&world, run(&head, 1, "build")).await;
    assert_eq!(triggered_count(&[answer]), 1);
    let triggers = world.triggers().await;
    assert_eq!(triggers[0]["user_id"], "3f1d-linked-to-actor");
}

pub async fn an_unlinked_actor_gets_no_conversation(store: Store) {
    let links = AccountLinks::configured("someone-else=kc-someone").unwrap();
    let settings = WebhookSettings::with_secret("unused");
    let mut world = TriggerWorld::with_links(store, links, settings).await;
    let head = sha("unlinked");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let answer = fail(&world, run(&head, 1, "build")).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(
        answer.body["ignored"], "no_linked_user",
        "{:?}",
        answer.body
    );
    assert!(world.triggers().await.is_empty());
    assert_eq!(world.group_state(PR, &head).await, None, "nothing recorded");
}

pub async fn a_user_or_repository_that_turned_it_off_gets_no_trigger(store: Store) {
    let mut world = TriggerWorld::new(Arc::clone(&store)).await;
    let owner = UserId::parse(OWNER).unwrap();
    let choose = |on: bool| UserSettings {
        proactive_conversations: Some(on),
    };
    store
        .put_user_settings(&owner, &choose(false))
        .await
        .unwrap();
    let head = sha("turned-off");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let answer = fail(&world, run(&head, 1, "build")).await;
    assert_eq!(answer.body["ignored"], "proactive_off", "{:?}", answer.body);

    store
        .put_user_settings(&owner, &choose(true))
        .await
        .unwrap();
    let id = RepoId::from_github(REPO_GITHUB_ID);
    let mut repository = store.get_repository(&id).await.unwrap().unwrap();
    repository.proactive_enabled = false;
    store.put_repository(&repository).await.unwrap();
    let again = completion("off-again", run(&head, 1, "build"), "failure", 30);
    let answer = world.send(&again).await;
    assert!(
        answer.body["ignored"]
            .as_str()
            .unwrap()
            .contains("disabled for this repository"),
        "{:?}",
        answer.body
    );
    assert!(world.triggers().await.is_empty(), "no trigger while off");

    repository.proactive_enabled = true;
    store.put_repository(&repository).await.unwrap();
    let on = completion("on-again", run(&head, 1, "build"), "failure", 31);
    assert_eq!(triggered_count(&[world.send(&on).await]), 1);
    assert_eq!(world.triggers().await.len(), 1);
}

/// GitHub fails the deciding delivery (502 on every call): no trigger, and GitHub never redelivers.
/// The reconciliation (its wait set to zero) re-checks the group with GitHub and triggers once.
pub async fn a_deciding_delivery_github_failed_is_triggered_by_the_reconciliation(store: Store) {
    let mut world = TriggerWorld::new(Arc::clone(&store)).await;
    let head = sha("lost-delivery");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let mut deliveries = lifecycle(run(&head, 1, "build"), "failure");
    let deciding = deliveries.pop().expect("the completion");
    for delivery in &deliveries {
        assert_eq!(world.send(delivery).await.status, StatusCode::ACCEPTED);
    }
    world
        .github
        .inject(FaultRule::next(1_000, Fault::ServerError(502)));
    let answer = world.send(&deciding).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.body
    );
    assert!(world.triggers().await.is_empty());
    world.github.clear_faults();
    let mut failed = FakeRun::completed(1, "build", &head, "failure");
    failed.head_branch = BRANCH.into();
    failed.updated_at = at(100);
    world.github.put_run(REPO, failed);

    let github = GitHubClient::new(GitHubConfig {
        api_url: world.github.url().to_owned(),
        auth: GitHubAuth::Anonymous,
    })
    .unwrap();
    let cleanup =
        Cleanup::new(Arc::clone(&store), Some(Arc::new(world.bus.clone()))).with_github(github);
    let options = CleanupOptions {
        reconcile_only: true,
        reconcile_after: Duration::ZERO,
        ..CleanupOptions::default()
    };
    let summary = cleanup.run(&options).await.expect("a clean pass");
    let reconciled = summary.reconcile.report().expect("the step ran");
    assert_eq!(
        (reconciled.triggered, reconciled.published),
        (1, 1),
        "{summary:?}"
    );
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1);
    assert_eq!(
        triggers[0]["user_id"], OWNER,
        "the owner the deliveries recorded"
    );
    assert_eq!(
        world.group_state(PR, &head).await,
        Some(GroupState::Triggered)
    );

    let again = cleanup.run(&options).await.expect("a clean pass");
    assert_eq!(
        again.reconcile.report().unwrap().checked,
        0,
        "a decided group is left alone"
    );
    assert!(world.triggers().await.is_empty(), "never twice");
}

/// After the trigger the group follows the commit's re-runs: green again is one follow-up, a failure
/// after that another; repeats and stale deliveries add none.
pub async fn after_the_trigger_each_change_of_outcome_is_one_follow_up(store: Store) {
    let mut world = TriggerWorld::new(store).await;
    let head = sha("follow-up");
    world.open_pr_with_runs(PR, &head, &[(1, "build")]);
    let build = run(&head, 1, "build");
    fail(&world, build).await;
    let trigger = world.triggers().await;
    assert_eq!(
        (trigger.len(), trigger[0]["sequence"].clone()),
        (1, json!(0))
    );

    let rerun = |id: &str, action, conclusion, attempt, second| {
        delivery(id, build, action, conclusion, attempt, second)
    };
    assert_eq!(
        world
            .send(&rerun("r2-req", "requested", None, 2, 50))
            .await
            .status,
        202
    );
    assert!(
        world.triggers().await.is_empty(),
        "pending again: nothing to tell"
    );
    let green = rerun("r2-done", "completed", Some("success"), 2, 52);
    let answer = world.send(&green).await;
    assert_eq!(
        answer.body["pull_requests"][0]["follow_up"], 1,
        "{:?}",
        answer.body
    );
    let told = world.triggers().await;
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0]["sequence"].clone(), told[0]["outcome"].clone()),
        (json!(1), json!("green"))
    );
    assert_eq!(told[0]["trigger_id"], trigger[0]["trigger_id"]);
    assert_eq!(told[0]["failed_runs"], json!([]));
    let repeated = Delivery {
        id: "r2-done-again".into(),
        ..green
    };
    world.send(&repeated).await;
    world
        .send(&rerun("stale", "completed", Some("failure"), 1, 3))
        .await;
    assert!(
        world.triggers().await.is_empty(),
        "repeats and stale states tell nothing"
    );

    world
        .send(&rerun("r3-done", "completed", Some("failure"), 3, 60))
        .await;
    let told = world.triggers().await;
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0]["sequence"].clone(), told[0]["outcome"].clone()),
        (json!(2), json!("red"))
    );
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
