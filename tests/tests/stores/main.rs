//! The store and coordination ports' contract suites on every adapter against the real component (the
//! embedded store, DynamoDB and EventBridge on moto, Redis), one module per adapter.
//! One test binary for the area, a module per file (linking once, not once per file).

mod conversation_store_dynamo;
mod conversation_store_embedded;
mod coordination_local;
mod coordination_redis;
mod event_store_dynamo;
mod event_store_embedded;
mod eventbridge_bus;
mod proactive_store_dynamo;
mod proactive_store_embedded;
mod redis_tls;
mod sentinel_harness;
mod sync_state_contract;
