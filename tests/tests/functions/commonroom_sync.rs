//! The Common Room sync, in process, against the Keycloak and Common Room fakes: exact payloads, once per
//! run, missing users, permanent refusals, outages, dry runs, overlapping runs. The main scenarios run on
//! both store adapters: embedded, and DynamoDB (moto).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commonroom_sync::{
    RunOutcome, SYNC_NAME, SyncDeps, SyncError, SyncOptions, SyncSettings, run_sync,
};
use e2e::fakes::commonroom::Faults;
use e2e::fakes::keycloak::FakeUser;
use e2e::sync_world::{
    SyncWorld, conversations, dynamo_stores, expected_activity, expected_user, store_all,
    test_settings,
};
use serde_json::Value;
use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb, EmbeddedSyncState};
use shared::domain::{Conversation, CreatedCursor};
use shared::ports::{ConversationStore, SyncStateStore};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    /// `ConversationTable` and `SyncStateItem` on moto.
    Dynamo,
}

struct Stores {
    conversations: Arc<dyn ConversationStore>,
    state: Arc<dyn SyncStateStore>,
}

async fn stores(backend: Backend) -> Stores {
    match backend {
        Backend::Embedded => {
            let db = EmbeddedDb::in_memory().unwrap();
            Stores {
                conversations: Arc::new(EmbeddedConversationStore::open(db.clone()).await.unwrap()),
                state: Arc::new(EmbeddedSyncState::open(db, SYNC_NAME).await.unwrap()),
            }
        }
        Backend::Dynamo => {
            let (conversations, state) = dynamo_stores().await;
            Stores {
                conversations: Arc::new(conversations),
                state: Arc::new(state),
            }
        }
    }
}

fn deps(world: &SyncWorld, stores: &Stores, settings: SyncSettings) -> SyncDeps {
    SyncDeps::new(
        &world.config(settings),
        Arc::clone(&stores.conversations),
        Arc::clone(&stores.state),
    )
    .unwrap()
}

/// Embedded stores holding `count` conversations, created ten minutes ago, of `users` new Keycloak users.
async fn embedded_with_recent_conversations(
    world: &SyncWorld,
    users: usize,
    count: usize,
) -> (Stores, Vec<Conversation>) {
    let users: Vec<String> = world.add_users(users).into_iter().map(|u| u.id).collect();
    let stores = stores(Backend::Embedded).await;
    let all = conversations(&users, count, Utc::now() - chrono::Duration::minutes(10));
    store_all(stores.conversations.as_ref(), &all).await;
    (stores, all)
}

fn dry_run() -> SyncOptions {
    SyncOptions {
        since: None,
        dry_run: true,
    }
}

