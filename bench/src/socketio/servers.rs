//! The servers under load, each a child process killed when dropped: release `conversation-node`s
//! clustered over Redis on one shared SQLite file (the embedded store), the peers ([`Peer`]: node.js
//! socket.io and python-socketio, on Redis, no storage) and the bare socketioxide floor (`sio-echo`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long a server may take to listen.
const STARTUP: Duration = Duration::from_secs(30);

/// The workspace's root (the bench crate's parent).
pub(super) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// A binary of this target directory's profile, next to the running bench.
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("the bench's directory")?;
    // Test binaries live one level below, in `deps/`.
    if dir.ends_with("deps") {
        dir = dir.parent().context("the profile directory")?;
    }
    let binary = dir.join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (`cargo build --release -p conversation-node -p bench --bins`)",
            binary.display()
        );
    }
    Ok(binary)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One server process.
pub(super) struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    async fn spawn(mut command: Command, port: u16) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + STARTUP;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("{command:?} does not listen on {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }
}

pub(super) fn pids(servers: &[Server]) -> Vec<u32> {
    servers.iter().map(Server::pid).collect()
}

/// Conversation nodes sharing one Redis key prefix and one SQLite file.
pub(super) struct Cluster {
    pub nodes: Vec<Server>,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

/// A release node on `port` with its data under `data` and `env` besides, once it is ready.
async fn node(
    http: &reqwest::Client,
    data: &Path,
    env: &[(&str, String)],
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let metrics_port = free_port()?;
    let mut command = Command::new(sibling_binary("conversation-node")?);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("JWT_HS256_SECRET", e2e::node::JWT_SECRET)
        .env("DATA_DIR", data)
        .env("MAX_CONCURRENT_CONVERSATIONS", "100000")
        // Each benchmark user acts as fast as answered, far past the per-user rate a node allows.
        .env("ACTION_RATE_PER_SECOND", "1000000")
        .env("ACTION_RATE_BURST", "1000000")
        .envs(env.iter().map(|(name, value)| (name, value)));
    let node = Server::spawn(command, port).await?;
    ready(http, &format!("http://127.0.0.1:{metrics_port}")).await?;
    Ok(node)
}

impl Cluster {
    pub(super) async fn start(count: usize) -> anyhow::Result<Self> {
        Self::start_with(count, &[]).await
    }

    /// `count` nodes on Redis with `env` besides.
    pub(super) async fn start_with(count: usize, env: &[(&str, String)]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut env = env.to_vec();
        env.extend([
            ("REDIS_URL", e2e::redis::url()),
            ("REDIS_KEY_PREFIX", e2e::redis::unique_prefix()),
        ]);
        let http = reqwest::Client::new();
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(node(&http, data.path(), &env).await?);
        }
        Ok(Self {
            nodes,
            http,
            _data: data,
        })
    }

    /// A conversation of `user`'s created on node `owner`, which therefore runs it.
    pub(super) async fn conversation(&self, owner: usize, user: &str) -> anyhow::Result<String> {
        let created: Value = self
            .http
            .post(format!("{}/api/conversations", self.nodes[owner].url))
            .bearer_auth(e2e::node::token(user))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        Ok(created["conversation_id"]
            .as_str()
            .with_context(|| format!("not created: {created}"))?
            .to_owned())
    }
}

/// Waits for a node's `/ready` (on its metrics listener at `url`) to answer 200.
async fn ready(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let answer = http.get(format!("{url}/ready")).send().await;
        if answer.is_ok_and(|answer| answer.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} is not ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The peers: the same flow without storage, on Redis (see their scripts for it).
#[derive(Debug, Clone, Copy)]
pub(super) enum Peer {
    /// `bench/py/sio_peer.py`: python-socketio with `AsyncRedisManager`, on aiohttp.
    Python,
    /// `bench/js/sio-peer.mjs`: node.js socket.io with `@socket.io/redis-adapter`.
    NodeJs,
}

impl Peer {
    pub(super) const ALL: [Peer; 2] = [Peer::NodeJs, Peer::Python];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Python => "python-socketio + AsyncRedisManager",
            Self::NodeJs => "node.js socket.io + redis-adapter",
        }
    }

    /// `count` servers on one Redis prefix; server `i` owns the conversations `c<k>` with
    /// `k % count == i`.
    pub(super) async fn start(self, count: usize) -> anyhow::Result<Vec<Server>> {
        let root = workspace();
        let prefix = e2e::redis::unique_prefix();
        let prefix = prefix.trim_end_matches(':');
        let mut servers = Vec::new();
        for index in 0..count {
            let port = free_port()?;
            let (port_arg, index_arg, count_arg) =
                (port.to_string(), index.to_string(), count.to_string());
            let command = match self {
                Self::Python => {
                    let venv_python = root.join(".venv/bin/python");
                    let python = if venv_python.exists() {
                        venv_python
                    } else {
                        PathBuf::from("python3")
                    };
                    let mut command = Command::new(python);
                    command.arg(root.join("bench/py/sio_peer.py")).args([
                        "--port",
                        &port_arg,
                        "--redis",
                        &e2e::redis::url(),
                        "--prefix",
                        prefix,
                        "--index",
                        &index_arg,
                        "--count",
                        &count_arg,
                    ]);
                    command
                }
                Self::NodeJs => {
                    let mut command = Command::new("node");
                    command.arg(root.join("bench/js/sio-peer.mjs")).args([
                        &port_arg,
                        &e2e::redis::url(),
                        prefix,
                        &index_arg,
                        &count_arg,
                    ]);
                    command
                }
            };
            servers.push(Server::spawn(command, port).await?);
        }
        Ok(servers)
    }
}

/// The bare socketioxide server; `lean`: with the node's two memory fixes.
pub(super) async fn echo(lean: bool) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new(sibling_binary("sio-echo")?);
    command.arg(port.to_string());
    if lean {
        command.arg("--lean");
    }
    Server::spawn(command, port).await
}
