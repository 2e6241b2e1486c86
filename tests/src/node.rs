//! Conversation nodes in the test process: each [`TestNode`] is a real node (`ConversationNode`) serving
//! HTTP and Socket.IO on a loopback port (and its probes and metrics on another), on shared stores and a
//! shared in-process cluster, so that a test runs one node or several. Also: HS256 tokens for test
//! users, and REST calls with JSON answers.

use std::sync::Arc;
use std::time::Duration;

use conversation_node::config::{
    AgentServers, AuthConfig, CoordinationBackend, JwtKeys, Limits, LlmConfig, NodeConfig,
    OpenHandsConfig, RuntimeConfig, Timing,
};
use conversation_node::{ConversationNode, Listeners, NodeDeps, NodeHandle, NodeMetrics};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::adapters::dynamo::{ConversationTable, EventTable, ProactiveTable};
use shared::adapters::embedded::{
    EmbeddedConversationStore, EmbeddedDb, EmbeddedEventStore, EmbeddedProactiveStore,
};
use shared::adapters::in_process_bus::InProcessBus;
use shared::adapters::local_cluster::LocalCluster;
use shared::config::{BusBackend, StoreBackend};
use shared::domain::NodeId;
use shared::github::GitHubClient;
use shared::ports::Coordination;
use shared::ports::coordination::{Incoming, LimitPolicy};
use shared::ports::{ConversationStore, EventBus, EventStore, ProactiveStore};
use shared::proactive::AccountLinks;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::agent_server::AgentServer;
use crate::moto;
use crate::socketio::{PATIENCE, is_state};

/// The system prompt of a test node's model.
pub const MODEL_SYSTEM_PROMPT: &str = "You are the test agent.";

/// The HS256 secret every test node verifies tokens with.
pub const JWT_SECRET: &str = "conversation-node-tests-secret";
/// How often [`TestNode::wait_for`] looks again.
const POLL: Duration = Duration::from_millis(50);

/// A valid bearer token for `user`, signed with [`JWT_SECRET`].
pub fn token(user: &str) -> String {
    token_signed_with(user, JWT_SECRET)
}

/// A token for `user` signed with another secret (refused by the nodes).
pub fn token_signed_with(user: &str, secret: &str) -> String {
    conversation_node::mint_hs256(secret, user, Duration::from_secs(3600))
}

/// The stores every node of a test shares.
#[derive(Clone)]
pub struct Stores {
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    /// Users' and repositories' settings (the webhook's store).
    pub proactive: Arc<dyn ProactiveStore>,
}

impl Stores {
    /// A fresh embedded (SQLite, in-memory) database.
    pub async fn embedded() -> Self {
        let db = EmbeddedDb::in_memory().expect("an in-memory database");
        Self {
            conversations: Arc::new(
                EmbeddedConversationStore::open(db.clone())
                    .await
                    .expect("the conversation tables"),
            ),
            events: Arc::new(
                EmbeddedEventStore::open(db.clone())
                    .await
                    .expect("the event tables"),
            ),
            proactive: Arc::new(
                EmbeddedProactiveStore::open(db)
                    .await
                    .expect("the proactive tables"),
            ),
        }
    }

    /// Fresh DynamoDB tables on the moto server.
    pub async fn dynamo() -> Self {
        let client = moto::dynamodb().await;
        let tables = moto::unique_tables(&client).await;
        Self {
            conversations: Arc::new(ConversationTable::new(client.clone(), tables.conversations)),
            events: Arc::new(EventTable::new(client.clone(), tables.events)),
            proactive: Arc::new(ProactiveTable::new(client, tables.proactive)),
        }
    }
}

