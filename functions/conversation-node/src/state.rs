//! The node's shared state: its ports, its agent, and the local registries (agent loops, socket rooms,
//! pending calls to other nodes). One `Arc<NodeState>` is handed to every handler and task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shared::domain::NodeId;
use shared::github::GitHubClient;
use shared::ports::{ConversationStore, Coordination, EventStore};
use tokio_util::task::TaskTracker;

use crate::action_rate::ActionLimiter;
use crate::agent::Agent;
use crate::auth::Authenticator;
use crate::callbacks::StateCallbacks;
use crate::calls::OwnerCalls;
use crate::config::{Limits, Timing};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::socket::rooms::Rooms;

pub struct NodeState {
    pub node_id: NodeId,
    pub public_url: String,
    pub limits: Limits,
    pub timing: Timing,
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    pub coordination: Arc<dyn Coordination>,
    pub agent: Agent,
    pub auth: Authenticator,
    pub action_rate: ActionLimiter,
    pub github: Option<GitHubClient>,
    pub sessions: Sessions,
    pub rooms: Rooms,
    pub calls: OwnerCalls,
    pub callbacks: StateCallbacks,
    pub metrics: Arc<Metrics>,
    /// The node's transient work (agent loops, takeovers, evictions, answers to other nodes): spawned
    /// here, so that shutdown waits for it after the hand-over.
    pub tasks: TaskTracker,
    /// Set once SIGTERM (or the test's shutdown) arrives: no new loops start.
    pub shutting_down: AtomicBool,
}

impl NodeState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}

/// The shared state as handlers receive it.
pub type Node = Arc<NodeState>;
