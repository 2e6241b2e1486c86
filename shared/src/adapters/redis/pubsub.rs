//! The node's pub/sub connection to Redis: its own channel and the rooms it has clients in, read by one
//! task that forwards every message to the node and, when the connection ends, re-opens it under the
//! shared retry policy, re-subscribing and re-asserting this node's presence (a Redis restarted empty
//! forgets it).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use super::coordination::{COMMAND_TIMEOUT, unavailable};
use super::keys::Keys;
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
    pub client: redis::Client,
    pub keys: Keys,
    pub node_id: NodeId,
    pub commands: ConnectionManager,
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
    pub(super) async fn read(
        self: Arc<Self>,
        mut stream: PubSubStream,
        sender: mpsc::Sender<Incoming>,
    ) {
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
            let reopen = self.reconnects.run(|| async {
                let opened = self.open().await;
                if let Err(error) = &opened {
                    tracing::debug!(%error, "redis pub/sub reconnect failed");
                }
                opened
            });
            stream = tokio::select! {
                () = sender.closed() => return,
                opened = reopen => match opened {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::error!(%error, "redis pub/sub cannot be re-opened");
                        return;
                    }
                },
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
