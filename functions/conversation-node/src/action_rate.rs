//! The per-user action rate (`ACTION_RATE_PER_SECOND`, `ACTION_RATE_BURST`): a user's actions on this
//! node, over every socket and REST together, past the burst and the sustained rate are refused before
//! anything is parsed or recorded. A GCRA limiter keyed by user (`governor`), so that a flood costs a
//! hash lookup per action and one user's flood never slows another user.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::metrics::NodeMetrics;
use shared::domain::UserId;

/// How fast a user may act.
#[derive(Debug, Clone, Copy)]
pub struct ActionRate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for ActionRate {
    /// Generous: far beyond anyone typing, well below a script flooding the agent.
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(20).expect("not zero"),
            burst: NonZeroU32::new(100).expect("not zero"),
        }
    }
}

pub(crate) struct ActionLimiter {
    rate: ActionRate,
    limiter: DefaultKeyedRateLimiter<UserId>,
    /// Where refusals are counted (`conversation_node_actions_rate_limited_total`).
    metrics: Arc<NodeMetrics>,
}

impl ActionLimiter {
    pub(crate) fn new(rate: ActionRate, metrics: Arc<NodeMetrics>) -> Self {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        Self {
            rate,
            limiter: RateLimiter::keyed(quota),
            metrics,
        }
    }

    /// Takes one action from `user`'s allowance, or says (and counts) why not and when to try again.
    pub(crate) fn check(&self, user: &UserId) -> Result<(), String> {
        self.limiter.check_key(user).map_err(|not_until| {
            self.metrics.actions_rate_limited.inc();
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            format!(
                "too many actions: at most {} per second (bursts of {}); retry in {} ms",
                self.rate.per_second,
                self.rate.burst,
                wait.as_millis().max(1)
            )
        })
    }

    /// Forgets the users whose allowance is full again, so that the table holds only recent ones.
    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rest_is_refused_per_user() {
        let metrics = Arc::new(NodeMetrics::default());
        let rate = ActionRate {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        };
        let limiter = ActionLimiter::new(rate, Arc::clone(&metrics));
        let (alice, bob) = (
            UserId::parse("alice").unwrap(),
            UserId::parse("bob").unwrap(),
        );
        for _ in 0..3 {
            limiter.check(&alice).expect("within the burst");
        }
        let refused = limiter.check(&alice).expect_err("past the burst");
        assert!(refused.starts_with("too many actions"), "{refused}");
        assert_eq!(metrics.actions_rate_limited.get(), 1);
        limiter
            .check(&bob)
            .expect("another user has an allowance of their own");
    }
}
