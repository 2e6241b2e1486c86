//! The `commonroom-sync` command line: configuration checked at start with a clear message, and a dry
//! run that reads the store the local stack writes (`DATA_DIR`) without Common Room configured.

use std::path::Path;
use std::process::Output;

use chrono::Utc;
use commonroom_sync::SYNC_NAME;
use e2e::fakes::commonroom::Faults;
use e2e::sync_world::{SyncWorld, conversations, scratch_dir, store_all, test_settings};
use serde_json::Value;
use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb, EmbeddedSyncState};
use shared::ports::SyncStateStore;

/// Runs the binary to its end; the fakes keep serving meanwhile (the wait is asynchronous).
async fn run(env: &[(&str, String)], data_dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_commonroom-sync"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DATA_DIR", data_dir)
        .args(args)
        .output()
        .await
        .expect("run commonroom-sync")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn missing_or_invalid_configuration_fails_at_start_naming_the_variable() {
    let dir = scratch_dir("commonroom-cli");
    let nothing = run(&[], &dir, &[]).await;
    assert!(!nothing.status.success());
    assert!(
        stderr(&nothing).contains("missing configuration: KEYCLOAK_SERVER_URL must be set"),
        "{}",
        stderr(&nothing)
    );

    let world = SyncWorld::start(Faults::none()).await;
    let mut env = world.env(&test_settings(2.0));
    env.retain(|(name, _)| *name != "COMMON_ROOM_API_KEY");
    let no_key = run(&env, &dir, &[]).await;
    assert!(!no_key.status.success());
    assert!(stderr(&no_key).contains("COMMON_ROOM_API_KEY must be set"));

    let mut env = world.env(&test_settings(2.0));
    env.push(("SYNC_RATE_LIMIT", "0".into()));
    let zero_rate = run(&env, &dir, &[]).await;
    assert!(!zero_rate.status.success());
    assert!(stderr(&zero_rate).contains("SYNC_RATE_LIMIT"));

    let mut env = world.env(&test_settings(2.0));
    env.push(("SYNC_SETTLE_SECONDS", "-5".into()));
    let negative_settle = run(&env, &dir, &[]).await;
    assert!(!negative_settle.status.success());
    assert!(stderr(&negative_settle).contains("SYNC_SETTLE_SECONDS"));

    let bad_args = run(
        &world.env(&test_settings(2.0)),
        &dir,
        &["--minutes", "soon"],
    )
    .await;
    assert!(!bad_args.status.success());
    assert!(stderr(&bad_args).contains("--minutes"));
    // Nothing was sent by any of these.
    assert!(world.common_room.requests().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_dry_run_reads_the_local_store_without_common_room() {
    let world = SyncWorld::start(Faults::none()).await;
    let ids: Vec<String> = world.add_users(2).into_iter().map(|u| u.id).collect();
    let dir = scratch_dir("commonroom-cli");
    let db = EmbeddedDb::open(&dir).unwrap();
    let store = EmbeddedConversationStore::open(db.clone()).await.unwrap();
    // Two hours old: only a back-fill (--minutes 180) reaches them, not the 60-minute first run.
    store_all(
        &store,
        &conversations(&ids, 5, Utc::now() - chrono::Duration::hours(2)),
    )
    .await;
    let mut env = world.env(&test_settings(2.0));
    env.retain(|(name, _)| !name.starts_with("COMMON_ROOM_"));

    let output = run(&env, &dir, &["--dry-run", "--minutes", "180"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|value| value.get("outcome").is_some())
        .expect("a summary line");
    assert_eq!(summary["outcome"], "dry_run");
    assert_eq!(summary["conversations_seen"], 5);
    assert_eq!(summary["activities_registered"], 5);
    assert!(!stdout.contains("@example.com"));
    let state = EmbeddedSyncState::open(db, SYNC_NAME).await.unwrap();
    assert_eq!(state.watermark().await.unwrap(), None);
    std::fs::remove_dir_all(&dir).ok();
}
