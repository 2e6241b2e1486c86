//! The in-process event bus: a broadcast channel that local subscribers (the printer of `make run`,
//! the conversation node's starter) read from. Publishing never blocks; a slow subscriber loses the
//! oldest events and is told how many (`RecvError::Lagged`).

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::ports::{BusError, BusEvent, EventBus};

#[derive(Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<BusEvent>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.sender.subscribe()
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        // No subscriber is not an error: the event simply has no audience, as on a bus without rules.
        let _ = self.sender.send(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_receives_each_published_event() {
        let bus = InProcessBus::new(8);
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        let event = BusEvent::new("test", "Thing", &serde_json::json!({"n": 1}));
        bus.publish(&event).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), event);
        assert_eq!(b.recv().await.unwrap(), event);
    }
}
