//! The conversation store port: conversation metadata, with the `created_at` order the sync reads and
//! the running conversations the cleanup reads.
//! Adapters: embedded (SQLite) and DynamoDB; both pass `tests/src/contract/conversation_store.rs`.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{Conversation, ConversationId, CreatedCursor, UserId};
use crate::ports::WriteOutcome;

#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates a conversation; `Conflict` when one with the same id exists (the starter's idempotency).
    async fn create_conversation(
        &self,
        conversation: &Conversation,
    ) -> Result<WriteOutcome, StoreError>;

    async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, StoreError>;

    /// Replaces an existing conversation's metadata (status, agent state, title, times).
    async fn update_conversation(&self, conversation: &Conversation) -> Result<(), StoreError>;

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
