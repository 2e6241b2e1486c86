//! `EventBridgeBus` on moto: what it publishes reaches a rule's target exactly as given.

use std::time::Duration;

use e2e::moto::{self, EventObserver};
use serde_json::json;
use shared::adapters::eventbridge::EventBridgeBus;
use shared::ports::{BusEvent, EventBus};

const SOURCE: &str = "proactive.test";
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_published_event_reaches_the_bus_as_published() {
    let observer = EventObserver::start(SOURCE).await;
    let bus = EventBridgeBus::new(moto::eventbridge().await, observer.bus_name());
    let detail = json!({
        "trigger_id": "trg-0123456789abcdef0123456789abcdef",
        "failed_runs": [{"id": 1, "name": "CI", "conclusion": "failure"}],
        "run_count": 2,
    });
    let event = BusEvent::new(SOURCE, "ProactiveConversationRequested", &detail);
    bus.publish(&event).await.expect("publish");

    let received = observer.receive(1, DELIVERY_WAIT).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["source"], SOURCE);
    assert_eq!(received[0]["detail-type"], "ProactiveConversationRequested");
    assert_eq!(received[0]["detail"], detail);
}

#[tokio::test]
async fn publishing_to_a_missing_bus_is_an_error() {
    let bus = EventBridgeBus::new(moto::eventbridge().await, moto::unique_name("no-such-bus"));
    let event = BusEvent::new(SOURCE, "Lost", &json!({}));
    let error = bus.publish(&event).await.expect_err("no such bus");
    // AWS answers per entry (`Rejected`), moto for the whole call (`Unavailable`): both name the cause.
    assert!(
        error.to_string().contains("ResourceNotFoundException"),
        "{error:?}"
    );
}
