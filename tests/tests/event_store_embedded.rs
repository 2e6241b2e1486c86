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
