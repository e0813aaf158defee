//! [`Held`]: the live facts a requirement needs (permissions, roles, feature flags), each kind
//! looked up on its own through the one [`find`](LiveCheck::find) (cached, coalesced,
//! invalidated alike), concurrently, under one deadline.

use std::sync::Arc;
use std::time::Duration;

use super::check::{LiveCheck, Seen};
use super::state::{Found, KeyRef, Kind};
use super::{KeySet, PermissionQuery, Priority, SourceError};
use crate::decision::Provenance;
use crate::permission::PermissionSet;
use crate::requirement::{Facts, Needs};

/// What the live source says a caller holds, for the kinds a requirement needs.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    permissions: Option<Arc<PermissionSet>>,
    roles: Option<Arc<KeySet>>,
    flags: Option<Arc<KeySet>>,
    provenance: Provenance,
    age: Duration,
}

/// [`Held`] facts for a caller whose token is for the organization `org`: the organization is
/// always the token's (it is the one the live answers are for).
pub(crate) struct LiveFacts<'a> {
    pub(crate) held: &'a Held,
    pub(crate) org: Option<&'a str>,
}

const KINDS: [(Kind, Needs); 3] = [
    (Kind::Permissions, Needs::PERMISSIONS),
    (Kind::Roles, Needs::ROLES),
    (Kind::Flags, Needs::FLAGS),
];

impl Held {
    fn new() -> Self {
        Self {
            permissions: None,
            roles: None,
            flags: None,
            provenance: Provenance::LiveCache,
            age: Duration::ZERO,
        }
    }

    /// Where the facts came from: `live` if any kind was fetched for this request, else
    /// `coalesced` if any was waited for, else `live-cache`.
    pub(crate) fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The age of the oldest kind used.
    pub(crate) fn age(&self) -> Duration {
        self.age
    }

    fn add(&mut self, kind: Kind, (entry, provenance, age): Seen) {
        let rank = |p| match p {
            Provenance::Live => 2,
            Provenance::Coalesced => 1,
            _ => 0,
        };
        if rank(provenance) > rank(self.provenance) {
            self.provenance = provenance;
        }
        self.age = self.age.max(age);
        match (kind, entry.found) {
            (Kind::Permissions, Found::Permissions(set)) => self.permissions = Some(set),
            (Kind::Roles, Found::Keys(set)) => self.roles = Some(set),
            (Kind::Flags, Found::Keys(set)) => self.flags = Some(set),
            // Never: a key of one kind only ever holds that kind.
            _ => {}
        }
    }
}

impl LiveCheck {
    /// What can be answered without waiting: a remembered refusal of the caller's token, or
    /// fresh cached answers for every kind `needs` names.
    pub(crate) fn peek_held(
        &self,
        query: &PermissionQuery,
        needs: Needs,
    ) -> Option<Result<Held, SourceError>> {
        let mut held = Held::new();
        for (kind, need) in KINDS {
            if needs.covers(need) {
                if let Some(refused) = self.inner.refused_token(query, kind) {
                    return Some(Err(refused));
                }
                let (entry, age) = self.inner.cached(KeyRef::of(query, kind))?;
                held.add(kind, (entry, Provenance::LiveCache, age));
            }
        }
        for (kind, need) in KINDS {
            if needs.covers(need) {
                crate::metrics::live_lookup(kind.label(), Provenance::LiveCache);
            }
        }
        Some(Ok(held))
    }

    /// The facts `needs` names for `query`'s user, looked up concurrently, each kind from the
    /// cache, a flight under way, or a new upstream call; one deadline for all. The first
    /// failure (in the order permissions, roles, flags) is the answer.
    pub(crate) async fn held(
        &self,
        query: &PermissionQuery,
        needs: Needs,
        priority: Priority,
    ) -> Result<Held, SourceError> {
        let give_up = self.give_up();
        let one = |(kind, need): (Kind, Needs)| async move {
            match needs.covers(need) {
                true => Some(self.find(query, kind, priority, give_up).await),
                false => None,
            }
        };
        let (permissions, roles, flags) = tokio::join!(one(KINDS[0]), one(KINDS[1]), one(KINDS[2]));
        let found = [permissions, roles, flags];
        for ((kind, _), seen) in KINDS.iter().zip(&found) {
            if let Some(Ok((_, provenance, _))) = seen {
                crate::metrics::live_lookup(kind.label(), *provenance);
            }
        }
        let mut held = Held::new();
        for ((kind, _), seen) in KINDS.into_iter().zip(found) {
            if let Some(seen) = seen {
                held.add(kind, seen?);
            }
        }
        Ok(held)
    }
}

impl Facts for LiveFacts<'_> {
    #[inline]
    fn has_permission(&self, key: &str) -> bool {
        let set = self.held.permissions.as_ref();
        set.is_some_and(|set| set.contains(key))
    }

    fn has_role(&self, key: &str) -> bool {
        self.held
            .roles
            .as_ref()
            .is_some_and(|set| set.contains(key))
    }

    fn org_code(&self) -> Option<&str> {
        self.org
    }

    fn flag_is_on(&self, key: &str) -> bool {
        self.held
            .flags
            .as_ref()
            .is_some_and(|set| set.contains(key))
    }
}
