//! The cleanup scenarios on DynamoDB (moto), re-publishing through the real EventBridge client to a
//! moto bus observed through an SQS queue (the cluster's on real Redis); and a pass whose store is
//! unavailable.

use std::sync::Arc;

use cleanup::{Cleanup, CleanupError, CleanupOptions, StepOutcome};
use e2e::cleanup_scenarios::{Published, Stack};
use e2e::moto::{self, EventObserver};
use shared::adapters::dynamo::{ConversationTable, ProactiveTable};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::domain::TRIGGER_SOURCE;

async fn fresh_stack() -> Stack {
    let dynamodb = moto::dynamodb().await;
    let tables = moto::unique_tables(&dynamodb).await;
    let observer = EventObserver::start(TRIGGER_SOURCE).await;
    let bus = EventBridgeBus::new(moto::eventbridge().await, observer.bus_name());
    Stack {
        store: Arc::new(ProactiveTable::new(dynamodb.clone(), tables.proactive)),
        conversations: Arc::new(ConversationTable::new(dynamodb, tables.conversations)),
        bus: Arc::new(bus),
        published: Published::EventBridge(observer),
    }
}

e2e::cleanup_scenarios!(fresh_stack);

#[tokio::test]
async fn a_missing_table_fails_both_steps_with_a_short_reason() {
    let store = ProactiveTable::new(moto::dynamodb().await, moto::unique_name("no-such-table"));
    let bus = EventBridgeBus::new(moto::eventbridge().await, "default");
    let cleanup = Cleanup::new(Arc::new(store), Some(Arc::new(bus)));
    let error = cleanup
        .run(&CleanupOptions::default())
        .await
        .expect_err("no table");
    let CleanupError::StepsFailed(summary) = error;
    assert_eq!(summary.failed_steps(), ["outbox", "retention"]);
    for outcome in [
        serde_json::to_value(&summary.outbox).unwrap(),
        serde_json::to_value(&summary.retention).unwrap(),
    ] {
        assert_eq!(outcome["status"], "failed");
        assert_eq!(
            outcome["error"],
            "store unavailable: dynamodb Query: ResourceNotFoundException"
        );
    }
    assert!(matches!(summary.retention, StepOutcome::Failed { .. }));
}
