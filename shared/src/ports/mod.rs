//! Ports: the small traits every external dependency sits behind.

pub mod conversation_store;
pub mod event_bus;
pub mod proactive_store;
pub mod sync_state;

pub use conversation_store::ConversationStore;
pub use event_bus::{BusError, BusEvent, EventBus};
pub use proactive_store::{Expected, ProactiveStore, StoreError, WriteOutcome};
pub use sync_state::{Advance, SyncStateStore};
