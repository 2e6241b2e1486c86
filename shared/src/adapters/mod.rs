//! Adapters of the ports: one file per backend; `embedded` and `redis` behind the features of the same
//! names, so that a deployable links them only when it runs them.
//!
//! - [`embedded`]: SQLite files under `DATA_DIR` for local runs (data survives a restart).
//! - [`dynamo`]: DynamoDB through the AWS SDK.
//! - [`eventbridge`]: EventBridge `PutEvents`.
//! - [`in_process_bus`]: an in-process broadcast bus for local runs.
//! - [`local_cluster`]: in-process cluster coordination (a standalone node is a cluster of one).
//! - [`redis`]: cluster coordination on Redis (`REDIS_URL`).

pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod eventbridge;
pub mod in_process_bus;
pub mod local_cluster;
#[cfg(feature = "redis")]
pub mod redis;
