//! `ConversationStateChanged` on the event bus (EventBridge on moto) for every agent state change, in the
//! documented shape (`events/schemas/ConversationStateChanged.schema.json`), and a bus that fails never
//! holding the agent loop up.

use std::time::Duration;

use e2e::event_schemas::violations;
use e2e::moto::{self, EventObserver};
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token};
use serde_json::{Value, json};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::domain::state_changed::STATE_CHANGED_DETAIL_TYPE;
use std::sync::Arc;

const SOURCE: &str = "proactive.conversations";
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

fn transition(event: &Value) -> (Value, Value) {
    (
        event["detail"]["old_state"].clone(),
        event["detail"]["new_state"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_is_published() {
    let observer = EventObserver::start(SOURCE).await;
    let mut options = NodeOptions::new();
    options.bus = Arc::new(EventBridgeBus::new(
        moto::eventbridge().await,
        observer.bus_name(),
    ));
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, Some("hello")).await;
    node.wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;

    let mut received = observer.receive(4, DELIVERY_WAIT).await;
    assert_eq!(received.len(), 4, "{received:?}");
    // Delivery through the queue may reorder; the events' ids tell the order.
    received.sort_by_key(|event| event["detail"]["event_id"].as_u64());
    for event in &received {
        assert_eq!(event["detail-type"], STATE_CHANGED_DETAIL_TYPE);
        assert_eq!(event["detail"]["conversation_id"], id.as_str());
        assert_eq!(event["detail"]["user_id"], "alice");
        assert_eq!(event["detail"]["trigger_id"], Value::Null);
        let errors = violations(STATE_CHANGED_DETAIL_TYPE, &event["detail"]);
        assert!(errors.is_empty(), "{errors:?}\n{event}");
    }
    let ids: Vec<_> = received
        .iter()
        .map(|e| e["detail"]["event_id"].clone())
        .collect();
    assert_eq!(ids, [json!(0), json!(1), json!(3), json!(5)]);
    let transitions: Vec<_> = received.iter().map(transition).collect();
    assert_eq!(
        transitions,
        [
            (Value::Null, json!("loading")),
            (json!("loading"), json!("awaiting_user_input")),
            (json!("awaiting_user_input"), json!("running")),
            (json!("running"), json!("awaiting_user_input")),
        ]
    );
    assert_eq!(
        node.metric("conversation_node_state_changes_published_total")
            .await,
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bus_does_not_hold_the_loop_up() {
    let mut options = NodeOptions::new();
    let missing = moto::unique_name("no-such-bus");
    options.bus = Arc::new(EventBridgeBus::new(moto::eventbridge().await, missing));
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, Some("hello")).await;
    node.wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;
    // Each change is dropped after its retries, and counted.
    while node
        .metric("conversation_node_state_changes_dropped_total")
        .await
        < 4.0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        node.metric("conversation_node_state_changes_published_total")
            .await,
        0.0
    );
}
