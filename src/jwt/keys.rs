//! [`KeyStore`]: the issuer's signing keys, by kid.
//!
//! Reads are a map lookup behind an `RwLock<Arc<…>>` that is only written when a fetch
//! completes, so a request with a known kid never waits for the network. Fetches go through
//! jwks_client_rs with our [`HttpJwksSource`]; around it the store adds what that crate lacks:
//!
//! - **single flight**: one fetch at a time, run in a spawned task that owns the lock, so a
//!   cancelled request cannot cancel a fetch others wait for;
//! - **cooldown**: after a fetch, an unknown kid causes no new fetch for `cooldown`
//!   (default 30 s); while no key set was ever obtained, `cold_retry` (default 1 s) applies;
//! - **negative cache**: a kid that was still unknown after a fetch is answered from memory for
//!   `negative_ttl` (default 5 s), bounded to 10 000 kids;
//! - **background refresh**: a set older than `refresh_interval` (default 10 min) is refetched
//!   in the background while the current keys keep serving, whether requests look keys up or
//!   are served from the verified-token cache;
//! - **stale-if-error**: a failed fetch keeps the last good keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwks_client_rs::JwksClient;
use moka::sync::Cache;

use super::jwk::VerifyingKey;
use super::source::{HttpJwksSource, Published};
use crate::clock::now_ms;

/// A kid no JWKS can contain: asking jwks_client_rs for it always fetches.
const FETCH_KID: &str = "\u{0}claimcheck-fetch";

/// Why no key could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The kid is not in the issuer's current key set.
    Unknown,
    /// No key set could be obtained at all.
    Unavailable,
}

/// Timing knobs of the key store.
#[derive(Debug, Clone)]
pub(crate) struct KeyTiming {
    pub(crate) cooldown: Duration,
    pub(crate) cold_retry: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) refresh_interval: Duration,
}

/// The issuer's signing keys. Cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: JwksClient<HttpJwksSource>,
    published: Arc<Published>,
    negative: Cache<Box<str>, ()>,
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    last_attempt: Mutex<Option<Instant>>,
    /// Unix milliseconds after which the key set should be refreshed (`u64::MAX` until a set
    /// was fetched: nothing to refresh yet).
    refresh_due_ms: AtomicU64,
    timing: KeyTiming,
}

impl KeyStore {
    pub(crate) fn new(
        source: HttpJwksSource,
        published: Arc<Published>,
        timing: KeyTiming,
    ) -> Self {
        let client = JwksClient::builder()
            .time_to_live(timing.refresh_interval)
            .build(source);
        let negative = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(timing.negative_ttl.max(Duration::from_millis(1)))
            .build();
        Self {
            inner: Arc::new(Inner {
                client,
                published,
                negative,
                fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
                last_attempt: Mutex::new(None),
                refresh_due_ms: AtomicU64::new(u64::MAX),
                timing,
            }),
        }
    }

    /// The key for `kid` if it is known now. Never waits; may start a background refresh.
    pub(crate) fn get_now(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.refresh_if_due(now_ms());
        self.inner.published.current().keys.get(kid).cloned()
    }

    /// Starts a background refresh if the key set is due for one, `now_ms` being the Unix time
    /// in milliseconds: for requests that need no key (verified-token cache hits), so a key
    /// set is refreshed on schedule however the traffic looks. One atomic load while not due.
    pub(crate) fn refresh_if_due(&self, now_ms: u64) {
        let due = self.inner.refresh_due_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return;
        }
        // One request per retry period goes on to try; the others return.
        let retry = u64::try_from(self.inner.timing.cooldown.as_millis()).unwrap_or(u64::MAX);
        let next = now_ms.saturating_add(retry.max(1));
        if self
            .inner
            .refresh_due_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.refresh_in_background();
        }
    }

    /// The key for `kid`, fetching the JWKS if the cooldown allows (coalesced with any fetch
    /// already under way).
    pub(crate) async fn get(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyError> {
        if let Some(key) = self.get_now(kid) {
            return Ok(key);
        }
        if self.inner.negative.contains_key(kid) {
            return Err(self.miss());
        }
        let guard = self.inner.fetch_lock.clone().lock_owned().await;
        // Whoever held the lock may have fetched the key we want.
        if let Some(key) = self.get_now(kid) {
            return Ok(key);
        }
        if self.may_fetch() {
            self.fetch(guard).await;
        } else {
            drop(guard);
        }
        match self.get_now(kid) {
            Some(key) => Ok(key),
            None => {
                let miss = self.miss();
                // Only a kid missing from a set we hold is known to be unknown.
                if miss == KeyError::Unknown {
                    self.inner.negative.insert(kid.into(), ());
                }
                Err(miss)
            }
        }
    }

    /// Fetches the key set now unless one was fetched within the cooldown. Returns whether
    /// any key set is available afterwards.
    pub async fn warm_up(&self) -> bool {
        let guard = self.inner.fetch_lock.clone().lock_owned().await;
        if self.may_fetch() {
            self.fetch(guard).await;
        }
        self.has_keys()
    }

    /// The key set's epoch: it changes whenever a key is withdrawn. Read it *before* looking a
    /// key up, so that whatever is verified with that key is stamped no later than the key.
    pub(crate) fn epoch(&self) -> u64 {
        self.inner.published.epoch()
    }

    /// Whether `key` is still what the issuer publishes under its kid.
    pub(crate) fn still_publishes(&self, key: &Arc<VerifyingKey>) -> bool {
        let map = self.inner.published.current();
        map.keys
            .get(&key.kid)
            .is_some_and(|current| Arc::ptr_eq(current, key))
    }

    /// Number of usable keys currently served.
    pub fn key_count(&self) -> usize {
        self.inner.published.current().keys.len()
    }

    fn has_keys(&self) -> bool {
        self.inner.published.current().fetched_at.is_some()
    }

    fn miss(&self) -> KeyError {
        if self.has_keys() {
            KeyError::Unknown
        } else {
            KeyError::Unavailable
        }
    }

    fn may_fetch(&self) -> bool {
        let last = *self
            .inner
            .last_attempt
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let wait = if self.has_keys() {
            self.inner.timing.cooldown
        } else {
            self.inner.timing.cold_retry
        };
        last.is_none_or(|at| at.elapsed() >= wait)
    }

    /// Runs one fetch in a task that owns the lock; waits for it.
    async fn fetch(&self, guard: tokio::sync::OwnedMutexGuard<()>) {
        *self
            .inner
            .last_attempt
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            // The source publishes what it fetched; the answer for this kid is not needed.
            let _ = inner.client.get(FETCH_KID).await;
            // Due again a refresh interval after the set we hold was fetched.
            if let Some(age) = inner.published.current().fetched_at.map(|at| at.elapsed()) {
                let wait = inner.timing.refresh_interval.saturating_sub(age);
                let due =
                    now_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                inner.refresh_due_ms.store(due, Ordering::Relaxed);
            }
            drop(guard);
        });
        let _ = task.await;
    }

    fn refresh_in_background(&self) {
        let Ok(guard) = self.inner.fetch_lock.clone().try_lock_owned() else {
            return;
        };
        if !self.may_fetch() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move { store.fetch(guard).await });
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}
