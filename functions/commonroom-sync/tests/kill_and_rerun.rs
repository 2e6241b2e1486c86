//! Quality bar R5 (and R7 over the binary's logs): the `commonroom-sync` binary against a Common Room
//! fake that answers 30% 429, 10% 5xx and some slow answers, killed with SIGKILL half-way, then rerun.
//! Every conversation's activity ends up stored once with its exact payload, the watermark never passed
//! an undelivered conversation and ends at the last one, no second of the run saw more requests than the
//! limit, and no log line carries an e-mail address, a secret or a token.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use commonroom_sync::SYNC_NAME;
use e2e::fakes::commonroom::Faults;
use e2e::sync_world::{
    API_KEY, CLIENT_SECRET, SyncWorld, conversations, expected_activity, scratch_dir, store_all,
    test_settings,
};
use serde_json::Value;
use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb, EmbeddedSyncState};
use shared::domain::CreatedCursor;
use shared::ports::SyncStateStore;

const RATE: f64 = 10.0;
const CONVERSATIONS: usize = 60;

fn spawn(env: &[(&'static str, String)], data_dir: &Path, logs: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs)
        .unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_commonroom-sync"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start commonroom-sync")
}

/// The last summary line the binary printed.
fn last_summary(logs: &Path) -> Value {
    std::fs::read_to_string(logs)
        .unwrap()
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("outcome").is_some())
        .expect("a summary line")
}

#[tokio::test]
async fn killed_half_way_then_rerun_delivers_everything_once_within_the_rate() {
    let world = SyncWorld::start(Faults::misbehaving(7)).await;
    let users = world.add_users(10);
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let by_id: HashMap<&str, _> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    let data_dir = scratch_dir("commonroom-kill");
    let db = EmbeddedDb::open(&data_dir).unwrap();
    let store = EmbeddedConversationStore::open(db.clone()).await.unwrap();
    let state = EmbeddedSyncState::open(db, SYNC_NAME).await.unwrap();
    let all = conversations(
        &ids,
        CONVERSATIONS,
        Utc::now() - chrono::Duration::minutes(10),
    );
    store_all(&store, &all).await;
    let settings = test_settings(RATE);
    let env = world.env(&settings);
    let logs = data_dir.join("runs.log");

    // Run, and kill it once a third of the activities are in.
    let mut child = spawn(&env, &data_dir, &logs);
    let mut polls = 0;
    while world.common_room.activities().len() < CONVERSATIONS / 3 {
        polls += 1;
        assert!(polls < 1200, "the first run made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap(); // SIGKILL, then reaped
    let stored_at_kill = world.common_room.activities();
    assert!(stored_at_kill.len() < CONVERSATIONS, "killed half-way");
    let watermark_at_kill = state.watermark().await.unwrap();
    for conversation in &all {
        if Some(CreatedCursor::of(conversation)) <= watermark_at_kill {
            let id = format!("conversation_{}", conversation.id);
            assert!(
                stored_at_kill.contains_key(&id),
                "the watermark passed an undelivered conversation"
            );
        }
    }

    // Rerun until done: the killed run's lease holds the first attempts off until it expires.
    let mut attempts = 0;
    let summary = loop {
        attempts += 1;
        assert!(attempts <= 40, "the rerun never got the lease");
        let status = spawn(&env, &data_dir, &logs).wait().await.unwrap();
        assert!(status.success(), "the rerun failed");
        let summary = last_summary(&logs);
        if summary["outcome"] == "completed" {
            break summary;
        }
        assert_eq!(summary["outcome"], "lease_held");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        summary["retries"].as_u64().unwrap() > 0,
        "the fake misbehaved"
    );

    // Every activity stored once, exactly as specified.
    let activities = world.common_room.activities();
    assert_eq!(activities.len(), CONVERSATIONS);
    for conversation in &all {
        let id = format!("conversation_{}", conversation.id);
        assert_eq!(
            activities[&id],
            expected_activity(conversation, by_id[conversation.user_id.as_str()])
        );
    }
    // Resent only what was in flight when the run died; each user registered once per run.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for request in world.common_room.requests() {
        if (200..300).contains(&request.status) {
            if let Some(id) = request.activity_id() {
                *accepted.entry(id.to_owned()).or_default() += 1;
            } else if request.path.ends_with("/user") {
                let id = request.body.as_ref().unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                *accepted.entry(id).or_default() += 1;
            }
        }
    }
    let resent: usize = all
        .iter()
        .map(|c| accepted[&format!("conversation_{}", c.id)] - 1)
        .sum();
    assert!(resent <= settings.in_flight, "{resent} activities resent");
    assert!(users.iter().all(|u| (1..=2).contains(&accepted[&u.id])));

    assert_eq!(
        state.watermark().await.unwrap(),
        Some(CreatedCursor::of(all.last().unwrap()))
    );
    let most = world
        .common_room
        .max_requests_in_any(Duration::from_secs(1));
    assert!(most <= RATE as usize, "{most} requests within one second");

    let logged = std::fs::read_to_string(&logs).unwrap();
    assert!(logged.lines().count() > 10, "the runs logged");
    for leak in ["@example.com", CLIENT_SECRET, API_KEY, "kc-token-"] {
        assert!(!logged.contains(leak), "a log line carries {leak}");
    }
    std::fs::remove_dir_all(&data_dir).ok();
}
