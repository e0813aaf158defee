//! The memory of refused callers, one per kind of facts (each kind's endpoint judges a token
//! for itself: with the Management API, permission lookups never send the caller's token, so
//! the Account API refusing it for feature flags says nothing about them).
//!
//! Without it, a caller holding a token Kinde no longer accepts (signed out, expired at Kinde
//! but inside our leeway, no organization) would reach Kinde on every request, at the caller's
//! rate, until Kinde rate-limits the whole application and every strict route answers 503. With
//! it:
//!
//! - a refused token is answered from memory for 250 ms, doubling with each further refusal of
//!   it up to the memory's length (default 30 s): a client hammering one dead token costs a
//!   handful of upstream calls, then one per memory length; a short Kinde-side incident that
//!   refuses everyone is forgotten within a second of its end;
//! - a user with [`MAX_REFUSED_PER_USER`] distinct tokens refused lately stops reaching the
//!   source with *older* tokens: a stockpile of dead tokens cannot be spent one by one. A token
//!   issued since the latest refusal (a new sign-in), or one the source accepted lately, is
//!   still asked about, so whoever holds a few dead tokens of a user cannot lock that user out.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::PermissionQuery;
use super::error::SourceError;
use crate::recent::Recent;

/// Distinct refused tokens of one user after which that user's older tokens are refused from
/// memory too.
pub(crate) const MAX_REFUSED_PER_USER: u32 = 3;

/// How long a token refused once is answered from memory; each further refusal doubles it.
const FIRST_MEMORY: Duration = Duration::from_millis(250);

/// Most tokens and users remembered, per kind.
const CAPACITY: u64 = 10_000;

/// One refused token: how often it was refused, and until when that is remembered.
#[derive(Clone, Copy)]
struct Strike {
    count: u32,
    until: Instant,
}

/// One user's refused tokens: how many distinct ones, and when the latest refusal was (Unix
/// seconds, to compare with tokens' `iat`).
#[derive(Clone, Copy)]
struct UserStrikes {
    tokens: u32,
    latest: i64,
}

/// Refused tokens, per-user refusal counts, and tokens the source accepted lately.
pub(super) struct Refusals {
    longest: Duration,
    tokens: Recent<Arc<str>, Strike>,
    users: Recent<(Box<str>, Box<str>), UserStrikes>,
    accepted: Recent<Arc<str>, ()>,
}

impl Refusals {
    /// Remembers refusals for at most `longest` (zero: not at all).
    pub(super) fn new(longest: Duration) -> Option<Self> {
        if longest.is_zero() {
            return None;
        }
        Some(Self {
            longest,
            tokens: Recent::new(CAPACITY, longest),
            users: Recent::new(CAPACITY, longest),
            accepted: Recent::new(CAPACITY, longest),
        })
    }

    fn user_key(query: &PermissionQuery) -> (Box<str>, Box<str>) {
        (query.issuer().into(), query.user_id().into())
    }

    /// `Some` when `query`'s token was refused lately: the caller is answered from memory.
    pub(super) fn token(&self, query: &PermissionQuery) -> Option<SourceError> {
        let strike = self.tokens.get(query.access_token().expose())?;
        (Instant::now() < strike.until).then(|| SourceError::refused("token refused lately"))
    }

    /// `Some` when `query`'s user had too many tokens refused lately and this token is older
    /// than the latest refusal and was not accepted lately: it is not sent to the source.
    pub(super) fn user(&self, query: &PermissionQuery) -> Option<SourceError> {
        if self.users.is_empty() {
            return None;
        }
        let strikes = self.users.get(&Self::user_key(query))?;
        if strikes.tokens < MAX_REFUSED_PER_USER {
            return None;
        }
        let issued_since = query
            .claims()
            .issued_at()
            .is_some_and(|iat| iat >= strikes.latest);
        if issued_since || self.accepted.contains(query.access_token().expose()) {
            return None;
        }
        Some(SourceError::refused(
            "the user's older tokens were refused too often lately",
        ))
    }

