//! A fake Common Room (v1): bearer auth, `POST /source/{id}/user` and `/source/{id}/activity` stored as
//! upserts (users by id, activities by id and type), answered 202 with no body; `GET /api-token-status`;
//! `X-RateLimit-*` headers; fault injection (429 with a `Retry-After` date and a `rateLimit.waitMs` body,
//! 5xx, slow answers) with seeded probabilities; and a record of every request with its arrival time, so
//! that a test can check the rate and count deliveries.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::server::Served;

/// Where the API lives under the fake's root, as in `https://api.commonroom.io/community/v1`.
const PREFIX: &str = "/community/v1";

/// Fault probabilities, each drawn per request from a seeded generator.
#[derive(Debug, Clone)]
pub struct Faults {
    pub rate_limited: f64,
    pub server_error: f64,
    /// Answers delayed by `slow_delay` (faulty or not).
    pub slow: f64,
    pub slow_delay: Duration,
    /// The `waitMs` (and `Retry-After`) of a 429.
    pub wait: Duration,
    pub seed: u64,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            rate_limited: 0.0,
            server_error: 0.0,
            slow: 0.0,
            slow_delay: Duration::ZERO,
            wait: Duration::ZERO,
            seed: 0,
        }
    }

    /// The misbehaviour of quality bar R5: 30% 429, 10% 5xx, 10% slow answers.
    pub fn misbehaving(seed: u64) -> Self {
        Self {
            rate_limited: 0.3,
            server_error: 0.1,
            slow: 0.1,
            slow_delay: Duration::from_millis(700),
            wait: Duration::from_millis(300),
            seed,
        }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Arrival, from the fake's start.
    pub at: Duration,
    pub method: String,
    /// Without the API prefix: `/source/{id}/activity`.
    pub path: String,
    pub status: u16,
    pub body: Option<Value>,
}

impl Recorded {
    /// The activity id of an activity POST.
    pub fn activity_id(&self) -> Option<&str> {
        self.path
            .ends_with("/activity")
            .then(|| self.body.as_ref()?.get("id")?.as_str())
            .flatten()
    }
}

pub struct CommonRoomFake {
    served: Served,
    state: Arc<FakeState>,
}

struct FakeState {
    api_key: String,
    source_id: String,
    faults: Faults,
    rng: Mutex<StdRng>,
    started: Instant,
    requests: Mutex<Vec<Recorded>>,
    users: Mutex<HashMap<String, Value>>,
    activities: Mutex<HashMap<(String, String), Value>>,
    refused: Mutex<HashSet<String>>,
}

impl CommonRoomFake {
    pub async fn start(api_key: &str, source_id: &str, faults: Faults) -> Self {
        let state = Arc::new(FakeState {
            api_key: api_key.into(),
            source_id: source_id.into(),
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            faults,
            started: Instant::now(),
            requests: Mutex::default(),
            users: Mutex::default(),
            activities: Mutex::default(),
            refused: Mutex::default(),
        });
        let api = Router::new()
            .route("/source/{source}/user", post(upsert_user))
            .route("/source/{source}/activity", post(add_activity))
            .route("/api-token-status", get(token_status))
            .with_state(Arc::clone(&state));
        Self {
            served: Served::start(Router::new().nest(PREFIX, api)).await,
            state,
        }
    }

    /// The API base URL (`COMMON_ROOM_API_BASE_URL`).
    pub fn url(&self) -> String {
        format!("{}{PREFIX}", self.served.base)
    }

