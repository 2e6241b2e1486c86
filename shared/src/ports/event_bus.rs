//! The event-bus port. Adapters: `adapters::eventbridge::EventBridgeBus` and `adapters::in_process_bus::InProcessBus`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One event as EventBridge carries it: `source`, `detail-type` and a JSON `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: serde_json::Value,
}

impl BusEvent {
    pub fn new(source: &str, detail_type: &str, detail: &impl Serialize) -> Self {
        Self {
            source: source.to_owned(),
            detail_type: detail_type.to_owned(),
            detail: serde_json::to_value(detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("event rejected by the bus: {code}: {message}")]
    Rejected { code: String, message: String },
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: &BusEvent) -> Result<(), BusError>;
}
