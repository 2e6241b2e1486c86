//! The `openhands` runtime: each conversation's agent runs as a remote conversation on an OpenHands
//! agent-server, with its tools (terminal, file editor, task tracker) in the conversation's workspace.
//! - [`client`]: the REST calls (create, message, pause, run), retried under the shared policy.
//! - [`stream`]: the remote conversation's events from its WebSocket, resumable without gap or
//!   duplicate; [`relay`]: what each one becomes in our record.
//! - [`process`]: the agent-server the node runs itself (`AGENT_SERVER=process`).
//! - [`checkout`]: a proactive conversation's workspace cloned at its pull request's head.
//!
//! The remote conversation's id is derived from ours, so that whichever node owns the conversation
//! creates (idempotently) and re-attaches to the same one.

mod checkout;
mod client;
mod process;
mod relay;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::domain::{ChatMessage, ChatRole, Checkout, Conversation, ConversationId, RemoteAgent};
use shared::github::GitHubClient;
use uuid::Uuid;

use super::AgentError;
use super::runtime::{AgentRuntime, Closing, Output, Relayed, Reply, RuntimeEvent, RuntimeSession};
use crate::config::{AgentServers, OpenHandsConfig, litellm_model};
use crate::metrics::NodeMetrics;
use client::{Created, Delivery, ServerAddr, ServerClient};
use process::ServerProcess;
pub use process::session_key;
use stream::EventStream;

/// The namespace of the remote conversations' ids (UUID v5 of our conversation id).
const REMOTE_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_7e0a_6f4b_4c9e_9b1e_7a3c_2f11_0e42);
/// How long a single REST call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping conversation waits for its remote agent to pause.
const PAUSE_ON_STOP: Duration = Duration::from_secs(3);

enum Servers {
    Process {
        server: Box<ServerProcess>,
        workspaces: PathBuf,
    },
    Remote {
        server: ServerAddr,
        workspace_root: String,
    },
}

pub(crate) struct OpenHandsRuntime {
    config: OpenHandsConfig,
    servers: Servers,
    /// Reads the repositories proactive conversations check out (`None`: they start empty).
    github: Option<GitHubClient>,
    http: reqwest::Client,
    metrics: Arc<NodeMetrics>,
    label: String,
}

impl OpenHandsRuntime {
    pub(crate) fn new(
        config: OpenHandsConfig,
        github: Option<GitHubClient>,
        metrics: Arc<NodeMetrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
        let servers = match &config.servers {
            AgentServers::Process { python, data_dir } => Servers::Process {
                server: Box::new(ServerProcess::new(
                    python.clone(),
                    data_dir.join("agent-server"),
                    http.clone(),
                )),
                workspaces: data_dir.join("workspaces"),
            },
            AgentServers::Remote {
                url,
                api_key,
                workspace_root,
            } => Servers::Remote {
                server: ServerAddr {
                    url: url.clone(),
                    api_key: api_key.clone(),
                },
                workspace_root: workspace_root.clone(),
            },
        };
        let label = format!("openhands agent-server ({})", config.model);
        Ok(Self {
            config,
            servers,
            github,
            http,
            metrics,
            label,
        })
    }

    /// The agent-server for a conversation, and the conversation's workspace on it.
    async fn place(
        &self,
        conversation: &ConversationId,
    ) -> Result<(ServerAddr, String), AgentError> {
        let workspace = match &self.servers {
            Servers::Process { workspaces, .. } => {
                let workspace = workspaces.join(conversation.as_str());
                tokio::fs::create_dir_all(&workspace)
                    .await
                    .map_err(|error| {
                        AgentError::RuntimeUnavailable(format!(
                            "cannot make the workspace: {error}"
                        ))
                    })?;
                let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
                workspace.display().to_string()
            }
            Servers::Remote { workspace_root, .. } => {
                format!("{}/{}", workspace_root.trim_end_matches('/'), conversation)
            }
        };
        Ok((self.server().await?, workspace))
    }

    /// The agent-server (the node's own is started if it is not running).
    async fn server(&self) -> Result<ServerAddr, AgentError> {
        match &self.servers {
            Servers::Process { server, .. } => server.server().await,
            Servers::Remote { server, .. } => Ok(server.clone()),
        }
    }

