//! The trigger scenarios on DynamoDB (moto, the real SDK client), each on fresh tables.

use std::sync::Arc;

use e2e::moto;
use shared::adapters::dynamo::ProactiveTable;
use shared::ports::ProactiveStore;

async fn fresh_store() -> Arc<dyn ProactiveStore> {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    Arc::new(ProactiveTable::new(client, tables.proactive))
}

e2e::trigger_scenarios!(fresh_store);
