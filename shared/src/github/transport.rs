//! One call to GitHub: GitHub's headers and timeouts, waits for rate limits, bounded retries of
//! transient failures (the shared policy of `crate::retry`), and the mapping of GitHub's error answers
//! to `GitHubError`.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use super::GitHubError;
use crate::retry::{Retrier, RetryPolicy, Retryable, Verdict};

/// How the client talks to GitHub. `Default` suits the webhook's 10 s budget.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent as `User-Agent`; GitHub refuses calls without one.
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    /// Attempts per call, the first included, when GitHub rate-limits, answers 5xx or cannot be reached.
    pub max_attempts: u32,
    /// The ceiling of the pause after the first transient failure, doubled after each further one
    /// (full jitter below it).
    pub retry_backoff: Duration,
    /// The longest rate-limit wait the client sits out; a longer one comes back as `RateLimited`.
    pub max_rate_limit_wait: Duration,
    /// An installation token is exchanged anew this long before it expires.
    pub token_refresh_margin: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            user_agent: concat!("proactive-bundle/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(250),
            max_rate_limit_wait: Duration::from_secs(10),
            token_refresh_margin: Duration::from_secs(5 * 60),
        }
    }
}

const API_VERSION: &str = "2022-11-28";
/// GitHub asks clients hit by a secondary rate limit without `Retry-After` to wait at least a minute.
const SECONDARY_LIMIT_DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest error text kept from an answer.
const MAX_MESSAGE_CHARS: usize = 300;

/// The HTTP client and the API's base URL.
pub(super) struct Transport {
    http: reqwest::Client,
    base: Url,
    options: ClientOptions,
    /// The shared policy with this client's attempts and first pause (a rate-limit wait it sits out
    /// is at most `max_rate_limit_wait`), and the count of its retries.
    retrier: Retrier,
}

/// One request to make. GETs and PATCHes are repeatable; a POST is not unless the caller says so,
/// since a POST whose answer was lost may have taken effect.
#[derive(Clone)]
pub(super) struct Call<'a> {
    method: Method,
    url: &'a Url,
    body: Option<&'a serde_json::Value>,
    bearer: Option<&'a str>,
    repeatable: bool,
}

impl<'a> Call<'a> {
    pub(super) fn get(url: &'a Url) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
            bearer: None,
            repeatable: true,
        }
    }

    pub(super) fn post(url: &'a Url, body: Option<&'a serde_json::Value>) -> Self {
        Self {
            method: Method::POST,
            url,
            body,
            bearer: None,
            repeatable: false,
        }
    }

    pub(super) fn patch(url: &'a Url, body: &'a serde_json::Value) -> Self {
        Self {
            method: Method::PATCH,
            url,
            body: Some(body),
            bearer: None,
            repeatable: true,
        }
    }

    pub(super) fn bearer(self, bearer: Option<&'a str>) -> Self {
        Self { bearer, ..self }
    }

    pub(super) fn repeatable(self) -> Self {
        Self {
            repeatable: true,
            ..self
        }
    }
}

/// Why a call did not succeed, and whether trying again can help.
enum Failure {
    RateLimited(Duration),
    Transient(String),
    Final(GitHubError),
}

