//! The retry policy every remote call of a run shares: exponential backoff with full jitter, a cap and an
//! attempt limit, and the server's own hint (`Retry-After`, a body's `waitMs`) preferred over the backoff.
//! Generic over the error: an error says whether it is worth another attempt through [`Retryable`].
//!
//! How each caller retries (the one place that says so; every policy doubles its wait):
//!
//! | caller | attempts | first wait -> cap | set by |
//! |---|---|---|---|
//! | GitHub REST (`github::transport`) | 3 | 250 ms -> 10 s (a longer `Retry-After` ends the call) | `ClientOptions` |
//! | the model (`conversation-node` `agent::llm`) | `LLM_NUM_RETRIES` + 1 (5) | `LLM_RETRY_MIN_WAIT` (1 s) -> `LLM_RETRY_MAX_WAIT` (30 s) | environment |
//! | Keycloak and Common Room (the sync) | `SYNC_RETRY_MAX_ATTEMPTS` (6) | `SYNC_RETRY_INITIAL_BACKOFF_MS` (1 s) -> `SYNC_RETRY_MAX_BACKOFF_MS` (60 s) | environment |
//! | Redis at a node's start, and its pub/sub connection after a fault | without end | [`RetryPolicy::REDIS_RECONNECT`] |  |
//! | an agent loop's event append | [`RetryPolicy::EVENT_APPEND`] | | |
//! | a state-change callback on the event bus | [`RetryPolicy::STATE_CALLBACK`] | | |
//! | a conflicting conditional write of the trigger decision | [`RetryPolicy::WRITE_CONFLICT`] | | |
//! | an OpenHands agent-server (`conversation-node` `agent::openhands`), each call and its event stream | [`RetryPolicy::AGENT_SERVER`] | | |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::ports::StoreError;

/// What an error says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Another attempt may succeed; `wait` is the server's hint, if it gave one.
    Transient { wait: Option<Duration> },
    /// The same request will fail the same way.
    Permanent,
}

/// An error that knows whether it is transient.
pub trait Retryable {
    fn verdict(&self) -> Verdict;
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub factor: f64,
    /// The longest wait between two attempts, the server's hint included.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            factor: 2.0,
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A Redis connection that must come back (a node waiting for its Redis, the pub/sub connection
    /// after a fault): tried without end, 250 ms doubling to 2 s between attempts.
    pub const REDIS_RECONNECT: Self = Self::doubling(u32::MAX, millis(250), millis(2_000));
    /// An agent loop's append that failed for lack of the store: 3 attempts, 100 ms then 200 ms.
    pub const EVENT_APPEND: Self = Self::doubling(3, millis(100), millis(400));
    /// A `ConversationStateChanged` publish: 3 attempts, 200 ms then 400 ms; then it is dropped
    /// (counted), never blocking a loop.
    pub const STATE_CALLBACK: Self = Self::doubling(3, millis(200), millis(400));
    /// A conditional write of the trigger decision that met a concurrent one: up to 64, 1 ms doubling
    /// to 50 ms (writers of one group are few and quick).
    pub const WRITE_CONFLICT: Self = Self::doubling(64, millis(1), millis(50));
    /// A call to an agent-server, or its event stream's reconnect: 7 attempts, 250 ms doubling to 4 s
    /// (about 12 s in all: a restarted server is back within it).
    pub const AGENT_SERVER: Self = Self::doubling(7, millis(250), millis(4_000));
    /// Who is linked to a GitHub account, asked while a webhook delivery or a request waits: 3
    /// attempts, 200 ms then 400 ms (GitHub gives a delivery 10 s).
    pub const ACCOUNT_LINK: Self = Self::doubling(3, millis(200), millis(400));

    /// `max_attempts` in all, the wait doubling from `initial_backoff` up to `max_backoff`.
    pub const fn doubling(
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        Self {
            max_attempts,
            initial_backoff,
            factor: 2.0,
            max_backoff,
        }
    }

    /// The ceiling of the wait before retry number `retry` (0 for the first retry): `initial * factor^retry`,
    /// capped.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * self.factor.powi(exponent);
        if secs.is_finite() && secs < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_backoff
        }
    }

    /// The wait before retry number `retry`: the server's hint when given (capped), else full jitter
    /// (uniform in `[0, ceiling]`), which spreads the retries of concurrent callers.
    pub fn wait_before(&self, retry: u32, hint: Option<Duration>) -> Duration {
        match hint {
            Some(wait) => wait.min(self.max_backoff),
            None => {
                let ceiling = self.backoff_ceiling(retry);
                ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails permanently or the attempts are spent; each retry is
    /// counted in `retries`. The last error is returned as is.
    pub async fn run<T, E, F, Fut>(&self, retries: &AtomicU64, mut attempt: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut done = 0;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            done += 1;
            let Verdict::Transient { wait } = error.verdict() else {
                return Err(error);
            };
            if done >= self.max_attempts.max(1) {
                return Err(error);
            }
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.wait_before(done - 1, wait)).await;
        }
    }
}

