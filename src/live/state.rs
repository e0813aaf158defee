//! The state a [`LiveCheck`](super::LiveCheck) and its clones share: the source, the cache
//! (by [`Key`], looked up by a borrowed [`KeyRef`] without allocating), the flights, the
//! breaker, the invalidations, the refusal memory and the budget; and the few things done with
//! it from both the check and its [flights](super::flight).

use std::sync::Arc;
use std::time::Duration;

use moka::Equivalent;
use moka::sync::Cache;
use tokio::time::Instant;

use super::KeySet;
use super::backoff::Breaker;
use super::budget::Budget;
use super::error::SourceError;
use super::invalidation::Invalidations;
use super::refusal::Refusals;
use super::{PermissionQuery, PermissionSource};
use crate::claims::AccessToken;
use crate::permission::PermissionSet;
use crate::single_flight::SingleFlight;

/// What a flight answers.
pub(super) type Answer = Result<Entry, SourceError>;

/// The live lookups under way (see [`flight`](super::flight)).
pub(super) type Flights = SingleFlight<Key, Meta, Answer>;

/// What a flight was started with.
#[derive(Clone)]
pub(super) struct Meta {
    /// The invalidation generation it started in.
    pub(super) generation: u64,
    /// The token it asks with.
    pub(super) token: AccessToken,
}

/// What every clone of a check shares.
pub(super) struct Inner {
    pub(super) source: Arc<dyn PermissionSource>,
    /// Hashed with foldhash (seeded per process): its keys come from verified tokens only, so
    /// nobody can choose them to collide, and SipHash cost a quarter of a cache hit.
    pub(super) cache: Option<Cache<Key, Entry, foldhash::fast::RandomState>>,
    pub(super) ttl: Duration,
    pub(super) deadline: Duration,
    pub(super) flights: Flights,
    /// Per [`Kind`] (in its order): each kind is its own upstream endpoint, possibly its own
    /// API (a Management API source reads flags from the Account API).
    pub(super) upstreams: [Upstream; 3],
    pub(super) invalidations: Invalidations,
    pub(super) budget: Budget,
}

/// What each kind of facts keeps on its own, so that one endpoint's outage, or its refusal of
/// a caller's token, says nothing about the others: roles failing never pauses permission
/// lookups, and a token the Account API refuses for flags is still good for a Management API
/// permission lookup (which does not send it).
pub(super) struct Upstream {
    pub(super) breaker: Breaker,
    pub(super) refusals: Option<Refusals>,
}

/// Which of a user's facts a lookup is for: each is fetched, cached and coalesced on its own,
/// and invalidated with the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// [`PermissionSource::permissions`].
    Permissions,
    /// [`PermissionSource::roles`].
    Roles,
    /// [`PermissionSource::feature_flags`].
    Flags,
}

impl Kind {
    /// Every kind, in order.
    pub(crate) const ALL: [Kind; 3] = [Kind::Permissions, Kind::Roles, Kind::Flags];

    /// `permissions`, `roles` or `feature flags`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Permissions => "permissions",
            Kind::Roles => "roles",
            Kind::Flags => "feature flags",
        }
    }

    /// `permissions`, `roles` or `feature_flags`: the `kind` label of the metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Permissions => "permissions",
            Kind::Roles => "roles",
            Kind::Flags => "feature_flags",
        }
    }
}

/// Whose facts, and which: the cache's key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    issuer: Box<str>,
    user: Box<str>,
    org: Option<Box<str>>,
    kind: Kind,
}

/// A [`Key`] borrowed from a query, to look the cache up without allocating. Hashes as the
/// owned key does: the same fields, in the same order, of types that hash alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct KeyRef<'a> {
    issuer: &'a str,
    user: &'a str,
    org: Option<&'a str>,
    kind: Kind,
}

impl<'a> KeyRef<'a> {
    pub(super) fn of(query: &'a PermissionQuery, kind: Kind) -> Self {
        Self {
            issuer: query.issuer(),
            user: query.user_id(),
            org: query.org_code(),
            kind,
        }
    }

    fn to_key(self) -> Key {
        Key {
            issuer: self.issuer.into(),
            user: self.user.into(),
            org: self.org.map(Into::into),
            kind: self.kind,
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.kind == key.kind
            && *self.issuer == *key.issuer
            && *self.user == *key.user
            && self.org == key.org.as_deref()
    }
}

impl Key {
    pub(super) fn of(query: &PermissionQuery, kind: Kind) -> Self {
        KeyRef::of(query, kind).to_key()
    }

    pub(super) fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            issuer: &self.issuer,
            user: &self.user,
            org: self.org.as_deref(),
            kind: self.kind,
        }
    }

    pub(super) fn kind(&self) -> Kind {
        self.kind
    }
}

/// What a source answered, by [`Kind`].
#[derive(Clone)]
pub(super) enum Found {
    Permissions(Arc<PermissionSet>),
    /// Role keys, or keys of the feature flags that are on.
    Keys(Arc<KeySet>),
}

/// A successful answer and when (and in which invalidation generation) it was fetched.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) found: Found,
    pub(super) fetched_at: Instant,
    pub(super) generation: u64,
}

impl Entry {
    pub(super) fn new(found: Found, generation: u64) -> Self {
        Self {
            found,
            fetched_at: Instant::now(),
            generation,
        }
    }
}

impl Inner {
    pub(super) fn source(&self) -> &dyn PermissionSource {
        &*self.source
    }

    /// The breaker and refusal memory of `kind`'s endpoint.
    pub(super) fn upstream(&self, kind: Kind) -> &Upstream {
        &self.upstreams[kind as usize]
    }

    pub(super) fn generation(&self) -> u64 {
        self.invalidations.current()
    }

    /// The refusal to answer `query` with from memory, if `kind`'s endpoint refused its token
    /// lately.
    pub(super) fn refused_token(&self, query: &PermissionQuery, kind: Kind) -> Option<SourceError> {
        self.upstream(kind).refusals.as_ref()?.token(query)
    }

    pub(super) fn remember_refusal(&self, query: &PermissionQuery, kind: Kind) {
        if let Some(refusals) = &self.upstream(kind).refusals {
            refusals.record_refusal(query);
        }
    }

    pub(super) fn remember_acceptance(&self, query: &PermissionQuery, kind: Kind) {
        if let Some(refusals) = &self.upstream(kind).refusals {
            refusals.record_acceptance(query);
        }
    }

    pub(super) fn is_current(&self, key: &Key, generation: u64) -> bool {
        self.is_current_ref(key.as_ref(), generation)
    }

    fn is_current_ref(&self, key: KeyRef<'_>, generation: u64) -> bool {
        self.invalidations.is_current(key.user, key.org, generation)
    }

    /// Caches a flight's answer, unless an invalidation overtook it.
    pub(super) fn fill(&self, key: &Key, entry: &Entry) {
        if let Some(cache) = &self.cache
            && self.is_current(key, entry.generation)
        {
            cache.insert(key.clone(), entry.clone());
        }
    }

    /// A fresh cached answer no invalidation overtook, and its age.
    pub(super) fn cached(&self, key: KeyRef<'_>) -> Option<(Entry, Duration)> {
        let entry = self.cache.as_ref()?.get(&key)?;
        let age = entry.fetched_at.elapsed();
        (age < self.ttl && self.is_current_ref(key, entry.generation)).then_some((entry, age))
    }
}
