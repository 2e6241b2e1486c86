//! The conversation store contract against `ConversationTable` on moto, each case on fresh tables.

use std::sync::Arc;

use e2e::moto;
use shared::adapters::dynamo::ConversationTable;
use shared::ports::ConversationStore;

async fn fresh_store() -> Arc<dyn ConversationStore> {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    Arc::new(ConversationTable::new(client, tables.conversations))
}

e2e::conversation_store_contract!(fresh_store);
