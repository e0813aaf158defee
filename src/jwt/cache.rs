//! The verified-token cache: a token seen before is not verified again.
//!
//! Keyed by the token's exact bytes (never a short hash, so a collision cannot be forged),
//! valued by its [`Claims`] and the key that verified it. Only tokens that passed every check
//! are inserted, and a hit stays exactly as trustworthy as a fresh verification:
//!
//! - an entry lives at most until the token's `exp` (or its `iat` + `max_token_age`) plus
//!   leeway, and at most `max_ttl`; both are checked exactly on every hit;
//! - an entry whose signing key has left the issuer's key set is not served (checked on a hit
//!   whenever the key set lost a key since the entry was made; one atomic load otherwise);
//! - the cache is bounded in **bytes** of what entries really hold (the token, the parsed
//!   claims and the cache's own bookkeeping, counted twice to cover the allocator's
//!   fragmentation under eviction), not in entries; an entry heavier than `max_entry_bytes` is verified but
//!   not cached.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::jwk::VerifyingKey;
use crate::claims::Claims;
use crate::clock::now_secs;

/// Bytes the cache itself spends per entry (hash-table slot, access-order and timer nodes,
/// reference counts), measured with `tests/token_cache_memory.rs`.
const ENTRY_OVERHEAD: usize = 320;

/// Weight per byte held: an entry weighs what it holds and as much again for the allocator's
/// fragmentation once the cache is full and evicting. Measured with glibc's malloc on
/// `tests/token_cache_memory.rs`: resident memory grew 1.3x (few large allocations) to 1.7x
/// (many small ones) the bytes held by the live entries, varying from run to run.
const WEIGHT_PER_BYTE: usize = 2;

/// A verified token, as cached (behind an `Arc`: a hit clones one pointer).
pub(crate) struct Verified {
    pub(crate) claims: Claims,
    /// The key that verified the signature.
    pub(crate) key: Arc<VerifyingKey>,
    /// The latest key-set epoch at which that key was known to be published.
    pub(crate) epoch: AtomicU64,
    /// Unix seconds after which the token is no longer accepted (leeway included).
    valid_until: i64,
    weight: u32,
}

impl Verified {
    pub(crate) fn new(
        claims: Claims,
        key: Arc<VerifyingKey>,
        epoch: u64,
        valid_until: i64,
    ) -> Arc<Self> {
        let held = ENTRY_OVERHEAD + claims.heap_bytes();
        let bytes = held * WEIGHT_PER_BYTE;
        Arc::new(Self {
            claims,
            key,
            epoch: AtomicU64::new(epoch),
            valid_until,
            weight: u32::try_from(bytes).unwrap_or(u32::MAX),
        })
    }

    /// Bytes this entry holds.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> u32 {
        self.weight
    }
}

/// What the verified-token cache holds: see [`Verifier::token_cache_usage`](super::Verifier::token_cache_usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TokenCacheUsage {
    /// Tokens cached.
    pub entries: u64,
    /// Bytes they hold, as weighed against the budget.
    pub bytes: u64,
}

pub(crate) struct TokenCache {
    cache: Cache<Arc<str>, Arc<Verified>, foldhash::fast::RandomState>,
    max_entry_bytes: u32,
}

struct UntilExpiry {
    max_ttl: Duration,
}

impl Expiry<Arc<str>, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &Arc<str>,
        entry: &Arc<Verified>,
        _: Instant,
    ) -> Option<Duration> {
        let remaining = remaining_secs(entry.valid_until, now_secs());
        Some(Duration::from_secs(remaining).min(self.max_ttl))
    }
}

/// Seconds from `now` until `deadline`, zero when already past.
fn remaining_secs(deadline: i64, now: u64) -> u64 {
    u64::try_from((i128::from(deadline) - i128::from(now)).max(0)).unwrap_or(u64::MAX)
}

