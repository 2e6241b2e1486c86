//! The node's inbound side of the cluster: every message the coordination adapter delivers to this node
//! is routed here, in arrival order. Room messages go to this node's clients; directed messages to the
//! local loops or to pending calls. Anything that may wait on the cluster runs in its own task, so the
//! dispatcher never waits on itself.

use std::sync::Arc;

use shared::ports::EventStore;
use shared::ports::coordination::{Incoming, NodeMessage, RoomMessage};
use tokio::sync::mpsc;

use crate::lifecycle::Lifecycle;
use crate::sessions::Control;
use crate::socket::rooms::Rooms;

/// What the dispatcher routes to: the loops and calls (through the lifecycle), and this node's clients.
pub(crate) struct Dispatcher {
    pub lifecycle: Arc<Lifecycle>,
    pub rooms: Arc<Rooms>,
    /// Where a client that fell behind catches up from.
    pub events: Arc<dyn EventStore>,
}

impl Dispatcher {
    pub(crate) async fn run(self, mut incoming: mpsc::Receiver<Incoming>) {
        while let Some(message) = incoming.recv().await {
            match message {
                Incoming::Room {
                    conversation,
                    message,
                } => match message {
                    RoomMessage::Event(event) => {
                        self.rooms.deliver(&self.events, &conversation, event).await;
                    }
                    RoomMessage::Status(status) => self.rooms.status(&conversation, &status),
                    // The conversation is on the hand-over list (with every node told): a node
                    // with its clients pulls from it at once too.
                    RoomMessage::OwnerGone => self.lifecycle.spawn_drain_handovers(),
                },
                Incoming::Node(NodeMessage::InboxReady { conversation }) => {
                    if let Some(handle) = self.lifecycle.sessions().get(&conversation) {
                        // A full queue already holds a wake-up.
                        let _ = handle.control.try_send(Control::InboxReady);
                    }
                }
                Incoming::Node(NodeMessage::HandoversWaiting) => {
                    self.lifecycle.spawn_drain_handovers();
                }
                Incoming::Node(NodeMessage::Request {
                    id,
                    reply_to,
                    conversation,
                    request,
                }) => {
                    let lifecycle = Arc::clone(&self.lifecycle);
                    self.lifecycle.tasks().spawn(async move {
                        lifecycle
                            .calls()
                            .answer(id, reply_to, conversation, request)
                            .await;
                    });
                }
                Incoming::Node(NodeMessage::Reply { id, reply }) => {
                    self.lifecycle.calls().complete(&id, reply);
                }
            }
        }
    }
}
