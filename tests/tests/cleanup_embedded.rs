//! The cleanup scenarios on the embedded store, publishing on the in-process bus.

use std::sync::Arc;

use e2e::cleanup_scenarios::{Published, Stack};
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::adapters::in_process_bus::InProcessBus;

async fn fresh_stack() -> Stack {
    let store = EmbeddedProactiveStore::open(EmbeddedDb::in_memory().unwrap())
        .await
        .unwrap();
    let bus = InProcessBus::default();
    Stack {
        store: Arc::new(store),
        published: Published::InProcess(bus.subscribe()),
        bus: Arc::new(bus),
    }
}

e2e::cleanup_scenarios!(fresh_stack);
