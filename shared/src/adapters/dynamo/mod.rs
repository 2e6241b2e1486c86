//! DynamoDB adapters.
//!
//! - [`sync_state`]: a sync's watermark and run lease, one item of the proactive table.

pub mod sync_state;

pub use sync_state::SyncStateItem;
