//! [`RequirePermissionLayer`].

use std::sync::Arc;

use tower::Layer;

use super::RequirePermission;
use super::mode::{Rule, Strict, TokenTrusted};
use crate::freshness::Freshness;
use crate::live::LiveCheck;
use crate::requirement::Requirement;

/// Requires a [`Requirement`] (a permission, role, organization, feature flag, or all-of /
/// any-of them) on a route. See [`authz`](crate::authz).
#[derive(Debug, Clone)]
#[must_use]
pub struct RequirePermissionLayer<M = TokenTrusted> {
    pub(super) rule: Arc<Rule<M>>,
}

impl<M: Clone> RequirePermissionLayer<M> {
    fn new(requirement: Requirement, mode: M) -> Self {
        Self {
            rule: Arc::new(Rule::new(requirement, mode)),
        }
    }

    /// The same requirement, decided by `change(mode)`.
    fn with_mode(self, change: impl FnOnce(M) -> M) -> Self {
        let Rule {
            requirement, mode, ..
        } = Arc::unwrap_or_clone(self.rule);
        Self::new(requirement, change(mode))
    }
}

impl RequirePermissionLayer<TokenTrusted> {
    /// Requires `requirement` (a [`Permission`](crate::Permission) converts into one), decided
    /// from the verified token's claims. A user token without a claim the requirement needs
    /// holds nothing of it; see [`with_live_fallback`](Self::with_live_fallback).
    pub fn token_trusted(requirement: impl Into<Requirement>) -> Self {
        Self::new(requirement.into(), TokenTrusted::default())
    }

    /// Decides user tokens that lack a claim the requirement needs (`permissions` and
    /// `feature_flags`, which Kinde workflows can strip; `roles`, which Kinde adds only when
    /// asked) with `live`, as a strict route would. An empty array is still a deny.
    pub fn with_live_fallback(self, live: LiveCheck) -> Self {
        self.with_mode(|mode| mode.with_live(live))
    }

    /// Distrusts tokens issued before a change recorded in `freshness` (a Kinde webhook, say):
    /// they are decided with the live fallback, or denied when there is none.
    pub fn with_freshness(self, freshness: Freshness) -> Self {
        self.with_mode(|mode| mode.with_freshness(freshness))
    }
}

impl RequirePermissionLayer<Strict> {
    /// Requires `requirement`, decided from `live`: the caller's permissions, roles and feature
    /// flags (each only if the requirement names it) as the source reports them now, cached
    /// for the check's time-to-live. The organization is the token's `org_code`.
    /// Machine-to-machine tokens are denied; see [`allow_machines`](Self::allow_machines).
    pub fn strict(requirement: impl Into<Requirement>, live: LiveCheck) -> Self {
        Self::new(requirement.into(), Strict::new(live))
    }

    /// Lets machine-to-machine tokens through when their claims meet the requirement (`scp` for
    /// permissions). Kinde has no live facts for machine applications, so for them this is a
    /// token decision.
    pub fn allow_machines(self) -> Self {
        self.with_mode(Strict::allowing_machines)
    }
}

impl<M> RequirePermissionLayer<M> {
    /// The requirement this layer enforces.
    pub fn requirement(&self) -> &Requirement {
        &self.rule.requirement
    }
}

impl<S, M: Clone> Layer<S> for RequirePermissionLayer<M> {
    type Service = RequirePermission<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission::new(inner, self.rule.clone())
    }
}
