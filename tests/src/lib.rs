//! Harness code shared by the integration tests in `tests/tests/`:
//! - [`contract`]: the store ports' contract suites, run against every adapter.

pub mod contract;