impl TokenCache {
    /// A cache holding at most `max_bytes`, entries of at most `max_entry_bytes` each, none for
    /// longer than `max_ttl`.
    pub(crate) fn new(max_bytes: u64, max_entry_bytes: u32, max_ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, entry: &Arc<Verified>| entry.weight)
            .expire_after(UntilExpiry { max_ttl })
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            cache,
            max_entry_bytes,
        }
    }

    /// The entry of a token verified before, if it has not expired since. Whether its key is
    /// still published is the caller's to check.
    /// `now` is the Unix time in seconds.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<Arc<Verified>> {
        let entry = self.cache.get(token)?;
        // moka's clock is coarse; the wall-clock check keeps `exp` exact.
        (remaining_secs(entry.valid_until, now) > 0).then_some(entry)
    }

    /// Caches `entry` under the token it was verified from, unless it is too heavy.
    pub(crate) fn insert(&self, entry: Arc<Verified>) {
        if entry.weight > self.max_entry_bytes {
            return;
        }
        self.cache
            .insert(entry.claims.access_token().shared(), entry);
    }

    /// Forgets `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.cache.invalidate(token);
    }

    /// Entries and their total weight, after pending maintenance.
    pub(crate) fn usage(&self) -> TokenCacheUsage {
        self.cache.run_pending_tasks();
        TokenCacheUsage {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn verified(json: &str, valid_until: i64) -> Arc<Verified> {
        let claims = Claims::unverified(json).unwrap();
        Verified::new(claims, VerifyingKey::test_key(), 0, valid_until)
    }

    /// A small entry whose token is told apart by `jti`.
    fn small(jti: &str, valid_until: i64) -> Arc<Verified> {
        verified(
            &format!(r#"{{"iss":"i","exp":1,"jti":"{jti}"}}"#),
            valid_until,
        )
    }

    /// The token `entry` is cached under.
    fn token(entry: &Verified) -> Arc<str> {
        entry.claims.access_token().shared()
    }

    #[test]
    fn remaining_time_saturates() {
        assert_eq!(remaining_secs(130, 50), 80);
        assert_eq!(remaining_secs(100, 150), 0);
        assert_eq!(remaining_secs(i64::MIN, 1), 0);
        assert_eq!(remaining_secs(i64::MAX, 0), i64::MAX as u64);
    }

    #[test]
    fn expired_entries_are_not_served() {
        let cache = TokenCache::new(1 << 20, 1 << 16, Duration::from_secs(60));
        let now = now_secs() as i64;
        let (live, dead) = (small("live", now + 100), small("dead", now - 1));
        let (live_token, dead_token) = (token(&live), token(&dead));
        cache.insert(live);
        cache.insert(dead);
        assert!(cache.get(&live_token, now_secs()).is_some());
        assert!(cache.get(&dead_token, now_secs()).is_none());
    }

    #[test]
    fn the_budget_is_in_bytes() {
        let exp = now_secs() as i64 + 100;
        let entry = small("x", exp);
        let budget = 50 * u64::from(entry.weight());
        let cache = TokenCache::new(budget, 1 << 16, Duration::from_secs(60));
        for i in 0..1_000 {
            cache.insert(small(&format!("token-{i}"), exp));
        }
        let TokenCacheUsage { entries, bytes } = cache.usage();
        assert!(bytes <= budget, "{bytes} > {budget}");
        assert!(entries <= 50, "{entries}");
    }

    #[test]
    fn weight_follows_what_the_claims_hold() {
        let exp = now_secs() as i64 + 100;
        let plain = small("a", exp).weight();
        let permissions: Vec<String> = (0..1_300).map(|i| format!("p:{i}")).collect();
        let json = serde_json::json!({"iss": "i", "exp": 1, "permissions": permissions});
        let many = verified(&json.to_string(), exp).weight();
        // Each short permission ("p:123") holds its String (24 bytes, in a Vec grown by
        // doubling), a 32-byte allocation, and ~11 bytes of the token, all weighed twice.
        let per_permission = (many - plain) / 1_300;
        assert!((136..=170).contains(&per_permission), "{per_permission}");
    }

    #[test]
    fn a_small_object_is_weighed_at_a_whole_b_tree_node() {
        let exp = now_secs() as i64 + 100;
        let plain = small("a", exp).weight();
        // 400 one-member objects: each allocates a whole leaf (11 slots of a String and a
        // Value: 640 bytes with glibc), not a 400th of one.
        let objects: serde_json::Map<String, serde_json::Value> = (0..400)
            .map(|i| (format!("k{i}"), serde_json::json!({"": 0})))
            .collect();
        let flags = serde_json::json!({"f": {"t": "j", "v": objects}});
        let json = serde_json::json!({"iss": "i", "exp": 1, "feature_flags": flags});
        let heavy = verified(&json.to_string(), exp).weight();
        let per_object = (heavy - plain) / 400;
        assert!(per_object >= 2 * 640, "{per_object}");
    }

    #[test]
    fn entries_over_the_size_limit_are_not_cached() {
        let exp = now_secs() as i64 + 100;
        let entry = small("big", exp);
        let big = token(&entry);
        let cache = TokenCache::new(1 << 20, entry.weight() - 1, Duration::from_secs(60));
        cache.insert(entry);
        assert!(cache.get(&big, now_secs()).is_none());
    }
}
