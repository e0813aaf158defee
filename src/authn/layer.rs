//! [`JwtAuthLayer`].

use tower::Layer;

use super::JwtAuth;
use crate::changes::ChangeLog;
use crate::jwt::Verifier;

/// Applies [`JwtAuth`] to a service: every request must carry a valid bearer token.
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtAuthLayer {
    verifier: Verifier,
    log: Option<ChangeLog>,
    optional: bool,
}

impl JwtAuthLayer {
    /// A layer that verifies tokens with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            log: None,
            optional: false,
        }
    }

    /// Lets requests that carry no bearer credentials at all (no `Authorization` header, or
    /// another scheme) through as anonymous: no [`Claims`](crate::Claims) in their extensions,
    /// so handlers take `Option<Claims>`. A request with *bad* credentials (a malformed header,
    /// an invalid, expired or locked-out token) is still refused, and a permission layer or a
    /// `Claims` extractor behind this layer answers an anonymous request 401 with a bare
    /// `Bearer` challenge (Envoy's `allow_missing`, not `allow_missing_or_failed`).
    /// [`Auth::optional_layer`](crate::Auth::optional_layer) does this.
    pub fn optional(self) -> Self {
        Self {
            optional: true,
            ..self
        }
    }

    /// Also refuses tokens locked out through `log` (a deleted or suspended user, a revoked
    /// `jti`), and keeps `log`'s follower running while the layer is in use.
    /// [`Auth::layer`](crate::Auth::layer) does this.
    pub fn with_change_log(self, log: ChangeLog) -> Self {
        Self {
            log: Some(log),
            ..self
        }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let service = JwtAuth::new(inner, self.verifier.clone()).with_change_log(self.log.clone());
        if self.optional {
            service.optional()
        } else {
            service
        }
    }
}
