//! [`KeyStore`]: the issuer's signing keys, by kid.
//!
//! Reads are a map lookup in the [`Published`] keys, so a request with a known kid never waits
//! for the network. Fetches call our [`HttpJwksSource`] (jwks_client_rs's `JwksSource`), which
//! reads the issuer's discovery document first when [`Discovery`](super::Discovery) is on;
//! around it the store adds what jwks_client_rs's client lacks:
//!
//! - **single flight**: one fetch at a time (the crate's [`SingleFlight`]), in its own task, so
//!   a cancelled request cannot cancel a fetch others wait for;
//! - **cooldown**: after a fetch, an unknown kid causes no new fetch for `cooldown`
//!   (default 30 s); while no key set was ever obtained, `cold_retry` (default 1 s) applies;
//! - **negative cache**: a kid that was still unknown after a fetch is answered from memory for
//!   `negative_ttl` (default 5 s), bounded to 10 000 kids;
//! - **background refresh**: a set older than `refresh_interval` (default 10 min) is refetched
//!   in the background while the current keys keep serving, whether requests look keys up or
//!   are served from the verified-token cache;
//! - **stale-if-error**: a failed fetch publishes nothing, so the last good keys stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwks_client_rs::source::JwksSource;
use moka::sync::Cache;
use tokio::time::Instant;

use super::published::Published;
use super::source::{Fetched, HttpJwksSource};
use super::verifying_key::VerifyingKey;
use crate::clock::now_ms;
use crate::single_flight::{Ended, SingleFlight, Waiter};

/// The one JWKS fetch under way, if any: no key, no meta, no answer but what it publishes.
type Fetches = SingleFlight<(), (), ()>;

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
    /// How long a fetch may take before it is abandoned (and callers waiting for it give up).
    pub(crate) fetch_deadline: Duration,
}

/// The issuer's signing keys. Cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    source: HttpJwksSource,
    published: Published,
    negative: Cache<Box<str>, ()>,
    fetches: Fetches,
    /// When the last fetch started (the wall of the cooldown; not Tokio's clock).
    last_attempt: Mutex<Option<std::time::Instant>>,
    /// Unix milliseconds after which the key set should be refreshed (`u64::MAX` until a set
    /// was fetched: nothing to refresh yet).
    refresh_due_ms: AtomicU64,
    timing: KeyTiming,
}

impl KeyStore {
    pub(crate) fn new(source: HttpJwksSource, timing: KeyTiming) -> Self {
        let negative = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(timing.negative_ttl.max(Duration::from_millis(1)))
            .build();
        Self {
            inner: Arc::new(Inner {
                source,
                published: Published::new(),
                negative,
                fetches: Fetches::new(),
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
        self.fetch_if_allowed().await;
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
        self.fetch_if_allowed().await;
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

    /// Why no key is usable, for startup and readiness checks: the set's URL, the allowed
    /// algorithms and what the set holds (`ES256 (EC P-256)`), or that it is empty. Meaningful
    /// once a set was fetched and none of its keys is usable.
    pub(crate) fn no_usable_key(&self) -> String {
        self.inner.no_usable_key()
    }

    /// The JWKS URL the keys come from: the fixed one, or the `jwks_uri` the issuer's discovery
    /// document named (see [`Discovery`](super::Discovery)), which may change at each refresh.
    /// `None` while [`Discovery::Required`](super::Discovery::Required) has found none yet.
    pub fn jwks_url(&self) -> Option<String> {
        self.inner.source.locator().jwks_url().map(String::from)
    }

    /// Where the keys come from, for messages: the JWKS URL, or the document that should name
    /// it.
    pub(crate) fn jwks_location(&self) -> String {
        self.inner.source.locator().describe()
    }

    /// How the JWKS is located.
    pub(crate) fn discovery_mode(&self) -> super::Discovery {
        self.inner.source.locator().mode()
    }

    /// What the issuer's discovery document says: what the last fetch read when discovery is
    /// on, otherwise read now.
    pub(crate) async fn discovery_document(&self) -> super::discovery::Found {
        self.inner.source.discovery().await
    }

    /// Whether a key set was ever fetched (an empty one counts).
    pub(crate) fn has_fetched(&self) -> bool {
        self.has_keys()
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

    /// Waits for the fetch under way, or for one started now if the cooldown allows; returns
    /// at once otherwise.
    async fn fetch_if_allowed(&self) {
        let Some(waiter) = self.join_or_start() else {
            return;
        };
        // A fetch that overran its deadline is abandoned: what is published then is the answer.
        let _ = waiter
            .wait(Instant::now() + self.inner.timing.fetch_deadline)
            .await;
    }

    /// Joins the fetch under way, or starts one if the cooldown allows (decided under the
    /// single flight's lock, so two callers never both start one).
    fn join_or_start(&self) -> Option<Waiter<(), ()>> {
        let flights = self.inner.fetches.lock();
        if let Some(waiter) = flights.join(&()) {
            return Some(waiter);
        }
        if !self.may_fetch() {
            return None;
        }
        *self
            .inner
            .last_attempt
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
        let give_up = Instant::now() + self.inner.timing.fetch_deadline;
        let call = {
            let inner = self.inner.clone();
            async move {
                // A failure was logged, with its reason, by the source; the last good keys stay.
                if let Ok(set) = inner.source.fetch_keys().await {
                    let found = inner.source.found();
                    let unusable = inner.published.publish(Fetched { set, found });
                    let count = inner.published.current().keys.len();
                    crate::metrics::jwks_keys(inner.source.locator().issuer(), count);
                    if unusable {
                        inner.warn_no_usable_key();
                    }
                }
            }
        };
        let settle = {
            let inner = self.inner.clone();
            move |result: Result<(), Ended>| {
                if let Err(ended) = result {
                    tracing::warn!(?ended, "JWKS fetch did not finish");
                }
                inner.schedule_refresh();
            }
        };
        Some(flights.start((), (), give_up, call, settle))
    }

    fn refresh_in_background(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        // Started, or already under way; nobody waits for it.
        drop(self.join_or_start());
    }
}

impl Inner {
    /// The allowed algorithms, as text (`RS256, ES256`).
    fn allowed(&self) -> String {
        let allowed: Vec<&str> = self
            .source
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect();
        allowed.join(", ")
    }

    /// See [`KeyStore::no_usable_key`].
    fn no_usable_key(&self) -> String {
        let url = self.source.locator().describe();
        let map = self.published.current();
        if map.found.is_empty() {
            return format!("the key set at {url} holds no usable key: it is empty");
        }
        format!(
            "the key set at {url} holds no usable key for the allowed algorithms ({}): it has {} \
             (why each key was dropped is logged at warn)",
            self.allowed(),
            map.found
        )
    }

    /// Says that the set just published holds keys, none usable.
    fn warn_no_usable_key(&self) {
        tracing::warn!(
            jwks_url = %self.source.locator().describe(),
            algorithms_found = %self.published.current().found,
            allowed = %self.allowed(),
            "the JWKS holds no usable key for the allowed algorithms: every token will be \
             refused (VerifierBuilder::algorithms; each dropped key's reason is logged)"
        );
    }

    /// Due again a refresh interval after the set we hold was fetched.
    fn schedule_refresh(&self) {
        if let Some(age) = self.published.current().fetched_at.map(|at| at.elapsed()) {
            let wait = self.timing.refresh_interval.saturating_sub(age);
            let due = now_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
            self.refresh_due_ms.store(due, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}
