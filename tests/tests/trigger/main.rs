//! The webhook and the trigger: the GitHub client against its fake, the signed sample deliveries, the
//! event schemas, and the exactly-once trigger scenarios on both stores and EventBridge.
//! One test binary for the area, a module per file (linking once, not once per file).

mod event_samples;
mod github_client;
mod trigger_dynamo;
mod trigger_embedded;
mod trigger_eventbridge;
mod webhook_samples;
