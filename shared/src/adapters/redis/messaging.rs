//! Messages on Redis: directed messages are published to the receiving node's channel, room messages
//! to the conversation's channel (which a node subscribes to while it has a client there, see
//! `pubsub.rs`); presence is a hash per conversation (node -> clients) with a per-node index of the
//! conversations it watches, so that reaping a node finds its records without a scan.

use std::collections::HashSet;

use async_trait::async_trait;

use super::coordination::{RedisCoordination, encode, unavailable};
use super::pubsub::RoomEnvelope;
use crate::domain::{ConversationId, NodeId};
use crate::ports::coordination::{
    CoordinationError, Destination, Messaging, NodeMessage, RoomMessage,
};

impl RedisCoordination {
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

#[async_trait]
impl Messaging for RedisCoordination {
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
}
