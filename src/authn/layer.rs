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
}

impl JwtAuthLayer {
    /// A layer that verifies tokens with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            log: None,
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
        JwtAuth::new(inner, self.verifier.clone()).with_change_log(self.log.clone())
    }
}
