//! Test harness shared by the integration tests and the developer binaries.
//!
//! - [`fakes`]: local HTTP fakes of third-party APIs (GitHub).
//! - [`webhook_samples`]: the signed sample webhooks in `events/` and the GitHub fake's seed.
//! - [`webhook_sender`]: reading a sample and sending it signed (the `send-webhook` binary).

pub mod fakes;
pub mod webhook_samples;
pub mod webhook_sender;
