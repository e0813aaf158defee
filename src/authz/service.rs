//! [`RequirePermission`].

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;
use tracing::Instrument;

use super::ResponseFuture;
use super::decide::{self, Next};
use super::mode::{Mode, Rule, Verdict};
use crate::claims::{Anonymous, Claims};
use crate::error::{AuthError, AuthErrorKind, Protocol};
use crate::live::{LiveCheck, PermissionQuery, Priority};
use crate::spans;

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
        let rule = &*self.rule;
        let span = spans::authorize(&rule.requirement);
        let now = span.in_scope(|| decide_now(rule, &req));
        // The inner service is called outside the span: it is the handler's, not ours.
        match now {
            Now::Next(next) => ResponseFuture::next(next, req, &mut self.inner),
            Now::Reject(error) => {
                let protocol = Protocol::of(req.headers());
                ResponseFuture::reject(error, None, protocol)
            }
            Now::Live(live, query, priority) => {
                let needs = rule.needs;
                let check = async move { live.held(&query, needs, priority).await };
                let check = Box::pin(check.instrument(span.clone()));
                // Take the service that was driven to readiness; leave a fresh clone behind.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let (requirement, metrics) = (rule.requirement.clone(), rule.metrics.clone());
                ResponseFuture::checking(check, requirement, metrics, span, req, ready)
            }
        }
    }
}

/// What can be decided without waiting.
enum Now {
    Next(Next),
    /// Not a decision: no claims (an anonymous caller, or no authentication layer in front).
    Reject(AuthError),
    /// The live facts must be looked up first.
    Live(LiveCheck, PermissionQuery, Priority),
}

/// Decides `req` by `rule` as far as it can without waiting.
fn decide_now<M: Mode, B>(rule: &Rule<M>, req: &Request<B>) -> Now {
    let Some(claims) = req.extensions().get::<Claims>() else {
        if req.extensions().get::<Anonymous>().is_some() {
            return Now::Reject(AuthError::from(AuthErrorKind::MissingCredentials));
        }
        tracing::error!(
            target: "claimcheck::authz",
            requirement = %rule.requirement,
            "requirement layer without JwtAuthLayer in front: add `.layer(auth.layer())`"
        );
        return Now::Reject(AuthError::new(AuthErrorKind::Misconfigured));
    };
    let decision = match rule.mode.verdict(claims, &rule.requirement, rule.needs) {
        Verdict::Decided(decision) => decision,
        Verdict::Live(live, query, priority) => match live.peek_held(&query, rule.needs) {
            Some(Ok(held)) => decide::from_held(&held, claims, &rule.requirement),
            Some(Err(refused)) => {
                return Now::Next(decide::failed(
                    &refused,
                    &rule.requirement,
                    &rule.metrics,
                    req,
                ));
            }
            None => return Now::Live(live, query, priority),
        },
    };
    Now::Next(decide::next(decision, &rule.metrics, req))
}