/// Everything a test may change about a node; [`NodeOptions::new`] gives the defaults.
pub struct NodeOptions {
    pub config: NodeConfig,
    pub bus: Arc<dyn EventBus>,
    pub github: Option<GitHubClient>,
    /// Users' GitHub accounts (nobody's by default).
    pub links: AccountLinks,
    /// The node's metrics (a Redis adapter built for the node reports into them: `redis_timing`).
    pub metrics: Arc<NodeMetrics>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeOptions {
    pub fn new() -> Self {
        Self {
            config: NodeConfig {
                port: 0,
                metrics_addr: "127.0.0.1:0".parse().expect("a loopback address"),
                node_id: NodeId::random(),
                public_url: "http://conversations.test".into(),
                auth: AuthConfig {
                    keys: JwtKeys::Hs256Secret(JWT_SECRET.into()),
                    issuer: None,
                    audience: None,
                    leeway: Duration::from_secs(60),
                    session_api_key: None,
                    internal_api_key: None,
                },
                limits: Limits {
                    max_running: 3,
                    policy: LimitPolicy::EvictOldest,
                    close_delay: Duration::from_secs(3600),
                    socket_buffer: 1024,
                    action_rate: Default::default(),
                },
                timing: Timing {
                    shutdown_grace: Duration::from_secs(5),
                    ..Timing::default()
                },
                llm: None,
                runtime: RuntimeConfig::Chat,
                coordination: CoordinationBackend::Standalone,
                store: StoreBackend::Embedded {
                    data_dir: "unused".into(),
                },
                bus: BusBackend::InProcess,
                proactive_default: true,
            },
            bus: Arc::new(InProcessBus::default()),
            github: None,
            links: AccountLinks::configured("").expect("no links"),
            metrics: Arc::default(),
        }
    }

    /// The model at `base_url` (a fake), retrying quickly.
    pub fn with_model(mut self, base_url: &str, api_key: &str) -> Self {
        self.config.llm = Some(LlmConfig {
            base_url: base_url.into(),
            model: "fake-model".into(),
            api_key: Some(api_key.into()),
            timeout: Duration::from_secs(10),
            num_retries: 2,
            retry_min_wait: Duration::from_millis(20),
            retry_max_wait: Duration::from_millis(200),
            system_prompt: MODEL_SYSTEM_PROMPT.into(),
            max_input_tokens: 100_000,
        });
        self
    }

    /// The `openhands` runtime on `server` (a remote agent-server), its agent driven by the model at
    /// `base_url` (a fake).
    pub fn with_openhands(mut self, server: &AgentServer, base_url: &str, api_key: &str) -> Self {
        self.config.runtime = RuntimeConfig::OpenHands(OpenHandsConfig {
            model: "openai/fake-model".into(),
            base_url: Some(base_url.into()),
            api_key: Some(api_key.into()),
            servers: AgentServers::Remote {
                url: server.url(),
                api_key: Some(server.api_key.clone()),
                workspace_root: server.workspace_root().display().to_string(),
            },
            tools: vec![
                "terminal".into(),
                "file_editor".into(),
                "task_tracker".into(),
            ],
            max_iterations: 20,
        });
        self
    }

    /// The `openhands` runtime on an agent-server the node runs itself (`AGENT_SERVER=process`), its
    /// state and workspaces under `data_dir`.
    pub fn with_own_agent_server(
        mut self,
        data_dir: &std::path::Path,
        base_url: &str,
        api_key: &str,
    ) -> Self {
        let servers = AgentServers::Process {
            python: crate::agent_server::python(),
            data_dir: data_dir.to_owned(),
        };
        self.config.runtime = openhands(servers, base_url, api_key);
        self
    }

    /// The model's input budget, in estimated tokens (after [`NodeOptions::with_model`]).
    pub fn with_model_budget(mut self, max_input_tokens: usize) -> Self {
        if let Some(llm) = self.config.llm.as_mut() {
            llm.max_input_tokens = max_input_tokens;
        }
        self
    }
}

/// A test node's `openhands` runtime on `servers`: the fake model at `base_url`, the default tools.
fn openhands(servers: AgentServers, base_url: &str, api_key: &str) -> RuntimeConfig {
    RuntimeConfig::OpenHands(OpenHandsConfig {
        model: "openai/fake-model".into(),
        base_url: Some(base_url.into()),
        api_key: Some(api_key.into()),
        servers,
        tools: vec![
            "terminal".into(),
            "file_editor".into(),
            "task_tracker".into(),
        ],
        max_iterations: 20,
    })
}

/// A node serving on a loopback port; shut down (gracefully) when dropped or by [`TestNode::stop`].
pub struct TestNode {
    pub url: String,
    /// Its metrics listener (`/ready`, `/metrics`).
    pub metrics_url: String,
    pub node_id: NodeId,
    pub handle: NodeHandle,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl TestNode {
    /// A node on `stores`, one more member of `cluster`.
    pub async fn start(stores: &Stores, cluster: &LocalCluster, options: NodeOptions) -> Self {
        let (coordination, incoming) = cluster.join(options.config.node_id.clone());
        Self::start_with(stores, Arc::new(coordination), incoming, options).await
    }

    /// A node on `stores` with a coordination adapter of the caller's (e.g. Redis), built for
    /// `options.config.node_id`, and the receiver of its incoming messages.
    pub async fn start_with(
        stores: &Stores,
        coordination: Arc<dyn Coordination>,
        incoming: mpsc::Receiver<Incoming>,
        options: NodeOptions,
    ) -> Self {
        let node_id = options.config.node_id.clone();
        let deps = NodeDeps {
            conversations: Arc::clone(&stores.conversations),
            events: Arc::clone(&stores.events),
            bus: options.bus,
            coordination,
            incoming,
            github: options.github,
            proactive: Arc::clone(&stores.proactive),
            links: options.links,
            metrics: options.metrics,
        };
        let node = ConversationNode::start(&options.config, deps).expect("the node starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let metrics = tokio::net::TcpListener::bind(options.config.metrics_addr)
            .await
            .expect("a loopback port for the metrics");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let metrics_url = format!("http://{}", metrics.local_addr().expect("a bound address"));
        let handle = node.handle();
        let app = node.router();
        let (shutdown, signal) = oneshot::channel::<()>();
        let listeners = Listeners {
            public: listener,
            metrics,
        };
        let served = tokio::spawn(node.serve(app, listeners, async move {
            let _ = signal.await;
        }));
        Self {
            url,
            metrics_url,
            node_id,
            handle,
            http: reqwest::Client::new(),
            shutdown: Some(shutdown),
            served: Some(served),
        }
    }

    /// A standalone node: a cluster of one.
    pub async fn standalone(stores: &Stores, options: NodeOptions) -> Self {
        Self::start(stores, &LocalCluster::new(Duration::from_secs(15)), options).await
    }

    /// Stops the node as SIGTERM would, and waits until it has.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            let stopped = tokio::time::timeout(PATIENCE, served).await;
            assert!(stopped.is_ok(), "the node did not stop within {PATIENCE:?}");
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let answer = request.send().await.expect("the node answers");
        let status = answer.status();
        let text = answer.text().await.expect("an answer body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("answer {status} is not JSON: {text:?}"));
        (status, body)
    }

    fn authorised(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let request = self.http.get(format!("{}{path}", self.url));
        self.call(self.authorised(request, token)).await
    }

    /// A GET of the metrics listener (`/ready`, `/metrics`, ...), whose answers are JSON but for
    /// `/metrics` ([`TestNode::scrape`]).
    pub async fn get_private(&self, path: &str) -> (StatusCode, Value) {
        self.call(self.http.get(format!("{}{path}", self.metrics_url)))
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let request = self.http.post(format!("{}{path}", self.url)).json(body);
        self.call(self.authorised(request, token)).await
    }

    /// A raw request, for the cases the helpers do not cover (headers, bodies that are not JSON).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        self.call(request).await
    }

    /// Creates a conversation for `token`'s user; returns its id.
    pub async fn create_conversation(&self, token: &str, first_message: Option<&str>) -> String {
        let (status, body) = self
            .post(
                "/api/conversations",
                Some(token),
                &json!({ "initial_user_msg": first_message }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create answered {body}");
        body["conversation_id"]
            .as_str()
            .expect("a conversation id")
            .to_owned()
    }

    /// A conversation started on this node (which then owns it), with its loop ready for a message.
    pub async fn create_ready_conversation(&self, token: &str) -> String {
        let id = self.create_conversation(token, None).await;
        self.wait_for_events(token, &id, |events| {
            events
                .last()
                .is_some_and(|e| is_state(e, "awaiting_user_input"))
        })
        .await;
        id
    }

    pub async fn conversation(&self, token: &str, id: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/conversations/{id}"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "get answered {body}");
        body
    }

    /// Every stored event of a conversation, through the REST pages.
    pub async fn all_events(&self, token: &str, id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let path = format!(
                "/api/conversations/{id}/events?start_id={}&limit=100",
                events.len()
            );
            let (status, body) = self.get(&path, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "events answered {body}");
            events.extend(body["events"].as_array().cloned().unwrap_or_default());
            if body["has_more"] != true {
                return events;
            }
        }
    }

    /// Polls the conversation until `condition` holds; panics after [`PATIENCE`].
    pub async fn wait_for(
        &self,
        token: &str,
        id: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let conversation = self.conversation(token, id).await;
            if condition(&conversation) {
                return conversation;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met within {PATIENCE:?}: {conversation}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the events until `condition` holds for them; returns them.
    pub async fn wait_for_events(
        &self,
        token: &str,
        id: &str,
        condition: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let events = self.all_events(token, id).await;
            if condition(&events) {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "events not as expected within {PATIENCE:?}: {events:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The metrics listener's `/metrics` (Prometheus text).
    pub async fn scrape(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    /// One value of `/metrics` (a series without labels).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.scrape().await;
        crate::metrics::value(&text, name).unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }
}

/// Whether a REST conversation is stopped.
pub fn is_stopped(conversation: &Value) -> bool {
    conversation["status"] == "stopped"
}

/// Whether an event is the agent's answer.
pub fn is_agent_message(event: &Value) -> bool {
    event["source"] == "agent" && event["action"] == "message"
}