    /// Clones a proactive conversation's repository into its workspace; `Err` is what to tell the user
    /// when that fails (the agent then starts in an empty workspace).
    async fn check_out(
        &self,
        server: &ServerClient,
        checkout: &Checkout,
        workspace: &str,
    ) -> Result<(), String> {
        let Some(github) = &self.github else {
            return Err("No GitHub client is configured: the workspace starts empty.".into());
        };
        let checked_out = checkout::check_out(github, server, checkout, workspace).await;
        match checked_out {
            Ok(()) => {
                tracing::info!(repository = %checkout.repository, commit = checkout.commit.as_str(), "workspace checked out");
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(repository = %checkout.repository, %reason, "cannot check the workspace out");
                Err(format!(
                    "The workspace could not be checked out ({reason}); the agent starts in an empty one."
                ))
            }
        }
    }

    /// The model of `conversation`'s agent: its own, or the node's. A base URL of its own gets only
    /// its own key.
    fn llm(&self, conversation: &Conversation) -> Value {
        let config = &self.config;
        let (model, base_url, api_key) = match &conversation.model {
            None => (
                config.model.clone(),
                config.base_url.as_deref(),
                config.api_key.as_deref(),
            ),
            Some(own) => {
                let base_url = own.base_url.as_deref().or(config.base_url.as_deref());
                let api_key = match (&own.api_key, &own.base_url) {
                    (Some(key), _) => Some(key.expose()),
                    (None, Some(_)) => None,
                    (None, None) => config.api_key.as_deref(),
                };
                (litellm_model(&own.model, base_url), base_url, api_key)
            }
        };
        let mut llm = json!({ "model": model, "usage_id": "agent" });
        if let Some(base_url) = base_url {
            llm["base_url"] = json!(base_url);
        }
        if let Some(api_key) = api_key {
            llm["api_key"] = json!(api_key);
        }
        llm
    }

    fn create_request(&self, remote: Uuid, workspace: &str, conversation: &Conversation) -> Value {
        let llm = self.llm(conversation);
        let tools: Vec<Value> = self
            .config
            .tools
            .iter()
            .map(|name| match name.as_str() {
                // A shell of the server's own (tmux, the default, runs as a daemon of its own that
                // outlives a server that is killed).
                "terminal" => json!({ "name": name, "params": { "terminal_type": "subprocess" } }),
                _ => json!({ "name": name }),
            })
            .collect();
        json!({
            "conversation_id": remote,
            "agent": { "kind": "Agent", "llm": llm, "tools": tools },
            "workspace": { "kind": "LocalWorkspace", "working_dir": workspace },
            "confirmation_policy": {
                "kind": if conversation.confirmation_mode { "AlwaysConfirm" } else { "NeverConfirm" }
            },
            "max_iterations": self.config.max_iterations,
        })
    }
}

/// The remote conversation of `conversation`: the same on every node.
fn remote_id(conversation: &ConversationId) -> Uuid {
    Uuid::new_v5(&REMOTE_NAMESPACE, conversation.as_str().as_bytes())
}

#[async_trait]
impl AgentRuntime for OpenHandsRuntime {
    fn label(&self) -> &str {
        &self.label
    }

    fn takes_model_settings(&self) -> bool {
        true
    }

    async fn open(
        &self,
        conversation: &Conversation,
        relayed: &Relayed,
        history: &[ChatMessage],
    ) -> Result<Box<dyn RuntimeSession>, AgentError> {
        let remote = remote_id(&conversation.id);
        let (server, workspace) = self.place(&conversation.id).await?;
        let had_events = relayed.last.is_some();
        let mut session = OpenHandsSession {
            client: ServerClient::new(self.http.clone(), server.clone()),
            remote,
            remote_agent: RemoteAgent {
                server: server.url.clone(),
                conversation_id: remote.to_string(),
            },
            create: self.create_request(remote, &workspace, conversation),
            stream: EventStream::new(server, remote, relayed.clone(), Arc::clone(&self.metrics)),
            notice: None,
        };
        if !had_events
            && let Some(checkout) = &conversation.checkout
            && !session.client.exists(remote).await?
            && let Err(notice) = self.check_out(&session.client, checkout, &workspace).await
        {
            session.notice = Some(notice);
        }
        let created = session.client.create(&session.create).await?;
        // Events of it were relayed before, yet the server did not have it: it lost it.
        if created == Created::New && had_events {
            session.restore(history).await?;
        }
        tracing::info!(conversation_id = %conversation.id, %remote, ?created, "attached to the remote conversation");
        Ok(Box::new(session))
    }

