//! [`RequirePermissionLayer`] and its modes.

use tower::Layer;

use super::RequirePermission;
use crate::claims::Claims;
use crate::permission::Permission;

/// Mode of a route that trusts the verified token's claims.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenTrusted;

impl TokenTrusted {
    /// Whether `claims` grant `permission`.
    pub(crate) fn allows(self, claims: &Claims, permission: &Permission) -> bool {
        if claims.is_machine() {
            claims.scopes().iter().any(|s| s == permission.as_str())
        } else {
            claims.has_permission(permission.as_str())
        }
    }
}

/// Requires a permission on a route. See [`authz`](crate::authz).
#[derive(Debug, Clone)]
pub struct RequirePermissionLayer<M = TokenTrusted> {
    permission: Permission,
    mode: M,
}

impl RequirePermissionLayer<TokenTrusted> {
    /// Requires `permission`, decided from the verified token's claims.
    pub fn token_trusted(permission: Permission) -> Self {
        Self {
            permission,
            mode: TokenTrusted,
        }
    }
}

impl<M> RequirePermissionLayer<M> {
    /// The permission this layer requires.
    pub fn permission(&self) -> &Permission {
        &self.permission
    }
}

impl<S, M: Clone> Layer<S> for RequirePermissionLayer<M> {
    type Service = RequirePermission<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePermission::new(inner, self.permission.clone(), self.mode.clone())
    }
}
