//! [`LiveCheck`]: a short-lived, coalescing, invalidatable cache in front of a source.
//!
//! Concurrency model, all under one small mutex (`flights`) that is never held across an await:
//! - a miss either joins the flight already fetching its key or starts one: a spawned task that
//!   calls the source once and publishes the answer on a `watch` channel;
//! - the flight finishes by removing itself from `flights` and, if it succeeded, filling the
//!   cache, in the same critical section;
//! - an invalidation removes the matching flights and cache entries in one critical section, so
//!   a flight that started before it finds itself gone: its answer is not cached, and callers
//!   that were waiting on it look again (starting a fresh flight) instead of using it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::{Backoff, Breaker};
use super::{PermissionQuery, PermissionSource, SourceError};
use crate::decision::Source;
use crate::permission::PermissionSet;

const DEFAULT_TTL: Duration = Duration::from_secs(5);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
const DEFAULT_CAPACITY: u64 = 10_000;

/// Live permissions with a short-TTL cache. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct LiveCheck {
    inner: Arc<Inner>,
}

struct Inner {
    source: Arc<dyn PermissionSource>,
    cache: Option<Cache<Key, Entry>>,
    ttl: Duration,
    deadline: Duration,
    flights: Mutex<HashMap<Key, Flight>>,
    next_flight: AtomicU64,
    breaker: Breaker,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    issuer: Box<str>,
    user: Box<str>,
    org: Option<Box<str>>,
}

impl Key {
    fn of(query: &PermissionQuery) -> Self {
        Self {
            issuer: query.issuer().into(),
            user: query.user_id().into(),
            org: query.org_code().map(Into::into),
        }
    }
}

#[derive(Clone)]
struct Entry {
    permissions: Arc<PermissionSet>,
    fetched_at: Instant,
}

impl Entry {
    fn lookup(&self, source: Source) -> Lookup {
        Lookup {
            permissions: self.permissions.clone(),
            source,
            age: self.fetched_at.elapsed(),
        }
    }
}

struct Flight {
    id: u64,
    answer: watch::Receiver<Option<Answer>>,
}

#[derive(Clone)]
struct Answer {
    result: Result<Entry, SourceError>,
    /// The flight was invalidated while it ran: its answer must not be used.
    superseded: bool,
}

/// The answer of a live lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Every permission the user holds in the organization.
    pub permissions: Arc<PermissionSet>,
    /// [`Source::LiveCache`], [`Source::Live`] or [`Source::Coalesced`].
    pub source: Source,
    /// Time since the upstream answered.
    pub age: Duration,
}

/// Builds a [`LiveCheck`].
pub struct LiveCheckBuilder {
    source: Arc<dyn PermissionSource>,
    ttl: Duration,
    deadline: Duration,
    capacity: u64,
    backoff: Backoff,
}

impl LiveCheckBuilder {
    /// How long an answer is served from the cache (default 5 s; zero disables the cache).
    /// This is the longest a revoked permission can still be honoured on a strict route.
    /// Entries expire by age only, never by idleness.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long one request waits for the source before answering 503 (default 2 s).
    /// The upstream call itself is abandoned when the request that started it gives up.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The most (issuer, user, organization) entries kept (default 10 000).
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// When to stop calling a failing source, and for how long (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The check.
    pub fn build(self) -> LiveCheck {
        let cache = (!self.ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(self.capacity)
                .time_to_live(self.ttl)
                .build()
        });
        LiveCheck {
            inner: Arc::new(Inner {
                source: self.source,
                cache,
                ttl: self.ttl,
                deadline: self.deadline,
                flights: Mutex::new(HashMap::new()),
                next_flight: AtomicU64::new(0),
                breaker: Breaker::new(self.backoff),
            }),
        }
    }
}

impl LiveCheck {
    /// Starts building a check in front of `source`.
    pub fn builder(source: impl PermissionSource) -> LiveCheckBuilder {
        LiveCheckBuilder {
            source: Arc::new(source),
            ttl: DEFAULT_TTL,
            deadline: DEFAULT_DEADLINE,
            capacity: DEFAULT_CAPACITY,
            backoff: Backoff::default(),
        }
    }

