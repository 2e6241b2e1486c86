//! Test harness shared by the integration tests and the developer binaries.
//!
//! - [`fakes`]: local HTTP fakes of third-party APIs (GitHub).

pub mod fakes;
