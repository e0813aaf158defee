//! [`Freshness`]: "permissions changed at" watermarks, per user, per organization and global.
//!
//! A token issued before its user's permissions changed carries stale claims. When Kinde says a
//! user changed (a `user.updated` webhook, or [`Auth::mark_changed`](crate::Auth::mark_changed)),
//! the change time becomes that user's watermark; a token-trusted route that sees a token of
//! that user whose `iat` is not after the watermark does not trust its claims and decides live,
//! exactly as a strict route would. A token without `iat` counts as older than any watermark.
//!
//! `iat` has whole seconds, watermarks milliseconds: a token issued in the same second as the
//! change counts as stale (one more live call, never a wrong allow).
//!
//! Memory is bounded: a watermark is forgotten once the longest token lifetime has passed since
//! it was set (every token it could concern has expired by then), and at most `capacity` user
//! and `capacity` organization watermarks are kept. A watermark dropped for room before its time
//! raises the global watermark to its value instead of vanishing: a reported change is never
//! forgotten while a token it concerns can still be presented; the price is live decisions for
//! everyone's older tokens. The check costs three atomic loads while no watermark is held (none
//! set yet, or all expired), and one cache lookup per kind (user, organization) holding some.
//!
//! The same watermarks carry [lock-outs](Freshness::lock_out_user) (tokens refused outright,
//! not decided live) and a *trust gate*: a replica that has not yet replayed the change log,
//! or has been cut off from it for longer than its bound, trusts no token's claims (every
//! token-trusted route decides live) until it has caught up. See [`changes`](crate::changes).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use claimcheck::freshness::Freshness;
//!
//! let freshness = Freshness::new(Duration::from_secs(24 * 3600), 100_000);
//! freshness.mark_user("kp_123", SystemTime::now());
//! assert!(freshness.user_watermark("kp_123").is_some());
//! assert!(freshness.user_watermark("kp_456").is_none());
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use crate::claims::Claims;
use crate::clock::{from_unix_ms, unix_ms};
use crate::recent::Recent;

mod lockout;

use lockout::Lockouts;

/// Kinde's default access-token lifetime, plus the verifier's default leeway.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600 + 30);
const DEFAULT_CAPACITY: u64 = 100_000;
const NONE: i64 = i64::MIN;

type Marks = Recent<Box<str>, i64>;

/// Why claims may or may not be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Staleness {
    /// No change concerns them.
    Fresh,
    /// A change of their user or organization happened after they were issued.
    Named,
    /// A change of everyone happened after they were issued, or the trust gate is closed.
    Everyone,
}

/// Watermarks per user, per organization and global. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct Freshness {
    inner: Arc<Inner>,
}

struct Inner {
    users: Marks,
    orgs: Marks,
    /// Global watermark in Unix milliseconds, or `NONE`; shared with the overflow callbacks.
    global: Arc<AtomicI64>,
    lockouts: Lockouts,
    /// Whether claims may be trusted at all (false while the change log is not caught up).
    trusting: AtomicBool,
    max_lifetime: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_CAPACITY)
    }
}

impl Freshness {
    /// Watermarks kept for `max_token_lifetime` (the longest life of a token this API accepts,
    /// default 24 h + 30 s; at most 400 days) and at most `capacity` per kind (default 100 000).
    pub fn new(max_token_lifetime: Duration, capacity: u64) -> Self {
        // Longer than any token lifetime, and within what the caches can represent.
        let max_token_lifetime = max_token_lifetime.min(Duration::from_secs(400 * 24 * 3600));
        let global = Arc::new(AtomicI64::new(NONE));
        let marks = || {
            let global = global.clone();
            // Dropped for room, before its time: it becomes everyone's watermark, so the change
            // it recorded is never forgotten (more live calls, never an allow).
            Recent::with_overflow(capacity, max_token_lifetime, move |mark: i64| {
                global.fetch_max(mark, Ordering::SeqCst);
            })
        };
        let lockouts = Lockouts::new(max_token_lifetime, capacity, &global);
        Self {
            inner: Arc::new(Inner {
                users: marks(),
                orgs: marks(),
                global,
                lockouts,
                trusting: AtomicBool::new(true),
                max_lifetime: max_token_lifetime,
            }),
        }
    }

