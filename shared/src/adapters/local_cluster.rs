//! The in-process coordination adapter: a cluster whose nodes live in one process. A standalone node is
//! a cluster of one; tests join several nodes to one `LocalCluster` to exercise cross-node paths (like
//! socketioxide-redis's stub driver) without Redis.
//!
//! It keeps the Redis adapter's semantics so that the node behaves the same on both: leases expire after
//! the TTL unless refreshed, epochs only rise, the user's running set is ordered by claim, inbox ids are
//! `<unix ms>-<seq>` like stream ids (so they keep rising across a restart of the process, as the event
//! store's inbox cursor outlives it), and a node only receives a room's messages while it has joined it.
//! The inbox itself lives in memory: standalone, it dies with the process that acknowledged it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::domain::{ConversationId, InboxId, UserAction};
use crate::ports::coordination::{
    ClaimOutcome, ClaimRequest, Coordination, CoordinationError, Destination, InboxEntry, Incoming,
    Lease, LeaseEnd, LimitPolicy, NodeId, NodeMessage, Pushed, RoomMessage,
};

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
    expires_at: Instant,
}

#[derive(Default)]
struct Inbox {
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
    /// Per user: running conversations, oldest claim first.
    running: HashMap<String, Vec<ConversationId>>,
    inboxes: HashMap<ConversationId, Inbox>,
    /// Per conversation: the connections of each node.
    rooms: HashMap<ConversationId, HashMap<NodeId, HashSet<String>>>,
    /// Each node's last heartbeat.
    beats: HashMap<NodeId, Instant>,
}

impl ClusterState {
    fn live_owner(&self, conversation: &ConversationId, now: Instant) -> Option<&NodeId> {
        self.leases
            .get(conversation)
            .filter(|lease| lease.expires_at > now)
            .map(|lease| &lease.owner)
    }

