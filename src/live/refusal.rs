//! The memory of refused callers: a token the source refused is answered from memory for a
//! short while, and a user whose tokens keep being refused stops reaching the source at all.
//!
//! Without it, a caller holding a token Kinde no longer accepts (signed out, expired at Kinde
//! but inside our leeway, no organization) would reach Kinde on every request, at the caller's
//! rate, until Kinde rate-limits the whole application and every strict route answers 503.
//! With it, each refused token costs one upstream call per `ttl`, and each user at most
//! [`MAX_REFUSED_PER_USER`] upstream refusals per `ttl`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use super::PermissionQuery;
use super::error::SourceError;

/// Upstream refusals of one user's tokens within the memory's time-to-live after which that
/// user's other tokens are refused from memory too.
pub(crate) const MAX_REFUSED_PER_USER: u32 = 3;

/// Most refused tokens and users remembered.
const CAPACITY: u64 = 10_000;

/// Refused tokens (exact bytes) and per-user refusal counts.
pub(super) struct Refusals {
    tokens: Cache<Arc<str>, (), foldhash::fast::RandomState>,
    users: Cache<(Box<str>, Box<str>), u32, foldhash::fast::RandomState>,
    /// Whether anything was ever refused: until then the check is one atomic load.
    any: AtomicBool,
}

impl Refusals {
    /// Remembers refusals for `ttl` (zero: not at all).
    pub(super) fn new(ttl: Duration) -> Option<Self> {
        if ttl.is_zero() {
            return None;
        }
        let hasher = foldhash::fast::RandomState::default;
        Some(Self {
            tokens: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build_with_hasher(hasher()),
            users: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build_with_hasher(hasher()),
            any: AtomicBool::new(false),
        })
    }

    /// `Some` when `query`'s token was refused before: the caller is answered from memory.
    pub(super) fn token(&self, query: &PermissionQuery) -> Option<SourceError> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.tokens
            .contains_key(query.access_token().expose())
            .then(|| SourceError::refused("token refused before (from memory)"))
    }

    /// `Some` when `query`'s user had too many tokens refused lately: a token of theirs the
    /// source has not seen is not sent to it either.
    pub(super) fn user(&self, query: &PermissionQuery) -> Option<SourceError> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let user = (query.issuer().into(), query.user_id().into());
        let refused = self.users.get(&user).unwrap_or(0);
        (refused >= MAX_REFUSED_PER_USER)
            .then(|| SourceError::refused("the user's tokens were refused too often (from memory)"))
    }

    /// Records that the source refused `query`'s token.
    pub(super) fn record(&self, query: &PermissionQuery) {
        self.tokens.insert(query.access_token().shared(), ());
        let user = (query.issuer().into(), query.user_id().into());
        self.users
            .entry(user)
            .and_upsert_with(|old| old.map_or(1, |n| n.value().saturating_add(1)));
        self.any.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{AccessToken, Claims, Repr};

    fn query(sub: &str, token: &str) -> PermissionQuery {
        let json = format!(r#"{{"iss":"https://i","exp":9999999999,"sub":"{sub}"}}"#);
        let repr: Repr = serde_json::from_str(&json).unwrap();
        let claims = Claims::from_parts(repr, AccessToken::new(Arc::from(token)));
        PermissionQuery::from_claims(&claims).unwrap()
    }

    #[test]
    fn zero_means_no_memory() {
        assert!(Refusals::new(Duration::ZERO).is_none());
    }

    #[test]
    fn a_refused_token_is_remembered_and_a_user_is_capped() {
        let memory = Refusals::new(Duration::from_secs(60)).unwrap();
        let first = query("kp_1", "a");
        assert!(memory.token(&first).is_none() && memory.user(&first).is_none());
        memory.record(&first);
        assert!(memory.token(&first).unwrap().is_refused());
        let other_token = query("kp_1", "b");
        assert!(memory.token(&other_token).is_none(), "only that token");
        assert!(
            memory.user(&other_token).is_none(),
            "one refusal is not a pattern"
        );
        for token in ["b", "c"] {
            memory.record(&query("kp_1", token));
        }
        let fourth = query("kp_1", "d");
        assert!(memory.token(&fourth).is_none());
        assert!(memory.user(&fourth).unwrap().is_refused(), "capped");
        assert!(memory.user(&query("kp_2", "e")).is_none(), "per user");
        // Per issuer too: the same id at another issuer is another user.
        let json = r#"{"iss":"https://other","exp":9999999999,"sub":"kp_1"}"#;
        let repr: Repr = serde_json::from_str(json).unwrap();
        let claims = Claims::from_parts(repr, AccessToken::new(Arc::from("f")));
        let elsewhere = PermissionQuery::from_claims(&claims).unwrap();
        assert!(memory.user(&elsewhere).is_none());
    }

    #[test]
    fn refusals_are_forgotten_after_the_memory_ends() {
        let memory = Refusals::new(Duration::from_millis(50)).unwrap();
        for token in ["a", "b", "c"] {
            memory.record(&query("kp_1", token));
        }
        assert!(memory.token(&query("kp_1", "a")).is_some());
        assert!(memory.user(&query("kp_1", "z")).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(memory.token(&query("kp_1", "a")).is_none());
        assert!(memory.user(&query("kp_1", "z")).is_none());
    }
}
