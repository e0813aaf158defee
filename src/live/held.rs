//! [`Held`]: the live facts a requirement needs (permissions, roles, feature flags), each kind
//! looked up on its own through the one [`find`](LiveCheck::find) (cached, coalesced,
//! invalidated alike), concurrently, under one deadline.

use std::sync::Arc;
use std::time::Duration;

use super::check::{LiveCheck, Seen};
use super::state::{Found, Kind};
use super::{KeySet, PermissionQuery, Priority, SourceError};
use crate::claims::Claims;
use crate::decision::Provenance;
use crate::permission::PermissionSet;
use crate::requirement::{Facts, Needs};

/// What the live source says a caller holds, for the kinds a requirement needs, with the
/// caller's claims (for the organization, which is the token's).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    claims: Claims,
    permissions: Option<Arc<PermissionSet>>,
    roles: Option<Arc<KeySet>>,
    flags: Option<Arc<KeySet>>,
    provenance: Provenance,
    age: Duration,
}

const KINDS: [(Kind, Needs); 3] = [
    (Kind::Permissions, Needs::PERMISSIONS),
    (Kind::Roles, Needs::ROLES),
    (Kind::Flags, Needs::FLAGS),
];

impl Held {
    /// Where the facts came from: `live` if any kind was fetched for this request, else
    /// `coalesced` if any was waited for, else `live-cache`.
    pub(crate) fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The age of the oldest kind used.
    pub(crate) fn age(&self) -> Duration {
        self.age
    }

    fn of(claims: &Claims, seen: [Option<Seen>; 3]) -> Self {
        let mut held = Self {
            claims: claims.clone(),
            permissions: None,
            roles: None,
            flags: None,
            provenance: Provenance::LiveCache,
            age: Duration::ZERO,
        };
        for ((kind, _), seen) in KINDS.iter().zip(seen) {
            let Some((entry, provenance, age)) = seen else {
                continue;
            };
            held.provenance = stronger(held.provenance, provenance);
            held.age = held.age.max(age);
            match (kind, entry.found) {
                (Kind::Permissions, Found::Permissions(set)) => held.permissions = Some(set),
                (Kind::Roles, Found::Keys(set)) => held.roles = Some(set),
                (Kind::Flags, Found::Keys(set)) => held.flags = Some(set),
                // Never: a key of one kind only ever holds that kind.
                _ => {}
            }
        }
        held
    }
}

fn stronger(a: Provenance, b: Provenance) -> Provenance {
    let rank = |p| match p {
        Provenance::Live => 2,
        Provenance::Coalesced => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Every kind's result, or the first failure.
fn gathered(
    claims: &Claims,
    results: [Option<Result<Seen, SourceError>>; 3],
) -> Result<Held, SourceError> {
    let mut seen: [Option<Seen>; 3] = [None, None, None];
    for (slot, result) in seen.iter_mut().zip(results) {
        *slot = result.transpose()?;
    }
    Ok(Held::of(claims, seen))
}

impl LiveCheck {
    /// What can be answered without waiting: a remembered refusal of the caller's token, or
    /// fresh cached answers for every kind `needs` names.
    pub(crate) fn peek_held(
        &self,
        query: &PermissionQuery,
        needs: Needs,
    ) -> Option<Result<Held, SourceError>> {
        let mut results = [None, None, None];
        for (slot, (kind, need)) in results.iter_mut().zip(KINDS) {
            if needs.covers(need) {
                *slot = Some(self.peek_kind(query, kind)?);
            }
        }
        Some(gathered(query.claims(), results))
    }

    /// The facts `needs` names for `query`'s user, looked up concurrently, each kind from the
    /// cache, a flight under way, or a new upstream call; one deadline for all.
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
        gathered(query.claims(), [permissions, roles, flags])
    }
}

impl Facts for Held {
    fn has_permission(&self, key: &str) -> bool {
        self.permissions
            .as_ref()
            .is_some_and(|set| set.contains(key))
    }

    fn has_role(&self, key: &str) -> bool {
        self.roles.as_ref().is_some_and(|set| set.contains(key))
    }

    fn org_code(&self) -> Option<&str> {
        self.claims.org_code()
    }

    fn flag_is_on(&self, key: &str) -> bool {
        self.flags.as_ref().is_some_and(|set| set.contains(key))
    }
}
