//! The verified-token cache: a token seen before is not verified again.
//!
//! Keyed by the token's exact bytes (never a short hash, so a collision cannot be forged),
//! valued by its [`Claims`] and the key that verified it. Only tokens that passed every check
//! are inserted, and a hit stays exactly as trustworthy as a fresh verification:
//!
//! - an entry lives at most until the token's `exp` (or its `iat` + `max_token_age`) plus
//!   leeway, and at most `max_ttl` after it was inserted; both are one deadline in wall-clock
//!   milliseconds, checked exactly on every hit (`exp` to the second, as a fresh verification);
//! - an entry whose signing key has left the issuer's key set is not served (checked on a hit
//!   whenever the key set lost a key since the entry was made; one atomic load otherwise);
//! - the cache is bounded in **bytes** of what entries really hold (the token, the parsed
//!   claims and the cache's own bookkeeping, counted twice to cover the allocator's
//!   fragmentation under eviction), not in entries; an entry heavier than `max_entry_bytes` is
//!   verified but not cached.
//!
//! The map is split into [shards](shard) (a power of two, up to 32, each holding at least four
//! of the heaviest entries), each a read-write lock around a hash map with its own share of the
//! byte budget. A hit is a shared lock, one hash, one comparison of the whole token, and a
//! reference count: no allocation. The hash covers the token's length and its last
//! [`HASHED_TAIL`] bytes (the end of the signature, which nobody but the issuer chooses, keyed
//! per process): equality is still decided on every byte. The shard is picked by the last 8. A shard over its budget evicts
//! expired entries first, then by CLOCK (second chance: an entry hit since the hand last
//! passed is kept once).

mod shard;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use self::shard::Shard;
use super::verifying_key::VerifyingKey;
use crate::claims::Claims;

/// Bytes the cache itself spends per entry: the `Arc<Verified>` allocation (64 with glibc),
/// the hash-map bucket, the shard's slot and free-list index (73 measured by resident memory
/// over 200 000 entries; up to ~115 just after a table doubled). moka's cache spent 320.
const ENTRY_OVERHEAD: usize = 192;

/// Weight per byte held: an entry weighs what it holds and as much again for the allocator's
/// fragmentation once the cache is full and evicting. Measured with glibc's malloc on
/// `tests/token_cache_memory.rs`: resident memory grew 1.3x (few large allocations) to 1.7x
/// (many small ones) the bytes held by the live entries, varying from run to run.
const WEIGHT_PER_BYTE: usize = 2;

/// The most shards a cache is split into.
const MAX_SHARDS: usize = 32;

/// How many of the token's last bytes the hash covers (with its length).
const HASHED_TAIL: usize = 32;

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

    /// The token this entry was verified from.
    fn token(&self) -> &[u8] {
        self.claims.access_token().expose().as_bytes()
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

/// One shard on its own cache lines, so locking one does not slow its neighbours.
#[repr(align(128))]
struct Padded(RwLock<Shard>);

pub(crate) struct TokenCache {
    shards: Box<[Padded]>,
    /// `shards.len() - 1`.
    mask: usize,
    max_entry_bytes: u32,
    max_ttl_ms: u64,
}

impl TokenCache {
    /// A cache holding at most `max_bytes`, entries of at most `max_entry_bytes` each, none for
    /// longer than `max_ttl`.
    pub(crate) fn new(max_bytes: u64, max_entry_bytes: u32, max_ttl: Duration) -> Self {
        let count = shard_count(max_bytes, max_entry_bytes);
        let budget = max_bytes / count as u64;
        let hasher = TailHash(foldhash::fast::RandomState::default());
        let shards = (0..count)
            .map(|_| Padded(RwLock::new(Shard::new(budget, hasher.clone()))))
            .collect();
        Self {
            shards,
            mask: count - 1,
            max_entry_bytes,
            max_ttl_ms: u64::try_from(max_ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The entry of a token verified before, if it has not expired since. Whether its key is
    /// still published is the caller's to check.
    /// `now_ms` is the Unix time in milliseconds.
    pub(crate) fn get(&self, token: &[u8], now_ms: u64) -> Option<Arc<Verified>> {
        let shard = self
            .shard(token)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(token, now_ms)
    }

    /// Caches `entry` under the token it was verified from, unless it is too heavy.
    /// `now_ms` is the Unix time in milliseconds.
    pub(crate) fn insert(&self, entry: Arc<Verified>, now_ms: u64) {
        if entry.weight > self.max_entry_bytes {
            return;
        }
        let deadline = deadline_ms(entry.valid_until, now_ms, self.max_ttl_ms);
        let mut shard = self
            .shard(entry.token())
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        shard.insert(entry, deadline, now_ms);
    }

    /// Forgets `token`.
    pub(crate) fn remove(&self, token: &[u8]) {
        let mut shard = self
            .shard(token)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        shard.remove(token);
    }

    /// Entries and their total weight.
    pub(crate) fn usage(&self) -> TokenCacheUsage {
        let mut usage = TokenCacheUsage::default();
        for Padded(shard) in &self.shards {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            usage.entries += shard.len() as u64;
            usage.bytes += shard.bytes();
        }
        usage
    }

    /// The shard of `token`: its last 8 bytes (the end of the signature, which nobody but the
    /// issuer chooses) mixed by one multiplication. The shard's map hashes with a key of its own.
    fn shard(&self, token: &[u8]) -> &RwLock<Shard> {
        let tail = match token.last_chunk::<8>() {
            Some(last) => u64::from_le_bytes(*last),
            None => token.iter().fold(0, |tail, &b| tail << 8 | u64::from(b)),
        };
        let mixed = tail.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.shards[(mixed >> 40) as usize & self.mask].0
    }
}

/// Shards for a budget: a power of two, at most [`MAX_SHARDS`], each with room for at least
/// four entries of the largest size cached (one shard when even that is too many).
fn shard_count(max_bytes: u64, max_entry_bytes: u32) -> usize {
    let heaviest = u64::from(max_entry_bytes).max(1);
    let fits = usize::try_from(max_bytes / heaviest.saturating_mul(4)).unwrap_or(usize::MAX);
    let count = fits.clamp(1, MAX_SHARDS);
    // The largest power of two not above `count`.
    1 << count.ilog2()
}

/// The Unix millisecond from which an entry is no longer served: its token's `valid_until`
/// (Unix seconds), or `max_ttl_ms` after `now_ms`, whichever comes first.
fn deadline_ms(valid_until: i64, now_ms: u64, max_ttl_ms: u64) -> u64 {
    let expires = u64::try_from(valid_until).unwrap_or(0).saturating_mul(1000);
    expires.min(now_ms.saturating_add(max_ttl_ms))
}

/// foldhash over a token's length and its last [`HASHED_TAIL`] bytes.
#[derive(Clone)]
struct TailHash(foldhash::fast::RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(foldhash::fast::FoldHasher<'static>);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}
