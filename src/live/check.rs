//! [`LiveCheck`]: a short-lived, coalescing, invalidatable cache in front of a source.
//!
//! A lookup, in order: a token the source refused lately is answered from memory
//! ([`refusal`](super::refusal)); a fresh cached answer for the user that no invalidation has
//! overtaken ([`invalidation`](super::invalidation)) is served; a user whose tokens keep being
//! refused is answered from memory; a paused source ([`Backoff`]) answers 503 at once; otherwise
//! the caller joins or starts a [flight]. A refusal of another caller's token
//! received from a joined flight sends the caller round again, with its own token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use tokio::time::Instant;

use super::backoff::{Backoff, Breaker};
use super::budget::{Budget, Priority};
use super::error::SourceError;
use super::flight::{self, Ticket};
use super::invalidation::Invalidations;
use super::refusal::Refusals;
use super::state::{Entry, Flights, Found, Inner, Key, KeyRef, Kind, Upstream};
use super::{PermissionQuery, PermissionSource};
use crate::decision::Provenance;
use crate::permission::PermissionSet;
use crate::single_flight::{Landed, Missed};

const DEFAULT_TTL: Duration = Duration::from_secs(5);
const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
const DEFAULT_CAPACITY: u64 = 10_000;
const DEFAULT_REFUSAL_MEMORY: Duration = Duration::from_secs(30);
const DEFAULT_CONSERVATIVE_BUDGET: u32 = 50;
/// Longest time-to-live and refusal memory.
const MAX_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Longest deadline.
const MAX_DEADLINE: Duration = Duration::from_secs(3600);

/// Live permissions with a short-TTL cache. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct LiveCheck {
    pub(super) inner: Arc<Inner>,
}

/// The answer of a live lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Every permission the user holds in the organization.
    pub permissions: Arc<PermissionSet>,
    /// [`Provenance::LiveCache`], [`Provenance::Live`] or [`Provenance::Coalesced`].
    pub provenance: Provenance,
    /// Time since the upstream answered.
    pub age: Duration,
}

/// Builds a [`LiveCheck`].
#[must_use]
pub struct LiveCheckBuilder {
    source: Arc<dyn PermissionSource>,
    ttl: Duration,
    deadline: Duration,
    capacity: u64,
    backoff: Backoff,
    refusal_memory: Duration,
    budget: u32,
}

/// One kind's answer as a lookup saw it: the entry, where it came from, and its age.
pub(super) type Seen = (Entry, Provenance, Duration);

impl Lookup {
    fn of((entry, provenance, age): Seen) -> Self {
        let permissions = match entry.found {
            Found::Permissions(permissions) => permissions,
            // Never: a permissions key only ever holds permissions.
            Found::Keys(_) => Arc::default(),
        };
        Self {
            permissions,
            provenance,
            age,
        }
    }
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

    /// The longest a token the source [refused](SourceError::refused) is answered 401 from
    /// memory without asking again (default 30 s; zero: never remembered). A token refused once
    /// is remembered for 250 ms, each further refusal doubling that up to this length. A user
    /// with three distinct tokens refused within it has their tokens issued before the latest
    /// refusal, and not accepted by the source lately, refused from memory too (a new sign-in
    /// is still asked about).
    pub fn refusal_memory(mut self, memory: Duration) -> Self {
        self.refusal_memory = memory;
        self
    }

    /// Upstream calls per second that everyone-wide distrust may cause (default 50): when a
    /// replica has not replayed the change log, is cut off from it, found a loss in it, or every
    /// role changed, token-trusted routes decide every token live; those calls go only while
    /// this budget (what strict routes leave of it) lasts, and answer 503 + `Retry-After`
    /// otherwise. Strict routes are never refused by it. 0: such calls never go.
    pub fn conservative_budget(mut self, calls_per_second: u32) -> Self {
        self.budget = calls_per_second;
        self
    }

