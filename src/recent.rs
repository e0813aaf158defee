//! [`Recent`]: a bounded memory of recent events, the one mechanism behind every "remember this
//! for a while" in the crate: refused tokens, invalidations of the live cache, freshness
//! watermarks and webhook event ids.
//!
//! - **Bounded** in entries, each forgotten a time-to-live after it was last written.
//! - **The newest matters**: when full, the least recently used entry is forgotten (LRU). A
//!   frequency-based policy (moka's default TinyLFU) would refuse to remember a *new* event in
//!   favour of old, often-read ones, and a replayed webhook or a fresh revocation would slip by.
//! - **Nothing forgotten silently before its time**: an entry dropped for room is handed to the
//!   owner's `overflow` callback, which records it more coarsely (an invalidation of everyone, a
//!   global watermark).
//! - **Free while empty**: it knows when its last entry will have expired (the latest write plus
//!   the time-to-live), so a reader on the request path pays one atomic load, not a hash lookup,
//!   before the first event and again once every event has expired; in between, a clock read
//!   tells. The deadline is raised after every write, before the writing call returns, so it
//!   never says "empty" while an entry written by a finished call can still be read.

use std::hash::Hash;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Equivalent;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

/// Entries remembered for a time-to-live, at most a capacity of them, least recently used
/// forgotten first. Cheap to share behind an `Arc`; not `Clone` itself.
pub(crate) struct Recent<K, V> {
    cache: Cache<K, V, foldhash::fast::RandomState>,
    ttl_ms: u64,
    /// When (see [`now_ms`]) everything written so far will have expired; 0 once that was
    /// seen to have passed, or before the first write.
    quiet_at: AtomicU64,
}

/// Milliseconds since the first call, plus one (so that 0 can mean "never").
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let since = START.get_or_init(Instant::now).elapsed();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX - 1) + 1
}

impl<K, V> Recent<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries, each for `ttl` after its last write.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self::with_overflow(capacity, ttl, |_| {})
    }

    /// As [`new`](Self::new); `overflow` receives each value dropped for room before its time.
    pub(crate) fn with_overflow(
        capacity: u64,
        ttl: Duration,
        overflow: impl Fn(V) + Send + Sync + 'static,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity.max(1))
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(ttl)
            .eviction_listener(move |_, value, cause| {
                if cause == RemovalCause::Size {
                    overflow(value);
                }
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self {
            cache,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            quiet_at: AtomicU64::new(0),
        }
    }

    /// Whether nothing is remembered: one atomic load while nothing was written since it last
    /// went quiet, else a clock read.
    pub(crate) fn is_empty(&self) -> bool {
        let quiet_at = self.quiet_at.load(Ordering::Acquire);
        if quiet_at == 0 {
            return true;
        }
        if now_ms() <= quiet_at {
            return false;
        }
        // Everything expired: back to one atomic load, unless a write raised it meanwhile.
        let _ = self
            .quiet_at
            .compare_exchange(quiet_at, 0, Ordering::AcqRel, Ordering::Relaxed);
        true
    }

    /// Called after each write: nothing is quiet before this write has expired.
    fn written(&self) {
        let until = now_ms().saturating_add(self.ttl_ms).saturating_add(1);
        self.quiet_at.fetch_max(until, Ordering::AcqRel);
    }

    /// The value remembered for `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Equivalent<K> + Hash + ?Sized,
    {
        if self.is_empty() {
            return None;
        }
        self.cache.get(key)
    }

    /// Whether `key` is remembered.
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        Q: Equivalent<K> + Hash + ?Sized,
    {
        !self.is_empty() && self.cache.contains_key(key)
    }

    /// Remembers `f(old value)` for `key`, atomically per key; returns it.
    pub(crate) fn upsert(&self, key: K, f: impl FnOnce(Option<&V>) -> V) -> V {
        let value = self
            .cache
            .entry(key)
            .and_upsert_with(|old| f(old.as_ref().map(|entry| entry.value())))
            .into_value();
        self.written();
        value
    }

    /// Remembers `value` for `key`, or keeps the remembered one if it is larger: a mark that
    /// never moves back. Atomic per key.
    pub(crate) fn raise(&self, key: K, value: V) -> V
    where
        V: Ord + Copy,
    {
        self.upsert(key, |old| old.map_or(value, |old| (*old).max(value)))
    }

    /// Remembers `key` unless it is remembered already; whether it was new. Of concurrent calls
    /// for one key, exactly one finds it new.
    pub(crate) fn insert_new(&self, key: K, value: V) -> bool {
        // `or_insert_with` coalesces concurrent insertions of one key; `or_insert` does not.
        let fresh = self.cache.entry(key).or_insert_with(|| value).is_fresh();
        self.written();
        fresh
    }

    /// Entries held, after pending maintenance.
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// How long an entry is remembered after its last write.
    #[cfg(test)]
    pub(crate) fn time_to_live(&self) -> Option<Duration> {
        self.cache.policy().time_to_live()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn it_is_free_again_once_everything_expired() {
        let recent: Recent<Box<str>, u64> = Recent::new(100, Duration::from_millis(50));
        assert!(recent.is_empty());
        recent.upsert("a".into(), |_| 1);
        recent.upsert("a".into(), |old| old.copied().unwrap_or(0) + 1);
        assert!(recent.insert_new("b".into(), 7));
        assert!(!recent.insert_new("b".into(), 8), "not new");
        assert!(!recent.is_empty());
        assert_eq!(recent.get("a"), Some(2));
        assert_eq!(recent.get("b"), Some(7));
        std::thread::sleep(Duration::from_millis(80));
        assert!(recent.is_empty());
        assert_eq!(
            recent.quiet_at.load(Ordering::Acquire),
            0,
            "one atomic load again"
        );
        recent.upsert("c".into(), |_| 3);
        assert_eq!(recent.get("c"), Some(3), "awake again after a write");
    }

    #[test]
    fn the_newest_are_kept_and_the_dropped_are_handed_over() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let counted = dropped.clone();
        let recent: Recent<u64, u64> =
            Recent::with_overflow(100, Duration::from_secs(60), move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            });
        for i in 0..1_000 {
            assert!(
                recent.insert_new(i, i),
                "{i}: a new event is always remembered"
            );
        }
        assert!(recent.len() <= 100);
        assert!(recent.contains(&999) && !recent.contains(&0));
        assert_eq!(dropped.load(Ordering::Relaxed) as u64, 1_000 - recent.len());
        assert!(!recent.is_empty());
    }

    #[test]
    fn it_never_says_empty_right_after_a_write() {
        let recent: Arc<Recent<u64, u64>> = Arc::new(Recent::new(64, Duration::from_secs(60)));
        std::thread::scope(|scope| {
            for t in 0..4 {
                let recent = recent.clone();
                scope.spawn(move || {
                    for i in 0..2_000u64 {
                        recent.upsert(i % 97, |old| old.copied().unwrap_or(0).max(i));
                        recent.insert_new(i * 4 + t, i);
                        assert!(!recent.is_empty(), "just written");
                    }
                });
            }
        });
        assert!(recent.len() <= 64);
    }
}
