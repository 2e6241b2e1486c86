//! The proactive trigger: the decision over a workflow-run group, and the outbox publisher.

pub mod decision;
pub mod outbox;

pub use decision::{Decision, DecisionError, RunDelivery, store_workflow_information};
pub use outbox::{
    PublishError, RepublishReport, publish_trigger, republish_pending, trigger_event,
};
