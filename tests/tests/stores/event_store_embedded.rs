//! The event store contract against `EmbeddedEventStore`, each case on a fresh in-memory database.

use std::sync::Arc;

use shared::adapters::embedded::{EmbeddedDb, EmbeddedEventStore};
use shared::ports::EventStore;

async fn fresh_store() -> Arc<dyn EventStore> {
    let db = EmbeddedDb::in_memory().expect("an in-memory database");
    Arc::new(
        EmbeddedEventStore::open(db)
            .await
            .expect("the event tables are created"),
    )
}

e2e::event_store_contract!(fresh_store);

/// Two databases on one file stand for two processes (nodes sharing a data directory): fencing from
/// both at once waits for the other's write instead of failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_fence_concurrently_without_failing() {
    use shared::domain::ConversationId;

    let dir = tempfile::tempdir().expect("a data dir");
    let mut stores = Vec::new();
    for _ in 0..2 {
        let db = EmbeddedDb::open(dir.path()).expect("open the file");
        let store: Arc<dyn EventStore> =
            Arc::new(EmbeddedEventStore::open(db).await.expect("its tables"));
        stores.push(store);
    }
    let mut writers = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        writers.push(tokio::spawn(async move {
            for round in 0..200u64 {
                let conversation = ConversationId::parse(&format!("c{}", round % 10)).unwrap();
                let epoch = round * 2 + n as u64 + 1;
                store
                    .fence(&conversation, epoch)
                    .await
                    .expect("a fence waits for the other writer");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("the writer finishes");
    }
}