/// A retry policy with the count of the retries made under it, shared by the clients of a process.
#[derive(Debug, Default)]
pub struct Retrier {
    policy: RetryPolicy,
    retries: AtomicU64,
}

impl Retrier {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            retries: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub async fn run<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.policy.run(&self.retries, attempt).await
    }
}

/// A store that is unavailable may come back; a corrupt record stays corrupt.
impl Retryable for StoreError {
    fn verdict(&self) -> Verdict {
        match self {
            StoreError::Unavailable(_) => Verdict::Transient { wait: None },
            StoreError::Corrupt(_) => Verdict::Permanent,
        }
    }
}

/// A coordination backend that is unreachable may come back; bad settings or a corrupt message stay so.
impl Retryable for crate::ports::coordination::CoordinationError {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Unavailable(_) => Verdict::Transient { wait: None },
            Self::Corrupt(_) | Self::Misconfigured(_) => Verdict::Permanent,
        }
    }
}

/// A bus that is unreachable, or that failed an entry for throttling or an internal fault (what
/// EventBridge documents as worth a retry), may take it next time; any other rejection stays.
impl Retryable for crate::ports::BusError {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Unavailable(_) => Verdict::Transient { wait: None },
            Self::Rejected { code, .. }
                if code.contains("Throttl") || code.contains("Internal") =>
            {
                Verdict::Transient { wait: None }
            }
            Self::Rejected { .. } => Verdict::Permanent,
        }
    }
}

/// Parses a `Retry-After` value in either form: delay seconds (`120`) or a date, as an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`) or ISO 8601 (`2015-10-21T07:28:00Z`). A date in the past means now.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .or_else(|_| DateTime::parse_from_rfc3339(value))
        .ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failure(Verdict);

    impl Retryable for Failure {
        fn verdict(&self) -> Verdict {
            self.0
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_secs(1),
            factor: 2.0,
            max_backoff: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_cap() {
        let p = policy(10);
        assert_eq!(p.backoff_ceiling(0), Duration::from_secs(1));
        assert_eq!(p.backoff_ceiling(3), Duration::from_secs(8));
        assert_eq!(p.backoff_ceiling(6), Duration::from_secs(60));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(60));
        for retry in 0..8 {
            assert!(p.wait_before(retry, None) <= p.backoff_ceiling(retry));
        }
    }

    #[test]
    fn a_server_hint_replaces_the_backoff_but_not_the_cap() {
        let p = policy(10);
        let hint = Duration::from_millis(1500);
        assert_eq!(p.wait_before(0, Some(hint)), hint);
        assert_eq!(
            p.wait_before(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_is_read_in_every_form() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("2015-10-21T07:28:00Z", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_the_attempts_are_spent() {
        let retries = AtomicU64::new(0);
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let result: Result<(), Failure> = policy(4)
            .run(&retries, || {
                calls += 1;
                async {
                    Err(Failure(Verdict::Transient {
                        wait: Some(Duration::from_secs(2)),
                    }))
                }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 4);
        assert_eq!(retries.load(Ordering::Relaxed), 3);
        // Three waits of the server's 2 s hint, on paused time.
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_successes_stop_at_once() {
        let retries = AtomicU64::new(0);
        let mut calls = 0;
        let result: Result<(), Failure> = policy(5)
            .run(&retries, || {
                calls += 1;
                async { Err(Failure(Verdict::Permanent)) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result: Result<u32, Failure> = policy(5)
            .run(&retries, || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Failure(Verdict::Transient { wait: None }))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(retries.load(Ordering::Relaxed), 2);
    }
}
