//! Embedded adapters for local runs: one SQLite file (`<DATA_DIR>/store.sqlite`) that survives a restart.
//! Each adapter owns its tables and creates them on open; all share one [`EmbeddedDb`].
//!
//! - `proactive`: the proactive store (registry, groups, deliveries, outbox).
//! - `events`: the conversation event store (events and fenced heads).
//! - `conversations`: the conversation store (metadata, per-user and creation-order listings).
//! - `sync_state`: a sync's watermark and run lease.

mod conversations;
mod db;
mod events;
mod proactive;
mod sync_state;

pub use conversations::EmbeddedConversationStore;
pub use db::EmbeddedDb;
pub use events::EmbeddedEventStore;
pub use proactive::EmbeddedProactiveStore;
pub use sync_state::EmbeddedSyncState;
