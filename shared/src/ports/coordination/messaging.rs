//! Messaging: directed messages to one node, room messages to every node with a client of a
//! conversation, and the presence records that say which nodes those are.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::CoordinationError;
use crate::domain::{ChatMessage, ConversationEvent, ConversationId, NodeId, StatusUpdate};

/// Why a conversation is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The user (or an API client) stopped it.
    Explicit,
    /// Evicted by the per-user limit.
    TooManyConversations,
    /// Idle longer than `CLOSE_DELAY` with no client.
    Idle,
}

/// A request to a conversation's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OwnerRequest {
    Stop { reason: StopReason },
    Completion { messages: Vec<ChatMessage> },
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OwnerReply {
    Stopped,
    Completion {
        result: Result<String, String>,
    },
    /// The addressed node does not run the conversation (any more).
    NotOwner,
}

/// A message for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage {
    /// New entries in a conversation's inbox (sent by `push_action` to the owner).
    InboxReady {
        conversation: ConversationId,
    },
    /// Conversations wait on the hand-over list (a node left or was reaped): take some.
    HandoversWaiting,
    Request {
        id: String,
        reply_to: NodeId,
        conversation: ConversationId,
        request: OwnerRequest,
    },
    Reply {
        id: String,
        reply: OwnerReply,
    },
}

/// A message for every node with a client of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomMessage {
    /// A stored event (already durable when published).
    Event(ConversationEvent),
    Status(StatusUpdate),
    /// The conversation's owner left without stopping it: a node with clients should take it over.
    OwnerGone,
}

/// What a node receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Room {
        conversation: ConversationId,
        message: RoomMessage,
    },
    Node(NodeMessage),
}

/// Where a directed message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    OwnerOf(ConversationId),
    Node(NodeId),
}

#[async_trait]
pub trait Messaging: Send + Sync {
    /// Sends a directed message; returns the node it went to (`None`: the conversation has no owner).
    async fn send(
        &self,
        to: &Destination,
        message: &NodeMessage,
    ) -> Result<Option<NodeId>, CoordinationError>;

    /// Sends to every node that has joined the conversation's room (this one included).
    async fn broadcast(
        &self,
        conversation: &ConversationId,
        message: &RoomMessage,
    ) -> Result<(), CoordinationError>;

    /// Records a client connection and makes sure this node receives the room's messages; effective
    /// (subscribed) when it returns, so that a read of the store after it misses nothing.
    async fn join(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError>;

    async fn leave(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError>;

    /// Whether any node has a client of the conversation.
    async fn has_clients(&self, conversation: &ConversationId) -> Result<bool, CoordinationError>;
}
