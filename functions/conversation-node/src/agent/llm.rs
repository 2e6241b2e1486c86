//! The OpenAI-compatible chat-completions client: `POST {LLM_BASE_URL}/chat/completions` with a timeout
//! per attempt, retried under the shared policy (`shared::retry`: exponential backoff with full jitter,
//! `Retry-After` in either form preferred, capped) on 429, 5xx and transport failures, and a clear final
//! error: rate limited, or unavailable.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::domain::ModelSettings;
use shared::http_client::header_wait;
use shared::retry::{Retrier, RetryPolicy, Retryable, Verdict};

use super::AgentError;
use crate::config::LlmConfig;

#[derive(Clone)]
pub(crate) struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
    /// The shared policy, with the count of the retries made by this client and its clones.
    retrier: Arc<Retrier>,
}

/// Why one attempt failed.
enum Failure {
    /// Worth retrying; `retry_after` from the server when it said.
    Transient {
        rate_limited: bool,
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Retrying will not help (a 4xx other than 429, an answer without content).
    Permanent(String),
}

impl Retryable for Failure {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Transient { retry_after, .. } => Verdict::Transient { wait: *retry_after },
            Self::Permanent(_) => Verdict::Permanent,
        }
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
}

impl LlmClient {
    pub(crate) fn new(config: LlmConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        let retrier = Arc::new(Retrier::new(RetryPolicy::doubling(
            config.num_retries.saturating_add(1),
            config.retry_min_wait,
            config.retry_max_wait,
        )));
        Ok(Self {
            http,
            config,
            retrier,
        })
    }

    /// This client with a conversation's own model; a base URL of its own gets only its own key.
    pub(crate) fn with_settings(&self, settings: &ModelSettings) -> Self {
        let mut config = self.config.clone();
        config.model.clone_from(&settings.model);
        if let Some(base_url) = &settings.base_url {
            config.base_url.clone_from(base_url);
            config.api_key = None;
        }
        if let Some(key) = &settings.api_key {
            config.api_key = Some(key.expose().to_owned());
        }
        Self {
            config,
            ..self.clone()
        }
    }

    pub(crate) fn model(&self) -> &str {
        &self.config.model
    }

    pub(crate) fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// A completion of `messages` (owned or borrowed: a turn lends the conversation's history).
    pub(crate) async fn complete<M: Serialize + Sync>(
        &self,
        messages: &[M],
    ) -> Result<String, AgentError> {
        let outcome = self
            .retrier
            .run(|| async {
                let attempt = self.attempt(messages).await;
                if let Err(Failure::Transient { reason, .. }) = &attempt {
                    tracing::info!(%reason, "the model's attempt failed");
                }
                attempt
            })
            .await;
        outcome.map_err(|failure| match failure {
            Failure::Transient {
                rate_limited: true,
                reason,
                ..
            } => AgentError::RateLimited(reason),
            Failure::Transient { reason, .. } | Failure::Permanent(reason) => {
                AgentError::Unavailable(reason)
            }
        })
    }

    async fn attempt<M: Serialize>(&self, messages: &[M]) -> Result<String, Failure> {
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.config.base_url))
            .json(&json!({ "model": self.config.model, "messages": messages }));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let answer = request.send().await.map_err(|e| Failure::Transient {
            rate_limited: false,
            retry_after: None,
            reason: if e.is_timeout() {
                "the model did not answer in time".into()
            } else {
                "the model is unreachable".into()
            },
        })?;
        let status = answer.status();
        if status.is_success() {
            let completion: Completion = answer.json().await.map_err(|_| {
                Failure::Permanent("the model's answer is not a chat completion".into())
            })?;
            return completion
                .choices
                .into_iter()
                .next()
                .and_then(|choice| choice.message.content)
                .ok_or_else(|| Failure::Permanent("the model's answer has no content".into()));
        }
        let retry_after = header_wait(answer.headers(), chrono::Utc::now());
        let reason = format!("the model answered {status}");
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            Err(Failure::Transient {
                rate_limited: true,
                retry_after,
                reason,
            })
        } else if status.is_server_error() {
            Err(Failure::Transient {
                rate_limited: false,
                retry_after,
                reason,
            })
        } else {
            Err(Failure::Permanent(reason))
        }
    }
}
