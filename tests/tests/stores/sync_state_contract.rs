//! The sync state port's contract, run against both adapters: the embedded one and DynamoDB (moto).

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e::sync_world::{dynamo_stores, scratch_dir};
use shared::adapters::embedded::{EmbeddedDb, EmbeddedSyncState};
use shared::domain::{ConversationId, CreatedCursor};
use shared::ports::{Advance, SyncStateStore};

fn cursor(at: &str, id: &str) -> CreatedCursor {
    CreatedCursor {
        created_at: DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&Utc),
        id: ConversationId::parse(id).unwrap(),
    }
}

async fn contract(state: &dyn SyncStateStore) {
    let minute = Duration::from_secs(60);
    assert_eq!(state.watermark().await.unwrap(), None);

    // The lease: one holder at a time; its holder may extend it.
    assert!(state.acquire_run_lease("run-a", minute).await.unwrap());
    assert!(!state.acquire_run_lease("run-b", minute).await.unwrap());
    assert!(state.acquire_run_lease("run-a", minute).await.unwrap());

    // Only the holder moves the watermark, and only forward.
    let first = cursor("2024-05-01T12:00:00.123456789Z", "b");
    assert_eq!(
        state.advance_watermark("run-b", &first).await.unwrap(),
        Advance::LeaseLost
    );
    assert_eq!(state.watermark().await.unwrap(), None);
    assert_eq!(
        state.advance_watermark("run-a", &first).await.unwrap(),
        Advance::Moved
    );
    assert_eq!(state.watermark().await.unwrap(), Some(first.clone()));
    let same_instant_lower_id = cursor("2024-05-01T12:00:00.123456789Z", "a");
    assert_eq!(
        state
            .advance_watermark("run-a", &same_instant_lower_id)
            .await
            .unwrap(),
        Advance::AlreadyPast
    );
    let next = cursor("2024-05-01T12:00:00.123456789Z", "c");
    assert_eq!(
        state.advance_watermark("run-a", &next).await.unwrap(),
        Advance::Moved
    );
    assert_eq!(state.watermark().await.unwrap(), Some(next.clone()));

    // Released, the lease is free for another run; the old holder can no longer write.
    state.release_run_lease("run-b").await.unwrap(); // not the holder: no effect
    assert!(!state.acquire_run_lease("run-b", minute).await.unwrap());
    state.release_run_lease("run-a").await.unwrap();
    assert!(state.acquire_run_lease("run-b", minute).await.unwrap());
    let later = cursor("2024-05-02T00:00:00Z", "a");
    assert_eq!(
        state.advance_watermark("run-a", &later).await.unwrap(),
        Advance::LeaseLost
    );

    // An expired lease can be taken over.
    state.release_run_lease("run-b").await.unwrap();
    assert!(
        state
            .acquire_run_lease("run-c", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(state.acquire_run_lease("run-d", minute).await.unwrap());
    assert_eq!(
        state.advance_watermark("run-d", &later).await.unwrap(),
        Advance::Moved
    );
    assert_eq!(state.watermark().await.unwrap(), Some(later));
}

#[tokio::test]
async fn embedded_sync_state_keeps_the_contract() {
    let state = EmbeddedSyncState::open(EmbeddedDb::in_memory().unwrap(), "commonroom")
        .await
        .unwrap();
    contract(&state).await;
}

#[tokio::test]
async fn embedded_sync_states_of_different_syncs_are_apart_and_survive_a_reopen() {
    let dir = scratch_dir("sync-state");
    let db = EmbeddedDb::open(&dir).unwrap();
    let one = EmbeddedSyncState::open(db.clone(), "one").await.unwrap();
    let two = EmbeddedSyncState::open(db, "two").await.unwrap();
    assert!(
        one.acquire_run_lease("run", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        two.acquire_run_lease("other", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let at = cursor("2024-05-01T12:00:00Z", "x");
    assert_eq!(
        one.advance_watermark("run", &at).await.unwrap(),
        Advance::Moved
    );
    assert_eq!(two.watermark().await.unwrap(), None);

    let reopened = EmbeddedSyncState::open(EmbeddedDb::open(&dir).unwrap(), "one")
        .await
        .unwrap();
    assert_eq!(reopened.watermark().await.unwrap(), Some(at));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn dynamo_sync_state_keeps_the_contract() {
    contract(&dynamo_stores().await.1).await;
}
