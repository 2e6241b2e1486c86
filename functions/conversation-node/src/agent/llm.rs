//! The OpenAI-compatible chat-completions client: `POST {LLM_BASE_URL}/chat/completions` with a timeout
//! per attempt, retries with exponential backoff and jitter on 429 (honouring `Retry-After`), 5xx and
//! transport failures, and a clear final error: rate limited, or unavailable.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use shared::domain::ChatMessage;

use super::AgentError;
use crate::config::LlmConfig;

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    config: LlmConfig,
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
    pub fn new(config: LlmConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self { http, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, AgentError> {
        let mut retries = 0;
        loop {
            let failure = match self.attempt(messages).await {
                Ok(content) => return Ok(content),
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient {
                    retry_after,
                    reason,
                    ..
                } if retries < self.config.num_retries => {
                    let wait = retry_after
                        .unwrap_or_else(|| self.backoff(retries))
                        .min(self.config.retry_max_wait);
                    tracing::info!(retry = retries + 1, %reason, wait_ms = wait.as_millis() as u64, "retrying the model");
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                Failure::Transient {
                    rate_limited: true,
                    reason,
                    ..
                } => return Err(AgentError::RateLimited(reason)),
                Failure::Transient { reason, .. } | Failure::Permanent(reason) => {
                    return Err(AgentError::Unavailable(reason));
                }
            }
        }
    }

    /// `retry_min_wait * 2^retry`, capped, with up to 25% jitter so that callers do not retry in step.
    fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .config
            .retry_min_wait
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.config.retry_max_wait);
        base.mul_f64(1.0 + rand::rng().random_range(0.0..0.25))
    }

    async fn attempt(&self, messages: &[ChatMessage]) -> Result<String, Failure> {
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
        let retry_after = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
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
