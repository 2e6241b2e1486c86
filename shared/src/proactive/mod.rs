//! The proactive trigger: the decision over a workflow-run group, the outbox publisher, and who a
//! conversation is for (the links between GitHub accounts and product users, the users' settings).

mod decision;
mod outbox;
mod owners;

pub use decision::{
    Decision, DecisionError, RunDelivery, reconcile_group, store_workflow_information,
};
pub use outbox::{
    PublishError, RepublishReport, publish_trigger, republish_pending, trigger_event,
};
pub use owners::{AccountLinks, GitHubAccount, LinkError};

/// How long workflow-run groups are kept after their last update (`PROACTIVE_RETENTION_DAYS`, default 30).
pub fn retention_from_env() -> Result<std::time::Duration, crate::config::ConfigError> {
    let days: u64 = crate::config::parsed("PROACTIVE_RETENTION_DAYS", 30)?;
    Ok(std::time::Duration::from_secs(days * 24 * 3600))
}

/// Whether a user who never chose gets proactive conversations (`PROACTIVE_DEFAULT`, on unless set).
pub fn proactive_default_from_env() -> Result<bool, crate::config::ConfigError> {
    crate::config::flag("PROACTIVE_DEFAULT", true)
}
