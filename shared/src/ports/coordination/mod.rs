//! The coordination port: everything a conversation node needs from "the cluster", so that the node's
//! logic is the same whether it runs alone or among many. It is four small traits, one per concern,
//! each implemented by both adapters (`adapters::local_cluster` in process, `adapters::redis`):
//!
//! - [`Leases`] (`leases.rs`): a conversation runs on the node holding its lease, which names that node
//!   and an epoch that rises with every claim. Claiming also enforces the per-user running limit
//!   atomically (with oldest-first eviction or refusal), so no check-then-act race exists. Holders
//!   refresh; a node that fails to refresh stops its loop before the lease can expire elsewhere.
//! - [`Inbox`] (`inbox.rs`): a user action is acknowledged once it is durable in its conversation's
//!   inbox; the owner reads, records (the event store keeps the cursor) and trims it, so an action
//!   survives a takeover and is processed exactly once.
//! - [`Messaging`] (`messaging.rs`): messages directed to one node (the owner of a conversation, or a
//!   node by id: stop requests, LLM completions and their replies), or broadcast to every node with a
//!   client of a conversation (events, status updates, "the owner is gone"); and presence, which
//!   conversations have clients on any node (idle close spares those).
//! - [`Liveness`] (`liveness.rs`): every node beats; a node silent too long is reaped by one survivor,
//!   which frees its leases so that its conversations are taken over before their TTL.
//!
//! [`Coordination`] is all four, what an adapter is built as; each part of the node holds only the
//! traits it uses. Written with Redis semantics in mind (see `docs/node.md`): a claim is one script
//! (`SET NX` of the owner and epoch, the user's running set as a sorted set), the inbox a stream,
//! directed messages a per-node channel, rooms per-conversation channels, presence a per-conversation
//! hash. Incoming messages reach the node through the channel its adapter was built with (see
//! `adapters::local_cluster::LocalCluster::join`), so the traits themselves only send.

mod inbox;
mod leases;
mod liveness;
mod messaging;

pub use inbox::{ACTION_ID_MEMORY, Inbox, InboxEntry, Pushed};
pub use leases::{ClaimOutcome, ClaimRequest, Lease, LeaseEnd, Leases, LimitPolicy};
pub use liveness::Liveness;
pub use messaging::{
    Destination, Incoming, Messaging, NodeMessage, OwnerReply, OwnerRequest, RoomMessage,
    StopReason,
};

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

/// The whole port: what an adapter implements and the node's wiring holds, narrowed (by trait
/// upcasting) to the one or two concerns each part of the node uses.
pub trait Coordination: Leases + Inbox + Messaging + Liveness {}

impl<T: Leases + Inbox + Messaging + Liveness> Coordination for T {}
