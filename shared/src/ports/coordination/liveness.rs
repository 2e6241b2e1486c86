//! Liveness: which nodes are alive, and the reaping of those that are not.

use std::time::Duration;

use async_trait::async_trait;

use super::CoordinationError;
use crate::domain::{ConversationId, NodeId};

#[async_trait]
pub trait Liveness: Send + Sync {
    /// The node this adapter speaks for.
    fn node_id(&self) -> &NodeId;

    /// Records that this node is alive (every heartbeat).
    async fn beat(&self) -> Result<(), CoordinationError>;

    /// Declares dead the nodes that have not beaten for `silence`, or whose connection the backend shows
    /// gone (a crashed process) and still gone, with no beat, a short grace later, each by exactly one
    /// caller: their leases are freed at once (not after a TTL), their conversations put on the
    /// hand-over list, their clients forgotten, the nodes with clients of their conversations told
    /// (`RoomMessage::OwnerGone`) and every live node told (`NodeMessage::HandoversWaiting`), so that
    /// the survivors share the takeovers of the ones still meant to run; returns those conversations.
    async fn reap(&self, silence: Duration) -> Result<Vec<ConversationId>, CoordinationError>;

    /// Whether the backend is reachable and this node's leases are trustworthy (`/ready`).
    async fn check(&self) -> Result<(), CoordinationError>;
}
