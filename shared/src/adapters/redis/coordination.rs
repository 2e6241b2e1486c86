//! The clustered adapter of the coordination port on Redis (`REDIS_URL`): leases are hashes with a
//! TTL changed only by scripts (`scripts.rs`), inboxes are streams, directed messages go to a
//! per-node channel, room messages to a per-conversation channel that a node subscribes to while it
//! has a client there, presence is a per-conversation hash. Commands go through a reconnecting
//! `ConnectionManager`; the subscriptions live on one pub/sub connection that a task re-opens after a
//! fault, re-subscribing and re-asserting this node's presence (a Redis restarted empty forgets it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::keys::Keys;
use super::scripts;
use crate::domain::{ConversationId, InboxId, UserAction};
use crate::ports::cluster_janitor::Reaped;
use crate::ports::coordination::{
    ACTION_ID_MEMORY, ClaimOutcome, ClaimRequest, Coordination, CoordinationError, Destination,
    InboxEntry, Incoming, Lease, LeaseEnd, LimitPolicy, NodeId, NodeMessage, Pushed, RoomMessage,
};

/// How many incoming messages may wait for the node's dispatcher before the pub/sub reader waits.
const INCOMING_CAPACITY: usize = 4096;
/// How long one Redis command or connection attempt may take before it counts as a fault.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between attempts to re-open the pub/sub connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// The stream field holding an inbox entry's action.
const ACTION_FIELD: &str = "action";

/// Where the adapter connects and how it names things.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// `REDIS_KEY_PREFIX`; see `keys.rs`.
    pub key_prefix: String,
    pub lease_ttl: Duration,
}

/// A room message on the wire; `skip` names a node that must not receive it (the one handing over).
#[derive(Serialize, Deserialize)]
struct RoomEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip: Option<NodeId>,
    message: RoomMessage,
}

/// What the pub/sub side of the adapter shares with its reader task.
struct Subscriptions {
    client: redis::Client,
    keys: Keys,
    node_id: NodeId,
    commands: ConnectionManager,
    state: Mutex<SubscriptionState>,
}

#[derive(Default)]
struct SubscriptionState {
    /// `None` while the pub/sub connection is down.
    sink: Option<PubSubSink>,
    /// This node's clients per conversation: the rooms it is subscribed to.
    rooms: HashMap<ConversationId, HashSet<String>>,
}

pub struct RedisCoordination {
    node_id: NodeId,
    keys: Keys,
    lease_ttl: Duration,
    commands: ConnectionManager,
    subscriptions: Arc<Subscriptions>,
    reader: JoinHandle<()>,
}

impl Drop for RedisCoordination {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub(super) fn unavailable(error: redis::RedisError) -> CoordinationError {
    CoordinationError::Unavailable(error.to_string())
}

fn corrupt(error: impl std::fmt::Display) -> CoordinationError {
    CoordinationError::Corrupt(error.to_string())
}

fn encode(message: &impl Serialize) -> Result<String, CoordinationError> {
    serde_json::to_string(message).map_err(corrupt)
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The first stream id after `id` (`<ms>-<seq>`), for exclusive trims.
fn next_inbox_id(id: &InboxId) -> Result<String, CoordinationError> {
    id.as_str()
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)))
        .map(|(ms, seq)| format!("{ms}-{}", seq + 1))
        .ok_or_else(|| corrupt(format!("inbox id {id} is not <ms>-<seq>")))
}

