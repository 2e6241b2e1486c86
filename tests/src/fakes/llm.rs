//! A local fake of an OpenAI-compatible chat-completions API (`POST /v1/chat/completions`), as the
//! OpenAI API reference documents it: bearer-key authentication (401 with an `error` object), the
//! `chat.completion` answer shape, 429 with `Retry-After`, 5xx, tool calls. Answers follow a script;
//! once it is exhausted every call is answered with `model says: <last user message>`. A request that
//! offers tools (an agent's step) is answered from the agent's own script of tool calls, then with
//! `finish` and that same echo. Every request is recorded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use shared::domain::content_text;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmReply {
    /// 200 with this content.
    Answer(String),
    /// 429, with `Retry-After` in seconds when set.
    RateLimited { retry_after_secs: Option<u64> },
    /// This 5xx status.
    ServerError(u16),
}

/// One step of an agent the model drives: a tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStep {
    /// `terminal` with this command.
    Terminal(String),
    /// `file_editor` creating the file at `path` (absolute) with `text`.
    CreateFile { path: String, text: String },
    /// `finish` with this message.
    Finish(String),
}

impl AgentStep {
    fn tool_call(&self) -> Value {
        let (name, arguments) = match self {
            Self::Terminal(command) => ("terminal", json!({ "command": command })),
            Self::CreateFile { path, text } => (
                "file_editor",
                json!({ "command": "create", "path": path, "file_text": text }),
            ),
            Self::Finish(message) => ("finish", json!({ "message": message })),
        };
        json!({
            "id": format!("call_{}", uuid::Uuid::new_v4().simple()),
            "type": "function",
            "function": { "name": name, "arguments": arguments.to_string() },
        })
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<LlmReply>,
    steps: VecDeque<AgentStep>,
    /// After the script: `None` answers by echo, `Some` repeats this reply forever.
    then: Option<LlmReply>,
    /// How long each answer takes.
    delay: std::time::Duration,
    requests: Vec<Value>,
}

struct Shared {
    api_key: String,
    script: Mutex<Script>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake; the server stops when this is dropped.
pub struct FakeLlm {
    url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLlm {
    /// A fake on a free loopback port that accepts `api_key`.
    pub async fn start(api_key: &str) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), api_key)
            .await
            .expect("binding a loopback port for the LLM fake")
    }

    /// A fake on `address` that accepts `api_key`.
    pub async fn start_on(address: SocketAddr, api_key: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            script: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            shared,
            server,
        })
    }

    /// The base URL to configure (`LLM_BASE_URL`), ending in `/v1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues replies, answered in order before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = LlmReply>) {
        self.shared.lock().replies.extend(replies);
    }

    /// Queues an agent's tool calls, made in order by the requests that offer tools.
    pub fn script_steps(&self, steps: impl IntoIterator<Item = AgentStep>) {
        self.shared.lock().steps.extend(steps);
    }

    /// What to answer once the script is used up (`None`: echo the last user message).
    pub fn then_always(&self, reply: Option<LlmReply>) {
        self.shared.lock().then = reply;
    }

    /// Makes every answer take `delay` (a slow model).
    pub fn delay(&self, delay: std::time::Duration) {
        self.shared.lock().delay = delay;
    }

    /// The JSON bodies of the authenticated requests answered so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body =
        json!({ "error": { "message": message, "type": kind, "param": null, "code": null } });
    (status, Json(body)).into_response()
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented != Some(shared.api_key.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided",
        );
    }
    let offers_tools = body["tools"]
        .as_array()
        .is_some_and(|tools| !tools.is_empty());
    let (reply, step, delay) = {
        let mut script = shared.lock();
        script.requests.push(body.clone());
        if offers_tools {
            let step = script.steps.pop_front();
            (None, Some(step), script.delay)
        } else {
            let reply = script.replies.pop_front().or_else(|| script.then.clone());
            (reply, None, script.delay)
        }
    };
    tokio::time::sleep(delay).await;
    if let Some(step) = step {
        let step = step.unwrap_or_else(|| AgentStep::Finish(echo(&body)));
        return completion(
            &body,
            json!({ "role": "assistant", "content": null, "tool_calls": [step.tool_call()] }),
            "tool_calls",
        );
    }
    let content = match reply {
        Some(LlmReply::Answer(content)) => content,
        Some(LlmReply::RateLimited { retry_after_secs }) => {
            let mut answer = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Rate limit reached",
            );
            if let Some(seconds) = retry_after_secs {
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            return answer;
        }
        Some(LlmReply::ServerError(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(
                status,
                "server_error",
                "The server had an error processing your request",
            );
        }
        None => echo(&body),
    };
    completion(
        &body,
        json!({ "role": "assistant", "content": content }),
        "stop",
    )
}

/// `model says: <the last user message>`; a message's content is a string or a list of text parts.
fn echo(body: &Value) -> String {
    let last_user = body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .map(|message| content_text(&message["content"]))
        .unwrap_or_default();
    format!("model says: {last_user}")
}

fn completion(request: &Value, message: Value, finish_reason: &str) -> Response {
    Json(json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": request["model"],
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 }
    }))
    .into_response()
}
