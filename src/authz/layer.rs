//! [`RequirePermissionLayer`].

use std::sync::Arc;

use tower::Layer;

use super::RequirePermission;
use super::mode::{Rule, Strict, TokenTrusted};
use crate::freshness::Freshness;
use crate::live::LiveCheck;
use crate::permission::Permission;

/// Requires a permission on a route. See [`authz`](crate::authz).
#[derive(Debug, Clone)]
#[must_use]
pub struct RequirePermissionLayer<M = TokenTrusted> {
    pub(super) rule: Arc<Rule<M>>,
}

impl<M: Clone> RequirePermissionLayer<M> {
    fn new(permission: Permission, mode: M) -> Self {
        Self {
            rule: Arc::new(Rule { permission, mode }),
        }
    }

    /// The same permission, decided by `change(mode)`.
    fn with_mode(self, change: impl FnOnce(M) -> M) -> Self {
        let Rule { permission, mode } = Arc::unwrap_or_clone(self.rule);
        Self::new(permission, change(mode))
    }
}

impl RequirePermissionLayer<TokenTrusted> {
    /// Requires `permission`, decided from the verified token's claims. A user token without a
    /// `permissions` claim is denied; see [`with_live_fallback`](Self::with_live_fallback).
    pub fn token_trusted(permission: Permission) -> Self {
        Self::new(permission, TokenTrusted::default())
    }

    /// Decides user tokens that carry no `permissions` claim at all (Kinde workflows can strip
    /// it) with `live`, as a strict route would. An empty `permissions` array is still a deny.
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
    /// Requires `permission`, decided from `live` (the caller's permissions as the source
    /// reports them now, cached for the check's time-to-live). Machine-to-machine tokens are
    /// denied; see [`allow_machines`](Self::allow_machines).
    pub fn strict(permission: Permission, live: LiveCheck) -> Self {
        Self::new(permission, Strict::new(live))
    }

    /// Lets machine-to-machine tokens through when their `scp` contains the permission. Kinde
    /// has no live permissions for machine applications, so for them this is a token decision.
    pub fn allow_machines(self) -> Self {
        self.with_mode(Strict::allowing_machines)
    }
}

impl<M> RequirePermissionLayer<M> {
    /// The permission this layer requires.
    pub fn permission(&self) -> &Permission {
        &self.rule.permission
    }
}

impl<S, M: Clone> Layer<S> for RequirePermissionLayer<M> {
    type Service = RequirePermission<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission::new(inner, self.rule.clone())
    }
}
