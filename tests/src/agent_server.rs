//! A real OpenHands agent-server for the tests (`python -m openhands.agent_server`, from the venv
//! `make test` installs: `AGENT_SERVER_PYTHON`), on a free loopback port with a session key, its state
//! and the conversations' workspaces in a temporary directory. Dropping it stops its process group.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The variable naming the Python that has the agent-server installed.
pub const PYTHON_VAR: &str = "AGENT_SERVER_PYTHON";
/// How long the server may take to start (it imports LiteLLM and the SDK).
const STARTUP: Duration = Duration::from_secs(120);

/// The Python with the agent-server; panics with directions when it is not configured.
pub fn python() -> String {
    std::env::var(PYTHON_VAR)
        .ok()
        .filter(|python| !python.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{PYTHON_VAR} is not set: run the tests with `make test`, which installs the \
                 agent-server into .venv-agent-server, or export {PYTHON_VAR}=.venv-agent-server/bin/python"
            )
        })
}

pub struct AgentServer {
    child: Option<Child>,
    port: u16,
    pub api_key: String,
    dir: tempfile::TempDir,
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl AgentServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            child: None,
            port,
            api_key: conversation_node::agent_server_session_key(),
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        server.run().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the conversations' workspaces go (`AGENT_SERVER_WORKSPACE_ROOT`).
    pub fn workspace_root(&self) -> PathBuf {
        self.dir.path().join("workspaces")
    }

    /// A conversation's workspace, as the node names it.
    pub fn workspace(&self, conversation: &str) -> PathBuf {
        self.workspace_root().join(conversation)
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server and its tools (`SIGKILL` to its group): its state directory stays.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take()
            && let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok())
        {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Starts the server again on the same port and state directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    async fn run(&mut self) {
        std::fs::create_dir_all(self.workspace_root()).expect("the workspaces directory");
        let log = std::fs::File::create(self.home().join("server.log")).expect("a log file");
        let child = Command::new(python())
            .args(["-m", "openhands.agent_server", "--host", "127.0.0.1"])
            .arg("--port")
            .arg(self.port.to_string())
            .current_dir(self.home())
            // Only what a shell needs: the agent's environment is what the tests say it is.
            .env_clear()
            .envs(
                ["PATH", "HOME", "LANG"]
                    .into_iter()
                    .filter_map(|name| Some((name, std::env::var_os(name)?))),
            )
            .env("SESSION_API_KEY", &self.api_key)
            .env("OH_SECRET_KEY", &self.api_key)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("OPENHANDS_SUPPRESS_BANNER", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("the agent-server starts");
        self.child = Some(child);
        let health = format!("{}/health", self.url());
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            if http
                .get(&health)
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success())
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the agent-server did not start within {STARTUP:?}: {}",
                std::fs::read_to_string(self.home().join("server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The remote conversations the server holds.
    pub async fn conversations(&self) -> Vec<serde_json::Value> {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/conversations/search?limit=100", self.url()))
            .header("X-Session-API-Key", &self.api_key)
            .send()
            .await
            .expect("the agent-server answers")
            .json()
            .await
            .expect("a JSON page");
        answer["items"].as_array().cloned().unwrap_or_default()
    }
}
