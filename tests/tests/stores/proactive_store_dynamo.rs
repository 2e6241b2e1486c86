//! The proactive store contract against `ProactiveTable` on moto (each case on fresh tables), and what
//! is particular to the DynamoDB adapter: table creation, corrupt items, service errors.

use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use e2e::moto;
use shared::adapters::dynamo::{ProactiveTable, create_tables};
use shared::domain::{GroupKey, HeadSha, RepoId};
use shared::ports::{ProactiveStore, StoreError};

async fn fresh_store() -> Arc<dyn ProactiveStore> {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    Arc::new(ProactiveTable::new(client, tables.proactive))
}

e2e::proactive_store_contract!(fresh_store);

#[tokio::test]
async fn creating_the_tables_twice_is_fine_and_enables_ttl() {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    create_tables(&client, &tables)
        .await
        .expect("a second creation is a no-op");
    let ttl = client
        .describe_time_to_live()
        .table_name(&tables.proactive)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().expect("a TTL description");
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

#[tokio::test]
async fn an_undecodable_group_is_reported_corrupt() {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    let key = GroupKey {
        repo_id: RepoId::from_github(1),
        pr_number: 2,
        head_sha: HeadSha::parse(&"d".repeat(40)).unwrap(),
    };
    client
        .put_item()
        .table_name(&tables.proactive)
        .item("pk", AttributeValue::S(format!("GROUP#{key}")))
        .item("sk", AttributeValue::S("GROUP".into()))
        .item("runs", AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    let store = ProactiveTable::new(client, tables.proactive);
    let error = store.get_group(&key).await.expect_err("a corrupt group");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn a_missing_table_is_unavailable_with_a_short_reason() {
    let store = ProactiveTable::new(moto::dynamodb().await, moto::unique_name("no-such-table"));
    let error = store
        .get_repo_id("octo", "hello")
        .await
        .expect_err("no table");
    match error {
        StoreError::Unavailable(reason) => {
            assert_eq!(reason, "dynamodb GetItem: ResourceNotFoundException");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
