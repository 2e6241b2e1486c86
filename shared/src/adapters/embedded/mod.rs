//! Embedded adapters for local runs: one SQLite file (`<DATA_DIR>/store.sqlite`) that survives a restart.
//! Each adapter owns its tables and creates them on open; all share one [`EmbeddedDb`].
//!
//! - [`proactive`]: the proactive store (registry, groups, deliveries, outbox).

mod db;
pub mod proactive;

pub use db::EmbeddedDb;
pub use proactive::EmbeddedProactiveStore;
