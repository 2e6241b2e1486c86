//! The conversation store contract against `EmbeddedConversationStore`, each case on a fresh in-memory
//! database.

use std::sync::Arc;

use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb};
use shared::ports::ConversationStore;

async fn fresh_store() -> Arc<dyn ConversationStore> {
    let db = EmbeddedDb::in_memory().expect("in-memory database");
    Arc::new(
        EmbeddedConversationStore::open(db)
            .await
            .expect("conversation store"),
    )
}

e2e::conversation_store_contract!(fresh_store);
