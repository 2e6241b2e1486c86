//! The proactive trigger: the decision over a workflow-run group, and the outbox publisher.

mod decision;
mod outbox;

pub use decision::{Decision, DecisionError, RunDelivery, store_workflow_information};
pub use outbox::{
    PublishError, RepublishReport, publish_trigger, republish_pending, trigger_event,
};

/// How long workflow-run groups are kept after their last update (`PROACTIVE_RETENTION_DAYS`, default 30).
pub fn retention_from_env() -> Result<std::time::Duration, crate::config::ConfigError> {
    let days: u64 = crate::config::parsed("PROACTIVE_RETENTION_DAYS", 30)?;
    Ok(std::time::Duration::from_secs(days * 24 * 3600))
}
