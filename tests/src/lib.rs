//! Harness code shared by the integration tests in `tests/tests/` (one binary per area: `stores`,
//! `trigger`, `node`, `functions`) and the developer binaries:
//! - [`agent_server`]: a real OpenHands agent-server on loopback.
//! - [`moto`]: AWS SDK clients against the local moto server, fresh tables, an EventBridge observer.
//! - [`iam`]: the template's role policies, and a moto server of a test's own that enforces them.
//! - [`bench_out`]: where the benchmark programs write their figures as JSON (`BENCH_OUT`).
//! - [`balancer`]: a loopback TCP load balancer (round robin over live nodes) for reconnecting clients.
//! - [`cleanup_scenarios`]: the cleanup function's pass on every store adapter.
//! - [`cluster`]: clustered node processes (the real binary) on Redis and moto.
//! - [`contract`]: the store ports' contract suites, run against every adapter.
//! - [`event_schemas`]: the events' JSON schemas (`events/schemas/`) and validation against them.
//! - [`fakes`]: local HTTP fakes of third-party APIs (GitHub, Keycloak, Common Room, an OpenAI-compatible model).
//! - [`node`]: conversation nodes served in the test process; [`socketio`]: the official Socket.IO client.
//! - [`metrics`]: reading a node's `/metrics` (Prometheus text).
//! - [`redis`]: the Redis server of the tests and a key prefix per test; [`redis_tls`]: a TLS Redis with a
//!   password, its CA made by the test.
//! - [`sentinel`]: a Redis Sentinel deployment of a test's own (primary, replica, 3 sentinels) to fail over.
//! - [`sync_world`]: the Common Room sync's test world (fakes, users, conversations) and rate benchmark.
//! - [`trigger_world`], [`trigger_scenarios`]: driving the trigger with signed deliveries; its scenarios.
//! - [`lambda_tools`]: cargo-lambda (build, the `watch` emulator, invoke), cfn-lint and the SAM CLI.
//! - [`webhook_samples`]: the signed sample webhooks in `events/` and the GitHub fake's seed.
//! - [`webhook_sender`]: reading a sample and sending it signed (the `send-webhook` binary).

pub mod agent_server;
pub mod balancer;
pub mod bench_out;
pub mod cleanup_scenarios;
pub mod cluster;
pub mod contract;
pub mod event_schemas;
pub mod fakes;
pub mod iam;
pub mod lambda_tools;
pub mod metrics;
pub mod moto;
pub mod node;
pub mod redis;
pub mod redis_tls;
pub mod sentinel;
pub mod socketio;
pub mod sync_world;
pub mod trigger_scenarios;
pub mod trigger_world;
pub mod webhook_samples;
pub mod webhook_sender;

/// A binary of the workspace in this build profile: beside a program (`<target>/<profile>/bench`) or
/// one level up from a test binary (`<target>/<profile>/deps/`); a workspace test run builds them all.
pub fn built_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|binary| binary.exists())
        .unwrap_or_else(|| {
            panic!(
                "no {name} beside {}: run `cargo build [--release] -p {name}` first (a workspace \
                 test run builds it)",
                exe.display()
            )
        })
}

/// A test user's id.
pub fn user_id(raw: &str) -> shared::domain::UserId {
    shared::domain::UserId::parse(raw).expect("a well-formed user id")
}
