//! The in-process coordination adapter: a cluster whose nodes live in one process. A standalone node is
//! a cluster of one; tests join several nodes to one `LocalCluster` to exercise cross-node paths (like
//! socketioxide-redis's stub driver) without Redis.
//!
//! It keeps the Redis adapter's semantics so that the node behaves the same on both: leases expire after
//! the TTL unless refreshed, epochs only rise, the user's running set is ordered by activity, inbox ids are
//! `<unix ms>-<seq>` like stream ids (so they keep rising across a restart of the process, as the event
//! store's inbox cursor outlives it), and a node only receives a room's messages while it has joined it.
//! The inbox itself lives in memory: standalone, it dies with the process that acknowledged it.
//!
//! The cluster's state is here; each concern of the port is implemented in its own file: `leases.rs`,
//! `inbox.rs`, `messaging.rs` (directed and room messages, presence), `liveness.rs`.

mod inbox;
mod leases;
mod liveness;
mod messaging;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::domain::{ConversationId, NodeId, UserAction, UserId};
use crate::ports::coordination::Incoming;

/// How many incoming messages may wait for a node's dispatcher before senders wait.
const INCOMING_CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct LocalCluster {
    state: Arc<Mutex<ClusterState>>,
    lease_ttl: Duration,
}

struct LeaseRecord {
    owner: NodeId,
    epoch: u64,
    /// Whose running set the conversation counts in (a user action moves it there).
    user_id: UserId,
    expires_at: Instant,
}

#[derive(Default)]
struct InboxLog {
    last: (u64, u64),
    entries: VecDeque<((u64, u64), UserAction)>,
    /// Client action ids and the entries they were stored as (kept for the process's life).
    client_ids: HashMap<String, (u64, u64)>,
}

#[derive(Default)]
struct ClusterState {
    nodes: HashMap<NodeId, mpsc::Sender<Incoming>>,
    leases: HashMap<ConversationId, LeaseRecord>,
    epochs: HashMap<ConversationId, u64>,
    /// Per user: running conversations, least recently active first.
    running: HashMap<UserId, Vec<ConversationId>>,
    /// Running conversations being evicted: counted until they stopped, holding no place.
    evicting: HashSet<ConversationId>,
    /// Conversations handed over by a leaving node, not yet taken.
    handovers: VecDeque<ConversationId>,
    inboxes: HashMap<ConversationId, InboxLog>,
    /// Per conversation: the connections of each node.
    rooms: HashMap<ConversationId, HashMap<NodeId, HashSet<String>>>,
    /// Each node's last heartbeat.
    beats: HashMap<NodeId, Instant>,
}

impl ClusterState {
    /// Makes a running conversation its user's most recently active (unless it is being evicted).
    fn touch(&mut self, conversation: &ConversationId) {
        let Some(user_id) = self.leases.get(conversation).map(|lease| &lease.user_id) else {
            return;
        };
        if self.evicting.contains(conversation) {
            return;
        }
        if let Some(running) = self.running.get_mut(user_id)
            && let Some(position) = running.iter().position(|c| c == conversation)
        {
            let conversation = running.remove(position);
            running.push(conversation);
        }
    }

    /// A stopped conversation leaves its user's running set.
    fn forget(&mut self, conversation: &ConversationId, user_id: &UserId) {
        if let Some(running) = self.running.get_mut(user_id) {
            running.retain(|c| c != conversation);
        }
        self.evicting.remove(conversation);
    }

    fn live_owner(&self, conversation: &ConversationId, now: Instant) -> Option<&NodeId> {
        self.leases
            .get(conversation)
            .filter(|lease| lease.expires_at > now)
            .map(|lease| &lease.owner)
    }

    fn sender(&self, node: &NodeId) -> Option<mpsc::Sender<Incoming>> {
        self.nodes.get(node).cloned()
    }

    /// Where to reach the nodes that joined the conversation's room.
    fn room_senders(
        &self,
        conversation: &ConversationId,
    ) -> impl Iterator<Item = mpsc::Sender<Incoming>> + '_ {
        self.rooms
            .get(conversation)
            .into_iter()
            .flat_map(|room| room.keys())
            .filter_map(|node| self.sender(node))
    }
}

impl LocalCluster {
    pub fn new(lease_ttl: Duration) -> Self {
        Self {
            state: Arc::default(),
            lease_ttl,
        }
    }

    /// Adds a node; its incoming messages arrive on the returned receiver.
    pub fn join(&self, node_id: NodeId) -> (LocalNode, mpsc::Receiver<Incoming>) {
        let (sender, receiver) = mpsc::channel(INCOMING_CAPACITY);
        self.lock().nodes.insert(node_id.clone(), sender);
        let node = LocalNode {
            cluster: self.clone(),
            node_id,
        };
        (node, receiver)
    }

    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One node's view of a [`LocalCluster`]. Dropping it removes the node and its clients from the
/// cluster, as a Redis connection's end would; its leases expire with their TTL.
pub struct LocalNode {
    cluster: LocalCluster,
    node_id: NodeId,
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let mut state = self.cluster.lock();
        state.nodes.remove(&self.node_id);
        for room in state.rooms.values_mut() {
            room.remove(&self.node_id);
        }
        state.rooms.retain(|_, room| !room.is_empty());
    }
}

/// Delivers to a node outside the cluster lock; a node that is gone receives nothing.
async fn deliver(sender: mpsc::Sender<Incoming>, message: Incoming) -> bool {
    sender.send(message).await.is_ok()
}
