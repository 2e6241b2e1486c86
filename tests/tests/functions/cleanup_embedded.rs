//! The cleanup scenarios on the embedded store, publishing on the in-process bus (the cluster's on
//! real Redis).

use std::sync::Arc;

use e2e::cleanup_scenarios::{Published, Stack};
use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb, EmbeddedProactiveStore};
use shared::adapters::in_process_bus::InProcessBus;

async fn fresh_stack() -> Stack {
    let db = EmbeddedDb::in_memory().unwrap();
    let store = EmbeddedProactiveStore::open(db.clone()).await.unwrap();
    let conversations = EmbeddedConversationStore::open(db).await.unwrap();
    let bus = InProcessBus::default();
    Stack {
        store: Arc::new(store),
        conversations: Arc::new(conversations),
        published: Published::InProcess(bus.subscribe()),
        bus: Arc::new(bus),
    }
}

e2e::cleanup_scenarios!(fresh_stack);
