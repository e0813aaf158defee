//! [`Budget`]: how many upstream calls per second the conservative rules may cause.
//!
//! When every token is distrusted at once (a replica that has not replayed the change log, one
//! cut off from it, a loss found in it, or a change of every role), every token-trusted request
//! of every user becomes a live lookup. The cache and the single-flight bound that to one call
//! per user and time-to-live, which for many users is still a flood for the permissions API,
//! and it would starve the strict routes that need the API most.
//!
//! So upstream calls share one token bucket: strict routes (and lookups made by code) always
//! go, and spend from it; lookups caused by an everyone-wide distrust go only while it holds a
//! token, and are answered `503` + `Retry-After` otherwise. Strict first, by construction.
//! Lookups caused by a change that names the user (their own watermark) or by a token without
//! a `permissions` claim are ordinary traffic and are not budgeted.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Who is asking for an upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A strict route, code, or a lookup for a change that names the caller: never refused
    /// by the budget.
    First,
    /// A token-trusted route deciding live because everyone's tokens are distrusted: only
    /// while the budget lasts.
    Conservative,
}

/// A token bucket refilled at `rate` per second, holding at most one second's worth.
pub(super) struct Budget {
    rate: f64,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// `per_second` calls for conservative lookups, what strict calls leave of them.
    pub(super) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            state: Mutex::new(State {
                tokens: rate,
                at: Instant::now(),
            }),
        }
    }

    /// Spends one call: always for [`Priority::First`], only while a token is left for
    /// [`Priority::Conservative`] (else how long until one is).
    pub(super) fn spend(&self, priority: Priority) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.rate);
        state.at = now;
        match priority {
            Priority::First => {
                state.tokens = (state.tokens - 1.0).max(0.0);
                Ok(())
            }
            Priority::Conservative if state.tokens >= 1.0 => {
                state.tokens -= 1.0;
                Ok(())
            }
            Priority::Conservative => {
                let wait = if self.rate > 0.0 {
                    (1.0 - state.tokens) / self.rate
                } else {
                    1.0
                };
                Err(Duration::from_secs_f64(wait.clamp(0.001, 1.0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn strict_calls_spend_first_and_conservative_ones_get_the_rest() {
        let budget = Budget::new(10);
        for _ in 0..8 {
            budget.spend(Priority::First).unwrap();
        }
        assert!(budget.spend(Priority::Conservative).is_ok());
        assert!(budget.spend(Priority::Conservative).is_ok());
        let wait = budget.spend(Priority::Conservative).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Strict calls are never refused, even with the bucket empty.
        for _ in 0..100 {
            budget.spend(Priority::First).unwrap();
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        let granted = (0..10)
            .filter(|_| budget.spend(Priority::Conservative).is_ok())
            .count();
        assert_eq!(granted, 5, "half a second refills half the rate");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_refuses_every_conservative_call() {
        let budget = Budget::new(0);
        assert!(budget.spend(Priority::Conservative).is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(budget.spend(Priority::Conservative).is_err());
        assert!(budget.spend(Priority::First).is_ok());
    }
}
