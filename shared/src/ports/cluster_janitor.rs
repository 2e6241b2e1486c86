//! The cluster janitor port: what the cleanup function needs from the cluster's coordination state,
//! for the leftovers no live node clears (a cluster scaled to zero or crashed as a whole, a node that
//! died while Redis was away, a takeover that failed).
//!
//! - **Dead nodes**: nodes silent for longer than a threshold (far longer than the nodes' own reaping,
//!   so that a live cluster always reaps first and takes the conversations over) are reaped as a node
//!   reaps them, through their own index structures, never by a walk of the key space.
//! - **Live runs**: which conversations a lease of a live node runs.
//! - **Stopped conversations**: a conversation recorded as stopped leaves its user's running set.
//!
//! Adapter: Redis (`adapters::redis::janitor`). A cleanup with no Redis has no cluster state to clean:
//! the in-process cluster of a standalone node lives and dies with its process.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use super::coordination::CoordinationError;
use crate::domain::{ConversationId, UserId};

/// What reaping dead nodes did (or, counted only, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Nodes removed from the cluster.
    pub nodes: u64,
    /// Leases the nodes still held, deleted.
    pub leases: u64,
    /// Per-conversation records of the nodes' clients (presence), forgotten.
    pub client_records: u64,
}

#[async_trait]
pub trait ClusterJanitor: Send + Sync {
    /// Reaps the nodes whose last heartbeat is older than `silence`: frees their leases, forgets their
    /// clients, tells the rooms of their conversations that the owner is gone (as the nodes' own
    /// reaping does). With `count_only`, changes nothing and returns what it would do.
    async fn reap_silent_nodes(
        &self,
        silence: Duration,
        count_only: bool,
    ) -> Result<Reaped, CoordinationError>;

    /// The conversations among `conversations` that a lease runs, unless the lease's owner has been
    /// silent for longer than `silence` (a node not yet reaped is not alive for it either). A lease
    /// whose owner never beat counts as live: its TTL ends it.
    async fn live_runs(
        &self,
        conversations: &[ConversationId],
        silence: Duration,
    ) -> Result<HashSet<ConversationId>, CoordinationError>;

    /// Removes a stopped conversation from its user's running set, unless a lease runs it (checked in
    /// the same atomic step); returns whether it was there.
    async fn forget_running(
        &self,
        conversation: &ConversationId,
        user_id: &UserId,
    ) -> Result<bool, CoordinationError>;
}
