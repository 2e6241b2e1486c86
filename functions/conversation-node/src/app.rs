//! The node assembled: its state and background tasks from configuration and ports, the HTTP router
//! (REST + Socket.IO), the metrics listener's router (`/ready`, `/metrics`), and serving both with a
//! graceful stop.

use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use shared::domain::{ChatMessage, ConversationId, NodeId, ProactiveConversationRequested};
use shared::github::GitHubClient;
use shared::ports::coordination::Incoming;
use shared::ports::{ConversationStore, Coordination, EventBus, EventStore, ProactiveStore};
use shared::proactive::AccountLinks;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::action_rate::ActionLimiter;
use crate::agent::Agent;
use crate::agent::chat::ChatRuntime;
use crate::agent::llm::LlmClient;
use crate::agent::openhands::OpenHandsRuntime;
use crate::agent::runtime::AgentRuntime;
use crate::agent::session::LoopContext;
use crate::auth::Authenticator;
use crate::callbacks::StateCallbacks;
use crate::calls::{CompletionError, OwnerCalls};
use crate::config::{NodeConfig, RuntimeConfig};
use crate::dispatch::Dispatcher;
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::maintenance::Maintenance;
use crate::metrics::NodeMetrics;
use crate::rest::settings::SettingsContext;
use crate::rest::{self, ApiContext};
use crate::shutdown::Background;
use crate::socket::{self, SocketContext};
use crate::starter::{Starter, StarterError, StarterOutcome};

/// The ports a node runs on. `incoming` is the receiving end the coordination adapter was built with.
pub struct NodeDeps {
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    pub bus: Arc<dyn EventBus>,
    pub coordination: Arc<dyn Coordination>,
    pub incoming: mpsc::Receiver<Incoming>,
    /// `None`: the starter leaves no PR comment.
    pub github: Option<GitHubClient>,
    /// Where users' and repositories' proactive settings live (the webhook's store).
    pub proactive: Arc<dyn ProactiveStore>,
    /// Users' GitHub accounts (a repository's settings are its admins').
    pub links: AccountLinks,
    /// The node's metrics, made before the ports that report into them (the Redis adapter's timing).
    pub metrics: Arc<NodeMetrics>,
}

/// Where a node serves: the public port (REST, Socket.IO, `/health`) and the metrics listener
/// (`/ready`, `/metrics`: `METRICS_ADDR`, which the load balancer never routes).
pub struct Listeners {
    pub public: TcpListener,
    pub metrics: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A running node: the contexts its parts were built with, its Socket.IO handle and its background
/// tasks.
pub struct ConversationNode {
    node_id: NodeId,
    lifecycle: Arc<Lifecycle>,
    starter: Arc<Starter>,
    api: Arc<ApiContext>,
    io: SocketIo,
    socket_routes: Router,
    background: Background,
    shutdown_grace: std::time::Duration,
}

impl ConversationNode {
    /// Builds the node's parts, each with what it needs, and starts its background work (the cluster
    /// dispatcher, the lease heartbeat, the idle sweep, the callbacks worker). Must run inside a tokio
    /// runtime.
    pub fn start(config: &NodeConfig, deps: NodeDeps) -> Result<Self, StartError> {
        let agent = match &config.llm {
            Some(llm) => Agent::Model(LlmClient::new(llm.clone())?),
            None => Agent::Builtin,
        };
        let coordination = deps.coordination;
        let node_id = coordination.node_id().clone();
        let metrics = deps.metrics;
        let runtime: Arc<dyn AgentRuntime> = match &config.runtime {
            RuntimeConfig::Chat => Arc::new(ChatRuntime::new(agent.clone(), Arc::clone(&metrics))),
            RuntimeConfig::OpenHands(openhands) => Arc::new(OpenHandsRuntime::new(
                openhands.clone(),
                deps.github.clone(),
                Arc::clone(&metrics),
            )?),
        };
        let (callbacks, callbacks_worker) = StateCallbacks::new(deps.bus, Arc::clone(&metrics));
        let agent_label = runtime.label().to_owned();
        let loops = Arc::new(LoopContext {
            events: Arc::clone(&deps.events),
            conversations: Arc::clone(&deps.conversations),
            inbox: coordination.clone(),
            leases: coordination.clone(),
            rooms: coordination.clone(),
            runtime: Arc::clone(&runtime),
            completions: agent,
            callbacks,
            sessions: Arc::default(),
            metrics: Arc::clone(&metrics),
            close_delay: config.limits.close_delay,
        });
        let calls = OwnerCalls::new(
            node_id.clone(),
            Arc::clone(&loops),
            config.timing.owner_call_timeout,
        );
        let lifecycle = Arc::new(Lifecycle::new(loops, calls, config.limits));
        let auth = Arc::new(Authenticator::new(&config.auth));
        let action_rate = Arc::new(ActionLimiter::new(
            config.limits.action_rate,
            Arc::clone(&metrics),
        ));
        let rooms = Arc::new(socket::rooms::Rooms::default());
        let settings = SettingsContext {
            store: Arc::clone(&deps.proactive),
            links: deps.links,
            github: deps.github.clone(),
            proactive_default: config.proactive_default,
        };
        let starter = Arc::new(Starter {
            lifecycle: Arc::clone(&lifecycle),
            conversations: Arc::clone(&deps.conversations),
            github: deps.github,
            public_url: config.public_url.clone(),
            comments: deps.proactive,
        });
        let api = Arc::new(ApiContext {
            lifecycle: Arc::clone(&lifecycle),
            starter: Arc::clone(&starter),
            auth: Arc::clone(&auth),
            conversations: Arc::clone(&deps.conversations),
            events: Arc::clone(&deps.events),
            action_rate: Arc::clone(&action_rate),
            public_url: config.public_url.clone(),
            liveness: coordination.clone(),
            agent_label,
            runtime,
            settings,
            metrics: Arc::clone(&metrics),
        });
        let maintenance = Arc::new(Maintenance {
            lifecycle: Arc::clone(&lifecycle),
            leases: coordination.clone(),
            liveness: coordination.clone(),
            presence: coordination.clone(),
            action_rate: Arc::clone(&action_rate),
            metrics: Arc::clone(&metrics),
            timing: config.timing,
            close_delay: config.limits.close_delay,
        });
        let dispatcher = Dispatcher {
            lifecycle: Arc::clone(&lifecycle),
            rooms: Arc::clone(&rooms),
            events: Arc::clone(&deps.events),
        };
        let (socket_routes, io) = socket::routes(Arc::new(SocketContext {
            lifecycle: Arc::clone(&lifecycle),
            auth,
            conversations: deps.conversations,
            events: deps.events,
            presence: coordination,
            rooms,
            action_rate,
            metrics,
            buffer: config.limits.socket_buffer,
        }));
        let mut background = Background::default();
        background.spawn(callbacks_worker);
        background.spawn(dispatcher.run(deps.incoming));
        background.spawn(Arc::clone(&maintenance).heartbeat());
        background.spawn(maintenance.sweep());
        // What a node that left (or died) handed over while no other node was there to take it.
        lifecycle.spawn_drain_handovers();
        tracing::info!(%node_id, agent = api.agent_label, "node started");
        Ok(Self {
            node_id,
            lifecycle,
            starter,
            api,
            io,
            socket_routes,
            background,
            shutdown_grace: config.timing.shutdown_grace,
        })
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node's whole HTTP interface. Other routes can be merged in before serving.
    pub fn router(&self) -> Router {
        rest::routes(Arc::clone(&self.api))
            .merge(self.socket_routes.clone())
            .fallback(async || ApiError::NotFound("no such route"))
    }

    /// A handle for in-process callers (an event-bus subscriber, tests), valid while the node serves.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle {
            starter: Arc::clone(&self.starter),
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }

