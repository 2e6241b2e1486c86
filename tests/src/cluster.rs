//! Clustered conversation nodes as real processes: the `conversation-node` binary (built by
//! `cargo build -p conversation-node`, or by any workspace test run), several of them sharing one Redis
//! key prefix and one set of DynamoDB tables on moto, each listening on a port of its own; and the REST
//! calls tests and benchmarks make to them.

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use shared::config::TableNames;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::node::{JWT_SECRET, is_agent_message};
use crate::socketio::PATIENCE;

/// What the nodes of one test share.
#[derive(Debug, Clone)]
pub struct ClusterEnv {
    pub redis_url: String,
    pub key_prefix: String,
    pub tables: TableNames,
    /// `LEASE_TTL` and `HEARTBEAT_INTERVAL`, in seconds.
    pub lease_ttl: f64,
    pub heartbeat: f64,
    /// More variables for every node (`MAX_CONCURRENT_CONVERSATIONS`, ...).
    pub extra: Vec<(&'static str, String)>,
}

impl ClusterEnv {
    /// A fresh key prefix and fresh tables on moto, with short cadences.
    pub async fn fresh() -> Self {
        Self {
            redis_url: crate::redis::url(),
            key_prefix: crate::redis::unique_prefix(),
            tables: crate::moto::unique_tables(&crate::moto::dynamodb().await).await,
            lease_ttl: 3.0,
            heartbeat: 0.5,
            extra: Vec::new(),
        }
    }

    /// Like [`Self::fresh`], at the node's default cadences (`Timing::default()`: the values a node
    /// uses when `LEASE_TTL` and `HEARTBEAT_INTERVAL` are not set).
    pub async fn fresh_at_default_cadence() -> Self {
        let defaults = conversation_node::config::Timing::default();
        Self {
            lease_ttl: defaults.lease_ttl.as_secs_f64(),
            heartbeat: defaults.heartbeat.as_secs_f64(),
            ..Self::fresh().await
        }
    }

    /// The same nodes on the embedded store instead of moto: one SQLite file under `data_dir`, shared
    /// by every node given the same directory (empty AWS variables select the embedded store).
    pub fn on_embedded_store(mut self, data_dir: &Path) -> Self {
        self.extra.extend([
            ("AWS_ENDPOINT_URL", String::new()),
            ("PROACTIVE_TABLE", String::new()),
            ("DATA_DIR", data_dir.display().to_string()),
        ]);
        self
    }
}

/// One node process; killed when dropped.
pub struct NodeProcess {
    child: Child,
    pub url: String,
    /// Its metrics listener (`/ready`, `/metrics`).
    pub metrics_url: String,
    pub node_id: String,
    /// The messages it logs after it listens.
    messages: mpsc::UnboundedReceiver<String>,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl NodeProcess {
    /// Starts a node and waits until it serves.
    pub async fn start(env: &ClusterEnv) -> Self {
        let mut node = Self::launch(env).await;
        node.logged("node started").await;
        node
    }

    /// Starts a node and waits until it listens: it may still be waiting for Redis (`/ready` 503 on
    /// its metrics listener).
    pub async fn launch(env: &ClusterEnv) -> Self {
        Self::launch_with(env, None).await
    }

    /// Like [`Self::start`], keeping the node's output: its stdout and its log lines (stderr) are
    /// appended to the file at `log` (created if need be), which outlives the node.
    pub async fn start_logging_to(env: &ClusterEnv, log: &Path) -> Self {
        let mut node = Self::launch_with(env, Some(log)).await;
        node.logged("node started").await;
        node
    }

    /// Like [`Self::launch`], keeping the node's output in `log` (see [`Self::start_logging_to`]).
    pub async fn launch_logging_to(env: &ClusterEnv, log: &Path) -> Self {
        Self::launch_with(env, Some(log)).await
    }

    async fn launch_with(env: &ClusterEnv, log: Option<&Path>) -> Self {
        // Appending, so that the node's stdout and the log lines copied below interleave whole.
        let mut log = log.map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|error| panic!("the node's log {}: {error}", path.display()))
        });
        let stdout = match &log {
            Some(file) => Stdio::from(file.try_clone().expect("the node's log file")),
            None => Stdio::null(),
        };
        let mut child = Command::new(crate::built_binary("conversation-node"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("JWT_HS256_SECRET", JWT_SECRET)
            .env("REDIS_URL", &env.redis_url)
            .env("REDIS_KEY_PREFIX", &env.key_prefix)
            .env("LEASE_TTL", env.lease_ttl.to_string())
            .env("HEARTBEAT_INTERVAL", env.heartbeat.to_string())
            .env("AWS_ENDPOINT_URL", crate::moto::endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("PROACTIVE_TABLE", &env.tables.proactive)
            .env("CONVERSATIONS_TABLE", &env.tables.conversations)
            .env("EVENTS_TABLE", &env.tables.events)
            .env("SHUTDOWN_GRACE", "2")
            .envs(env.extra.iter().map(|(name, value)| (*name, value)))
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the node binary starts");
        let mut lines = BufReader::new(child.stderr.take().expect("its logs")).lines();
        let (address, metrics_address, node_id) = loop {
            let line = tokio::time::timeout(PATIENCE, lines.next_line())
                .await
                .expect("the node logs where it listens")
                .expect("its logs are readable")
                .expect("the node runs");
            copy_line(&mut log, &line);
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            if parsed["fields"]["message"] == "listening" {
                let field = |name: &str| {
                    parsed["fields"][name]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                break (field("address"), field("metrics_address"), field("node_id"));
            }
        };
        // The rest of its logs is drained so that the node never blocks on a full pipe.
        let (sender, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                copy_line(&mut log, &line);
                let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(message) = parsed["fields"]["message"].as_str() {
                    let _ = sender.send(message.to_owned());
                }
            }
        });
        let port = address.rsplit(':').next().expect("host:port").to_owned();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            metrics_url: format!("http://{metrics_address}"),
            node_id,
            messages,
        }
    }

