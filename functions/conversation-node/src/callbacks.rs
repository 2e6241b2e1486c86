//! State-change callbacks: every agent state change becomes a `ConversationStateChanged` event on the
//! event bus. Loops hand changes to a bounded queue without waiting; one worker publishes them with
//! bounded retries (`RetryPolicy::STATE_CALLBACK`). A full queue or a bus that stays down drops the
//! event (counted and logged), it never blocks a loop and never disables later callbacks.

use std::sync::Arc;

use shared::domain::ConversationStateChanged;
use shared::domain::state_changed::{NODE_SOURCE, STATE_CHANGED_DETAIL_TYPE};
use shared::ports::{BusEvent, EventBus};
use shared::retry::{Retrier, RetryPolicy};
use tokio::sync::mpsc;

use crate::metrics::NodeMetrics;

const QUEUE_CAPACITY: usize = 10_000;

pub(crate) struct StateCallbacks {
    queue: mpsc::Sender<ConversationStateChanged>,
    metrics: Arc<NodeMetrics>,
}

impl StateCallbacks {
    /// The callbacks and their worker, for the caller to run (it ends when the callbacks are dropped).
    pub(crate) fn new(
        bus: Arc<dyn EventBus>,
        metrics: Arc<NodeMetrics>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let worker = publish_all(receiver, bus, Arc::clone(&metrics));
        (Self { queue, metrics }, worker)
    }

    pub(crate) fn notify(&self, change: ConversationStateChanged) {
        if let Err(error) = self.queue.try_send(change) {
            self.metrics.state_changes_dropped.inc();
            tracing::warn!(reason = %error, "state change callback dropped: queue full");
        }
    }
}

async fn publish_all(
    mut receiver: mpsc::Receiver<ConversationStateChanged>,
    bus: Arc<dyn EventBus>,
    metrics: Arc<NodeMetrics>,
) {
    let retrier = Retrier::new(RetryPolicy::STATE_CALLBACK);
    while let Some(change) = receiver.recv().await {
        let event = BusEvent::new(NODE_SOURCE, STATE_CHANGED_DETAIL_TYPE, &change);
        let published = retrier
            .run(|| async {
                let published = bus.publish(&event).await;
                if let Err(error) = &published {
                    tracing::info!(reason = %error, "state change publish failed");
                }
                published
            })
            .await;
        match published {
            Ok(()) => {
                metrics.state_changes_published.inc();
            }
            Err(error) => {
                metrics.state_changes_dropped.inc();
                tracing::warn!(
                    conversation_id = %change.conversation_id,
                    reason = %error,
                    "state change callback dropped: the bus kept failing"
                );
            }
        }
    }
}