    async fn remote_event(
        &self,
        conversation: &ConversationId,
        event_id: &str,
    ) -> Result<Option<Value>, AgentError> {
        // The SDK's event ids are UUIDs: anything else names no event (and no other path).
        let Ok(event) = Uuid::parse_str(event_id) else {
            return Ok(None);
        };
        ServerClient::new(self.http.clone(), self.server().await?)
            .event(remote_id(conversation), event)
            .await
    }

    async fn shutdown(&self) {
        if let Servers::Process { server, .. } = &self.servers {
            server.stop().await;
        }
    }
}

/// The conversation so far, for an agent that lost it.
fn transcript(history: &[ChatMessage]) -> String {
    let mut text = String::from(
        "Your runtime restarted and lost this conversation's state. The conversation so far:\n",
    );
    for message in history {
        let who = match message.role {
            ChatRole::User => "user",
            ChatRole::Assistant => "you",
            ChatRole::System => continue,
        };
        text.push_str(&format!("\n[{who}] {}\n", message.content));
    }
    text
}

struct OpenHandsSession {
    client: ServerClient,
    remote: Uuid,
    remote_agent: RemoteAgent,
    /// What creates the remote conversation (again, if its server lost it).
    create: Value,
    stream: EventStream,
    /// Told to the user before the next relayed event.
    notice: Option<String>,
}

impl OpenHandsSession {
    /// Gives a re-created remote conversation the conversation so far (`history`), and tells the
    /// user (a server without its state: restarted on a fresh disk, or another node's own server).
    async fn restore(&mut self, history: &[ChatMessage]) -> Result<(), AgentError> {
        tracing::warn!(remote = %self.remote, "the agent-server had lost the conversation: re-created");
        self.client
            .add_context(self.remote, &transcript(history))
            .await?;
        self.notice = Some(
            "The agent's runtime had lost this conversation's state; it was re-created with the \
             conversation so far."
                .to_owned(),
        );
        Ok(())
    }
}

#[async_trait]
impl RuntimeSession for OpenHandsSession {
    fn remote_agent(&self) -> Option<RemoteAgent> {
        Some(self.remote_agent.clone())
    }

    async fn message(&mut self, history: &[ChatMessage]) -> Result<Reply, AgentError> {
        let Some(message) = history.last() else {
            return Ok(Reply::Accepted);
        };
        self.stream.revive();
        let delivery = self
            .client
            .send_message(self.remote, &message.content)
            .await?;
        if delivery == Delivery::UnknownConversation {
            self.client.create(&self.create).await?;
            self.restore(&history[..history.len() - 1]).await?;
            self.client
                .send_message(self.remote, &message.content)
                .await?;
        }
        Ok(Reply::Accepted)
    }

    async fn needs_resent(&mut self, history: &[ChatMessage]) -> bool {
        let Some(message) = history.last() else {
            return false;
        };
        match self.client.last_user_message(self.remote).await {
            Ok(Some(text)) => text != message.content,
            Ok(None) | Err(_) => true,
        }
    }

    async fn pause(&mut self) -> Result<(), AgentError> {
        self.client.pause(self.remote).await
    }

    async fn resume(&mut self) -> Result<(), AgentError> {
        self.stream.revive();
        self.client.run(self.remote).await
    }

    async fn confirm(&mut self, accept: bool) -> Result<(), AgentError> {
        self.client
            .respond_to_confirmation(self.remote, accept)
            .await
    }

    async fn next(&mut self) -> Output {
        if let Some(notice) = self.notice.take() {
            return Output::Events {
                events: vec![RuntimeEvent::Event(relay::notice(&notice))],
                received: Instant::now(),
            };
        }
        self.stream.next().await
    }

    async fn close(&mut self, closing: Closing) {
        if closing == Closing::Stopped
            && tokio::time::timeout(PAUSE_ON_STOP, self.client.pause(self.remote))
                .await
                .map_or(true, |paused| paused.is_err())
        {
            tracing::warn!(remote = %self.remote, "cannot pause the remote conversation of a stopped one");
        }
    }
}
