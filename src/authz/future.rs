//! [`ResponseFuture`] of [`RequirePermission`](super::RequirePermission).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;
use tracing::Span;

use super::decide::{self, Next};
use crate::decision::Decision;
use crate::error::{AuthError, Protocol};
use crate::live::{Held, SourceError};
use crate::metrics::DecisionMetrics;
use crate::requirement::Requirement;

type Check = Pin<Box<dyn Future<Output = Result<Held, SourceError>> + Send>>;

pin_project! {
    /// Response future of [`RequirePermission`](super::RequirePermission).
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Called { #[pin] future: S::Future, decision: Option<Decision> },
        Rejected { error: Option<AuthError>, decision: Option<Decision>, protocol: Protocol },
        Checking {
            check: Check,
            requirement: Requirement,
            metrics: DecisionMetrics,
            span: Span,
            request: Option<Request<ReqBody>>,
            service: S,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Carries out what was decided: calls `service`, or rejects.
    pub(super) fn next(next: Next, req: Request<ReqBody>, service: &mut S) -> Self {
        match next {
            Next::Call(decision) => Self {
                state: State::Called {
                    future: service.call(req),
                    decision: Some(decision),
                },
            },
            Next::Reject(error, decision) => {
                Self::reject(error, decision, Protocol::of(req.headers()))
            }
        }
    }

    /// Answers `error`, in the protocol the request came in (HTTP problem or gRPC status).
    pub(super) fn reject(error: AuthError, decision: Option<Decision>, protocol: Protocol) -> Self {
        Self {
            state: State::Rejected {
                error: Some(error),
                decision,
                protocol,
            },
        }
    }

    pub(super) fn checking(
        check: Check,
        requirement: Requirement,
        metrics: DecisionMetrics,
        span: Span,
        request: Request<ReqBody>,
        service: S,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                requirement,
                metrics,
                span,
                request: Some(request),
                service,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Called { future, decision } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(decision) = decision.take() {
                        response.extensions_mut().insert(decision);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Rejected {
                    error,
                    decision,
                    protocol,
                } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let mut response = protocol.render(error);
                    if let Some(decision) = decision.take() {
                        response.extensions_mut().insert(decision);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Checking {
                    check,
                    requirement,
                    metrics,
                    span,
                    request,
                    service,
                } => {
                    let looked_up = ready!(check.as_mut().poll(cx));
                    let request = request
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = span.in_scope(|| {
                        decide::after_lookup(looked_up, requirement, metrics, &request)
                    });
                    let state = Self::next(next, request, service).state;
                    this.state.set(state);
                }
            }
        }
    }
}