/// A client of the server at `url` and its reconnecting command connection.
pub(super) async fn command_connection(
    url: &str,
) -> Result<(redis::Client, ConnectionManager), CoordinationError> {
    let client = redis::Client::open(url)
        .map_err(|error| CoordinationError::Misconfigured(error.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2);
    let commands = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(unavailable)?;
    Ok((client, commands))
}

/// What one run of the `REAP` script did, or would do under `count_only`: the counts, and the
/// conversations whose lease it freed.
pub(super) struct ReapOutcome {
    pub reaped: Reaped,
    pub orphans: Vec<ConversationId>,
}

/// Reaps the nodes silent for longer than `silence` and the `departed` ones (see `scripts::REAP`).
pub(super) async fn run_reap(
    commands: &mut ConnectionManager,
    keys: &Keys,
    silence: Duration,
    departed: Vec<String>,
    count_only: bool,
) -> Result<ReapOutcome, CoordinationError> {
    let owner_gone = encode(&RoomEnvelope {
        skip: None,
        message: RoomMessage::OwnerGone,
    })?;
    let reply: Vec<String> = scripts::REAP
        .key(keys.nodes())
        .arg(millis(silence))
        .arg(keys.kind_prefix("owned"))
        .arg(keys.kind_prefix("lease"))
        .arg(keys.kind_prefix("watching"))
        .arg(keys.kind_prefix("presence"))
        .arg(keys.kind_prefix("room"))
        .arg(owner_gone)
        .arg(if count_only { "count" } else { "reap" })
        .arg(departed)
        .invoke_async(commands)
        .await
        .map_err(unavailable)?;
    let [nodes, client_records, orphans @ ..] = reply.as_slice() else {
        return Err(corrupt(format!("unexpected reap reply {reply:?}")));
    };
    let orphans = orphans
        .iter()
        .map(|id| ConversationId::parse(id).map_err(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReapOutcome {
        reaped: Reaped {
            nodes: nodes.parse().map_err(corrupt)?,
            leases: orphans.len() as u64,
            client_records: client_records.parse().map_err(corrupt)?,
        },
        orphans,
    })
}

impl RedisCoordination {
    /// Connects, subscribes to this node's channel and starts the reader; incoming messages arrive on
    /// the returned receiver.
    pub async fn connect(
        settings: &RedisSettings,
        node_id: NodeId,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), CoordinationError> {
        let (client, commands) = command_connection(&settings.url).await?;
        let keys = Keys::new(&settings.key_prefix);
        let subscriptions = Arc::new(Subscriptions {
            client,
            keys: keys.clone(),
            node_id: node_id.clone(),
            commands: commands.clone(),
            state: Mutex::default(),
        });
        let stream = subscriptions.open().await?;
        let (sender, receiver) = mpsc::channel(INCOMING_CAPACITY);
        let reader = tokio::spawn(Arc::clone(&subscriptions).read(stream, sender));
        let coordination = Self {
            node_id,
            keys,
            lease_ttl: settings.lease_ttl,
            commands,
            subscriptions,
            reader,
        };
        Ok((coordination, receiver))
    }

    fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    async fn lease_owner(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<NodeId>, CoordinationError> {
        let owner: Option<String> = redis::cmd("HGET")
            .arg(self.keys.lease(conversation))
            .arg("owner")
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(owner.map(|owner| NodeId::new(&owner)))
    }

    /// Records how many clients of the conversation this node has (none: the field and the index entry go).
    async fn record_presence(
        &self,
        conversation: &ConversationId,
        clients: usize,
    ) -> Result<(), CoordinationError> {
        let (presence, watching) = (
            self.keys.presence(conversation),
            self.keys.watching(&self.node_id),
        );
        let mut pipe = redis::pipe();
        if clients == 0 {
            pipe.hdel(presence, self.node_id.as_str())
                .srem(watching, conversation.as_str());
        } else {
            pipe.hset(presence, self.node_id.as_str(), clients)
                .sadd(watching, conversation.as_str());
        }
        pipe.query_async::<()>(&mut self.commands())
            .await
            .map_err(unavailable)
    }

    /// The other live-listed nodes whose channel nobody listens to: their process (and its connection)
    /// is gone, which Redis knows at once, long before their heartbeat falls silent. A node that is only
    /// reconnecting may be listed too; it re-asserts or loses its leases safely (fencing).
    async fn departed_nodes(&self) -> Result<Vec<String>, CoordinationError> {
        let nodes: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.nodes())
            .arg(0)
            .arg(-1)
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        let others: Vec<NodeId> = nodes
            .iter()
            .map(|node| NodeId::new(node))
            .filter(|node| *node != self.node_id)
            .collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let mut numsub = redis::cmd("PUBSUB");
        numsub.arg("NUMSUB");
        for node in &others {
            numsub.arg(self.keys.node_channel(node));
        }
        let listeners: Vec<(String, u64)> = numsub
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(others
            .into_iter()
            .zip(listeners)
            .filter(|(_, (_, count))| *count == 0)
            .map(|(node, _)| node.as_str().to_owned())
            .collect())
    }

    /// Publishes to a node's channel; the node if it listens.
    async fn publish_to(
        &self,
        node: NodeId,
        message: &NodeMessage,
    ) -> Result<Option<NodeId>, CoordinationError> {
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(self.keys.node_channel(&node))
            .arg(encode(message)?)
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok((receivers > 0).then_some(node))
    }
}

impl Subscriptions {
    /// Opens the pub/sub connection, subscribes to this node's channel and its rooms, and re-asserts
    /// its presence.
    async fn open(&self) -> Result<PubSubStream, CoordinationError> {
        let pubsub = tokio::time::timeout(COMMAND_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| CoordinationError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(unavailable)?;
        let (mut sink, stream) = pubsub.split();
        let mut state = self.state.lock().await;
        sink.subscribe(self.keys.node_channel(&self.node_id))
            .await
            .map_err(unavailable)?;
        let mut presence = redis::pipe();
        for (conversation, connections) in &state.rooms {
            sink.subscribe(self.keys.room_channel(conversation))
                .await
                .map_err(unavailable)?;
            presence
                .hset(
                    self.keys.presence(conversation),
                    self.node_id.as_str(),
                    connections.len(),
                )
                .ignore()
                .sadd(self.keys.watching(&self.node_id), conversation.as_str())
                .ignore();
        }
        if !state.rooms.is_empty() {
            presence
                .query_async::<()>(&mut self.commands.clone())
                .await
                .map_err(unavailable)?;
        }
        state.sink = Some(sink);
        Ok(stream)
    }

    /// Forwards messages to the node; re-opens the connection whenever it ends, until the node is gone.
    async fn read(self: Arc<Self>, mut stream: PubSubStream, sender: mpsc::Sender<Incoming>) {
        loop {
            while let Some(message) = stream.next().await {
                let Some(incoming) =
                    self.decode(message.get_channel_name(), message.get_payload_bytes())
                else {
                    continue;
                };
                if sender.send(incoming).await.is_err() {
                    return;
                }
            }
            self.state.lock().await.sink = None;
            tracing::warn!(node = %self.node_id, "redis pub/sub connection lost; reconnecting");
            stream = loop {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                if sender.is_closed() {
                    return;
                }
                match self.open().await {
                    Ok(stream) => break stream,
                    Err(error) => tracing::debug!(%error, "redis pub/sub reconnect failed"),
                }
            };
            tracing::info!(node = %self.node_id, "redis pub/sub resubscribed");
        }
    }

    fn decode(&self, channel: &str, payload: &[u8]) -> Option<Incoming> {
        let decoded = match self.keys.room_of(channel) {
            Some(conversation) => serde_json::from_slice::<RoomEnvelope>(payload).map(|envelope| {
                (envelope.skip.as_ref() != Some(&self.node_id)).then_some(Incoming::Room {
                    conversation,
                    message: envelope.message,
                })
            }),
            None => serde_json::from_slice::<NodeMessage>(payload).map(|m| Some(Incoming::Node(m))),
        };
        decoded.unwrap_or_else(|error| {
            tracing::warn!(%channel, %error, "undecodable coordination message dropped");
            None
        })
    }
}

#[async_trait]
impl Coordination for RedisCoordination {
    fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, CoordinationError> {
        let conversation = &request.conversation;
        let policy = match request.policy {
            LimitPolicy::EvictOldest => "evict",
            LimitPolicy::Reject => "reject",
        };
        let reply: Vec<String> = scripts::CLAIM
            .key(self.keys.lease(conversation))
            .key(self.keys.epoch(conversation))
            .key(self.keys.running(&request.user_id))
            .key(self.keys.owned(&self.node_id))
            .key(self.keys.claims())
            .arg(self.node_id.as_str())
            .arg(millis(self.lease_ttl))
            .arg(conversation.as_str())
            .arg(request.max_running)
            .arg(policy)
            .arg(request.min_epoch)
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [kind, owner] if kind == "held" => Ok(ClaimOutcome::Held {
                owner: NodeId::new(owner),
            }),
            [kind] if kind == "limit" => Ok(ClaimOutcome::LimitReached),
            [kind, epoch, evicted @ ..] if kind == "claimed" => Ok(ClaimOutcome::Claimed {
                lease: Lease {
                    conversation: conversation.clone(),
                    user_id: request.user_id.clone(),
                    owner: self.node_id.clone(),
                    epoch: epoch.parse().map_err(corrupt)?,
                },
                evicted: evicted
                    .iter()
                    .map(|id| ConversationId::parse(id).map_err(corrupt))
                    .collect::<Result<_, _>>()?,
            }),
            other => Err(corrupt(format!("unexpected claim reply {other:?}"))),
        }
    }

    async fn refresh(&self, leases: &[Lease]) -> Result<Vec<ConversationId>, CoordinationError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::REFRESH.key(self.keys.owned(&self.node_id));
        invocation
            .key(self.keys.claims())
            .arg(self.node_id.as_str())
            .arg(millis(self.lease_ttl));
        for lease in leases {
            invocation
                .key(self.keys.lease(&lease.conversation))
                .key(self.keys.epoch(&lease.conversation))
                .key(self.keys.running(&lease.user_id))
                .arg(lease.epoch)
                .arg(lease.conversation.as_str());
        }
        let lost: Vec<usize> = invocation
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(lost
            .into_iter()
            .filter_map(|position| leases.get(position.checked_sub(1)?))
            .map(|lease| lease.conversation.clone())
            .collect())
    }

    async fn release(&self, lease: &Lease, end: LeaseEnd) -> Result<(), CoordinationError> {
        let end = match end {
            LeaseEnd::Stopped => "stopped",
            LeaseEnd::HandedOver => "handed_over",
        };
        let owner_gone = encode(&RoomEnvelope {
            skip: Some(self.node_id.clone()),
            message: RoomMessage::OwnerGone,
        })?;
        scripts::RELEASE
            .key(self.keys.lease(&lease.conversation))
            .key(self.keys.running(&lease.user_id))
            .key(self.keys.owned(&self.node_id))
            .arg(self.node_id.as_str())
            .arg(lease.epoch)
            .arg(lease.conversation.as_str())
            .arg(end)
            .arg(self.keys.room_channel(&lease.conversation))
            .arg(owner_gone)
            .invoke_async::<u8>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn push_action(
        &self,
        conversation: &ConversationId,
        action: &UserAction,
        client_action_id: Option<&str>,
    ) -> Result<Pushed, CoordinationError> {
        let ready = encode(&NodeMessage::InboxReady {
            conversation: conversation.clone(),
        })?;
        let mut invocation = scripts::PUSH.key(self.keys.inbox(conversation));
        invocation
            .key(self.keys.lease(conversation))
            .arg(encode(action)?)
            .arg(self.keys.kind_prefix("node"))
            .arg(ready)
            .arg(ACTION_ID_MEMORY.as_secs());
        if let Some(client_id) = client_action_id {
            invocation.key(self.keys.client_action(conversation, client_id));
        }
        let reply: Vec<String> = invocation
            .invoke_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [id] => Ok(Pushed {
                id: InboxId(id.clone()),
                owner: None,
            }),
            [id, owner] => Ok(Pushed {
                id: InboxId(id.clone()),
                owner: Some(NodeId::new(owner)),
            }),
            other => Err(corrupt(format!("unexpected push reply {other:?}"))),
        }
    }

    async fn read_inbox(
        &self,
        conversation: &ConversationId,
        after: Option<&InboxId>,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, CoordinationError> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.keys.inbox(conversation))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let json = fields
                    .chunks(2)
                    .find(|pair| pair[0] == ACTION_FIELD)
                    .and_then(|pair| pair.get(1))
                    .ok_or_else(|| corrupt(format!("inbox entry {id} has no action")))?;
                Ok(InboxEntry {
                    action: serde_json::from_str(json).map_err(corrupt)?,
                    id: InboxId(id),
                })
            })
            .collect()
    }

    async fn trim_inbox(
        &self,
        conversation: &ConversationId,
        through: &InboxId,
    ) -> Result<(), CoordinationError> {
        redis::cmd("XTRIM")
            .arg(self.keys.inbox(conversation))
            .arg("MINID")
            .arg(next_inbox_id(through)?)
            .query_async::<u64>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn send(
        &self,
        to: &Destination,
        message: &NodeMessage,
    ) -> Result<Option<NodeId>, CoordinationError> {
        let node = match to {
            Destination::OwnerOf(conversation) => self.lease_owner(conversation).await?,
            Destination::Node(node) => Some(node.clone()),
        };
        match node {
            Some(node) => self.publish_to(node, message).await,
            None => Ok(None),
        }
    }

    async fn broadcast(
        &self,
        conversation: &ConversationId,
        message: &RoomMessage,
    ) -> Result<(), CoordinationError> {
        let envelope = encode(&RoomEnvelope {
            skip: None,
            message: message.clone(),
        })?;
        redis::cmd("PUBLISH")
            .arg(self.keys.room_channel(conversation))
            .arg(envelope)
            .query_async::<u64>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn join(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError> {
        let mut state = self.subscriptions.state.lock().await;
        let first = !state.rooms.contains_key(conversation);
        state
            .rooms
            .entry(conversation.clone())
            .or_default()
            .insert(connection.to_owned());
        // Recorded first: a reconnect re-subscribes and re-asserts it even if this attempt fails.
        let Some(sink) = state.sink.as_mut() else {
            return Err(CoordinationError::Unavailable(
                "redis pub/sub is reconnecting".into(),
            ));
        };
        if first {
            sink.subscribe(self.keys.room_channel(conversation))
                .await
                .map_err(unavailable)?;
        }
        let clients = state.rooms.get(conversation).map_or(0, HashSet::len);
        self.record_presence(conversation, clients).await
    }

    async fn leave(
        &self,
        conversation: &ConversationId,
        connection: &str,
    ) -> Result<(), CoordinationError> {
        let mut state = self.subscriptions.state.lock().await;
        let Some(connections) = state.rooms.get_mut(conversation) else {
            return Ok(());
        };
        connections.remove(connection);
        let clients = connections.len();
        if clients == 0 {
            state.rooms.remove(conversation);
            if let Some(sink) = state.sink.as_mut() {
                sink.unsubscribe(self.keys.room_channel(conversation))
                    .await
                    .map_err(unavailable)?;
            }
        }
        self.record_presence(conversation, clients).await
    }

    async fn has_clients(&self, conversation: &ConversationId) -> Result<bool, CoordinationError> {
        redis::cmd("EXISTS")
            .arg(self.keys.presence(conversation))
            .query_async(&mut self.commands())
            .await
            .map_err(unavailable)
    }

    async fn beat(&self) -> Result<(), CoordinationError> {
        scripts::BEAT
            .key(self.keys.nodes())
            .arg(self.node_id.as_str())
            .invoke_async::<u8>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn reap(&self, silence: Duration) -> Result<Vec<ConversationId>, CoordinationError> {
        let gone = self.departed_nodes().await?;
        let outcome = run_reap(&mut self.commands(), &self.keys, silence, gone, false).await?;
        Ok(outcome.orphans)
    }

    async fn check(&self) -> Result<(), CoordinationError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.commands())
            .await
            .map_err(unavailable)?;
        if self.subscriptions.state.lock().await.sink.is_none() {
            return Err(CoordinationError::Unavailable(
                "redis pub/sub is reconnecting".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_stop_after_the_given_id() {
        let next = next_inbox_id(&InboxId("1700000000000-4".into())).unwrap();
        assert_eq!(next, "1700000000000-5");
        assert!(next_inbox_id(&InboxId("garbage".into())).is_err());
    }
}
