//! Lock-outs: users whose tokens issued up to a time are refused outright, and single tokens
//! revoked by `jti`.
//!
//! A watermark (see [`Freshness`](super::Freshness)) only stops *trusting* a token's claims: the
//! route then decides live, and a deleted or suspended user whose live permissions still exist
//! keeps working. A lock-out refuses the token itself (401 `invalid_token`) on every route,
//! until it expires.
//!
//! Memory is bounded like the watermarks': each lock-out is kept for the longest token
//! lifetime, at most `capacity` per kind; one dropped for room before its time becomes the
//! global watermark (those tokens are decided live, never trusted), so a lock-out is never
//! simply forgotten while a token it concerns can be presented.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::claims::Claims;
use crate::recent::Recent;

type Marks = Recent<Box<str>, i64>;

/// Locked-out users (with the time up to which their tokens are refused) and revoked token ids.
pub(super) struct Lockouts {
    users: Marks,
    tokens: Marks,
}

impl Lockouts {
    /// Lock-outs kept for `lifetime`, at most `capacity` per kind; an overflow raises `global`.
    pub(super) fn new(lifetime: Duration, capacity: u64, global: &Arc<AtomicI64>) -> Self {
        let marks = || {
            let global = global.clone();
            Recent::with_overflow(capacity, lifetime, move |mark: i64| {
                global.fetch_max(mark, Ordering::SeqCst);
            })
        };
        Self {
            users: marks(),
            tokens: marks(),
        }
    }

    /// Tokens of `user_id` issued up to `at_ms` are refused. Never moves back.
    pub(super) fn lock_out_user(&self, user_id: &str, at_ms: i64) {
        self.users.raise(user_id.into(), at_ms);
    }

    /// The token whose `jti` is `jti` is refused; `at_ms` is when it was revoked.
    pub(super) fn revoke_token(&self, jti: &str, at_ms: i64) {
        self.tokens.raise(jti.into(), at_ms);
    }

    /// Whether `claims` belong to a locked-out user (and were issued up to the lock-out; a
    /// token without `iat` counts as older) or to a revoked token. Two atomic loads while no
    /// lock-out is held.
    pub(super) fn is_locked_out(&self, claims: &Claims) -> bool {
        let user = claims
            .subject()
            .and_then(|sub| self.users.get(sub))
            .is_some_and(|mark| {
                claims
                    .issued_at()
                    .is_none_or(|iat| iat.saturating_mul(1000) <= mark)
            });
        user || claims
            .token_id()
            .is_some_and(|jti| self.tokens.contains(jti))
    }

    /// The user's lock-out, in Unix milliseconds.
    pub(super) fn user_lock_out(&self, user_id: &str) -> Option<i64> {
        self.users.get(user_id)
    }

    /// Approximate number of lock-outs held.
    pub(super) fn len(&self) -> u64 {
        self.users.len() + self.tokens.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, jti: &str, iat: i64) -> Claims {
        Claims::fixture(serde_json::json!({"sub": sub, "jti": jti, "iat": iat}))
    }

    fn lockouts(capacity: u64) -> (Lockouts, Arc<AtomicI64>) {
        let global = Arc::new(AtomicI64::new(i64::MIN));
        let lockouts = Lockouts::new(Duration::from_secs(3600), capacity, &global);
        (lockouts, global)
    }

    #[test]
    fn a_user_lock_out_refuses_older_tokens_only() {
        let (l, _) = lockouts(100);
        assert!(!l.is_locked_out(&claims("kp_1", "j1", 1_000)));
        l.lock_out_user("kp_1", 1_000_000);
        assert!(l.is_locked_out(&claims("kp_1", "j1", 999)));
        assert!(l.is_locked_out(&claims("kp_1", "j1", 1_000)), "same second");
        assert!(!l.is_locked_out(&claims("kp_1", "j2", 1_001)));
        assert!(!l.is_locked_out(&claims("kp_2", "j3", 999)), "bystander");
        l.lock_out_user("kp_1", 500_000);
        assert_eq!(l.user_lock_out("kp_1"), Some(1_000_000), "never moves back");
    }

    #[test]
    fn a_revoked_jti_is_refused_whatever_its_age() {
        let (l, _) = lockouts(100);
        l.revoke_token("j1", 5);
        assert!(l.is_locked_out(&claims("kp_1", "j1", 9_999_999)));
        assert!(!l.is_locked_out(&claims("kp_1", "j2", 1)));
    }

    #[test]
    fn a_lock_out_dropped_for_room_becomes_the_global_watermark() {
        let (l, global) = lockouts(10);
        for i in 0..200 {
            l.lock_out_user(&format!("kp_{i}"), 1_000 + i);
        }
        assert!(l.len() <= 20, "{}", l.len());
        assert!(global.load(Ordering::SeqCst) >= 1_000, "overflow folded");
    }
}
