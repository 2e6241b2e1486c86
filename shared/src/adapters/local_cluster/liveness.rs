//! Liveness on the in-process cluster: beats at the process's clock, reaping of the silent and of the
//! nodes dropped from the cluster (their conversations onto the hand-over list).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{LocalNode, deliver};
use crate::domain::{ConversationId, NodeId};
use crate::ports::coordination::{CoordinationError, Incoming, Liveness, NodeMessage, RoomMessage};

#[async_trait]
impl Liveness for LocalNode {
    fn node_id(&self) -> &NodeId {
        &self.node_id
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
                state.handovers.push_back(conversation.clone());
            }
            for room in state.rooms.values_mut() {
                room.retain(|node, _| !dead.contains(node));
            }
            state.rooms.retain(|_, room| !room.is_empty());
            let rooms = orphans.iter().flat_map(|conversation| {
                state.room_senders(conversation).map(move |sender| {
                    let gone = Incoming::Room {
                        conversation: conversation.clone(),
                        message: RoomMessage::OwnerGone,
                    };
                    (sender, gone)
                })
            });
            // Every live node shares the takeovers (the list holds them).
            let waiting = Incoming::Node(NodeMessage::HandoversWaiting);
            let nodes = state
                .nodes
                .iter()
                .filter(|(node, _)| !orphans.is_empty() && !dead.contains(*node))
                .map(|(_, sender)| (sender.clone(), waiting.clone()));
            let recipients: Vec<_> = rooms.chain(nodes).collect();
            (orphans, recipients)
        };
        for (sender, message) in recipients {
            deliver(sender, message).await;
        }
        Ok(orphans)
    }

    async fn check(&self) -> Result<(), CoordinationError> {
        Ok(())
    }
}