    /// The cached answer for `query`, if there is a fresh one. Never waits.
    pub fn cached(&self, query: &PermissionQuery) -> Option<Lookup> {
        self.inner
            .cached(&Key::of(query))
            .map(|entry| entry.lookup(Source::LiveCache))
    }

    /// The user's permissions: from the cache, from a call already in flight, or from a new
    /// upstream call. Fails when the source fails or the deadline passes; failures are not cached.
    pub async fn lookup(&self, query: &PermissionQuery) -> Result<Lookup, SourceError> {
        let key = Key::of(query);
        let give_up = Instant::now() + self.inner.deadline;
        loop {
            let (mut answer, started) =
                match Inner::join_or_start(&self.inner, &key, query, give_up) {
                    Joined::Cached(entry) => return Ok(entry.lookup(Source::LiveCache)),
                    Joined::Flight { answer, started } => (answer, started),
                    Joined::Paused(wait) => {
                        let error =
                            SourceError::unavailable("upstream calls paused after failures");
                        return Err(error.with_retry_after(wait));
                    }
                };
            let waited = tokio::time::timeout_at(give_up, answer.wait_for(Option::is_some)).await;
            let answer = match waited {
                Err(_) => return Err(SourceError::unavailable("deadline passed")),
                Ok(Err(_)) => return Err(SourceError::unavailable("fetch ended without answer")),
                Ok(Ok(answer)) => answer.clone(),
            };
            match answer {
                Some(answer) if !answer.superseded => {
                    let source = if started {
                        Source::Live
                    } else {
                        Source::Coalesced
                    };
                    return answer.result.map(|entry| entry.lookup(source));
                }
                // Invalidated while in flight: look again.
                _ => continue,
            }
        }
    }

    /// Forgets every cached answer for `user_id` (in every organization), and any answer now
    /// being fetched for them.
    pub fn invalidate_user(&self, user_id: &str) {
        self.inner.invalidate(|key| &*key.user == user_id);
    }

    /// Forgets every cached answer for the organization `org_code`.
    pub fn invalidate_org(&self, org_code: &str) {
        self.inner
            .invalidate(|key| key.org.as_deref() == Some(org_code));
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        let mut flights = self.inner.flights();
        flights.clear();
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
    }

    /// The cache's time-to-live.
    pub fn time_to_live(&self) -> Duration {
        self.inner.ttl
    }
}

enum Joined {
    Cached(Entry),
    /// The source is failing: no new upstream call until this much time has passed.
    Paused(Duration),
    Flight {
        answer: watch::Receiver<Option<Answer>>,
        started: bool,
    },
}

impl Inner {
    fn flights(&self) -> MutexGuard<'_, HashMap<Key, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, key: &Key) -> Option<Entry> {
        let entry = self.cache.as_ref()?.get(key)?;
        (entry.fetched_at.elapsed() < self.ttl).then_some(entry)
    }

    /// Joins the flight for `key`, or starts one that is abandoned at `give_up` (the starting
    /// caller's deadline: the flight never outlives the caller that started it).
    fn join_or_start(
        this: &Arc<Self>,
        key: &Key,
        query: &PermissionQuery,
        give_up: Instant,
    ) -> Joined {
        let mut flights = this.flights();
        // Looked up again under the lock: a flight may have just filled the cache.
        if let Some(entry) = this.cached(key) {
            return Joined::Cached(entry);
        }
        if let Some(flight) = flights.get(key) {
            return Joined::Flight {
                answer: flight.answer.clone(),
                started: false,
            };
        }
        if let Err(wait) = this.breaker.admit() {
            return Joined::Paused(wait);
        }
        let id = this.next_flight.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = watch::channel(None);
        flights.insert(
            key.clone(),
            Flight {
                id,
                answer: answer.clone(),
            },
        );
        drop(flights);
        let completion = Completion {
            inner: this.clone(),
            key: key.clone(),
            id,
            sender: Some(sender),
        };
        tokio::spawn(fill(completion, query.clone(), give_up));
        Joined::Flight {
            answer,
            started: true,
        }
    }

    fn invalidate(&self, matches: impl Fn(&Key) -> bool) {
        let mut flights = self.flights();
        flights.retain(|key, _| !matches(key));
        if let Some(cache) = &self.cache {
            let doomed: Vec<Arc<Key>> = cache
                .iter()
                .filter(|(key, _)| matches(key))
                .map(|(key, _)| key)
                .collect();
            for key in doomed {
                cache.invalidate(&*key);
            }
        }
    }
}

