//! [`RequirePermission`].

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::{ResponseFuture, TokenTrusted};
use crate::claims::Claims;
use crate::error::{AuthError, AuthErrorKind};
use crate::permission::Permission;

/// Requires a permission before calling the inner service. See [`authz`](crate::authz).
#[derive(Debug, Clone)]
pub struct RequirePermission<S, M> {
    inner: S,
    permission: Permission,
    mode: M,
}

impl<S, M> RequirePermission<S, M> {
    pub(crate) fn new(inner: S, permission: Permission, mode: M) -> Self {
        Self {
            inner,
            permission,
            mode,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePermission<S, TokenTrusted>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(claims) = req.extensions().get::<Claims>() else {
            tracing::error!(
                permission = %self.permission,
                "permission layer without JwtAuthLayer in front: add `.layer(auth.layer())`"
            );
            return ResponseFuture::reject(AuthError::new(AuthErrorKind::Misconfigured));
        };
        let allowed = self.mode.allows(claims, &self.permission);
        tracing::debug!(
            decision = if allowed { "allow" } else { "deny" },
            permission = %self.permission,
            source = "token",
            subject = claims.subject().or(claims.authorized_party()).unwrap_or(""),
            "authorization decision"
        );
        if allowed {
            ResponseFuture::call(self.inner.call(req))
        } else {
            ResponseFuture::reject(AuthError::insufficient_scope(self.permission.as_str()))
        }
    }
}