    /// Waits until the node logs `message`.
    pub async fn logged(&mut self, message: &str) {
        let seen = async {
            while let Some(logged) = self.messages.recv().await {
                if logged == message {
                    return true;
                }
            }
            false
        };
        let seen = tokio::time::timeout(PATIENCE, seen).await;
        assert!(
            seen.is_ok_and(|seen| seen),
            "the node did not log {message:?}"
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the node runs")
    }

    /// Sends a signal (`KILL`, `TERM`, `STOP`, `CONT`) to the node.
    pub async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Asks the node to create a conversation (with a first message, if any); its status and answer.
    pub async fn try_create(&self, token: &str, first: Option<&str>) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/conversations", self.url))
            .bearer_auth(token)
            .json(&json!({ "initial_user_msg": first }))
            .send()
            .await
            .expect("the node answers");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("JSON"))
    }

    /// Creates a conversation, which this node then runs; its id.
    pub async fn create_conversation(&self, token: &str, first: Option<&str>) -> String {
        let (_, created) = self.try_create(token, first).await;
        created["conversation_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {created}"))
            .to_owned()
    }

    /// The JSON answer to a GET of `path` as the token's user.
    async fn get_json(&self, token: &str, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("the node answers")
            .json()
            .await
            .expect("JSON")
    }

    /// A conversation's REST view.
    pub async fn conversation(&self, token: &str, id: &str) -> Value {
        self.get_json(token, &format!("/api/conversations/{id}"))
            .await
    }

    /// Every stored event of a conversation, through the REST pages.
    pub async fn all_events(&self, token: &str, id: &str) -> Vec<Value> {
        let mut events: Vec<Value> = Vec::new();
        loop {
            let path = format!(
                "/api/conversations/{id}/events?start_id={}&limit=100",
                events.len()
            );
            let page = self.get_json(token, &path).await;
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            if page["has_more"] != true {
                return events;
            }
        }
    }

    /// The node's `/metrics` (Prometheus text), from its metrics listener.
    pub async fn scrape(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_url))
            .await
            .expect("the node answers")
            .text()
            .await
            .expect("metrics text")
    }

    /// One value of the node's `/metrics` (a series without labels).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.scrape().await;
        crate::metrics::value(&text, name).unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// Waits for the process to end.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the node exits")
            .expect("an exit status")
    }
}

/// Appends one of a node's log lines to its log file, if it keeps one: a write per line, unbuffered,
/// so that what a node logged before it was killed is in the file at once.
fn copy_line(log: &mut Option<std::fs::File>, line: &str) {
    if let Some(file) = log {
        use std::io::Write;
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// Whether an event is the agent's answer to a message containing `text`.
pub fn answers(event: &Value, text: &str) -> bool {
    is_agent_message(event)
        && event["args"]["content"]
            .as_str()
            .is_some_and(|c| c.contains(text))
}
