//! The event store contract against `EventTable` on moto (`TEST_AWS_ENDPOINT_URL`), each case on a
//! fresh table with the documented key schema: `pk` (S) conversation id, `sk` (N) event id.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use shared::adapters::dynamo::EventTable;
use shared::ports::EventStore;

const ENDPOINT_VAR: &str = "TEST_AWS_ENDPOINT_URL";

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    let endpoint = std::env::var(ENDPOINT_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{ENDPOINT_VAR} is not set: run `make test`, or start a moto server \
                 (`.venv/bin/python ../shared/tools/moto_serial.py 127.0.0.1 PORT`) and export \
                 {ENDPOINT_VAR}=http://127.0.0.1:PORT"
            )
        });
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("an attribute definition")
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("a key element")
}

async fn fresh_store() -> Arc<dyn EventStore> {
    let client = dynamodb().await;
    let table = format!("conversation-events-{}", uuid::Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create the events table on moto");
    Arc::new(EventTable::new(client, table))
}

e2e::event_store_contract!(fresh_store);
