//! The EventBridge adapter of the event-bus port: one `PutEvents` entry per event on the configured bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::ports::{BusError, BusEvent, EventBus};

/// Publishes to one EventBridge bus; cheap to clone.
#[derive(Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&event.source)
            .detail_type(&event.detail_type)
            .detail(event.detail.to_string())
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                BusError::Unavailable(format!(
                    "eventbridge PutEvents: {}",
                    crate::aws::failure_cause(&e)
                ))
            })?;
        // PutEvents succeeds as a call even when its entries fail: each entry carries its own error.
        let rejected = output.entries().iter().find(|e| e.error_code().is_some());
        match (output.failed_entry_count(), rejected) {
            (0, None) => Ok(()),
            (_, Some(entry)) => Err(BusError::Rejected {
                code: entry.error_code().unwrap_or_default().to_owned(),
                message: entry.error_message().unwrap_or_default().to_owned(),
            }),
            (failed, None) => Err(BusError::Rejected {
                code: "FailedEntry".into(),
                message: format!("{failed} entry failed without an error code"),
            }),
        }
    }
}