    /// The check. Durations beyond reason are capped: the time-to-live and the refusal memory
    /// at 24 h, the deadline at 1 h.
    pub fn build(mut self) -> LiveCheck {
        self.ttl = self.ttl.min(MAX_MEMORY);
        self.refusal_memory = self.refusal_memory.min(MAX_MEMORY);
        self.deadline = self.deadline.min(MAX_DEADLINE);
        let cache = (!self.ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(self.capacity)
                .time_to_live(self.ttl)
                .build_with_hasher(foldhash::fast::RandomState::default())
        });
        // An invalidation must outlive everything it could concern: a flight that started
        // before it ends by the deadline, and its answer lives a time-to-live after that.
        let horizon = self.ttl + self.deadline + Duration::from_secs(1);
        LiveCheck {
            inner: Arc::new(Inner {
                source: self.source,
                cache,
                ttl: self.ttl,
                deadline: self.deadline,
                flights: Flights::new(),
                upstreams: Kind::ALL.map(|kind| Upstream {
                    breaker: Breaker::new(self.backoff, kind.label()),
                    refusals: Refusals::new(self.refusal_memory),
                }),
                invalidations: Invalidations::new(horizon, self.capacity.max(1_000)),
                budget: Budget::new(self.budget),
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
            refusal_memory: DEFAULT_REFUSAL_MEMORY,
            budget: DEFAULT_CONSERVATIVE_BUDGET,
        }
    }

    /// The cached answer for `query`, if there is a fresh one. Never waits.
    pub fn cached(&self, query: &PermissionQuery) -> Option<Lookup> {
        self.peek(query).and_then(Result::ok)
    }

    /// What can be answered without waiting: a remembered refusal of the caller's token, or a
    /// fresh cached answer.
    pub(crate) fn peek(&self, query: &PermissionQuery) -> Option<Result<Lookup, SourceError>> {
        self.peek_kind(query, Kind::Permissions)
            .map(|seen| seen.map(Lookup::of))
    }

    /// [`peek`](Self::peek) for one kind of facts.
    pub(super) fn peek_kind(
        &self,
        query: &PermissionQuery,
        kind: Kind,
    ) -> Option<Result<Seen, SourceError>> {
        if let Some(refused) = self.inner.refused_token(query, kind) {
            return Some(Err(refused));
        }
        let (entry, age) = self.inner.cached(KeyRef::of(query, kind))?;
        Some(Ok((entry, Provenance::LiveCache, age)))
    }

    /// The user's permissions: from the cache, from a call already in flight, or from a new
    /// upstream call. Fails when the source fails or refuses the caller, or the deadline passes;
    /// failures are not cached.
    pub async fn lookup(&self, query: &PermissionQuery) -> Result<Lookup, SourceError> {
        self.lookup_with(query, Priority::First).await
    }

    /// [`lookup`](Self::lookup), spending from the conservative budget when `priority` says so.
    pub(crate) async fn lookup_with(
        &self,
        query: &PermissionQuery,
        priority: Priority,
    ) -> Result<Lookup, SourceError> {
        let give_up = self.give_up();
        let seen = self
            .find(query, Kind::Permissions, priority, give_up)
            .await?;
        crate::metrics::live_lookup(Kind::Permissions.label(), seen.1);
        Ok(Lookup::of(seen))
    }

    /// When a lookup starting now gives up.
    pub(super) fn give_up(&self) -> Instant {
        Instant::now() + self.inner.deadline
    }

    /// One kind of `query`'s facts: cached, joined, or fetched; given up at `give_up`.
    pub(super) async fn find(
        &self,
        query: &PermissionQuery,
        kind: Kind,
        priority: Priority,
        give_up: Instant,
    ) -> Result<Seen, SourceError> {
        if let Some(refused) = self.inner.refused_token(query, kind) {
            return Err(refused);
        }
        let key = Key::of(query, kind);
        loop {
            let ticket = match join_or_start(&self.inner, &key, query, give_up, priority) {
                Ok(Joined::Cached((entry, age))) => {
                    return Ok((entry, Provenance::LiveCache, age));
                }
                Ok(Joined::Flight(ticket)) => ticket,
                Err(error) => return Err(error),
            };
            let Landed {
                value,
                meta,
                started,
            } = match ticket.wait(give_up).await {
                Ok(landed) => landed,
                Err(Missed::Deadline) => return Err(SourceError::unavailable("deadline passed")),
                Err(Missed::Lost) => {
                    return Err(SourceError::unavailable("fetch ended without answer"));
                }
            };
            match value {
                Ok(entry) if self.inner.is_current(&key, entry.generation) => {
                    let provenance = if started {
                        Provenance::Live
                    } else {
                        Provenance::Coalesced
                    };
                    let age = entry.fetched_at.elapsed();
                    return Ok((entry, provenance, age));
                }
                // Invalidated while in flight: look again.
                Ok(_) => continue,
                // Another caller's token was refused, not ours: ask with ours.
                Err(error) if error.is_refused() && meta.token != *query.access_token() => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Forgets every cached answer for `user_id` (in every organization), and any answer now
    /// being fetched for them. O(1): nothing is scanned.
    pub fn invalidate_user(&self, user_id: &str) {
        self.inner.invalidations.invalidate_user(user_id);
    }

    /// Forgets every cached answer for the organization `org_code`, and any answer now being
    /// fetched for it. O(1).
    pub fn invalidate_org(&self, org_code: &str) {
        self.inner.invalidations.invalidate_org(org_code);
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.inner.invalidations.invalidate_everyone();
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
    }

    /// How long new upstream calls stay paused after failures (see [`Backoff`]), if they are:
    /// the longest pause of any kind of facts (permissions, roles, feature flags each have
    /// their own breaker).
    pub fn paused_for(&self) -> Option<Duration> {
        self.paused().map(|(_, left)| left).max()
    }

    /// The kinds of facts whose upstream calls are paused (`permissions`, `roles`, `feature
    /// flags`), with the time left.
    pub(crate) fn paused(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        Kind::ALL.into_iter().filter_map(|kind| {
            let left = self.inner.upstream(kind).breaker.paused_for()?;
            Some((kind.as_str(), left))
        })
    }

    /// What the source verified before any caller, or why it cannot work (see
    /// [`PermissionSource::preflight`]).
    pub(crate) async fn preflight(&self) -> Result<String, SourceError> {
        self.inner.source().preflight().await
    }

    /// The cache's time-to-live.
    pub fn time_to_live(&self) -> Duration {
        self.inner.ttl
    }
}

enum Joined {
    Cached((Entry, Duration)),
    Flight(Ticket),
}

/// A cached answer, a flight to wait for, or why neither can be had now.
fn join_or_start(
    this: &Arc<Inner>,
    key: &Key,
    query: &PermissionQuery,
    give_up: Instant,
    priority: Priority,
) -> Result<Joined, SourceError> {
    let flights = this.flights.lock();
    // Looked up again under the lock: a flight may have just filled the cache.
    if let Some(cached) = this.cached(key.as_ref()) {
        return Ok(Joined::Cached(cached));
    }
    // A flight that started before an invalidation is replaced, not joined.
    if let Some(meta) = flights.meta(key)
        && this.is_current(key, meta.generation)
        && let Some(ticket) = flights.join(key)
    {
        return Ok(Joined::Flight(ticket));
    }
    let upstream = this.upstream(key.kind());
    if let Some(refused) = upstream.refusals.as_ref().and_then(|r| r.user(query)) {
        return Err(refused);
    }
    if let Err(wait) = upstream.breaker.admit() {
        let error = SourceError::unavailable("upstream calls paused after failures");
        return Err(error.with_retry_after(wait));
    }
    if let Err(wait) = this.budget.spend(priority) {
        let error = SourceError::unavailable("over the live-call budget for distrusted tokens");
        return Err(error.not_sent().with_retry_after(wait));
    }
    let ticket = flight::start(this, flights, key, query, give_up);
    Ok(Joined::Flight(ticket))
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
            .field("refusal_memory", &self.refusal_memory)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl LiveCheck {
    /// Entries held by the cache, after pending maintenance.
    pub(super) fn entry_count(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, |cache| {
            cache.run_pending_tasks();
            cache.entry_count()
        })
    }
}