/// The upstream call of one flight, made in its own task so that no caller's cancellation
/// can stop it.
async fn fill(mut completion: Completion, query: PermissionQuery, give_up: Instant) {
    let inner = completion.inner.clone();
    let fetched = tokio::time::timeout_at(give_up, inner.source.permissions(&query)).await;
    let result = match fetched {
        Ok(Ok(set)) => Ok(Entry {
            permissions: Arc::new(set),
            fetched_at: Instant::now(),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(SourceError::unavailable("timed out")),
    };

    if let Err(error) = &result {
        tracing::warn!(
            target: "claimcheck::live",
            reason = error.reason(),
            user = query.user_id(),
            "live permission lookup failed"
        );
    }
    completion.finish(result);
}

/// Publishes a flight's answer exactly once, even if the task panics or is dropped.
struct Completion {
    inner: Arc<Inner>,
    key: Key,
    id: u64,
    sender: Option<watch::Sender<Option<Answer>>>,
}

impl Completion {
    fn finish(&mut self, result: Result<Entry, SourceError>) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        // Every upstream call ends here, even a panicking one: the breaker always hears of it.
        match &result {
            Ok(_) => self.inner.breaker.record(Ok(())),
            Err(error) if error.is_upstream() => {
                self.inner.breaker.record(Err(error.retry_after()))
            }
            Err(_) => {}
        }
        let mut flights = self.inner.flights();
        let current = flights.get(&self.key).is_some_and(|f| f.id == self.id);
        if current {
            flights.remove(&self.key);
            if let (Ok(entry), Some(cache)) = (&result, &self.inner.cache) {
                cache.insert(self.key.clone(), entry.clone());
            }
        }
        sender.send_replace(Some(Answer {
            result,
            superseded: !current,
        }));
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Err(SourceError::unavailable("fetch aborted")));
    }
}