/// Accepted (2xx) requests per path suffix and id.
fn accepted(world: &SyncWorld, kind: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in world.common_room.requests() {
        if request.path.ends_with(kind) && (200..300).contains(&request.status) {
            let id = request
                .body
                .as_ref()
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

async fn registers_users_once_and_activities_once_with_exact_payloads(backend: Backend) {
    let world = SyncWorld::start(Faults::none()).await;
    let mut users = world.add_users(3);
    // A user without a linked GitHub identity: the handle falls back to the username.
    let plain = FakeUser {
        id: "plain-user".into(),
        username: "plainuser".into(),
        email: Some("plain@example.com".into()),
        github: None,
    };
    world.keycloak.add_user(plain.clone());
    users.push(plain);
    let without_email = FakeUser {
        id: "no-email".into(),
        username: "ghost".into(),
        email: None,
        github: None,
    };
    world.keycloak.add_user(without_email);

    let mut ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    ids.push("deleted-user".into()); // not in Keycloak: 404
    ids.push("no-email".into());
    let stores = stores(backend).await;
    let all = conversations(&ids, 18, Utc::now() - chrono::Duration::minutes(10));
    store_all(stores.conversations.as_ref(), &all).await;

    let deps = deps(&world, &stores, test_settings(50.0));
    let summary = run_sync(&deps, SyncOptions::default()).await.unwrap();

    let by_id: HashMap<&str, &FakeUser> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let deliverable: Vec<&Conversation> = all
        .iter()
        .filter(|c| by_id.contains_key(c.user_id.as_str()))
        .collect();
    assert_eq!(summary.outcome, RunOutcome::Completed);
    assert_eq!(summary.conversations_seen, 18);
    assert_eq!(summary.users_registered, 4);
    assert_eq!(summary.activities_registered, deliverable.len() as u64);
    assert_eq!(summary.missing_users, 1);
    assert_eq!(summary.users_without_email, 1);
    assert_eq!(summary.conversations_skipped, 18 - deliverable.len() as u64);
    assert_eq!(summary.permanent_failures, 0);
    assert_eq!(
        summary.watermark,
        Some(CreatedCursor::of(all.last().unwrap()))
    );
    assert_eq!(stores.state.watermark().await.unwrap(), summary.watermark);

    let stored_users = world.common_room.users();
    assert_eq!(stored_users.len(), 4);
    for user in &users {
        assert_eq!(stored_users[&user.id], expected_user(user));
    }
    let activities = world.common_room.activities();
    assert_eq!(activities.len(), deliverable.len());
    for conversation in &deliverable {
        let id = format!("conversation_{}", conversation.id);
        assert_eq!(
            activities[&id],
            expected_activity(conversation, by_id[conversation.user_id.as_str()])
        );
    }
    // Once each: no user or activity was sent twice.
    assert!(accepted(&world, "/user").values().all(|&n| n == 1));
    assert!(accepted(&world, "/activity").values().all(|&n| n == 1));
    assert_eq!(accepted(&world, "/user").len(), 4);

    // The next run finds nothing after the watermark and sends nothing but its token check.
    let before = world.common_room.requests().len();
    let again = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(again.conversations_seen, 0);
    assert_eq!(again.watermark, summary.watermark);
    assert_eq!(world.common_room.requests().len(), before + 1);
}

#[tokio::test]
async fn registers_users_once_and_activities_once_with_exact_payloads_embedded() {
    registers_users_once_and_activities_once_with_exact_payloads(Backend::Embedded).await;
}

#[tokio::test]
async fn registers_users_once_and_activities_once_with_exact_payloads_dynamo() {
    registers_users_once_and_activities_once_with_exact_payloads(Backend::Dynamo).await;
}

async fn keycloak_outage_fails_the_run_without_moving_the_watermark(backend: Backend) {
    let world = SyncWorld::start(Faults::none()).await;
    let users: Vec<String> = world.add_users(2).into_iter().map(|u| u.id).collect();
    let stores = stores(backend).await;
    let first = conversations(&users, 3, Utc::now() - chrono::Duration::minutes(10));
    store_all(stores.conversations.as_ref(), &first).await;
    let mut settings = test_settings(50.0);
    settings.retry.max_attempts = 3;
    let deps = deps(&world, &stores, settings);
    let done = run_sync(&deps, SyncOptions::default()).await.unwrap();
    let watermark = CreatedCursor::of(first.last().unwrap());
    assert_eq!(done.watermark, Some(watermark.clone()));

    // New conversations of a user the next run has not seen, while Keycloak is down.
    let newcomer = world.add_users(1).remove(0).id;
    let later = conversations(&[newcomer], 3, Utc::now() - chrono::Duration::minutes(1));
    store_all(stores.conversations.as_ref(), &later).await;
    world.keycloak.set_outage(true);
    let error = run_sync(&deps, SyncOptions::default()).await.unwrap_err();
    assert!(matches!(error, SyncError::Keycloak(_)), "{error}");
    assert_eq!(stores.state.watermark().await.unwrap(), Some(watermark));
    assert_eq!(world.common_room.activities().len(), 3);

    // The failed run released its lease: once Keycloak is back, the next run delivers the rest.
    world.keycloak.set_outage(false);
    let recovered = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(recovered.activities_registered, 3);
    assert_eq!(
        recovered.watermark,
        Some(CreatedCursor::of(later.last().unwrap()))
    );
}

#[tokio::test]
async fn keycloak_outage_fails_the_run_without_moving_the_watermark_embedded() {
    keycloak_outage_fails_the_run_without_moving_the_watermark(Backend::Embedded).await;
}

#[tokio::test]
async fn keycloak_outage_fails_the_run_without_moving_the_watermark_dynamo() {
    keycloak_outage_fails_the_run_without_moving_the_watermark(Backend::Dynamo).await;
}

#[tokio::test]
async fn a_refused_activity_is_recorded_and_passed() {
    let world = SyncWorld::start(Faults::none()).await;
    let (stores, all) = embedded_with_recent_conversations(&world, 2, 5).await;
    world
        .common_room
        .refuse_activity(&format!("conversation_{}", all[2].id));

    let summary = run_sync(
        &deps(&world, &stores, test_settings(50.0)),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.permanent_failures, 1);
    assert_eq!(summary.activities_registered, 4);
    assert_eq!(summary.retries, 0, "a 400 is not retried");
    assert_eq!(summary.watermark, Some(CreatedCursor::of(&all[4])));
}

#[tokio::test]
async fn common_room_down_after_retries_fails_the_run_at_the_last_finished_conversation() {
    let world = SyncWorld::start(Faults {
        server_error: 1.0,
        ..Faults::none()
    })
    .await;
    let (stores, _) = embedded_with_recent_conversations(&world, 1, 2).await;
    let mut settings = test_settings(50.0);
    settings.retry.max_attempts = 3;
    let error = run_sync(&deps(&world, &stores, settings), SyncOptions::default())
        .await
        .unwrap_err();
    // The token check answers without faults; the user upsert is refused with 503 three times.
    assert!(
        matches!(&error, SyncError::CommonRoom(e) if e.status() == Some(503)),
        "{error}"
    );
    assert_eq!(stores.state.watermark().await.unwrap(), None);
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_moves_no_watermark() {
    let world = SyncWorld::start(Faults::none()).await;
    let (stores, _) = embedded_with_recent_conversations(&world, 2, 4).await;
    let summary = run_sync(&deps(&world, &stores, test_settings(50.0)), dry_run())
        .await
        .unwrap();
    assert_eq!(summary.outcome, RunOutcome::DryRun);
    assert_eq!(summary.activities_registered, 4);
    assert!(world.common_room.requests().is_empty());
    assert!(
        world.keycloak.user_lookups() >= 2,
        "a dry run looks users up"
    );
    assert_eq!(stores.state.watermark().await.unwrap(), None);
}

#[tokio::test]
async fn a_run_while_another_holds_the_lease_does_nothing() {
    let world = SyncWorld::start(Faults::none()).await;
    let (stores, _) = embedded_with_recent_conversations(&world, 1, 2).await;
    assert!(
        stores
            .state
            .acquire_run_lease("another-run", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let summary = run_sync(
        &deps(&world, &stores, test_settings(50.0)),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.outcome, RunOutcome::LeaseHeld);
    assert!(world.common_room.requests().is_empty());
    assert_eq!(stores.state.watermark().await.unwrap(), None);
}

#[tokio::test]
async fn a_back_fill_resends_idempotently_and_never_moves_the_watermark_back() {
    let world = SyncWorld::start(Faults::none()).await;
    let users: Vec<String> = world.add_users(2).into_iter().map(|u| u.id).collect();
    let stores = stores(Backend::Embedded).await;
    let start = Utc::now() - chrono::Duration::minutes(10);
    let all = conversations(&users, 4, start);
    store_all(stores.conversations.as_ref(), &all).await;
    let deps = deps(&world, &stores, test_settings(50.0));
    run_sync(&deps, SyncOptions::default()).await.unwrap();
    let watermark = Some(CreatedCursor::of(all.last().unwrap()));

    let back_fill = run_sync(
        &deps,
        SyncOptions {
            since: Some(start),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(back_fill.activities_registered, 4);
    assert_eq!(back_fill.watermark, watermark);
    // Common Room upserts by id: still one activity per conversation.
    assert_eq!(world.common_room.activities().len(), 4);
}

#[tokio::test]
async fn keycloak_lookups_are_concurrent_but_bounded_and_the_token_is_reused() {
    let world = SyncWorld::start(Faults::none()).await;
    let (stores, _) = embedded_with_recent_conversations(&world, 30, 30).await;
    let mut settings = test_settings(1000.0);
    settings.page_size = 30;
    settings.keycloak_batch = 6;
    let summary = run_sync(&deps(&world, &stores, settings), dry_run())
        .await
        .unwrap();
    assert_eq!(summary.activities_registered, 30);
    assert_eq!(world.keycloak.user_lookups(), 30);
    let most = world.keycloak.max_concurrent_lookups();
    assert!((2..=6).contains(&most), "{most} lookups at once");
    // Thirty lookups of 20 ms, six at a time, take well under the token's second.
    assert_eq!(world.keycloak.token_grants(), 1);
}

#[tokio::test]
async fn the_token_is_refreshed_before_expiry_and_after_a_401() {
    let world = SyncWorld::start(Faults::none()).await;
    let user = world.add_users(1).remove(0);
    let deps = deps(
        &world,
        &stores(Backend::Embedded).await,
        test_settings(10.0),
    );
    let found = deps.keycloak.user(&user.id).await.unwrap().unwrap();
    assert_eq!(found.email, user.email);
    assert_eq!(found.github_login, user.github);
    assert_eq!(deps.keycloak.user("nobody").await.unwrap(), None);
    assert_eq!(world.keycloak.token_grants(), 1);
    // The fake's tokens live one second: past it, the client asks for a new one by itself.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    deps.keycloak.user(&user.id).await.unwrap();
    assert_eq!(world.keycloak.token_grants(), 2);
    // A token refused before its time (401) is replaced once, within the same attempt.
    world.keycloak.revoke_tokens();
    deps.keycloak.user(&user.id).await.unwrap();
    assert_eq!(world.keycloak.token_grants(), 3);
    assert_eq!(deps.retrier.retries(), 0);
}

/// Settings whose settle is short enough for a test to wait it out.
fn settling_in(settle: Duration) -> SyncSettings {
    SyncSettings {
        settle,
        ..test_settings(50.0)
    }
}

async fn a_conversation_landing_late_behind_the_watermark_is_sent_once_settled(backend: Backend) {
    let world = SyncWorld::start(Faults::none()).await;
    let users: Vec<String> = world.add_users(2).into_iter().map(|u| u.id).collect();
    let stores = stores(backend).await;
    let now = Utc::now();
    let old = conversations(&users, 2, now - chrono::Duration::minutes(10));
    let fresh = conversations(&users, 1, now).remove(0);
    store_all(stores.conversations.as_ref(), &old).await;
    store_all(stores.conversations.as_ref(), std::slice::from_ref(&fresh)).await;
    let settle = Duration::from_secs(3);
    let deps = deps(&world, &stores, settling_in(settle));

    // The fresh conversation is not settled: not sent, and the watermark stays behind it.
    let first = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(first.conversations_seen, 2);
    assert_eq!(first.activities_registered, 2);
    assert_eq!(first.watermark, Some(CreatedCursor::of(&old[1])));
    assert!(first.watermark < Some(CreatedCursor::of(&fresh)));
    assert!(
        !world
            .common_room
            .activities()
            .contains_key(&format!("conversation_{}", fresh.id))
    );

    // Written after that run, created before what it read up to (a node's clock behind, or the index
    // late), and just behind the fresh one, which the run would have passed had it sent it.
    let behind_bound = conversations(&users, 1, now - chrono::Duration::minutes(5)).remove(0);
    let behind_fresh = conversations(&users, 1, now - chrono::Duration::seconds(1)).remove(0);
    store_all(
        stores.conversations.as_ref(),
        &[behind_bound.clone(), behind_fresh.clone()],
    )
    .await;
    let settled_at = fresh.created_at + chrono::Duration::from_std(settle).unwrap();
    let wait = (settled_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;

    let second = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(second.conversations_seen, 3);
    assert_eq!(second.activities_registered, 3);
    assert_eq!(second.watermark, Some(CreatedCursor::of(&fresh)));
    let activities = world.common_room.activities();
    for conversation in [&behind_bound, &behind_fresh, &fresh] {
        assert!(activities.contains_key(&format!("conversation_{}", conversation.id)));
    }

    let third = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(third.conversations_seen, 0);
    assert_eq!(third.watermark, second.watermark);
    let sent = accepted(&world, "/activity");
    assert_eq!(sent.len(), 5);
    assert!(sent.values().all(|&n| n == 1), "{sent:?}");
}

#[tokio::test]
async fn a_conversation_landing_late_behind_the_watermark_is_sent_once_settled_embedded() {
    a_conversation_landing_late_behind_the_watermark_is_sent_once_settled(Backend::Embedded).await;
}

#[tokio::test]
async fn a_conversation_landing_late_behind_the_watermark_is_sent_once_settled_dynamo() {
    a_conversation_landing_late_behind_the_watermark_is_sent_once_settled(Backend::Dynamo).await;
}

#[tokio::test]
async fn unsettled_conversations_are_left_to_a_later_run_by_runs_back_fills_and_dry_runs() {
    let world = SyncWorld::start(Faults::none()).await;
    let users: Vec<String> = world.add_users(3).into_iter().map(|u| u.id).collect();
    let stores = stores(Backend::Embedded).await;
    let now = Utc::now();
    // Nine settled ones over two pages of seven, the second cut short by the unsettled ones (half a
    // minute old, under a settle of two minutes).
    let settled = conversations(&users, 9, now - chrono::Duration::minutes(10));
    let unsettled = conversations(&users, 3, now - chrono::Duration::seconds(30));
    store_all(stores.conversations.as_ref(), &settled).await;
    store_all(stores.conversations.as_ref(), &unsettled).await;
    let deps = deps(&world, &stores, settling_in(Duration::from_secs(120)));
    let last_settled = Some(CreatedCursor::of(settled.last().unwrap()));

    let dry = run_sync(&deps, dry_run()).await.unwrap();
    assert_eq!(dry.conversations_seen, 9);
    assert_eq!(dry.activities_registered, 9);

    let run = run_sync(&deps, SyncOptions::default()).await.unwrap();
    assert_eq!(run.conversations_seen, 9);
    assert_eq!(run.watermark, last_settled);
    assert_eq!(stores.state.watermark().await.unwrap(), last_settled);

    let back_fill = run_sync(
        &deps,
        SyncOptions {
            since: Some(now - chrono::Duration::minutes(20)),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(back_fill.conversations_seen, 9);
    assert_eq!(back_fill.watermark, last_settled);

    let activities = world.common_room.activities();
    assert_eq!(activities.len(), 9);
    assert!(
        unsettled
            .iter()
            .all(|c| !activities.contains_key(&format!("conversation_{}", c.id)))
    );
}
