//! Embedded adapters for local runs: one SQLite file (`<DATA_DIR>/store.sqlite`) that survives a restart.
//! Each adapter owns its tables and creates them on open; all share one [`EmbeddedDb`].
//!
//! - [`proactive`]: the proactive store (registry, groups, deliveries, outbox).
//! - [`events`]: the conversation event store (events and fenced heads).

mod db;
pub mod events;
pub mod proactive;

pub use db::EmbeddedDb;
pub use events::EmbeddedEventStore;
pub use proactive::EmbeddedProactiveStore;
