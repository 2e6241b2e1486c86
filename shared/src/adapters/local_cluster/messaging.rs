//! Messages on the in-process cluster: straight into the receiving node's channel; rooms and presence
//! are the same map (a node receives a room's messages while it has a client there).

use async_trait::async_trait;
use tokio::time::Instant;

use super::{LocalNode, deliver};
use crate::domain::{ConversationId, NodeId};
use crate::ports::coordination::{
    CoordinationError, Destination, Incoming, Messaging, NodeMessage, RoomMessage,
};

#[async_trait]
impl Messaging for LocalNode {
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
            state.room_senders(conversation).collect()
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
}
