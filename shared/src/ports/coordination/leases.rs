//! Leases: who runs a conversation, under which epoch, within its user's running limit.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::CoordinationError;
use crate::domain::{ConversationId, NodeId, UserId};

/// The right to run a conversation, held by `owner` under `epoch`. `user_id` names the running set the
/// conversation counts in (a re-asserted lease restores its place there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub conversation: ConversationId,
    pub user_id: UserId,
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
    pub user_id: UserId,
    /// The most conversations the user may run at once, across the cluster.
    pub max_running: usize,
    pub policy: LimitPolicy,
    /// The new epoch is at least this (the event store's fence + 1), so that an epoch counter lost by
    /// the coordination backend can never fall behind the store's fence.
    pub min_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller owns the conversation. `evicted`: the user's least recently active conversations,
    /// marked to make room; they stay counted until they stopped. The caller asks their owners to stop
    /// them.
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
    /// The node is leaving (a deploy): the conversation stays running, joins the hand-over list and
    /// every other node is told (`NodeMessage::HandoversWaiting`), the nodes with its clients as well
    /// (`RoomMessage::OwnerGone`), so that one of them takes it over at once.
    HandedOver,
}

#[async_trait]
pub trait Leases: Send + Sync {
    /// Claims a conversation's lease for this node (re-claiming one this node holds raises the epoch),
    /// enforcing its user's running limit in the same atomic step. A claim is activity: the
    /// conversation becomes its user's most recently active (as a user action makes it).
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError>;

    /// Extends the leases this node still holds, and re-asserts those that expired (or that a backend
    /// restarted empty forgot) if nobody claimed them since, back in their user's running set if the
    /// backend forgot that too; returns the conversations of the others.
    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError>;

    /// Gives a lease up (only if still held by it).
    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError>;

    /// Records the stop of a conversation no lease runs (an evicted one whose owner is gone): it
    /// leaves its user's running set.
    async fn forget_stopped(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<(), CoordinationError>;

    /// Takes up to `limit` conversations from the hand-over list (each goes to one caller), for the
    /// caller to claim.
    async fn take_handed_over(
        &self,
        limit: usize,
    ) -> Result<Vec<ConversationId>, CoordinationError>;
}