    /// Tokens of `user_id` issued up to `at` are stale. A watermark never moves back: an older
    /// event delivered late leaves a newer one in place.
    pub fn mark_user(&self, user_id: &str, at: SystemTime) {
        self.mark(&self.inner.users, user_id, at);
    }

    /// Tokens for the organization `org_code` issued up to `at` are stale.
    pub fn mark_org(&self, org_code: &str, at: SystemTime) {
        self.mark(&self.inner.orgs, org_code, at);
    }

    /// Every token issued up to `at` is stale (until the longest token lifetime has passed).
    pub fn mark_all(&self, at: SystemTime) {
        self.inner.global.fetch_max(unix_ms(at), Ordering::SeqCst);
    }

    /// Tokens of `user_id` issued up to `at` are refused outright (401 `invalid_token`) on
    /// every route, and older claims of theirs are not trusted either. Never moves back.
    pub fn lock_out_user(&self, user_id: &str, at: SystemTime) {
        let at = unix_ms(at);
        self.inner.lockouts.lock_out_user(user_id, at);
        self.inner.users.raise(user_id.into(), at);
    }

    /// The token whose `jti` claim is `jti` is refused outright until the longest token
    /// lifetime has passed.
    pub fn revoke_token(&self, jti: &str, at: SystemTime) {
        self.inner.lockouts.revoke_token(jti, unix_ms(at));
    }

    /// Whether `claims` must be refused: their user was locked out after they were issued, or
    /// the token was revoked by `jti`.
    pub fn is_locked_out(&self, claims: &Claims) -> bool {
        self.inner.lockouts.is_locked_out(claims)
    }

    /// The time up to which the user's tokens are refused, if they are locked out.
    pub fn user_lock_out(&self, user_id: &str) -> Option<SystemTime> {
        self.inner.lockouts.user_lock_out(user_id).map(from_unix_ms)
    }

    /// Whether claims are trusted at all: false while the change log this replica follows has
    /// not been replayed, or has been out of reach for longer than its bound.
    pub fn is_trusting(&self) -> bool {
        self.inner.trusting.load(Ordering::Acquire)
    }

