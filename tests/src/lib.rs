//! Harness code shared by the integration tests in `tests/tests/`:
//! - [`moto`]: AWS SDK clients against the local moto server, fresh tables, an EventBridge observer.
//! - [`contract`]: the store ports' contract suites, run against every adapter.

pub mod contract;
pub mod moto;