    /// Serves `app` (usually [`ConversationNode::router`]) on the public listener, and the probes and
    /// metrics on the metrics listener, until `shutdown` resolves. Then it stops accepting public
    /// connections (a reconnecting client lands on another node), hands every conversation over and
    /// closes the Socket.IO connections, so that their clients reconnect at once rather than after a
    /// ping timeout; it waits for open requests, at most the grace period in all. The metrics listener
    /// answers (`/ready`: shutting down) until the node has stopped.
    pub async fn serve(
        self,
        app: Router,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            node_id,
            lifecycle,
            api,
            io,
            background,
            shutdown_grace: grace,
            ..
        } = self;
        let (stop_private, private_stopping) = oneshot::channel::<()>();
        let private = tokio::spawn(
            axum::serve(listeners.metrics, rest::probes::private_routes(api))
                .with_graceful_shutdown(async move {
                    let _ = private_stopping.await;
                })
                .into_future(),
        );
        let listener = listeners.public;
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
        let stopping = Arc::clone(&lifecycle);
        let mut on_signal = signalled.clone();
        let hand_over = async move {
            if on_signal.wait_for(|signalled| *signalled).await.is_err() {
                return;
            }
            tracing::info!("stopping: handing the conversations over");
            stopping.hand_over_all(grace / 2).await;
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
        lifecycle.tasks().close();
        if in_time
            && tokio::time::timeout(grace / 2, lifecycle.tasks().wait())
                .await
                .is_err()
        {
            tracing::warn!("work still running after the hand-over: stopping anyway");
        }
        background.stop().await;
        lifecycle.stop_runtime().await;
        let _ = stop_private.send(());
        // Its requests are short (a scrape, a probe): what is still open after the grace is dropped.
        match tokio::time::timeout(grace, private).await {
            Ok(Ok(Err(error))) => tracing::warn!(reason = %error, "the metrics listener failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("a metrics request was still open: stopping anyway"),
        }
        tracing::info!(%node_id, "node stopped");
        served
    }
}

/// What in-process callers may ask of a node.
#[derive(Clone)]
pub struct NodeHandle {
    starter: Arc<Starter>,
    lifecycle: Arc<Lifecycle>,
}

impl NodeHandle {
    /// The proactive starter (what `POST /internal/proactive` runs).
    pub async fn start_proactive(
        &self,
        request: &ProactiveConversationRequested,
    ) -> Result<StarterOutcome, StarterError> {
        self.starter.start(request).await
    }

    /// An extra completion through the conversation's model, run on the node that owns it (over the
    /// cluster when that is another node).
    pub async fn request_llm_completion(
        &self,
        conversation: &ConversationId,
        messages: Vec<ChatMessage>,
    ) -> Result<String, CompletionError> {
        self.lifecycle
            .calls()
            .request_llm_completion(conversation, messages)
            .await
    }
}
