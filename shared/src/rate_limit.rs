//! A request-rate limiter shared by every request to one API during a run: grants are spaced evenly, at
//! most `rate` per second (a token bucket with a burst of one), and a server's "wait" holds every caller.
//!
//! Why not a bucket with a larger burst: a burst of `rate` followed by the steady rate puts up to twice
//! the rate inside one second. Why spacing from the actual grant rather than from the planned one: a
//! late wake-up must not let the next request catch up and land closer than the interval. The small
//! headroom keeps the server from seeing more than `rate` in any second despite network jitter.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

/// The fraction by which the interval between grants is widened: absorbs up to 2% of a second of
/// jitter between the grant and the request's arrival at the server.
const HEADROOM: f64 = 0.02;

pub struct RateLimiter {
    interval: Duration,
    /// The earliest instant of the next grant. A fair (FIFO) lock: waiters are served in arrival order.
    next: Mutex<Instant>,
    /// Set when the server asked everyone to wait (a 429's `waitMs` or `Retry-After`).
    hold: StdMutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter of `per_second` requests per second (must be positive and finite).
    pub fn per_second(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        Self {
            interval: Duration::from_secs_f64((1.0 + HEADROOM) / per_second),
            next: Mutex::new(Instant::now()),
            hold: StdMutex::new(None),
        }
    }

    /// The time between two grants.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's turn.
    pub async fn acquire(&self) {
        let mut next = self.next.lock().await;
        loop {
            let held_until = *self.hold.lock().unwrap_or_else(|p| p.into_inner());
            let at = held_until.map_or(*next, |hold| hold.max(*next));
            if Instant::now() >= at {
                break;
            }
            sleep_until(at).await;
        }
        *next = Instant::now() + self.interval;
    }

    /// Holds every caller until `wait` from now: the server's quota is shared, so when it says wait,
    /// nobody should ask before then.
    pub fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        *hold = Some(hold.map_or(until, |current| current.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grants_are_spaced_by_the_interval_even_under_contention() {
        let limiter = Arc::new(RateLimiter::per_second(4.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut grants = Vec::new();
        for task in tasks {
            grants.push(task.await.unwrap());
        }
        grants.sort();
        assert_eq!(grants[0], start, "the first grant is immediate");
        for pair in grants.windows(2) {
            assert!(pair[1] - pair[0] >= limiter.interval());
        }
        // Eight grants at 4/s (with the headroom) take just over 7 intervals, never fewer.
        assert_eq!(*grants.last().unwrap() - start, limiter.interval() * 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_caller() {
        let limiter = RateLimiter::per_second(100.0);
        limiter.acquire().await;
        let start = Instant::now();
        limiter.hold_for(Duration::from_secs(3));
        limiter.hold_for(Duration::from_secs(1)); // a shorter hold never shortens a longer one
        limiter.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_limiter_grants_at_once() {
        let limiter = RateLimiter::per_second(2.0);
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        limiter.acquire().await;
        assert_eq!(Instant::now(), before);
    }
}
