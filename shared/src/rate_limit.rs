//! A request-rate limiter shared by every request to one API during a run: grants are spaced evenly at
//! `rate` per second (a token bucket with a burst of one), and a server's "wait" holds every caller.
//!
//! Why not a bucket with a larger burst: a burst of `rate` followed by the steady rate puts up to twice
//! the rate inside one second. Why a schedule plus a window guard: grants follow a fixed schedule, so a
//! late wake-up (timer granularity, a busy CPU) does not lower the long-run rate; and no `n` consecutive
//! grants (`n` = the rate rounded down) ever fit in less than `n` intervals, however late one of them
//! was, so the server never sees more than the rate in any second. The small headroom absorbs the network
//! jitter between a grant and the request's arrival.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

/// The fraction by which the interval between grants is widened: up to 3% of a second of jitter
/// between the grant and the request's arrival at the server.
const HEADROOM: f64 = 0.03;

/// How far a grant may fall behind its schedule and still be caught up with (beyond that, the
/// schedule restarts from the grant, so that a long hold is not followed by a burst).
const MAX_CATCH_UP: Duration = Duration::from_millis(25);

pub struct RateLimiter {
    interval: Duration,
    /// Grants that must span at least `window` (the guard against bunching).
    window_grants: usize,
    window: Duration,
    /// A fair (FIFO) lock: waiters are served in arrival order.
    state: Mutex<Schedule>,
    /// Set when the server asked everyone to wait (a 429's `waitMs` or `Retry-After`).
    hold: StdMutex<Option<Instant>>,
}

struct Schedule {
    /// When the next grant is due.
    due: Instant,
    /// The last `window_grants` grants.
    recent: VecDeque<Instant>,
}

impl RateLimiter {
    /// A limiter of `per_second` requests per second (must be positive and finite).
    pub fn per_second(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        let interval = Duration::from_secs_f64((1.0 + HEADROOM) / per_second);
        let window_grants = (per_second.floor() as usize).max(1);
        Self {
            interval,
            window_grants,
            window: interval * window_grants as u32,
            state: Mutex::new(Schedule {
                due: Instant::now(),
                recent: VecDeque::with_capacity(window_grants),
            }),
            hold: StdMutex::new(None),
        }
    }

    /// The time between two grants.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this caller's turn.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        loop {
            let held_until = *self.hold.lock().unwrap_or_else(|p| p.into_inner());
            let mut at = held_until.map_or(state.due, |hold| hold.max(state.due));
            // The next grant would be the window's (n+1)th: it waits for the oldest to age out.
            if state.recent.len() == self.window_grants
                && let Some(oldest) = state.recent.front()
            {
                at = at.max(*oldest + self.window);
            }
            if Instant::now() >= at {
                break;
            }
            sleep_until(at).await;
        }
        let granted = Instant::now();
        if state.recent.len() == self.window_grants {
            state.recent.pop_front();
        }
        state.recent.push_back(granted);
        let catch_up = MAX_CATCH_UP.min(self.interval / 2);
        state.due = (state.due + self.interval).max(granted + self.interval - catch_up);
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
        // The timer's millisecond ticks may shift one grant, never the schedule: never four grants
        // closer than four intervals, never more than the rate in any second.
        let tick = Duration::from_millis(1);
        for pair in grants.windows(2) {
            assert!(pair[1] - pair[0] + tick >= limiter.interval());
        }
        for window in grants.windows(5) {
            assert!(window[4] - window[0] >= limiter.interval() * 4);
        }
        let span = *grants.last().unwrap() - start;
        assert!(span >= limiter.interval() * 7 && span <= limiter.interval() * 7 + tick);
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
    async fn late_grants_are_caught_up_without_ever_bunching() {
        let limiter = RateLimiter::per_second(2.0);
        let mut grants = Vec::new();
        for i in 0..12 {
            limiter.acquire().await;
            grants.push(Instant::now());
            if i % 3 == 0 {
                // The caller comes back late (a slow wake-up): the next grants catch up.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        let span = *grants.last().unwrap() - grants[0];
        assert_eq!(span, limiter.interval() * 11, "no lateness accumulated");
        for window in grants.windows(3) {
            assert!(window[2] - window[0] >= limiter.interval() * 2);
        }
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
