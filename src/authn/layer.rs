//! [`JwtAuthLayer`].

use tower::Layer;

use super::JwtAuth;
use crate::jwt::Verifier;

/// Applies [`JwtAuth`] to a service: every request must carry a valid bearer token.
#[derive(Debug, Clone)]
pub struct JwtAuthLayer {
    verifier: Verifier,
}

impl JwtAuthLayer {
    /// A layer that verifies tokens with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(inner, self.verifier.clone())
    }
}