    fn sender(&self, node: &NodeId) -> Option<mpsc::Sender<Incoming>> {
        self.nodes.get(node).cloned()
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

fn inbox_id((millis, seq): (u64, u64)) -> InboxId {
    InboxId(format!("{millis}-{seq}"))
}

fn parse_inbox_id(id: &InboxId) -> Result<(u64, u64), CoordinationError> {
    id.as_str()
        .split_once('-')
        .and_then(|(millis, seq)| Some((millis.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| CoordinationError::Corrupt(format!("inbox id {id} is not <ms>-<seq>")))
}

/// Delivers to a node outside the cluster lock; a node that is gone receives nothing.
async fn deliver(sender: mpsc::Sender<Incoming>, message: Incoming) -> bool {
    sender.send(message).await.is_ok()
}

#[async_trait]
impl Coordination for LocalNode {
    fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError> {
        let now = Instant::now();
        let mut state = self.cluster.lock();
        if let Some(owner) = state.live_owner(&request.conversation, now)
            && *owner != self.node_id
        {
            return Ok(ClaimOutcome::Held {
                owner: owner.clone(),
            });
        }
        let running = state.running.entry(request.user_id.clone()).or_default();
        let mut evicted = Vec::new();
        if !running.contains(&request.conversation) {
            let room = request.max_running.max(1) - 1;
            if running.len() > room {
                if request.policy == LimitPolicy::Reject {
                    return Ok(ClaimOutcome::LimitReached);
                }
                evicted = running.drain(..running.len() - room).collect();
            }
            running.push(request.conversation.clone());
        }
        let epoch = state
            .epochs
            .get(&request.conversation)
            .map_or(1, |epoch| epoch + 1)
            .max(request.min_epoch);
        state.epochs.insert(request.conversation.clone(), epoch);
        state.leases.insert(
            request.conversation.clone(),
            LeaseRecord {
                owner: self.node_id.clone(),
                epoch,
                expires_at: now + self.cluster.lease_ttl,
            },
        );
        Ok(ClaimOutcome::Claimed {
            lease: Lease {
                conversation: request.conversation.clone(),
                user_id: request.user_id.clone(),
                owner: self.node_id.clone(),
                epoch,
            },
            evicted,
        })
    }

    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError> {
        let now = Instant::now();
        let mut state = self.cluster.lock();
        let mut lost = Vec::new();
        for lease in leases {
            let held = state.leases.get(&lease.conversation).is_some_and(|record| {
                record.owner == self.node_id
                    && record.epoch == lease.epoch
                    && record.expires_at > now
            });
            let gone = state.live_owner(&lease.conversation, now).is_none();
            let nobody_claimed_since = state
                .epochs
                .get(&lease.conversation)
                .is_none_or(|epoch| *epoch <= lease.epoch);
            // Not evicted meanwhile (this cluster never forgets its running sets, unlike a Redis
            // restarted empty).
            let counted = state
                .running
                .get(&lease.user_id)
                .is_some_and(|running| running.contains(&lease.conversation));
            if held || (gone && nobody_claimed_since && counted) {
                // Re-asserted when it expired unclaimed, as the Redis adapter does.
                state.leases.insert(
                    lease.conversation.clone(),
                    LeaseRecord {
                        owner: self.node_id.clone(),
                        epoch: lease.epoch,
                        expires_at: now + self.cluster.lease_ttl,
                    },
                );
            } else {
                lost.push(lease.conversation.clone());
            }
        }
        Ok(lost)
    }

    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError> {
        let now = Instant::now();
        let recipients = {
            let mut state = self.cluster.lock();
            let held = state
                .leases
                .get(&lease.conversation)
                .is_some_and(|record| record.owner == self.node_id && record.epoch == lease.epoch);
            if held {
                state.leases.remove(&lease.conversation);
            }
            let someone_else_runs_it = state.live_owner(&lease.conversation, now).is_some();
            match end {
                LeaseEnd::Stopped if !someone_else_runs_it => {
                    if let Some(running) = state.running.get_mut(&lease.user_id) {
                        running.retain(|c| *c != lease.conversation);
                    }
                    Vec::new()
                }
                LeaseEnd::HandedOver if held => state
                    .rooms
                    .get(&lease.conversation)
                    .into_iter()
                    .flat_map(|room| room.iter())
                    .filter(|(node, connections)| **node != self.node_id && !connections.is_empty())
                    .filter_map(|(node, _)| state.sender(node))
                    .collect(),
                _ => Vec::new(),
            }
        };
        for sender in recipients {
            let message = Incoming::Room {
                conversation: lease.conversation.clone(),
                message: RoomMessage::OwnerGone,
            };
            deliver(sender, message).await;
        }
        Ok(())
    }

    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError> {
        let now_millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let (id, owner) = {
            let mut state = self.cluster.lock();
            let inbox = state.inboxes.entry(conversation.clone()).or_default();
            let retried = client_action_id.and_then(|client_id| inbox.client_ids.get(client_id));
            let id = match retried {
                Some(first) => *first,
                None => {
                    let id = if now_millis > inbox.last.0 {
                        (now_millis, 0)
                    } else {
                        (inbox.last.0, inbox.last.1 + 1)
                    };
                    inbox.last = id;
                    inbox.entries.push_back((id, action.clone()));
                    if let Some(client_id) = client_action_id {
                        inbox.client_ids.insert(client_id.to_owned(), id);
                    }
                    id
                }
            };
            let owner = state
                .live_owner(conversation, Instant::now())
                .cloned()
                .and_then(|owner| state.sender(&owner).map(|sender| (owner, sender)));
            (id, owner)
        };
        let owner = match owner {
            Some((owner, sender)) => {
                let ready = Incoming::Node(NodeMessage::InboxReady {
                    conversation: conversation.clone(),
                });
                deliver(sender, ready).await.then_some(owner)
            }
            None => None,
        };
        Ok(Pushed {
            id: inbox_id(id),
            owner,
        })
    }

    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError> {
        let after = after.map(parse_inbox_id).transpose()?;
        let state = self.cluster.lock();
        let Some(inbox) = state.inboxes.get(conversation) else {
            return Ok(Vec::new());
        };
        Ok(inbox
            .entries
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| *id > after))
            .take(limit.max(1))
            .map(|(id, action)| InboxEntry {
                id: inbox_id(*id),
                action: action.clone(),
            })
            .collect())
    }

    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError> {
        let through = parse_inbox_id(through)?;
        let mut state = self.cluster.lock();
        if let Some(inbox) = state.inboxes.get_mut(conversation) {
            inbox.entries.retain(|(id, _)| *id > through);
        }
        Ok(())
    }

    async fn send(
        &self,
        to: &Destination,
        message: &NodeMessage,
    ) -> Result<Option<NodeId>, CoordinationError> {
        let target = {
            let state = self.cluster.lock();
            let node = match to {
                Destination::OwnerOf(conversation) => {
                    state.live_owner(conversation, Instant::now()).cloned()
                }
                Destination::Node(node) => Some(node.clone()),
            };
            node.and_then(|node| state.sender(&node).map(|sender| (node, sender)))
        };
        let Some((node, sender)) = target else {
            return Ok(None);
        };
        Ok(deliver(sender, Incoming::Node(message.clone()))
            .await
            .then_some(node))
    }

    async fn broadcast(
        &self,
        conversation: &ConversationId,
        message: &RoomMessage,
    ) -> Result<(), CoordinationError> {
        let recipients: Vec<_> = {
            let state = self.cluster.lock();
            state
                .rooms
                .get(conversation)
                .into_iter()
                .flat_map(|room| room.keys())
                .filter_map(|node| state.sender(node))
                .collect()
        };
        for sender in recipients {
            let incoming = Incoming::Room {
                conversation: conversation.clone(),
                message: message.clone(),
            };
            deliver(sender, incoming).await;
        }
        Ok(())
    }

    async fn join(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError> {
        self.cluster
            .lock()
            .rooms
            .entry(conversation.clone())
            .or_default()
            .entry(self.node_id.clone())
            .or_default()
            .insert(connection.to_owned());
        Ok(())
    }

    async fn leave(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError> {
        let mut state = self.cluster.lock();
        if let Some(room) = state.rooms.get_mut(conversation) {
            if let Some(connections) = room.get_mut(&self.node_id) {
                connections.remove(connection);
                if connections.is_empty() {
                    room.remove(&self.node_id);
                }
            }
            if room.is_empty() {
                state.rooms.remove(conversation);
            }
        }
        Ok(())
    }

    async fn has_clients(&self, conversation: &ConversationId) -> Result<bool, CoordinationError> {
        Ok(self.cluster.lock().rooms.contains_key(conversation))
    }

    async fn beat(&self) -> Result<(), CoordinationError> {
        self.cluster
            .lock()
            .beats
            .insert(self.node_id.clone(), Instant::now());
        Ok(())
    }

    async fn reap(&self, silence: Duration) -> Result<Vec<ConversationId>, CoordinationError> {
        let now = Instant::now();
        let (orphans, recipients) = {
            let mut state = self.cluster.lock();
            let dead: HashSet<NodeId> = state
                .beats
                .iter()
                .filter(|(node, beat)| {
                    now.duration_since(**beat) > silence || !state.nodes.contains_key(*node)
                })
                .map(|(node, _)| node.clone())
                .collect();
            state.beats.retain(|node, _| !dead.contains(node));
            let orphans: Vec<ConversationId> = state
                .leases
                .iter()
                .filter(|(_, lease)| dead.contains(&lease.owner))
                .map(|(conversation, _)| conversation.clone())
                .collect();
            for conversation in &orphans {
                state.leases.remove(conversation);
            }
            for room in state.rooms.values_mut() {
                room.retain(|node, _| !dead.contains(node));
            }
            state.rooms.retain(|_, room| !room.is_empty());
            let recipients: Vec<_> = orphans
                .iter()
                .flat_map(|conversation| {
                    state
                        .rooms
                        .get(conversation)
                        .into_iter()
                        .flat_map(|room| room.keys())
                        .filter_map(|node| state.sender(node))
                        .map(move |sender| (conversation.clone(), sender))
                })
                .collect();
            (orphans, recipients)
        };
        for (conversation, sender) in recipients {
            let message = Incoming::Room {
                conversation,
                message: RoomMessage::OwnerGone,
            };
            deliver(sender, message).await;
        }
        Ok(orphans)
    }

    async fn check(&self) -> Result<(), CoordinationError> {
        Ok(())
    }
}
