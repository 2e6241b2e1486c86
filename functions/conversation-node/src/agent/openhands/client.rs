//! The agent-server's REST calls the runtime makes (its OpenAPI: `/api/conversations...`), each retried
//! under the shared policy (`RetryPolicy::AGENT_SERVER`) on transport failures, 429 and 5xx, with the
//! server's `Retry-After` preferred.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::http_client::header_wait;
use shared::retry::{Retrier, RetryPolicy, Retryable, Verdict};
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

/// How much longer than a command's own timeout its call may take.
const CALL_MARGIN: Duration = Duration::from_secs(10);

/// One request to the server.
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    json: Option<&'a Value>,
    /// A file's contents, sent as the multipart field `file`.
    file: Option<&'a str>,
    /// Longer than the client's own timeout (a command that runs a while).
    timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            query: &[],
            json: None,
            file: None,
            timeout: None,
        }
    }

    fn json(method: Method, path: &'a str, body: &'a Value) -> Self {
        Self {
            json: Some(body),
            ..Self::new(method, path)
        }
    }
}

/// What a command run on the server gave.
#[derive(Debug)]
pub(super) struct Executed {
    pub exit_code: Option<i64>,
    pub stderr: String,
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
            .call(Call::json(Method::POST, "/api/conversations", request))
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
        match self.call(Call::json(Method::POST, &path, &message)).await {
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
        self.call(Call::new(Method::POST, &path))
            .await
            .map(drop)
            .map_err(AgentError::from)
    }

    pub(super) async fn run(&self, remote: Uuid) -> Result<(), AgentError> {
        let path = format!("/api/conversations/{remote}/run");
        match self.call(Call::new(Method::POST, &path)).await {
            // Already running: what was asked for.
            Err(failure) if failure.status == Some(StatusCode::CONFLICT) => Ok(()),
            ran => ran.map(drop).map_err(AgentError::from),
        }
    }

    /// The user's answer to the action the agent waits to have confirmed.
    pub(super) async fn respond_to_confirmation(
        &self,
        remote: Uuid,
        accept: bool,
    ) -> Result<(), AgentError> {
        let path = format!("/api/conversations/{remote}/events/respond_to_confirmation");
        let answer = json!({ "accept": accept, "reason": "The user rejected the action." });
        self.call(Call::json(Method::POST, &path, &answer))
            .await
            .map(drop)
            .map_err(AgentError::from)
    }

    /// The newest user message the remote conversation holds, if any.
    pub(super) async fn last_user_message(
        &self,
        remote: Uuid,
    ) -> Result<Option<String>, AgentError> {
        let path = format!("/api/conversations/{remote}/events/search");
        let newest_user_message = [
            ("kind", "MessageEvent"),
            ("source", "user"),
            ("sort_order", "TIMESTAMP_DESC"),
            ("limit", "1"),
        ];
        let call = Call {
            query: &newest_user_message,
            ..Call::new(Method::GET, &path)
        };
        let (_, page) = self.call(call).await.map_err(AgentError::from)?;
        Ok(page["items"]
            .get(0)
            .map(|event| shared::domain::content_text(&event["llm_message"]["content"])))
    }

    /// One event of the remote conversation, whole; `None` when the server does not have it.
    pub(super) async fn event(
        &self,
        remote: Uuid,
        event: Uuid,
    ) -> Result<Option<Value>, AgentError> {
        let path = format!("/api/conversations/{remote}/events/{event}");
        match self.call(Call::new(Method::GET, &path)).await {
            Ok((_, body)) => Ok(Some(body)),
            Err(failure) if failure.status == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(failure) => Err(failure.into()),
        }
    }

    /// Whether the server holds the remote conversation.
    pub(super) async fn exists(&self, remote: Uuid) -> Result<bool, AgentError> {
        let path = format!("/api/conversations/{remote}");
        match self.call(Call::new(Method::GET, &path)).await {
            Ok(_) => Ok(true),
            Err(failure) if failure.status == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(failure) => Err(failure.into()),
        }
    }

    /// Writes `contents` to the file at `path` on the server.
    pub(super) async fn upload(&self, path: &str, contents: &str) -> Result<(), AgentError> {
        let call = Call {
            query: &[("path", path)],
            file: Some(contents),
            ..Call::new(Method::POST, "/api/file/upload")
        };
        self.call(call).await.map(drop).map_err(AgentError::from)
    }

    /// Runs `command` with bash on the server, waiting up to `timeout`; its exit code and output.
    pub(super) async fn execute(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Result<Executed, AgentError> {
        let request = json!({ "command": command, "timeout": timeout.as_secs() });
        let call = Call {
            timeout: Some(timeout + CALL_MARGIN),
            ..Call::json(Method::POST, "/api/bash/execute_bash_command", &request)
        };
        let (_, output) = self.call(call).await.map_err(AgentError::from)?;
        Ok(Executed {
            exit_code: output["exit_code"].as_i64(),
            stderr: output["stderr"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// A call under the retry policy.
    async fn call(&self, call: Call<'_>) -> Result<(StatusCode, Value), Failure> {
        Retrier::new(RetryPolicy::AGENT_SERVER)
            .run(|| async {
                let outcome = self.attempt(&call).await;
                if let Err(failure) = &outcome {
                    tracing::info!(reason = %failure.reason, "an agent-server call failed");
                }
                outcome
            })
            .await
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<(StatusCode, Value), Failure> {
        let mut request = self
            .http
            .request(
                call.method.clone(),
                format!("{}{}", self.server.url, call.path),
            )
            .query(call.query);
        if let Some(key) = &self.server.api_key {
            request = request.header("X-Session-API-Key", key);
        }
        if let Some(body) = call.json {
            request = request.json(body);
        }
        if let Some(contents) = call.file {
            let part = reqwest::multipart::Part::text(contents.to_owned()).file_name("file");
            request = request.multipart(reqwest::multipart::Form::new().part("file", part));
        }
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
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
        let wait = header_wait(answer.headers(), chrono::Utc::now());
        Err(Failure {
            status: Some(status),
            wait,
            reason: format!("the agent-server answered {status}"),
        })
    }
}
