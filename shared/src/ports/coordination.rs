//! The coordination port: everything a conversation node needs from "the cluster", so that the node's
//! logic is the same whether it runs alone or among many.
//!
//! - **Leases**: a conversation runs on the node holding its lease, which names that node and an epoch
//!   that rises with every claim. Claiming also enforces the per-user running limit atomically (with
//!   oldest-first eviction or refusal), so no check-then-act race exists. Holders refresh; a node that
//!   fails to refresh stops its loop before the lease can expire elsewhere.
//! - **Inbox**: a user action is acknowledged once it is durable in its conversation's inbox; the owner
//!   reads, records (the event store keeps the cursor) and trims it, so an action survives a takeover and
//!   is processed exactly once.
//! - **Messages**: directed to one node (the owner of a conversation, or a node by id: stop requests,
//!   LLM completions and their replies), or broadcast to every node with a client of a conversation
//!   (events, status updates, "the owner is gone").
//! - **Presence**: which conversations have clients, on any node (idle close spares those).
//! - **Liveness**: every node beats; a node silent too long is reaped by one survivor, which frees its
//!   leases so that its conversations are taken over before their TTL.
//!
//! Written with Redis semantics in mind (see `docs/node.md`): a claim is one script (`SET NX` of the
//! owner and epoch, the user's running set as a sorted set), the inbox a stream, directed messages a
//! per-node channel, rooms per-conversation channels, presence a per-conversation hash. Incoming
//! messages reach the node through the channel its adapter was built with (see
//! `adapters::local_cluster::LocalCluster::join`), so the trait itself only sends.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    ChatMessage, ConversationEvent, ConversationId, InboxId, StatusUpdate, UserAction,
};

/// How long a client's action id is remembered, so that its retries are stored once.
pub const ACTION_ID_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A node's identity in the cluster (`NODE_ID`, else generated at start).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn new(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn random() -> Self {
        Self(format!(
            "node-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The right to run a conversation, held by `owner` under `epoch`. `user_id` names the running set the
/// conversation counts in (a re-asserted lease restores its place there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub conversation: ConversationId,
    pub user_id: String,
    pub owner: NodeId,
    pub epoch: u64,
}

/// What happens when a user already runs the maximum number of conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPolicy {
    /// The user's oldest running conversations stop to make room (the original's behaviour).
    EvictOldest,
    /// The claim is refused.
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub conversation: ConversationId,
    pub user_id: String,
    /// The most conversations the user may run at once, across the cluster.
    pub max_running: usize,
    pub policy: LimitPolicy,
    /// The new epoch is at least this (the event store's fence + 1), so that an epoch counter lost by
    /// the coordination backend can never fall behind the store's fence.
    pub min_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller owns the conversation. `evicted`: the user's conversations that left the running set
    /// to make room; the caller asks their owners to stop them.
    Claimed {
        lease: Lease,
        evicted: Vec<ConversationId>,
    },
    /// Another node holds a live lease.
    Held { owner: NodeId },
    /// The user is at the limit and the policy is `Reject`; nothing changed.
    LimitReached,
}

/// How a lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The conversation stopped: it leaves its user's running set.
    Stopped,
    /// The node is leaving (a deploy): the conversation stays running and the nodes with its clients
    /// are told (`RoomMessage::OwnerGone`) so that one of them takes it over at once.
    HandedOver,
}

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

/// One durable user action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub id: InboxId,
    pub action: UserAction,
}

/// The result of `push_action`: the entry is durable; `owner` is the node told about it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub id: InboxId,
    pub owner: Option<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordinationError {
    #[error("coordination backend unavailable: {0}")]
    Unavailable(String),
    #[error("coordination message could not be decoded: {0}")]
    Corrupt(String),
    /// The backend's settings cannot work (a malformed URL): retrying does not help.
    #[error("coordination backend misconfigured: {0}")]
    Misconfigured(String),
}

#[async_trait]
pub trait Coordination: Send + Sync {
    fn node_id(&self) -> &NodeId;

    /// Claims a conversation's lease for this node (re-claiming one this node holds raises the epoch),
    /// enforcing its user's running limit in the same atomic step.
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError>;

    /// Extends the leases this node still holds, and re-asserts those that expired (or that a backend
    /// restarted empty forgot) if nobody claimed them since, back in their user's running set if the
    /// backend forgot that too; returns the conversations of the others.
    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError>;

    /// Gives a lease up (only if still held by it).
    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError>;

    /// Stores a user action durably in the conversation's inbox and tells its owner, if any. A client's
    /// retry (the same `client_action_id` for the conversation, within [`ACTION_ID_MEMORY`]) is stored
    /// once: it answers the first push's inbox id.
    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError>;

    /// Inbox entries after `after` (from the start when `None`), oldest first, at most `limit`.
    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError>;

    /// Drops inbox entries up to and including `through` (they are recorded in the event store).
    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError>;

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

    /// Records that this node is alive (every heartbeat).
    async fn beat(&self) -> Result<(), CoordinationError>;

    /// Declares dead the nodes that have not beaten for `silence`, or whose connection the backend shows
    /// gone (a crashed process, at once), each by exactly one caller: their
    /// leases are freed at once (not after a TTL), their clients forgotten, the nodes with clients of
    /// their conversations told (`RoomMessage::OwnerGone`); returns those conversations, for the caller
    /// to take over the ones still meant to run.
    async fn reap(&self, silence: Duration) -> Result<Vec<ConversationId>, CoordinationError>;

    /// Whether the backend is reachable and this node's leases are trustworthy (`/ready`).
    async fn check(&self) -> Result<(), CoordinationError>;
}
