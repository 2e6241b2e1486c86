//! `AGENT_SERVER=process`: the node runs its own agent-server on loopback, started when the first
//! conversation needs it and again if it exits, always on the same port (so that a conversation's
//! event stream reconnects to the restarted one, which resumes its conversations from its state
//! directory). The server gets a fresh session key and a clean environment: the agent's terminal
//! runs in it, and must not see the node's secrets. Its process group is stopped with the node.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::super::AgentError;
use super::client::ServerAddr;

/// How long a started server may take to answer `/health` (it imports LiteLLM and the SDK).
const STARTUP: Duration = Duration::from_secs(90);
const STARTUP_POLL: Duration = Duration::from_millis(200);
/// What the server inherits from the node's environment.
const INHERITED: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "SHELL"];

pub(super) struct ServerProcess {
    python: String,
    /// The server's working directory: its conversations' state is kept under it.
    home: PathBuf,
    http: reqwest::Client,
    running: Mutex<Option<Running>>,
}

/// A started server; dropping it stops its process group.
struct Running {
    child: Child,
    port: u16,
    addr: ServerAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // The server's tools (the terminal's shell) are in its group.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

impl ServerProcess {
    pub(super) fn new(python: String, home: PathBuf, http: reqwest::Client) -> Self {
        Self {
            python,
            home,
            http,
            running: Mutex::new(None),
        }
    }

    /// The running server, started (again) if it is not running.
    pub(super) async fn server(&self) -> Result<ServerAddr, AgentError> {
        let mut running = self.running.lock().await;
        let port = match running.as_mut() {
            Some(server) => {
                if let Ok(None) = server.child.try_wait() {
                    return Ok(server.addr.clone());
                }
                tracing::warn!("the agent-server exited: starting it again");
                Some(server.port)
            }
            None => None,
        };
        *running = None;
        let started = self.start(port).await?;
        let addr = started.addr.clone();
        *running = Some(started);
        Ok(addr)
    }

    /// Stops the server, if it runs.
    pub(super) async fn stop(&self) {
        self.running.lock().await.take();
    }

    async fn start(&self, port: Option<u16>) -> Result<Running, AgentError> {
        let failed = |what: &str, error: std::io::Error| {
            tracing::error!(reason = %error, "{what}");
            AgentError::RuntimeUnavailable(format!("{what}: {error}"))
        };
        std::fs::create_dir_all(&self.home)
            .map_err(|e| failed("cannot make the agent-server's directory", e))?;
        let port = match port {
            Some(port) => port,
            None => free_port().map_err(|e| failed("no free loopback port", e))?,
        };
        let log = std::fs::File::create(log_path(&self.home))
            .map_err(|e| failed("cannot write the agent-server's log", e))?;
        let key = session_key();
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "openhands.agent_server", "--host", "127.0.0.1"])
            .arg("--port")
            .arg(port.to_string())
            .current_dir(&self.home)
            .env_clear()
            .envs(
                INHERITED
                    .iter()
                    .filter_map(|name| Some((name, std::env::var_os(name)?))),
            )
            .env("SESSION_API_KEY", &key)
            .env("OH_SECRET_KEY", &key)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("OPENHANDS_SUPPRESS_BANNER", "1")
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| failed("cannot write the agent-server's log", e))?,
            )
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| {
            failed(
                &format!("cannot start the agent-server with {}", self.python),
                e,
            )
        })?;
        let mut server = Running {
            child,
            port,
            addr: ServerAddr {
                url: format!("http://127.0.0.1:{port}"),
                api_key: Some(key),
            },
        };
        tracing::info!(port, home = %self.home.display(), "agent-server starting");
        self.wait_ready(&mut server).await?;
        tracing::info!(port, "agent-server ready");
        Ok(server)
    }

    async fn wait_ready(&self, server: &mut Running) -> Result<(), AgentError> {
        let health = format!("{}/health", server.addr.url);
        let deadline = tokio::time::Instant::now() + STARTUP;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(AgentError::RuntimeUnavailable(format!(
                    "the agent-server exited at start ({status}); its log: {}",
                    log_path(&self.home).display()
                )));
            }
            let answer = self.http.get(&health).send().await;
            if answer.is_ok_and(|answer| answer.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
        Err(AgentError::RuntimeUnavailable(format!(
            "the agent-server did not start within {STARTUP:?}; its log: {}",
            log_path(&self.home).display()
        )))
    }
}

/// A fresh key for an agent-server (its session key, and the key it encrypts stored secrets with).
/// agent-server 1.58 derives its Fernet key as the *standard* base64 of the key's SHA-256, which
/// Fernet refuses when it holds `+` or `/` (three keys in four): every create with an LLM key then
/// fails with a 500. So a key is drawn until its derived key is URL-safe.
pub fn session_key() -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    loop {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let derived = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&key));
        if !derived.contains(['+', '/']) {
            return key;
        }
    }
}

fn log_path(home: &Path) -> PathBuf {
    home.join("server.log")
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
