//! Domain types: identifiers, workflow runs and their groups, the repository registry, the trigger event.

pub mod conversation;
pub mod ids;
pub mod repository;
pub mod trigger;
pub mod workflow;

pub use conversation::{
    AgentState, Conversation, ConversationId, ConversationStatus, CreatedCursor,
};
pub use ids::{DeliveryId, GroupKey, HeadSha, InvalidId, RepoId, TriggerId};
pub use repository::Repository;
pub use trigger::{
    OutboxEntry, ProactiveConversationRequested, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE,
};
pub use workflow::{GroupState, RunStatus, RunTally, WorkflowRun, WorkflowRunGroup};
