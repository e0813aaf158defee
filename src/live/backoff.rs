//! [`Backoff`]: how a [`LiveCheck`](super::LiveCheck) stops calling a failing source.
//!
//! A circuit breaker per kind of facts over the whole source (Kinde rate-limits and fails per
//! application, not per user; but each kind is its own endpoint, for flags even its own API,
//! so a roles endpoint failing never pauses permission lookups): after `after_failures` consecutive failed upstream calls, or at once when the
//! upstream says when to come back (429/503 with `RateLimit-Reset` / `Retry-After`), new upstream
//! calls pause. Requests during a pause answer 503 at once, with `Retry-After` set to the time
//! left, and make no upstream call. When the pause ends one call is let through as a probe; its
//! success closes the breaker, its failure pauses again for twice as long (up to `max_pause`).
//! Cached answers keep being served throughout.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::error::Verdict;

/// When and for how long a [`LiveCheck`](super::LiveCheck) stops calling a failing source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed upstream calls before the first pause (default 5).
    pub after_failures: u32,
    /// The first pause (default 1 s); each further failure doubles it.
    pub first_pause: Duration,
    /// The longest pause, including one an upstream asks for (default 30 s; at most 1 h).
    pub max_pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            after_failures: 5,
            first_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    paused_until: Option<Instant>,
    probing: bool,
}

/// The breaker's state, shared by every flight of one check.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: Backoff,
    state: Mutex<State>,
    /// The kind of facts it guards, for its gauge.
    kind: &'static str,
}

impl Breaker {
    /// A breaker for `config` guarding calls for `kind` (`permissions`, …), its pauses capped
    /// at 1 h.
    pub(crate) fn new(mut config: Backoff, kind: &'static str) -> Self {
        let hour = Duration::from_secs(3600);
        config.max_pause = config.max_pause.min(hour);
        config.first_pause = config.first_pause.min(config.max_pause);
        Self {
            config,
            state: Mutex::default(),
            kind,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a new upstream call may start now; if not, how long until one may.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        let mut state = self.state();
        let now = Instant::now();
        match state.paused_until {
            None => Ok(()),
            Some(until) if now < until => Err(until - now),
            // The pause is over and a probe is already out: wait for its verdict.
            Some(_) if state.probing => Err(self.config.first_pause),
            Some(_) => {
                state.probing = true;
                Ok(())
            }
        }
    }

    /// How long new upstream calls stay paused, if they are (a probe may be out).
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        let state = self.state();
        let until = state.paused_until?;
        Some(until.saturating_duration_since(Instant::now()))
    }

    /// Records how an upstream call ended. A call that says nothing about the upstream's health
    /// (a caller's own credentials refused, a request never sent) changes no count, but still
    /// ends a probe, so the next call may probe again.
    pub(crate) fn record(&self, verdict: Verdict) {
        let mut state = self.state();
        let asked = match verdict {
            Verdict::Healthy => {
                if state.paused_until.is_some() {
                    crate::metrics::live_source_paused(self.kind, -1.0);
                }
                *state = State::default();
                return;
            }
            Verdict::Unjudged => {
                state.probing = false;
                return;
            }
            Verdict::Failed(asked) => asked,
        };
        state.failures = state.failures.saturating_add(1);
        state.probing = false;
        let backoff = state
            .failures
            .checked_sub(self.config.after_failures)
            .map(|over| self.config.first_pause.saturating_mul(1 << over.min(16)));
        let pause = match (backoff, asked) {
            (None, None) => return,
            (backoff, asked) => backoff
                .unwrap_or_default()
                .max(asked.unwrap_or_default())
                .min(self.config.max_pause),
        };
        if state.paused_until.is_none() {
            crate::metrics::live_source_paused(self.kind, 1.0);
        }
        state.paused_until = Some(Instant::now() + pause);
        tracing::warn!(
            target: "claimcheck::live",
            failures = state.failures,
            pause_ms = pause.as_millis() as u64,
            "permission source failing: upstream calls paused"
        );
    }
}

/// A breaker dropped while paused (its live check gone) no longer counts as paused.
impl Drop for Breaker {
    fn drop(&mut self) {
        if self.state().paused_until.is_some() {
            crate::metrics::live_source_paused(self.kind, -1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            Backoff {
                after_failures: 3,
                first_pause: Duration::from_millis(100),
                max_pause: Duration::from_millis(1000),
            },
            "permissions",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_after_consecutive_failures_and_doubles() {
        let b = breaker();
        for _ in 0..2 {
            b.record(Verdict::Failed(None));
            assert_eq!(b.admit(), Ok(()));
        }
        b.record(Verdict::Failed(None));
        assert_eq!(b.admit(), Err(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(b.admit(), Ok(()), "the probe");
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(Verdict::Failed(None));
        assert_eq!(b.admit(), Err(Duration::from_millis(200)));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(b.admit(), Ok(()));
        b.record(Verdict::Healthy);
        assert_eq!(b.admit(), Ok(()));
        b.record(Verdict::Failed(None));
        assert_eq!(b.admit(), Ok(()), "failures counted afresh after a success");
    }

    #[tokio::test(start_paused = true)]
    async fn an_upstream_asking_for_a_pause_gets_it_at_once_within_the_cap() {
        let b = breaker();
        b.record(Verdict::Failed(Some(Duration::from_millis(700))));
        assert_eq!(b.admit(), Err(Duration::from_millis(700)));
        tokio::time::advance(Duration::from_millis(700)).await;
        assert_eq!(b.admit(), Ok(()));
        b.record(Verdict::Failed(Some(Duration::from_secs(3600))));
        assert_eq!(b.admit(), Err(Duration::from_millis(1000)), "capped");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unjudged_call_neither_counts_nor_leaves_a_probe_hanging() {
        let b = breaker();
        for _ in 0..10 {
            b.record(Verdict::Unjudged);
        }
        assert_eq!(b.admit(), Ok(()), "refusals are not failures");
        for _ in 0..3 {
            b.record(Verdict::Failed(None));
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(b.admit(), Ok(()), "the probe");
        b.record(Verdict::Unjudged);
        assert_eq!(
            b.admit(),
            Ok(()),
            "a probe that was refused lets the next one out"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_failures_do_not_overflow() {
        let b = breaker();
        for _ in 0..1000 {
            b.record(Verdict::Failed(None));
        }
        assert_eq!(b.admit(), Err(Duration::from_millis(1000)));
    }
}