    /// Opens or closes the trust gate (the change log's follower does this).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_trusting(&self, trusting: bool) {
        self.inner.trusting.store(trusting, Ordering::Release);
    }

    fn mark(&self, marks: &Marks, key: &str, at: SystemTime) {
        let at = unix_ms(at);
        marks.raise(key.into(), at);
    }

    /// How long a watermark or lock-out is kept: the longest token lifetime.
    pub fn max_token_lifetime(&self) -> Duration {
        self.inner.max_lifetime
    }

    /// The user's watermark, if one is set.
    pub fn user_watermark(&self, user_id: &str) -> Option<SystemTime> {
        self.inner.users.get(user_id).map(from_unix_ms)
    }

    /// Whether `claims` predate a change that concerns them, or the trust gate is closed: then
    /// they must not be trusted.
    pub fn is_stale(&self, claims: &Claims) -> bool {
        self.staleness(claims) != Staleness::Fresh
    }

    /// Whether `claims` may be trusted, and if not, whether because of a change that names
    /// them (their user or organization) or one that concerns everyone (the global watermark,
    /// or the trust gate closed).
    pub(crate) fn staleness(&self, claims: &Claims) -> Staleness {
        if !self.is_trusting() {
            return Staleness::Everyone;
        }
        let covers = |mark: Option<i64>| {
            mark.is_some_and(|mark| {
                claims
                    .issued_at()
                    .is_none_or(|iat| iat.saturating_mul(1000) <= mark)
            })
        };
        let lookup = |marks: &Marks, key: Option<&str>| marks.get(key?);
        if covers(lookup(&self.inner.users, claims.subject()))
            || covers(lookup(&self.inner.orgs, claims.org_code()))
        {
            return Staleness::Named;
        }
        let global = match self.inner.global.load(Ordering::Acquire) {
            NONE => None,
            mark => {
                let age = unix_ms(SystemTime::now()).saturating_sub(mark);
                (age <= i64::try_from(self.inner.max_lifetime.as_millis()).unwrap_or(i64::MAX))
                    .then_some(mark)
            }
        };
        if covers(global) {
            Staleness::Everyone
        } else {
            Staleness::Fresh
        }
    }

    /// Approximate number of user and organization watermarks and lock-outs held.
    pub fn len(&self) -> u64 {
        self.inner.users.len() + self.inner.orgs.len() + self.inner.lockouts.len()
    }

    /// Whether no user or organization watermark or lock-out is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Freshness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Freshness")
            .field("max_token_lifetime", &self.inner.max_lifetime)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn claims(sub: &str, org: &str, iat: Option<i64>) -> Claims {
        let mut fields = serde_json::json!({"sub": sub, "org_code": org});
        if let Some(iat) = iat {
            fields["iat"] = iat.into();
        }
        Claims::fixture(fields)
    }

    fn at(secs: i64) -> SystemTime {
        from_unix_ms(secs * 1000)
    }

    #[test]
    fn tokens_issued_up_to_the_watermark_are_stale() {
        let f = Freshness::default();
        assert!(!f.is_stale(&claims("kp_1", "org_1", Some(1_000))));
        f.mark_user("kp_1", at(1_000));
        assert!(f.is_stale(&claims("kp_1", "org_1", Some(999))));
        assert!(
            f.is_stale(&claims("kp_1", "org_1", Some(1_000))),
            "same second"
        );
        assert!(!f.is_stale(&claims("kp_1", "org_1", Some(1_001))));
        assert!(f.is_stale(&claims("kp_1", "org_1", None)), "no iat");
        assert!(
            !f.is_stale(&claims("kp_2", "org_1", Some(999))),
            "other user"
        );
    }

    #[test]
    fn watermarks_never_move_back() {
        let f = Freshness::default();
        f.mark_user("kp_1", at(2_000));
        f.mark_user("kp_1", at(1_000));
        assert_eq!(f.user_watermark("kp_1"), Some(at(2_000)));
        assert!(f.is_stale(&claims("kp_1", "o", Some(1_500))));
    }

    #[test]
    fn org_and_global_watermarks_apply() {
        let f = Freshness::default();
        f.mark_org("org_1", at(1_000));
        assert!(f.is_stale(&claims("kp_9", "org_1", Some(900))));
        assert!(!f.is_stale(&claims("kp_9", "org_2", Some(900))));
        let now = SystemTime::now();
        f.mark_all(now);
        let now_secs = unix_ms(now) / 1000;
        assert!(f.is_stale(&claims("kp_9", "org_2", Some(now_secs - 5))));
        assert!(!f.is_stale(&claims("kp_9", "org_2", Some(now_secs + 5))));
    }

    #[test]
    fn an_old_global_watermark_expires() {
        let f = Freshness::new(Duration::from_secs(60), 10);
        f.mark_all(SystemTime::now() - Duration::from_secs(120));
        assert!(!f.is_stale(&claims("kp_1", "o", Some(0))));
    }

    #[test]
    fn user_and_org_watermarks_expire_after_the_longest_token_lifetime() {
        let f = Freshness::new(Duration::from_millis(100), 10);
        f.mark_user("kp_1", at(1_000));
        f.mark_org("org_1", at(1_000));
        assert!(f.is_stale(&claims("kp_1", "org_1", Some(900))));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(f.user_watermark("kp_1"), None);
        assert!(!f.is_stale(&claims("kp_1", "org_1", Some(900))));
    }

    #[test]
    fn memory_stays_bounded_under_many_users() {
        let f = Freshness::new(Duration::from_secs(3600), 1_000);
        for i in 0..20_000 {
            f.mark_user(&format!("kp_{i}"), SystemTime::now());
        }
        assert!(f.len() <= 1_000, "{}", f.len());
    }

    #[test]
    fn a_watermark_dropped_for_room_is_not_forgotten() {
        let f = Freshness::new(Duration::from_secs(3600), 100);
        let now = unix_ms(SystemTime::now()) / 1000;
        let revoked = at(now);
        f.mark_user("kp_victim", revoked);
        for i in 0..5_000 {
            f.mark_user(&format!("kp_{i}"), revoked - Duration::from_secs(1));
            f.mark_org(&format!("org_{i}"), revoked - Duration::from_secs(1));
        }
        assert!(f.len() <= 200, "{}", f.len());
        // Whether the victim's own mark survived or was folded into the global one, their
        // token issued before the change stays distrusted; one issued after it is trusted.
        assert!(f.is_stale(&claims("kp_victim", "org_x", Some(now - 1))));
        assert!(!f.is_stale(&claims("kp_victim", "org_x", Some(now + 1))));
    }
}
