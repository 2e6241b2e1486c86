//! Domain types: identifiers, workflow runs and their groups, the repository registry, the trigger event.

mod chat;
mod conversation;
mod event;
mod ids;
mod model_settings;
mod repository;
mod settings;
pub mod state_changed;
pub mod status;
pub mod trigger;
pub mod user_action;
mod workflow;

pub use chat::{ChatMessage, ChatRole, content_text};
pub use conversation::{
    AgentState, Checkout, Conversation, ConversationId, ConversationStatus, CreatedCursor,
    RemoteAgent,
};
pub use event::{
    ConversationEvent, EventBody, EventSource, InboxId, MAX_EVENT_BYTES, RemoteEventRef,
};
pub use ids::{DeliveryId, GroupKey, HeadSha, InvalidId, NodeId, RepoId, TriggerId, UserId};
pub use model_settings::{ApiKey, InvalidModelSettings, ModelSettings};
pub use repository::Repository;
pub use settings::UserSettings;
pub use state_changed::ConversationStateChanged;
pub use status::{StatusKind, StatusUpdate};
pub use trigger::{
    OutboxEntry, ProactiveConversationRequested, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE,
};
pub use user_action::{InvalidAction, UserAction};
pub use workflow::{GroupState, Outcome, RunStatus, RunTally, WorkflowRun, WorkflowRunGroup};
