//! The trigger scenarios on the embedded store.

use std::sync::Arc;

use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::ports::ProactiveStore;

async fn fresh_store() -> Arc<dyn ProactiveStore> {
    Arc::new(
        EmbeddedProactiveStore::open(EmbeddedDb::in_memory().unwrap())
            .await
            .unwrap(),
    )
}

e2e::trigger_scenarios!(fresh_store);
