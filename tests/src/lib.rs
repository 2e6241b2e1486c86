//! Harness code shared by the integration tests in `tests/tests/` and the developer binaries:
//! - [`moto`]: AWS SDK clients against the local moto server, fresh tables, an EventBridge observer.
//! - [`contract`]: the store ports' contract suites, run against every adapter.
//! - [`fakes`]: local HTTP fakes of third-party APIs (GitHub, an OpenAI-compatible model).
//! - [`node`]: conversation nodes served in the test process; [`socketio`]: the official Socket.IO client.

pub mod contract;
pub mod fakes;
pub mod moto;
pub mod node;
pub mod socketio;
pub mod trigger_scenarios;
