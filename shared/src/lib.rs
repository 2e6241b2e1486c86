//! The library every deployable of the proactive bundle is built on.
//!
//! A map of the crate:
//! - [`domain`]: identifiers, workflow runs and groups, the repository registry, the trigger event.
//! - [`ports`]: the traits each external dependency sits behind (stores, event bus).
//! - [`adapters`]: their implementations: DynamoDB and EventBridge for AWS, embedded ones for local runs.
//! - [`proactive`]: the trigger decision (`store_workflow_information`) and the outbox publisher.
//! - [`github`]: the GitHub REST client.
//! - [`keycloak`]: the Keycloak admin REST client (the sync finds users with it; the webhook will too).
//!
//! The webhook's and the Common Room sync's own logic live in their function crates; the SQLite and Redis adapters are behind the
//! features `embedded` and `redis`.
//! - [`rate_limit`], [`retry`], [`http_client`]: what every third-party client shares.
//! - [`secret`]: a string that never prints; [`secrets`]: the secret values from Secrets Manager (`SECRETS_ARN`).
//! - [`config`], [`aws`], [`telemetry`]: configuration from the environment, the AWS SDK setup, logging.
//! - [`wiring`]: building the configured adapters and services once per process.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod domain;
pub mod github;
pub mod http_client;
pub mod keycloak;
pub mod ports;
pub mod proactive;
pub mod rate_limit;
pub mod retry;
pub mod secret;
pub mod secrets;
pub mod telemetry;
pub mod wiring;
