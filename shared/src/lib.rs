//! The library every deployable of the proactive bundle is built on.
//!
//! A map of the crate:
//! - [`domain`]: identifiers, workflow runs and groups, the repository registry, the trigger event.
//! - [`ports`]: the traits each external dependency sits behind (stores, event bus).
//! - [`adapters`]: their implementations: DynamoDB and EventBridge for AWS, embedded ones for local runs.
//! - [`proactive`]: the trigger decision (`store_workflow_information`) and the outbox publisher.
//! - [`webhook`]: the GitHub webhook endpoint's logic (signature, payloads, gates, answers).
//! - [`github`]: the GitHub REST client.
//! - [`config`], [`aws`], [`telemetry`]: configuration from the environment, the AWS SDK setup, logging.
//! - [`wiring`]: building the configured adapters and services once per process.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod domain;
pub mod github;
pub mod ports;
pub mod proactive;
pub mod telemetry;
pub mod webhook;
pub mod wiring;
