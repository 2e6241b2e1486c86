//! The Common Room REST client (v1): upsert a user, add an activity, check the token. Bearer auth;
//! 200 and 202 are success whatever the body. Every request, retries included, waits for the rate
//! limiter shared by the run; a 429's wait holds the limiter for everyone. Retries follow the shared
//! policy; other 4xx answers come back as [`CommonRoomError::Status`] at once.

pub(crate) mod payload;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub(crate) use payload::{Activity, CommonRoomUser};
use shared::http_client::{ErrorAnswer, is_transient_status};
use shared::rate_limit::RateLimiter;
use shared::retry::{Retrier, Retryable, Verdict};
use shared::secret::Secret;

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.commonroom.io/community/v1";

#[derive(Debug, Clone)]
pub struct CommonRoomConfig {
    /// `COMMON_ROOM_API_BASE_URL`.
    pub base_url: reqwest::Url,
    /// `COMMON_ROOM_API_KEY`.
    pub api_key: Secret,
    /// `COMMON_ROOM_DESTINATION_SOURCE_ID`: the API signal source activities land in.
    pub source_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CommonRoomError {
    #[error("Common Room unreachable: {0}")]
    Unavailable(String),
    #[error("Common Room answered {status}: {body}")]
    Status {
        status: u16,
        body: String,
        /// The server's wait hint, if it gave one.
        wait: Option<Duration>,
    },
}

impl CommonRoomError {
    /// The HTTP status, when Common Room answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Unavailable(_) => None,
        }
    }
}

impl Retryable for CommonRoomError {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Unavailable(_) => Verdict::Transient { wait: None },
            Self::Status { status, wait, .. } if is_transient_status(*status) => {
                Verdict::Transient { wait: *wait }
            }
            Self::Status { .. } => Verdict::Permanent,
        }
    }
}

pub struct CommonRoomClient {
    http: reqwest::Client,
    config: CommonRoomConfig,
    limiter: Arc<RateLimiter>,
    retrier: Arc<Retrier>,
}

impl CommonRoomClient {
    pub fn new(
        http: reqwest::Client,
        config: CommonRoomConfig,
        limiter: Arc<RateLimiter>,
        retrier: Arc<Retrier>,
    ) -> Self {
        Self {
            http,
            config,
            limiter,
            retrier,
        }
    }

    /// `POST /source/{source}/user`: creates or updates the user (keyed by its id).
    pub async fn upsert_user(&self, user: &CommonRoomUser) -> Result<(), CommonRoomError> {
        self.send(
            reqwest::Method::POST,
            &["source", &self.config.source_id, "user"],
            Some(user),
        )
        .await
    }

    /// `POST /source/{source}/activity`: creates or updates the activity (keyed by id and type).
    pub async fn add_activity(&self, activity: &Activity) -> Result<(), CommonRoomError> {
        self.send(
            reqwest::Method::POST,
            &["source", &self.config.source_id, "activity"],
            Some(activity),
        )
        .await
    }

    /// `GET /api-token-status`: a cheap check that the key is accepted.
    pub async fn check_token(&self) -> Result<(), CommonRoomError> {
        self.send::<()>(reqwest::Method::GET, &["api-token-status"], None)
            .await
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(), CommonRoomError> {
        let mut url = self.config.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        self.retrier
            .run(|| async {
                self.limiter.acquire().await;
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(self.config.api_key.expose());
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| CommonRoomError::Unavailable(e.without_url().to_string()))?;
                if response.status().is_success() {
                    // 200 or 202; the body (often empty) is not needed.
                    return Ok(());
                }
                let answer = ErrorAnswer::read(response).await;
                if answer.status == 429
                    && let Some(wait) = answer.wait
                {
                    self.limiter.hold_for(wait);
                }
                Err(CommonRoomError::Status {
                    status: answer.status,
                    body: answer.body,
                    wait: answer.wait,
                })
            })
            .await
    }
}
