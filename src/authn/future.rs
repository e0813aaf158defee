//! [`ResponseFuture`] of [`JwtAuth`](super::JwtAuth).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::claims::Claims;
use crate::error::{AuthError, Protocol};

pub(super) type Verification = Pin<Box<dyn Future<Output = Result<Claims, AuthError>> + Send>>;

pin_project! {
    /// Response future of [`JwtAuth`](super::JwtAuth).
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
        Called { #[pin] future: S::Future },
        Rejected { error: Option<AuthError>, protocol: Protocol },
        // Boxed: a key fetch is rare, and a request and a service inline would make every
        // response future that much larger to move (axum moves it several times a request).
        Verifying { waiting: Box<Waiting<S, ReqBody>> },
    }
}

/// A request waiting for its token's key.
struct Waiting<S, ReqBody> {
    verify: Verification,
    request: Option<Request<ReqBody>>,
    service: S,
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn call(future: S::Future) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    /// Answers `error`, in the protocol the request came in (HTTP problem or gRPC status).
    pub(crate) fn reject(error: AuthError, protocol: Protocol) -> Self {
        Self {
            state: State::Rejected {
                error: Some(error),
                protocol,
            },
        }
    }

    pub(crate) fn verifying(verify: Verification, request: Request<ReqBody>, service: S) -> Self {
        Self {
            state: State::Verifying {
                waiting: Box::new(Waiting {
                    verify,
                    request: Some(request),
                    service,
                }),
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
                StateProj::Called { future } => return future.poll(cx),
                StateProj::Rejected { error, protocol } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    crate::metrics::authn_rejected(error.rejection_reason());
                    return Poll::Ready(Ok(protocol.render(error)));
                }
                StateProj::Verifying { waiting } => {
                    let verified = ready!(waiting.verify.as_mut().poll(cx));
                    let mut request = waiting
                        .request
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match verified {
                        Ok(claims) => {
                            request.extensions_mut().insert(claims);
                            let future = waiting.service.call(request);
                            this.state.set(State::Called { future });
                        }
                        Err(error) => {
                            let protocol = Protocol::of(request.headers());
                            let error = Some(error);
                            this.state.set(State::Rejected { error, protocol });
                        }
                    }
                }
            }
        }
    }
}
