//! The verified-token cache: a token seen before is not verified again.
//!
//! Keyed by the token's exact bytes (never a short hash, so a collision cannot be forged),
//! valued by its [`Claims`]. An entry lives at most until the token's `exp` (plus leeway) and at
//! most `max_ttl`; the cache holds at most `capacity` tokens. Only tokens that passed every
//! check are inserted, so a hit is exactly as trustworthy as a fresh verification.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::sync::Cache;

use crate::claims::Claims;

pub(crate) struct TokenCache {
    cache: Cache<Arc<str>, Claims, foldhash::fast::RandomState>,
    leeway: u64,
}

struct UntilExpiry {
    leeway: u64,
    max_ttl: Duration,
}

impl Expiry<Arc<str>, Claims> for UntilExpiry {
    fn expire_after_create(&self, _: &Arc<str>, claims: &Claims, _: Instant) -> Option<Duration> {
        let remaining = remaining_secs(claims.expires_at(), self.leeway, now_secs());
        Some(Duration::from_secs(remaining).min(self.max_ttl))
    }
}

/// Seconds from `now` until `exp + leeway`, zero when already past.
fn remaining_secs(exp: i64, leeway: u64, now: u64) -> u64 {
    let deadline = i128::from(exp) + i128::from(leeway);
    u64::try_from((deadline - i128::from(now)).max(0)).unwrap_or(u64::MAX)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenCache {
    pub(crate) fn new(capacity: u64, max_ttl: Duration, leeway: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilExpiry { leeway, max_ttl })
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self { cache, leeway }
    }

    /// The claims of a token verified before, if it has not expired since.
    pub(crate) fn get(&self, token: &str) -> Option<Claims> {
        let claims = self.cache.get(token)?;
        // moka's clock is coarse; the wall-clock check keeps `exp` exact.
        (remaining_secs(claims.expires_at(), self.leeway, now_secs()) > 0).then_some(claims)
    }

    /// Caches `claims` under the token they were verified from.
    pub(crate) fn insert(&self, claims: Claims) {
        self.cache.insert(claims.access_token().shared(), claims);
    }

    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{AccessToken, Repr};

    fn claims(token: &str, exp: i64) -> Claims {
        let json = format!(r#"{{"iss":"i","exp":{exp}}}"#);
        let token = AccessToken::new(Arc::from(token));
        Claims::from_parts(
            serde_json::from_str::<Repr>(&json).unwrap(),
            json.into(),
            token,
        )
    }

    #[test]
    fn remaining_time_saturates() {
        assert_eq!(remaining_secs(100, 30, 50), 80);
        assert_eq!(remaining_secs(100, 0, 150), 0);
        assert_eq!(remaining_secs(i64::MIN, 0, 1), 0);
        assert_eq!(remaining_secs(i64::MAX, u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn expired_entries_are_not_served() {
        let cache = TokenCache::new(10, Duration::from_secs(60), 0);
        let now = now_secs() as i64;
        cache.insert(claims("live", now + 100));
        cache.insert(claims("dead", now - 1));
        assert!(cache.get("live").is_some());
        assert!(cache.get("dead").is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = TokenCache::new(50, Duration::from_secs(60), 0);
        let exp = now_secs() as i64 + 100;
        for i in 0..1_000 {
            cache.insert(claims(&format!("token-{i}"), exp));
        }
        assert!(cache.entry_count() <= 50, "{}", cache.entry_count());
    }
}