    /// Records that the source refused `query`'s token.
    pub(super) fn record_refusal(&self, query: &PermissionQuery) {
        let now = Instant::now();
        let token = query.access_token().shared();
        let strike = self.tokens.upsert(token, |old| {
            let count = old.map_or(1, |old| old.count.saturating_add(1));
            let doubled = FIRST_MEMORY.saturating_mul(1 << (count - 1).min(16));
            Strike {
                count,
                until: now + doubled.min(self.longest),
            }
        });
        let first = strike.count == 1;
        let latest = i64::try_from(crate::clock::now_secs()).unwrap_or(i64::MAX);
        self.users.upsert(Self::user_key(query), |old| UserStrikes {
            tokens: old
                .map_or(0, |old| old.tokens)
                .saturating_add(u32::from(first)),
            latest,
        });
    }

    /// Records that the source accepted `query`'s token.
    pub(super) fn record_acceptance(&self, query: &PermissionQuery) {
        self.accepted.upsert(query.access_token().shared(), |_| ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Claims;

    /// A query for `sub` at `iss` with a token of its own, named by its `jti`.
    fn query_issued(iss: &str, sub: &str, jti: &str, iat: i64) -> PermissionQuery {
        let fields = serde_json::json!({"iss": iss, "sub": sub, "iat": iat, "jti": jti});
        PermissionQuery::from_claims(&Claims::fixture(fields)).unwrap()
    }

    /// A token of `sub` issued an hour ago.
    fn query(sub: &str, jti: &str) -> PermissionQuery {
        let hour_ago = crate::clock::now_secs() as i64 - 3600;
        query_issued("https://i", sub, jti, hour_ago)
    }

    #[test]
    fn zero_means_no_memory() {
        assert!(Refusals::new(Duration::ZERO).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_remembered_for_longer_each_time() {
        let memory = Refusals::new(Duration::from_secs(2)).unwrap();
        let q = query("kp_1", "a");
        assert!(memory.token(&q).is_none());
        let mut remembered = Vec::new();
        for _ in 0..5 {
            memory.record_refusal(&q);
            let mut held = Duration::ZERO;
            while memory.token(&q).is_some() {
                tokio::time::advance(Duration::from_millis(50)).await;
                held += Duration::from_millis(50);
            }
            remembered.push(held.as_millis());
        }
        assert_eq!(remembered, [250, 500, 1000, 2000, 2000], "doubling, capped");
        assert!(
            memory.token(&query("kp_1", "b")).is_none(),
            "only that token"
        );
    }

    #[test]
    fn a_user_is_capped_for_older_tokens_only() {
        let memory = Refusals::new(Duration::from_secs(60)).unwrap();
        for token in ["a", "b"] {
            memory.record_refusal(&query("kp_1", token));
        }
        memory.record_refusal(&query("kp_1", "b"));
        assert!(
            memory.user(&query("kp_1", "d")).is_none(),
            "two distinct tokens are not a pattern"
        );
        memory.record_refusal(&query("kp_1", "c"));
        assert!(
            memory.user(&query("kp_1", "d")).unwrap().is_refused(),
            "capped"
        );
        assert!(memory.user(&query("kp_2", "e")).is_none(), "per user");
        let now = crate::clock::now_secs() as i64;
        let new_sign_in = query_issued("https://i", "kp_1", "fresh", now);
        assert!(
            memory.user(&new_sign_in).is_none(),
            "issued since the refusals"
        );
        let elsewhere = query_issued("https://other", "kp_1", "f", now - 3600);
        assert!(memory.user(&elsewhere).is_none(), "per issuer");
        let session = query("kp_1", "accepted-before");
        memory.record_acceptance(&session);
        assert!(memory.user(&session).is_none(), "accepted lately");
    }

    #[test]
    fn refusals_are_forgotten_after_the_memory_ends() {
        let memory = Refusals::new(Duration::from_millis(50)).unwrap();
        for token in ["a", "b", "c"] {
            memory.record_refusal(&query("kp_1", token));
        }
        assert!(memory.token(&query("kp_1", "a")).is_some());
        assert!(memory.user(&query("kp_1", "z")).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(memory.token(&query("kp_1", "a")).is_none());
        assert!(memory.user(&query("kp_1", "z")).is_none());
    }
}