    /// Answers 400 to every activity with this id (a payload Common Room refuses for good).
    pub fn refuse_activity(&self, id: &str) {
        lock(&self.state.refused).insert(id.into());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Stored users by id.
    pub fn users(&self) -> HashMap<String, Value> {
        lock(&self.state.users).clone()
    }

    /// Stored activities by id (every one is a `started_session` here).
    pub fn activities(&self) -> HashMap<String, Value> {
        lock(&self.state.activities)
            .iter()
            .map(|((id, _), body)| (id.clone(), body.clone()))
            .collect()
    }

    /// The most requests that arrived within any `window` (a half-open interval).
    pub fn max_requests_in_any(&self, window: Duration) -> usize {
        let mut arrivals: Vec<Duration> = self.requests().iter().map(|r| r.at).collect();
        arrivals.sort();
        let mut most = 0;
        let mut start = 0;
        for end in 0..arrivals.len() {
            while arrivals[end] - arrivals[start] >= window {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn reason(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "reason": reason }))).into_response()
}

/// What the fake decided for one request before looking at it.
enum Fault {
    None,
    RateLimited,
    ServerError,
}

impl FakeState {
    /// Records the arrival, checks the key and the source, and draws the faults. `Err` is the answer.
    fn admit(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        source: Option<&str>,
        body: Option<Value>,
    ) -> (usize, Result<(Fault, bool), Response>) {
        let path = uri
            .path()
            .strip_prefix(PREFIX)
            .unwrap_or(uri.path())
            .to_owned();
        let index = {
            let mut requests = lock(&self.requests);
            requests.push(Recorded {
                at: self.started.elapsed(),
                method: method.to_string(),
                path,
                status: 0,
                body,
            });
            requests.len() - 1
        };
        let authorised = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|key| key == self.api_key);
        if !authorised {
            return (
                index,
                Err(reason(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized: invalid API token",
                )),
            );
        }
        if source.is_some_and(|s| s != self.source_id) {
            return (
                index,
                Err(reason(
                    StatusCode::NOT_FOUND,
                    "Destination source not found",
                )),
            );
        }
        let (fault, slow) = {
            let mut rng = lock(&self.rng);
            let draw: f64 = rng.random();
            let slow = rng.random::<f64>() < self.faults.slow;
            let fault = if draw < self.faults.rate_limited {
                Fault::RateLimited
            } else if draw < self.faults.rate_limited + self.faults.server_error {
                Fault::ServerError
            } else {
                Fault::None
            };
            (fault, slow)
        };
        (index, Ok((fault, slow)))
    }

    async fn answer(&self, index: usize, slow: bool, response: Response) -> Response {
        if slow {
            tokio::time::sleep(self.faults.slow_delay).await;
        }
        let mut response = response;
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("100"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("50"));
        lock(&self.requests)[index].status = response.status().as_u16();
        response
    }

    fn rate_limited(&self) -> Response {
        let wait = self.faults.wait;
        let until = SystemTime::now() + wait;
        let reset = until
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + 1;
        let retry_after = chrono::DateTime::<chrono::Utc>::from(until + Duration::from_secs(1))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "reason": "Rate limit exceeded",
                "rateLimit": {
                    "intervalLimit": 100,
                    "intervalRemaining": 0,
                    "intervalResetSeconds": wait.as_secs() + 1,
                    "waitMs": wait.as_millis() as u64
                }
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&retry_after) {
            headers.insert("retry-after", value);
        }
        if let Ok(value) = HeaderValue::from_str(&reset.to_string()) {
            headers.insert("x-ratelimit-reset", value);
        }
        response
    }

    /// Runs the common part of a write: admission, faults, validation, then `store`.
    async fn write(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        source: String,
        raw: Bytes,
        store: impl FnOnce(&Self, &Value) -> Result<(), &'static str>,
    ) -> Response {
        let body: Option<Value> = serde_json::from_slice(&raw).ok();
        let (index, admitted) = self.admit(&method, &uri, &headers, Some(&source), body.clone());
        let response = match admitted {
            Err(refused) => refused,
            Ok((fault, slow)) => {
                let response = match (fault, &body) {
                    (Fault::RateLimited, _) => self.rate_limited(),
                    (Fault::ServerError, _) => {
                        reason(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
                    }
                    (Fault::None, None) => reason(StatusCode::BAD_REQUEST, "Body is not JSON"),
                    (Fault::None, Some(body)) => match store(self, body) {
                        Ok(()) => StatusCode::ACCEPTED.into_response(),
                        Err(why) => reason(StatusCode::BAD_REQUEST, why),
                    },
                };
                return self.answer(index, slow, response).await;
            }
        };
        self.answer(index, false, response).await
    }
}

fn text(body: &Value, pointer: &str) -> Option<String> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

async fn upsert_user(
    State(state): State<Arc<FakeState>>,
    Path(source): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    state
        .write(method, uri, headers, source, raw, |state, body| {
            let id = text(body, "/id").ok_or("id is required")?;
            lock(&state.users).insert(id, body.clone());
            Ok(())
        })
        .await
}

async fn add_activity(
    State(state): State<Arc<FakeState>>,
    Path(source): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    state
        .write(method, uri, headers, source, raw, |state, body| {
            let (Some(id), Some(kind), Some(_user), Some(_at)) = (
                text(body, "/id"),
                text(body, "/activityType"),
                text(body, "/user/id"),
                text(body, "/timestamp"),
            ) else {
                return Err("id, activityType, user.id and timestamp are required");
            };
            if lock(&state.refused).contains(&id) {
                return Err("Invalid activity");
            }
            lock(&state.activities).insert((id, kind), body.clone());
            Ok(())
        })
        .await
}

async fn token_status(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (index, admitted) = state.admit(&method, &uri, &headers, None, None);
    let response = match admitted {
        Err(refused) => refused,
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
    };
    state.answer(index, false, response).await
}
