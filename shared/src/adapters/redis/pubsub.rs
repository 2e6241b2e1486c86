//! The node's pub/sub connection to Redis: its own channel and the rooms it has clients in, read by one
//! task that forwards every message to the node and, when the connection ends (or the primary moved),
//! re-opens it under the shared retry policy, re-subscribing, re-asserting this node's presence (a Redis
//! restarted empty forgets it) and beating at once (the peers give a node whose channel went silent a
//! grace to do so before they reap it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use super::connection::{Commands, Endpoint};
use super::coordination::{COMMAND_TIMEOUT, unavailable};
use super::keys::Keys;
use super::liveness::beat_as;
use crate::domain::{ConversationId, NodeId};
use crate::ports::coordination::{CoordinationError, Incoming, NodeMessage, RoomMessage};
use crate::retry::Retrier;

/// A room message on the wire; `skip` names a node that must not receive it (the one handing over).
#[derive(Serialize, Deserialize)]
pub(super) struct RoomEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<NodeId>,
    pub message: RoomMessage,
}

/// What the pub/sub side of the adapter shares with its reader task.
pub(super) struct Subscriptions {
    pub endpoint: Arc<Endpoint>,
    pub keys: Keys,
    pub node_id: NodeId,
    pub commands: Commands,
    pub state: Mutex<SubscriptionState>,
    /// How the connection is re-opened after a fault.
    pub reconnects: Retrier,
}

#[derive(Default)]
pub(super) struct SubscriptionState {
    /// `None` while the pub/sub connection is down.
    pub sink: Option<PubSubSink>,
    /// This node's clients per conversation: the rooms it is subscribed to.
    pub rooms: HashMap<ConversationId, HashSet<String>>,
}

impl Subscriptions {
    /// Opens the pub/sub connection, subscribes to this node's channel and its rooms, and re-asserts
    /// its presence.
    pub(super) async fn open(&self) -> Result<PubSubStream, CoordinationError> {
        let client = self.endpoint.client().await?;
        let pubsub = tokio::time::timeout(COMMAND_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| CoordinationError::Unavailable("pub/sub connect timed out".into()))?
            .map_err(unavailable)?;
        let (mut sink, stream) = pubsub.split();
        let mut state = self.state.lock().await;
        sink.subscribe(self.keys.node_channel(&self.node_id))
            .await
            .map_err(unavailable)?;
        for conversation in state.rooms.keys() {
            sink.subscribe(self.keys.room_channel(conversation))
                .await
                .map_err(unavailable)?;
        }
        self.record_presence(&state).await?;
        state.sink = Some(sink);
        Ok(stream)
    }

    /// Records this node's clients of each conversation again (after Redis forgot them, or a reaper
    /// did).
    pub(super) async fn assert_presence(&self) -> Result<(), CoordinationError> {
        let state = self.state.lock().await;
        self.record_presence(&state).await
    }

    async fn record_presence(&self, state: &SubscriptionState) -> Result<(), CoordinationError> {
        if state.rooms.is_empty() {
            return Ok(());
        }
        let mut presence = redis::pipe();
        for (conversation, connections) in &state.rooms {
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
        presence
            .query_async::<()>(&mut self.commands.clone())
            .await
            .map_err(unavailable)
    }

    /// Forwards messages to the node; re-opens the connection whenever it ends, until the node is gone.
    pub(super) async fn read(
        self: Arc<Self>,
        mut stream: PubSubStream,
        sender: mpsc::Sender<Incoming>,
    ) {
        loop {
            loop {
                let message = tokio::select! {
                    message = stream.next() => message,
                    () = self.endpoint.moved.notified() => None,
                };
                let Some(message) = message else { break };
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
                let reopen = self.reconnects.run(|| async {
                    let opened = self.open().await;
                    if let Err(error) = &opened {
                        tracing::debug!(%error, "redis pub/sub reconnect failed");
                    }
                    opened
                });
                tokio::select! {
                    () = sender.closed() => return,
                    // The primary moved: try there at once rather than after the backoff.
                    () = self.endpoint.moved.notified() => {}
                    opened = reopen => match opened {
                        Ok(stream) => break stream,
                        Err(error) => {
                            tracing::error!(%error, "redis pub/sub cannot be re-opened");
                            return;
                        }
                    },
                }
            };
            tracing::info!(node = %self.node_id, "redis pub/sub resubscribed");
            if let Err(error) = beat_as(&mut self.commands.clone(), &self.keys, &self.node_id).await
            {
                tracing::warn!(%error, "heartbeat after resubscribing failed");
            }
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
