//! The agent-server's REST calls the runtime makes (its OpenAPI: `/api/conversations...`), each retried
//! under the shared policy (`RetryPolicy::AGENT_SERVER`) on transport failures, 429 and 5xx, with the
//! server's `Retry-After` preferred.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::retry::{Retrier, RetryPolicy, Retryable, Verdict, parse_retry_after};
use uuid::Uuid;

use super::super::AgentError;

/// Where an agent-server answers, and the key it wants (`X-Session-API-Key`).
#[derive(Clone)]
pub(super) struct ServerAddr {
    pub url: String,
    pub api_key: Option<String>,
}

/// Why a call failed: the status when the server answered, and what to tell the user.
#[derive(Debug)]
struct Failure {
    status: Option<StatusCode>,
    wait: Option<std::time::Duration>,
    reason: String,
}

impl Retryable for Failure {
    fn verdict(&self) -> Verdict {
        match self.status {
            Some(status)
                if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() =>
            {
                Verdict::Permanent
            }
            _ => Verdict::Transient { wait: self.wait },
        }
    }
}

impl From<Failure> for AgentError {
    fn from(failure: Failure) -> Self {
        match failure.status {
            Some(StatusCode::TOO_MANY_REQUESTS) => AgentError::RateLimited(failure.reason),
            _ => AgentError::RuntimeUnavailable(failure.reason),
        }
    }
}

/// Whether a message reached the remote conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    Sent,
    /// The server does not have the conversation (it lost it).
    UnknownConversation,
}

/// Whether a create made the remote conversation or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Created {
    New,
    Existing,
}

#[derive(Clone)]
pub(super) struct ServerClient {
    http: reqwest::Client,
    server: ServerAddr,
}

impl ServerClient {
    pub(super) fn new(http: reqwest::Client, server: ServerAddr) -> Self {
        Self { http, server }
    }

    /// `POST /api/conversations` with the caller's id: creating it again finds the same one.
    pub(super) async fn create(&self, request: &Value) -> Result<Created, AgentError> {
        let (status, _) = self
            .call(Method::POST, "/api/conversations", Some(request))
            .await
            .map_err(AgentError::from)?;
        Ok(match status {
            StatusCode::CREATED => Created::New,
            _ => Created::Existing,
        })
    }

    /// A user message, and the agent set running on it.
    pub(super) async fn send_message(
        &self,
        remote: Uuid,
        text: &str,
    ) -> Result<Delivery, AgentError> {
        self.post_message(remote, text, true).await
    }

    /// A message the agent reads with the next one, without running now.
    pub(super) async fn add_context(&self, remote: Uuid, text: &str) -> Result<(), AgentError> {
        self.post_message(remote, text, false).await.map(drop)
    }

    async fn post_message(
        &self,
        remote: Uuid,
        text: &str,
        run: bool,
    ) -> Result<Delivery, AgentError> {
        let message = json!({
            "role": "user",
            "content": [{ "type": "text", "text": text }],
            "run": run,
        });
        let path = format!("/api/conversations/{remote}/events");
        match self.call(Method::POST, &path, Some(&message)).await {
            // The message is saved; the run waits for capacity: ask for the run, not the message again.
            Err(failure) if failure.status == Some(StatusCode::TOO_MANY_REQUESTS) => {
                self.run(remote).await.map(|()| Delivery::Sent)
            }
            Err(failure) if failure.status == Some(StatusCode::NOT_FOUND) => {
                Ok(Delivery::UnknownConversation)
            }
            sent => sent.map(|_| Delivery::Sent).map_err(AgentError::from),
        }
    }

    pub(super) async fn pause(&self, remote: Uuid) -> Result<(), AgentError> {
        let path = format!("/api/conversations/{remote}/pause");
        self.call(Method::POST, &path, None)
            .await
            .map(drop)
            .map_err(AgentError::from)
    }

    pub(super) async fn run(&self, remote: Uuid) -> Result<(), AgentError> {
        let path = format!("/api/conversations/{remote}/run");
        match self.call(Method::POST, &path, None).await {
            // Already running: what was asked for.
            Err(failure) if failure.status == Some(StatusCode::CONFLICT) => Ok(()),
            ran => ran.map(drop).map_err(AgentError::from),
        }
    }

    /// The newest user message the remote conversation holds, if any.
    pub(super) async fn last_user_message(
        &self,
        remote: Uuid,
    ) -> Result<Option<String>, AgentError> {
        let path = format!(
            "/api/conversations/{remote}/events/search?kind=MessageEvent&source=user&sort_order=TIMESTAMP_DESC&limit=1"
        );
        let (_, page) = self
            .call(Method::GET, &path, None)
            .await
            .map_err(AgentError::from)?;
        Ok(page["items"]
            .get(0)
            .map(|event| super::relay::text_of(&event["llm_message"]["content"])))
    }

    /// A call under the retry policy.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Failure> {
        Retrier::new(RetryPolicy::AGENT_SERVER)
            .run(|| async {
                let outcome = self.attempt(method.clone(), path, body).await;
                if let Err(failure) = &outcome {
                    tracing::info!(reason = %failure.reason, "an agent-server call failed");
                }
                outcome
            })
            .await
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Failure> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url));
        if let Some(key) = &self.server.api_key {
            request = request.header("X-Session-API-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|error| Failure {
            status: None,
            wait: None,
            reason: if error.is_timeout() {
                "the agent-server did not answer in time".into()
            } else {
                "the agent-server is unreachable".into()
            },
        })?;
        let status = answer.status();
        if status.is_success() {
            let body = answer.json().await.unwrap_or(Value::Null);
            return Ok((status, body));
        }
        let wait = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
        Err(Failure {
            status: Some(status),
            wait,
            reason: format!("the agent-server answered {status}"),
        })
    }
}