impl Transport {
    pub(super) fn new(api_url: &str, options: ClientOptions) -> Result<Self, GitHubError> {
        let base = Url::parse(api_url.trim_end_matches('/'))
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base())
            .ok_or_else(|| GitHubError::Unavailable(format!("invalid GitHub API URL {api_url}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = crate::http_client::builder()
            .user_agent(options.user_agent.clone())
            .default_headers(headers)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| GitHubError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        let retrier = Retrier::new(RetryPolicy::doubling(
            options.max_attempts,
            options.retry_backoff,
            options.max_rate_limit_wait,
        ));
        Ok(Self {
            http,
            base,
            options,
            retrier,
        })
    }

    pub(super) fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The API URL of `segments` (each one percent-encoded), below the base URL's own path.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base URL was checked to be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Whether `url` points at the configured API, so that credentials never follow a link elsewhere.
    pub(super) fn is_api_url(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// Sends one call, sitting out short rate-limit waits and retrying transient failures (5xx,
    /// unreachable) a bounded number of times when the call is repeatable, under the shared retry
    /// policy (`crate::retry`).
    pub(super) async fn send(&self, call: Call<'_>) -> Result<Response, GitHubError> {
        let Call {
            method,
            url,
            body,
            bearer,
            repeatable,
        } = call;
        let outcome = self
            .retrier
            .run(|| async {
                let mut request = self.http.request(method.clone(), url.clone());
                if let Some(token) = bearer {
                    request = request.header(AUTHORIZATION, format!("Bearer {token}"));
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                let failure = match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        tracing::debug!(%method, path = url.path(), status = response.status().as_u16(), "GitHub call");
                        return Ok(response);
                    }
                    Ok(response) => classify(response).await,
                    Err(e) => Failure::Transient(e.without_url().to_string()),
                };
                let failed = self.failed_attempt(failure, repeatable);
                if let Verdict::Transient { .. } = failed.retry {
                    tracing::warn!(%method, path = url.path(), "GitHub call failed: retrying if attempts remain");
                }
                Err(failed)
            })
            .await;
        outcome.map_err(|failed| match failed.failure {
            Failure::RateLimited(wait) => GitHubError::RateLimited {
                retry_after_secs: ceil_secs(wait),
            },
            Failure::Transient(reason) => GitHubError::Unavailable(reason),
            Failure::Final(error) => error,
        })
    }

    /// Whether a failed attempt may be followed by another: a rate limit GitHub lifts within the
    /// client's patience, or a transient failure of a call that is safe to repeat.
    fn failed_attempt(&self, failure: Failure, repeatable: bool) -> FailedAttempt {
        let retry = match &failure {
            Failure::RateLimited(wait) if *wait <= self.options.max_rate_limit_wait => {
                Verdict::Transient { wait: Some(*wait) }
            }
            Failure::Transient(_) if repeatable => Verdict::Transient { wait: None },
            _ => Verdict::Permanent,
        };
        FailedAttempt { failure, retry }
    }
}

/// A failed attempt and whether another may follow.
struct FailedAttempt {
    failure: Failure,
    retry: Verdict,
}

impl Retryable for FailedAttempt {
    fn verdict(&self) -> Verdict {
        self.retry
    }
}

/// Reads a successful answer's JSON; `what` names it in the error.
pub(super) async fn decode<T: serde::de::DeserializeOwned>(
    response: Response,
    what: &str,
) -> Result<T, GitHubError> {
    response
        .json()
        .await
        .map_err(|e| GitHubError::Decode(format!("{what}: {e}")))
}

async fn classify(response: Response) -> Failure {
    let status = response.status();
    let headers = response.headers().clone();
    let message = error_message(status, response.text().await.unwrap_or_default());
    tracing::debug!(status = status.as_u16(), %message, "GitHub call failed");
    if let Some(wait) = rate_limit_wait(status, &headers, &message) {
        return Failure::RateLimited(wait);
    }
    if status.is_server_error() {
        return Failure::Transient(format!("{}: {message}", status.as_u16()));
    }
    if status == StatusCode::UNAUTHORIZED {
        return Failure::Final(GitHubError::Auth(message));
    }
    Failure::Final(GitHubError::Status {
        status: status.as_u16(),
        message,
    })
}

/// How long GitHub asks to wait, when the answer is a primary or secondary rate limit.
fn rate_limit_wait(status: StatusCode, headers: &HeaderMap, message: &str) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    let exhausted = number("x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (exhausted || message.to_ascii_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(secs));
    }
    if exhausted && let Some(reset) = number("x-ratelimit-reset") {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        return Some(Duration::from_secs(reset.saturating_sub(now)));
    }
    Some(SECONDARY_LIMIT_DEFAULT_WAIT)
}

/// GitHub's `message`, else the start of the body, else the status's reason.
fn error_message(status: StatusCode, body: String) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
    let message = from_json.unwrap_or(body);
    let message = message.trim();
    if message.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned();
    }
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

fn ceil_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn recognises_primary_and_secondary_rate_limits() {
        let wait = |status, pairs: &[(&'static str, &str)], message| {
            rate_limit_wait(status, &headers(pairs), message)
        };
        let secs = Duration::from_secs;
        assert_eq!(
            wait(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "3")], ""),
            Some(secs(3))
        );
        assert_eq!(
            wait(
                StatusCode::FORBIDDEN,
                &[],
                "You have exceeded a secondary rate limit."
            ),
            Some(SECONDARY_LIMIT_DEFAULT_WAIT)
        );
        let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
        let primary = wait(
            StatusCode::FORBIDDEN,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            "API rate limit exceeded",
        )
        .unwrap();
        assert!(primary > secs(3500) && primary <= secs(3600), "{primary:?}");
        assert_eq!(
            wait(
                StatusCode::FORBIDDEN,
                &[("x-ratelimit-remaining", "12")],
                "Forbidden"
            ),
            None
        );
        assert_eq!(
            wait(StatusCode::NOT_FOUND, &[("retry-after", "3")], ""),
            None
        );
    }

    #[test]
    fn error_messages_prefer_githubs_own() {
        let message = |body: &str| error_message(StatusCode::UNPROCESSABLE_ENTITY, body.to_owned());
        assert_eq!(
            message(r#"{"message":"Validation Failed","errors":[]}"#),
            "Validation Failed"
        );
        assert_eq!(message("upstream timed out"), "upstream timed out");
        assert_eq!(message(""), "Unprocessable Entity");
        assert_eq!(message(&"x".repeat(1000)).len(), MAX_MESSAGE_CHARS);
    }
}
