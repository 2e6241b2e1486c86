//! Adapters of the ports: one file per backend.
//!
//! - [`embedded`]: SQLite files under `DATA_DIR` for local runs (data survives a restart).
//! - [`dynamo`]: DynamoDB through the AWS SDK.
//! - [`eventbridge`]: EventBridge `PutEvents`.
//! - [`in_process_bus`]: an in-process broadcast bus for local runs.

pub mod dynamo;
pub mod embedded;
pub mod eventbridge;
pub mod in_process_bus;
