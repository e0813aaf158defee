//! [`RequirePermission`].

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
use super::decide;
use super::mode::{Mode, Rule, Verdict};
use crate::claims::{Anonymous, Claims};
use crate::error::{AuthError, AuthErrorKind, Protocol};

/// Requires a [`Requirement`](crate::Requirement) before calling the inner service. See [`authz`](crate::authz).
#[derive(Debug, Clone)]
pub struct RequirePermission<S, M> {
    inner: S,
    rule: Arc<Rule<M>>,
}

impl<S, M> RequirePermission<S, M> {
    pub(super) fn new(inner: S, rule: Arc<Rule<M>>) -> Self {
        Self { inner, rule }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePermission<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    M: Mode,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(claims) = req.extensions().get::<Claims>() else {
            let protocol = Protocol::of(req.headers());
            if req.extensions().get::<Anonymous>().is_some() {
                let error = AuthError::from(AuthErrorKind::MissingCredentials);
                return ResponseFuture::reject(error, None, protocol);
            }
            tracing::error!(
                target: "claimcheck::authz",
                requirement = %self.rule.requirement,
                "requirement layer without JwtAuthLayer in front: add `.layer(auth.layer())`"
            );
            let error = AuthError::new(AuthErrorKind::Misconfigured);
            return ResponseFuture::reject(error, None, protocol);
        };
        let rule = &*self.rule;
        let decision = match rule.mode.verdict(claims, &rule.requirement, rule.needs) {
            Verdict::Decided(decision) => decision,
            Verdict::Live(live, query, priority) => match live.peek_held(&query, rule.needs) {
                Some(Ok(held)) => decide::from_held(&held, claims, &rule.requirement),
                Some(Err(refused)) => {
                    let next = decide::failed(&refused, &rule.requirement, &rule.metrics, &req);
                    return ResponseFuture::next(next, req, &mut self.inner);
                }
                None => {
                    let needs = rule.needs;
                    let check = Box::pin(async move { live.held(&query, needs, priority).await });
                    // Take the service that was driven to readiness; leave a fresh clone behind.
                    let clone = self.inner.clone();
                    let ready = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::checking(
                        check,
                        rule.requirement.clone(),
                        rule.metrics.clone(),
                        req,
                        ready,
                    );
                }
            },
        };
        let next = decide::next(decision, &rule.metrics, &req);
        ResponseFuture::next(next, req, &mut self.inner)
    }
}
