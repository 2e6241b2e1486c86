//! A red commit's trigger through the real EventBridge client on moto: exactly one event arrives on
//! the bus, in the documented shape (`events/schemas/ProactiveConversationRequested.schema.json`).

use std::sync::Arc;
use std::time::Duration;

use e2e::event_schemas::violations;
use e2e::moto::{self, EventObserver};
use shared::adapters::dynamo::ProactiveTable;
use shared::adapters::eventbridge::EventBridgeBus;
use shared::domain::{TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_in_the_documented_shape_reaches_the_bus() {
    let observer = EventObserver::start(TRIGGER_SOURCE).await;
    let dynamodb = moto::dynamodb().await;
    let tables = moto::unique_tables(&dynamodb).await;
    let store = Arc::new(ProactiveTable::new(dynamodb, tables.proactive));
    let bus = Arc::new(EventBridgeBus::new(
        moto::eventbridge().await,
        observer.bus_name(),
    ));

    let trigger_id = e2e::trigger_scenarios::send_red_commit(store, bus).await;

    let events = observer.receive(2, Duration::from_secs(3)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["source"], TRIGGER_SOURCE);
    assert_eq!(events[0]["detail-type"], TRIGGER_DETAIL_TYPE);
    let detail = &events[0]["detail"];
    assert_eq!(detail["trigger_id"], trigger_id.as_str());
    let errors = violations(TRIGGER_DETAIL_TYPE, detail);
    assert!(errors.is_empty(), "{errors:?}\n{detail}");
}
