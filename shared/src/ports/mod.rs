//! Ports: the small traits every external dependency sits behind.

mod cluster_janitor;
mod conversation_store;
pub mod coordination;
mod event_bus;
pub mod event_store;
mod proactive_store;
mod store_error;
mod sync_state;

pub use cluster_janitor::{ClusterJanitor, Reaped};
pub use conversation_store::{ConversationStore, LoopState, OwnerWrite};
pub use coordination::Coordination;
pub use event_bus::{BusError, BusEvent, EventBus};
pub use event_store::EventStore;
pub use proactive_store::{CommentClaim, Expected, ProactiveStore, WriteOutcome};
pub use store_error::StoreError;
pub use sync_state::{Advance, SyncStateStore};
