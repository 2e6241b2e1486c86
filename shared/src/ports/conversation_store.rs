//! The conversation store port: conversation metadata, with the `created_at` order the sync reads and
//! the running conversations the cleanup reads.
//!
//! Who writes what: creation writes the whole conversation once; its owner (the node holding its lease)
//! writes the loop's state ([`LoopState`]) under its lease epoch, refused once a higher epoch has
//! written, as event appends are (`event_store`); a stop recorded where no loop runs writes that state
//! without an epoch; anyone else writes single fields that are not the loop's (the title, once). Every
//! write after creation is of its own fields only, so that no writer clobbers another's.
//! Adapters: embedded (SQLite) and DynamoDB; both pass `tests/src/contract/conversation_store.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, CreatedCursor, RemoteAgent,
    UserId,
};
use crate::ports::WriteOutcome;

/// The metadata a conversation's loop keeps up to date; every other field is written at creation,
/// apart from the title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopState {
    pub status: ConversationStatus,
    pub agent_state: AgentState,
    pub last_updated_at: DateTime<Utc>,
    pub remote_agent: Option<RemoteAgent>,
}

impl LoopState {
    pub fn of(conversation: &Conversation) -> Self {
        Self {
            status: conversation.status,
            agent_state: conversation.agent_state,
            last_updated_at: conversation.last_updated_at,
            remote_agent: conversation.remote_agent.clone(),
        }
    }
}

/// The result of an owner's write of its loop's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerWrite {
    Written,
    /// A higher epoch has written the conversation: the writer lost its lease; nothing written.
    Fenced {
        epoch: u64,
    },
    /// No such conversation; nothing written (never created by an update).
    Missing,
}

#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates a conversation as given; `Conflict` when one with the same id exists (the starter's
    /// idempotency).
    async fn create_conversation(
        &self,
        conversation: &Conversation,
    ) -> Result<WriteOutcome, StoreError>;

    /// Creates a conversation as [`Self::create_conversation`] does, its `created_at` and first
    /// `last_updated_at` stamped now, at the write. The sync pages by `created_at` and moves its
    /// watermark past what it has read: a time taken earlier (before a slow GitHub call or lease claim)
    /// could land behind a watermark that moved meanwhile, and the conversation would never be synced.
    async fn create_conversation_now(
        &self,
        conversation: &mut Conversation,
    ) -> Result<WriteOutcome, StoreError> {
        let now = Utc::now();
        conversation.created_at = now;
        conversation.last_updated_at = now;
        self.create_conversation(conversation).await
    }

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError>;

    /// The owner's write of its loop's state under its lease `epoch`: refused (`Fenced`, nothing
    /// written) when a higher epoch has written the conversation, else written and the conversation's
    /// epoch raised to `epoch`, in one conditional write. Other fields are left as they are.
    async fn update_owned(
        &self,
        id: &ConversationId,
        epoch: u64,
        state: &LoopState,
    ) -> Result<OwnerWrite, StoreError>;

    /// Writes `conversation`'s loop state ([`LoopState::of`]) for a writer that holds no lease (a stop
    /// recorded where no loop runs, the cleanup's): the epoch stays, so the next owner's writes pass;
    /// other fields are left as they are. A conversation that does not exist stays absent.
    async fn update_conversation(&self, conversation: &Conversation) -> Result<(), StoreError>;

    /// Sets the title of a conversation that has none; `false` when it has one (or does not exist),
    /// which is left as it is.
    async fn set_title_if_none(&self, id: &ConversationId, title: &str)
    -> Result<bool, StoreError>;

    /// A user's conversations, newest first, at most `limit`.
    async fn list_user_conversations(
        &self,
        user_id: &UserId,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError>;

    /// Conversations strictly after `after` in `(created_at, id)` order, oldest first, at most `limit`.
    /// Served by an index: never a scan of the whole table.
    async fn list_created_after(
        &self,
        after: &CreatedCursor,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError>;

    /// Conversations whose status is `Running`, in id order strictly after `after` (from the first when
    /// `None`), at most `limit`. Served by an index holding only those (the cleanup's reads).
    async fn list_running(
        &self,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>, StoreError>;
}
