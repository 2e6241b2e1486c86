//! The event store contract against `EventTable` on moto, each case on fresh tables (`create_tables`
//! makes the events table with its documented key schema: `pk` (S) conversation id, `sk` (N) event id).

use std::sync::Arc;

use e2e::moto;
use shared::adapters::dynamo::EventTable;
use shared::ports::EventStore;

async fn fresh_store() -> Arc<dyn EventStore> {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    Arc::new(EventTable::new(client, tables.events))
}

e2e::event_store_contract!(fresh_store);
