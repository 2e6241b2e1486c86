//! DynamoDB adapters.
//!
//! - [`events`]: the conversation event store (`EVENTS_TABLE`).

pub mod events;

pub use events::EventTable;
