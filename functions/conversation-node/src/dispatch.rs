//! The node's inbound side of the cluster: every message the coordination adapter delivers to this node
//! is routed here, in arrival order. Room messages go to this node's clients; directed messages to the
//! local loops or to pending calls. Anything that may wait on the cluster runs in its own task, so the
//! dispatcher never waits on itself.

use std::sync::Arc;

use shared::ports::coordination::{Incoming, NodeMessage, RoomMessage};
use tokio::sync::mpsc;

use crate::calls;
use crate::lifecycle;
use crate::sessions::Control;
use crate::state::Node;

pub async fn dispatch(node: Node, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(message) = incoming.recv().await {
        match message {
            Incoming::Room {
                conversation,
                message,
            } => match message {
                RoomMessage::Event(event) => {
                    node.rooms.deliver(&node.events, &conversation, event).await;
                }
                RoomMessage::Status(status) => node.rooms.status(&conversation, &status),
                RoomMessage::OwnerGone => {
                    if node.rooms.has_clients(&conversation) && !node.is_shutting_down() {
                        let owned = Arc::clone(&node);
                        node.tasks.spawn(async move {
                            if let Err(error) = lifecycle::take_over(&owned, &conversation).await {
                                tracing::warn!(%conversation, reason = %error, "takeover failed");
                            }
                        });
                    }
                }
            },
            Incoming::Node(NodeMessage::InboxReady { conversation }) => {
                if let Some(handle) = node.sessions.get(&conversation) {
                    // A full queue already holds a wake-up.
                    let _ = handle.control.try_send(Control::InboxReady);
                }
            }
            Incoming::Node(NodeMessage::Request {
                id,
                reply_to,
                conversation,
                request,
            }) => {
                let owned = Arc::clone(&node);
                node.tasks.spawn(async move {
                    calls::answer(&owned, id, reply_to, conversation, request).await;
                });
            }
            Incoming::Node(NodeMessage::Reply { id, reply }) => node.calls.complete(&id, reply),
        }
    }
}
