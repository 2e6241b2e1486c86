//! A remote conversation's events, read from the agent-server's WebSocket (`/sockets/events/{id}`):
//! on the first connect every event it holds (`resend_mode=all`), on a reconnect those since the last
//! one relayed (`resend_mode=since`, inclusive: the ids already relayed are skipped), so that a relay
//! resumed after a dropped socket or by another node has no gap and no duplicate. Events already
//! waiting are taken together, to be stored in one append.

use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use reqwest::Url;
use serde_json::Value;
use shared::domain::MAX_EVENT_BYTES;
use shared::ports::event_store::MAX_APPEND_BYTES;
use shared::retry::RetryPolicy;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

use super::super::AgentError;
use super::super::runtime::{Output, Relayed, RuntimeEvent};
use super::client::ServerAddr;
use super::relay::{Relay, relay};
use crate::metrics::NodeMetrics;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The most events taken into one batch: as many as one append carries whatever their sizes (each
/// at most `MAX_EVENT_BYTES` once fitted), so that a batch is never refused.
const MAX_BATCH: usize = MAX_APPEND_BYTES / MAX_EVENT_BYTES;

pub(super) struct EventStream {
    server: ServerAddr,
    remote: Uuid,
    relayed: Relayed,
    socket: Option<Socket>,
    /// Connects in a row that failed or closed before any event: the retry policy's count.
    failures: u32,
    /// Set when the server stayed unreachable: the stream waits for [`EventStream::revive`].
    broken: bool,
    metrics: Arc<NodeMetrics>,
}

impl EventStream {
    pub(super) fn new(
        server: ServerAddr,
        remote: Uuid,
        relayed: Relayed,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        Self {
            server,
            remote,
            relayed,
            socket: None,
            failures: 0,
            broken: false,
            metrics,
        }
    }

    /// Lets a broken stream try again (the user acted: the server may be back).
    pub(super) fn revive(&mut self) {
        self.broken = false;
        self.failures = 0;
    }

    /// The next events, reconnecting under the shared retry policy as needed.
    pub(super) async fn next(&mut self) -> Output {
        loop {
            if self.broken {
                std::future::pending::<()>().await;
            }
            if self.socket.is_none() {
                match self.connect().await {
                    Ok(socket) => self.socket = Some(socket),
                    Err(error) => {
                        self.broken = true;
                        return Output::Failed(error);
                    }
                }
            }
            let Some(socket) = self.socket.as_mut() else {
                continue;
            };
            let frame = socket.next().await;
            let received = Instant::now();
            let mut events = Vec::new();
            let mut open = self.take(frame, &mut events);
            while open && events.len() < MAX_BATCH {
                let Some(socket) = self.socket.as_mut() else {
                    break;
                };
                let Some(frame) = socket.next().now_or_never() else {
                    break;
                };
                open = self.take(frame, &mut events);
            }
            if !open {
                self.socket = None;
                self.failures += 1;
            }
            if !events.is_empty() {
                return Output::Events { events, received };
            }
        }
    }

    /// Takes one frame's event into `events`; `false` when the socket is done.
    fn take(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        events: &mut Vec<RuntimeEvent>,
    ) -> bool {
        let text = match frame {
            Some(Ok(Message::Text(text))) => {
                self.failures = 0;
                text
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(_)) => return true,
        };
        let Ok(raw) = serde_json::from_str::<Value>(&text) else {
            self.metrics.runtime_events_malformed.inc();
            return true;
        };
        let relay = relay(&raw);
        if let Relay::Malformed = relay {
            self.metrics.runtime_events_malformed.inc();
            tracing::warn!(remote = %self.remote, "an unreadable agent-server event was skipped");
            return true;
        }
        let remote = super::relay::remote_ref(&raw);
        if let Some(remote) = remote {
            if !self.relayed.ids.insert(remote.id.clone()) {
                return true;
            }
            self.relayed.last = Some(remote);
        }
        events.extend(relay.into_runtime_event());
        true
    }

    /// Connects, waiting between attempts as the shared policy says; past its attempts the stream
    /// is broken. A socket closed before any event (an unknown conversation: 4004) counts as failed.
    async fn connect(&mut self) -> Result<Socket, AgentError> {
        let policy = RetryPolicy::AGENT_SERVER;
        let request = self.request()?;
        loop {
            if self.failures >= policy.max_attempts {
                return Err(AgentError::RuntimeUnavailable(
                    "the agent-server's event stream is unreachable".into(),
                ));
            }
            if self.failures > 0 {
                tokio::time::sleep(policy.wait_before(self.failures - 1, None)).await;
            }
            match connect_async(request.clone()).await {
                Ok((socket, _)) => return Ok(socket),
                Err(error) => {
                    tracing::info!(remote = %self.remote, reason = %error, "cannot reach the agent-server's event stream");
                    self.failures += 1;
                }
            }
        }
    }

    fn request(
        &self,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, AgentError> {
        let invalid =
            |_| AgentError::RuntimeUnavailable("the agent-server's URL is invalid".into());
        let mut url = Url::parse(&self.server.url).map_err(invalid)?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| {
            AgentError::RuntimeUnavailable("the agent-server's URL is invalid".into())
        })?;
        url.set_path(&format!("/sockets/events/{}", self.remote));
        match &self.relayed.last {
            Some(last) => url
                .query_pairs_mut()
                .append_pair("resend_mode", "since")
                .append_pair("after_timestamp", &last.timestamp),
            None => url.query_pairs_mut().append_pair("resend_mode", "all"),
        };
        let mut request = url.as_str().into_client_request().map_err(|_| {
            AgentError::RuntimeUnavailable("the agent-server's URL is invalid".into())
        })?;
        if let Some(key) = &self.server.api_key {
            let value = key.parse().map_err(|_| {
                AgentError::RuntimeUnavailable("the agent-server's key is invalid".into())
            })?;
            request.headers_mut().insert("X-Session-API-Key", value);
        }
        Ok(request)
    }
}