impl fmt::Debug for LiveCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCheck")
            .field("time_to_live", &self.inner.ttl)
            .field("deadline", &self.inner.deadline)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LiveCheckBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCheckBuilder")
            .field("time_to_live", &self.ttl)
            .field("deadline", &self.deadline)
            .field("max_capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;
    use crate::claims::{AccessToken, Claims, Repr};
    use crate::live::SourceFuture;

    fn query(sub: &str, org: &str) -> PermissionQuery {
        let json =
            format!(r#"{{"iss":"https://i","exp":9999999999,"sub":"{sub}","org_code":"{org}"}}"#);
        let repr: Repr = serde_json::from_str(&json).unwrap();
        let claims = Claims::from_parts(repr, json.into(), AccessToken::new(Arc::from("t")));
        PermissionQuery::from_claims(&claims).unwrap()
    }

    /// Answers `{"v<n>"}` on its n-th call; the first call waits for `release` when gated;
    /// calls listed in `fail` error; call number `panic_on` panics.
    #[derive(Default)]
    struct Scripted {
        calls: AtomicUsize,
        gate: Option<Arc<Notify>>,
        fail: Vec<usize>,
        panic_on: Option<usize>,
    }

    impl PermissionSource for Arc<Scripted> {
        fn permissions<'a>(&'a self, _: &'a PermissionQuery) -> SourceFuture<'a> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if let (1, Some(gate)) = (n, &self.gate) {
                    gate.notified().await;
                }
                assert_ne!(self.panic_on, Some(n), "scripted panic");
                if self.fail.contains(&n) {
                    return Err(SourceError::unavailable("scripted failure"));
                }
                Ok([format!("v{n}")].into_iter().collect())
            })
        }
    }

    fn check(source: &Arc<Scripted>, ttl: Duration) -> LiveCheck {
        LiveCheck::builder(source.clone())
            .time_to_live(ttl)
            .deadline(Duration::from_secs(1))
            .build()
    }

    #[tokio::test]
    async fn a_fill_invalidated_in_flight_is_not_served_or_cached() {
        let gate = Arc::new(Notify::new());
        let source = Arc::new(Scripted {
            gate: Some(gate.clone()),
            ..Default::default()
        });
        let live = check(&source, Duration::from_secs(60));
        let q = query("kp_1", "org_1");
        let waiting = tokio::spawn({
            let (live, q) = (live.clone(), q.clone());
            async move { live.lookup(&q).await }
        });
        while source.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        live.invalidate_user("kp_1");
        gate.notify_one();
        let lookup = waiting.await.unwrap().unwrap();
        assert!(lookup.permissions.contains("v2"), "{lookup:?}");
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        let cached = live.cached(&q).unwrap();
        assert!(cached.permissions.contains("v2"));
    }

    #[tokio::test]
    async fn invalidation_is_scoped() {
        let source = Arc::new(Scripted::default());
        let live = check(&source, Duration::from_secs(60));
        let (a, b, c) = (
            query("kp_a", "org_1"),
            query("kp_b", "org_1"),
            query("kp_c", "org_2"),
        );
        for q in [&a, &b, &c] {
            live.lookup(q).await.unwrap();
        }
        live.invalidate_user("kp_a");
        assert!(live.cached(&a).is_none());
        assert!(live.cached(&b).is_some() && live.cached(&c).is_some());
        live.invalidate_org("org_1");
        assert!(live.cached(&b).is_none());
        assert!(live.cached(&c).is_some());
        live.invalidate_all();
        assert!(live.cached(&c).is_none());
    }

    #[tokio::test]
    async fn errors_are_never_cached() {
        let source = Arc::new(Scripted {
            fail: vec![1],
            ..Default::default()
        });
        let live = check(&source, Duration::from_secs(60));
        let q = query("kp_1", "org_1");
        assert!(live.lookup(&q).await.is_err());
        assert!(live.cached(&q).is_none());
        let lookup = live.lookup(&q).await.unwrap();
        assert_eq!(lookup.source, Source::Live);
        assert_eq!(live.lookup(&q).await.unwrap().source, Source::LiveCache);
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let source = Arc::new(Scripted::default());
        let live = check(&source, Duration::from_millis(500));
        let q = query("kp_1", "org_1");
        live.lookup(&q).await.unwrap();
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(live.cached(&q).is_some());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(live.cached(&q).is_none());
        assert!(live.lookup(&q).await.unwrap().permissions.contains("v2"));
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let source = Arc::new(Scripted::default());
        let live = LiveCheck::builder(source.clone())
            .time_to_live(Duration::from_secs(60))
            .max_capacity(50)
            .build();
        for i in 0..1_000 {
            live.lookup(&query(&format!("kp_{i}"), "org_1"))
                .await
                .unwrap();
        }
        let cache = live.inner.cache.as_ref().unwrap();
        cache.run_pending_tasks();
        assert!(cache.entry_count() <= 50, "{}", cache.entry_count());
        assert_eq!(source.calls.load(Ordering::SeqCst), 1_000);
    }

    #[tokio::test]
    async fn a_zero_ttl_disables_the_cache() {
        let source = Arc::new(Scripted::default());
        let live = check(&source, Duration::ZERO);
        let q = query("kp_1", "org_1");
        live.lookup(&q).await.unwrap();
        live.lookup(&q).await.unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_source_is_an_error_not_a_hang() {
        let source = Arc::new(Scripted {
            panic_on: Some(1),
            ..Default::default()
        });
        let live = check(&source, Duration::from_secs(60));
        let q = query("kp_1", "org_1");
        let error = live.lookup(&q).await.unwrap_err();
        assert_eq!(error.reason(), "fetch aborted");
        assert!(live.lookup(&q).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn each_caller_gives_up_at_its_deadline() {
        let gate = Arc::new(Notify::new());
        let source = Arc::new(Scripted {
            gate: Some(gate),
            ..Default::default()
        });
        let live = check(&source, Duration::from_secs(60));
        let error = live.lookup(&query("kp_1", "org_1")).await.unwrap_err();
        assert_eq!(error.reason(), "deadline passed");
    }
}
