//! The two ways a route decides: [`TokenTrusted`] and [`Strict`].

use super::decide::{denied, from_facts};
use crate::claims::Claims;
use crate::freshness::{Freshness, Staleness};
use crate::live::{LiveCheck, PermissionQuery, Priority};
use crate::metrics::DecisionMetrics;
use crate::requirement::{Needs, Requirement, TokenFacts};

/// Mode of a route that trusts the verified token's claims. See [`authz`](super).
#[derive(Debug, Clone, Default)]
pub struct TokenTrusted {
    live: Option<LiveCheck>,
    freshness: Option<Freshness>,
}

/// Mode of a route that asks the live permissions source. See [`authz`](super).
#[derive(Debug, Clone)]
pub struct Strict {
    live: LiveCheck,
    allow_machines: bool,
}

/// What a route requires and how it decides, shared (behind one `Arc`) by a layer and every
/// service and clone made from it: axum clones a handler's layer for every request, so one
/// reference count is all a request touches, not one per part.
#[derive(Debug, Clone)]
pub(super) struct Rule<M> {
    pub(super) requirement: Requirement,
    /// What deciding the requirement takes, worked out once.
    pub(super) needs: Needs,
    pub(super) mode: M,
    /// Its decision counters, keyed once.
    pub(super) metrics: DecisionMetrics,
}

impl<M> Rule<M> {
    pub(super) fn new(requirement: Requirement, mode: M) -> Self {
        Self {
            needs: requirement.needs(),
            metrics: DecisionMetrics::default(),
            requirement,
            mode,
        }
    }
}

/// What a mode can tell from the claims alone.
#[derive(Debug)]
pub enum Verdict {
    Decided(crate::decision::Decision),
    Live(LiveCheck, PermissionQuery, Priority),
}

/// A way of deciding: [`TokenTrusted`] or [`Strict`]. Sealed.
pub trait Mode: Clone + Send + Sync + 'static + sealed::Decide {}

impl Mode for TokenTrusted {}
impl Mode for Strict {}

pub(crate) mod sealed {
    use super::{Claims, Needs, Requirement, Verdict};

    /// The decision logic of a mode, out of the public API.
    pub trait Decide {
        fn verdict(&self, claims: &Claims, requirement: &Requirement, needs: Needs) -> Verdict;
    }
}

impl TokenTrusted {
    pub(crate) fn with_live(self, live: LiveCheck) -> Self {
        Self {
            live: Some(live),
            ..self
        }
    }

    pub(crate) fn with_freshness(self, freshness: Freshness) -> Self {
        Self {
            freshness: Some(freshness),
            ..self
        }
    }
}

impl Strict {
    pub(crate) fn new(live: LiveCheck) -> Self {
        Self {
            live,
            allow_machines: false,
        }
    }

    pub(crate) fn allowing_machines(self) -> Self {
        Self {
            allow_machines: true,
            ..self
        }
    }
}

impl sealed::Decide for TokenTrusted {
    fn verdict(&self, claims: &Claims, requirement: &Requirement, needs: Needs) -> Verdict {
        let facts = TokenFacts::of(claims);
        // Machine tokens have no live facts, nor have users of an issuer whose profile makes no
        // live lookups; a requirement of the organization alone is the token's to answer.
        if facts.is_machine() || needs.is_nothing() || !claims.looks_up_live() {
            return Verdict::Decided(from_facts(&facts, requirement));
        }
        // Claims older than a change Kinde told us about are not trusted: decide live. When
        // the change concerns everyone, those calls spend from the conservative budget.
        let staleness = self
            .freshness
            .as_ref()
            .map_or(Staleness::Fresh, |f| f.staleness(claims));
        if staleness != Staleness::Fresh {
            let priority = match staleness {
                Staleness::Everyone => Priority::Conservative,
                _ => Priority::First,
            };
            return match &self.live {
                Some(live) => live_or_deny(live, claims, requirement, priority),
                None => Verdict::Decided(denied(claims, requirement)),
            };
        }
        // Kinde lets workflows strip `permissions` and `feature_flags` from tokens, and adds
        // `roles` only when asked: what the token does not carry is asked live.
        match &self.live {
            Some(live) if facts.lacks(needs) => {
                live_or_deny(live, claims, requirement, Priority::First)
            }
            _ => Verdict::Decided(from_facts(&facts, requirement)),
        }
    }
}

impl sealed::Decide for Strict {
    fn verdict(&self, claims: &Claims, requirement: &Requirement, needs: Needs) -> Verdict {
        let facts = TokenFacts::of(claims);
        if facts.is_machine() {
            return Verdict::Decided(if self.allow_machines {
                from_facts(&facts, requirement)
            } else {
                denied(claims, requirement)
            });
        }
        if needs.is_nothing() {
            return Verdict::Decided(from_facts(&facts, requirement));
        }
        live_or_deny(&self.live, claims, requirement, Priority::First)
    }
}

fn live_or_deny(
    live: &LiveCheck,
    claims: &Claims,
    requirement: &Requirement,
    priority: Priority,
) -> Verdict {
    match PermissionQuery::from_claims(claims) {
        Some(query) => Verdict::Live(live.clone(), query, priority),
        // No `sub` and not a machine token: there is nobody to look up.
        None => Verdict::Decided(denied(claims, requirement)),
    }
}
