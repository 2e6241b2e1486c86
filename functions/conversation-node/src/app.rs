//! The node assembled: its state and background tasks from configuration and ports, the HTTP router
//! (REST + Socket.IO), and serving with a graceful stop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::serve::ListenerExt;
use shared::domain::{ChatMessage, ConversationId, NodeId, ProactiveConversationRequested};
use shared::github::GitHubClient;
use shared::ports::coordination::Incoming;
use shared::ports::{ConversationStore, Coordination, EventBus, EventStore};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use crate::action_rate::ActionLimiter;
use crate::agent::Agent;
use crate::agent::llm::LlmClient;
use crate::auth::Authenticator;
use crate::callbacks::StateCallbacks;
use crate::calls::{self, CompletionError};
use crate::config::NodeConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::shutdown::Background;
use crate::starter::{self, StarterError, StarterOutcome};
use crate::state::{Node, NodeState};
use crate::{dispatch, lifecycle, maintenance, rest, socket};

/// The ports a node runs on. `incoming` is the receiving end the coordination adapter was built with.
pub struct NodeDeps {
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    pub bus: Arc<dyn EventBus>,
    pub coordination: Arc<dyn Coordination>,
    pub incoming: mpsc::Receiver<Incoming>,
    /// `None`: the starter leaves no PR comment.
    pub github: Option<GitHubClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the LLM client: {0}")]
    Llm(#[from] reqwest::Error),
}

/// A running node: its state, its Socket.IO handle and its background tasks.
pub struct ConversationNode {
    node: Node,
    io: SocketIo,
    socket_routes: Router,
    background: Background,
}

impl ConversationNode {
    /// Builds the node and starts its background work (the cluster dispatcher, the lease heartbeat, the
    /// idle sweep, the callbacks worker). Must run inside a tokio runtime.
    pub fn start(config: &NodeConfig, deps: NodeDeps) -> Result<Self, StartError> {
        let agent = match &config.llm {
            Some(llm) => Agent::Model(LlmClient::new(llm.clone())?),
            None => Agent::Builtin,
        };
        let metrics = Arc::new(Metrics::default());
        let (callbacks, callbacks_worker) = StateCallbacks::new(deps.bus, Arc::clone(&metrics));
        let node: Node = Arc::new(NodeState {
            node_id: deps.coordination.node_id().clone(),
            public_url: config.public_url.clone(),
            limits: config.limits,
            timing: config.timing,
            conversations: deps.conversations,
            events: deps.events,
            coordination: deps.coordination,
            agent,
            auth: Authenticator::new(&config.auth),
            action_rate: ActionLimiter::new(config.limits.action_rate, Arc::clone(&metrics)),
            github: deps.github,
            sessions: Default::default(),
            rooms: Default::default(),
            calls: Default::default(),
            callbacks,
            metrics,
            tasks: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
        });
        let mut background = Background::default();
        background.spawn(callbacks_worker);
        background.spawn(dispatch::dispatch(Arc::clone(&node), deps.incoming));
        background.spawn(maintenance::heartbeat(Arc::clone(&node)));
        background.spawn(maintenance::sweep(Arc::clone(&node)));
        let (socket_routes, io) = socket::routes(Arc::clone(&node));
        tracing::info!(node_id = %node.node_id, agent = node.agent.label(), "node started");
        Ok(Self {
            node,
            io,
            socket_routes,
            background,
        })
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node.node_id
    }

    /// The node's whole HTTP interface. Other routes can be merged in before serving.
    pub fn router(&self) -> Router {
        rest::routes(Arc::clone(&self.node))
            .merge(self.socket_routes.clone())
            .fallback(async || ApiError::NotFound("no such route"))
    }

    /// A handle for in-process callers (an event-bus subscriber, tests), valid while the node serves.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle(Arc::clone(&self.node))
    }

    /// Serves `app` (usually [`ConversationNode::router`]) until `shutdown` resolves. Then it stops
    /// accepting connections (a reconnecting client lands on another node), hands every conversation
    /// over and closes the Socket.IO connections, so that their clients reconnect at once rather than
    /// after a ping timeout; it waits for open requests, at most the grace period in all.
    pub async fn serve(
        self,
        app: Router,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            node,
            io,
            background,
            ..
        } = self;
        let grace = node.timing.shutdown_grace;
        let (signal, signalled) = watch::channel(false);
        let stop_accepting = async move {
            shutdown.await;
            let _ = signal.send(true);
        };
        // No Nagle delay: an ack and the events after it are small writes in a row, and the second
        // would wait for the client's delayed ACK (~40 ms).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(reason = %error, "cannot set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(stop_accepting);
        let stopping = Arc::clone(&node);
        let mut on_signal = signalled.clone();
        let hand_over = async move {
            if on_signal.wait_for(|signalled| *signalled).await.is_err() {
                return;
            }
            tracing::info!("stopping: handing the conversations over");
            lifecycle::hand_over_all(&stopping, grace / 2).await;
            io.close().await;
        };
        let mut on_signal = signalled;
        let deadline = async move {
            // Not a `match` on the guard: it must not be held across the sleep.
            let signalled = on_signal.wait_for(|signalled| *signalled).await.is_ok();
            if signalled {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let stopped = async move { tokio::join!(server.into_future(), hand_over).0 };
        let (served, in_time) = tokio::select! {
            served = stopped => (served, true),
            () = deadline => {
                tracing::warn!("requests still open after the grace period: stopping anyway");
                (Ok(()), false)
            }
        };
        // The hand-over ended the agent loops; what else was started (a takeover, an answer to another
        // node) finishes, within the grace period's second half, before the loops are cancelled.
        node.tasks.close();
        if in_time
            && tokio::time::timeout(grace / 2, node.tasks.wait())
                .await
                .is_err()
        {
            tracing::warn!("work still running after the hand-over: stopping anyway");
        }
        background.stop().await;
        tracing::info!(node_id = %node.node_id, "node stopped");
        served
    }
}

/// What in-process callers may ask of a node.
#[derive(Clone)]
pub struct NodeHandle(Node);

impl NodeHandle {
    /// The proactive starter (what `POST /internal/proactive` runs).
    pub async fn start_proactive(
        &self,
        request: &ProactiveConversationRequested,
    ) -> Result<StarterOutcome, StarterError> {
        starter::start(&self.0, request).await
    }

    /// An extra completion through the conversation's model, run on the node that owns it (over the
    /// cluster when that is another node).
    pub async fn request_llm_completion(
        &self,
        conversation: &ConversationId,
        messages: Vec<ChatMessage>,
    ) -> Result<String, CompletionError> {
        calls::request_llm_completion(&self.0, conversation, messages).await
    }
}
