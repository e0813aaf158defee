//! [`JwtAuth`].

use std::task::{Context, Poll};

use tracing::{Instrument, Span};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
use super::future::Verification;
use crate::bearer;
use crate::changes::ChangeLog;
use crate::claims::{Anonymous, Claims};
use crate::error::{AuthError, AuthErrorKind, Protocol};
use crate::jwt::{Step, Verifier};
use crate::spans::{self, Outcome};

/// Verifies the bearer token, then calls the inner service with [`Claims`] in the request
/// extensions. See [`authn`](crate::authn).
#[derive(Debug, Clone)]
pub struct JwtAuth<S> {
    inner: S,
    verifier: Verifier,
    log: Option<ChangeLog>,
    optional: bool,
}

impl<S> JwtAuth<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, verifier: Verifier) -> Self {
        Self {
            inner,
            verifier,
            log: None,
            optional: false,
        }
    }

    /// Also refuses tokens locked out through `log`.
    pub fn with_change_log(self, log: Option<ChangeLog>) -> Self {
        Self { log, ..self }
    }

    /// Lets requests without bearer credentials through as anonymous (see
    /// [`JwtAuthLayer::optional`](super::JwtAuthLayer::optional)).
    pub fn optional(self) -> Self {
        Self {
            optional: true,
            ..self
        }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let span = spans::authenticate();
        let verdict = span.in_scope(|| self.authenticate(&mut req, &span));
        // The inner service is called outside the span: it is the handler's, not ours.
        match verdict {
            Verdict::Pass => ResponseFuture::call(self.inner.call(req)),
            Verdict::Reject(error) => ResponseFuture::reject(error, Protocol::of(req.headers())),
            Verdict::Verify(verify) => {
                // Take the service that was driven to readiness; leave a fresh clone behind.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::verifying(verify, req, ready)
            }
        }
    }
}

/// What [`JwtAuth::authenticate`] made of a request.
enum Verdict {
    /// Claims inserted (or the caller is anonymous): call the inner service.
    Pass,
    Reject(AuthError),
    /// The token's key must be fetched first.
    Verify(Verification),
}

impl<S> JwtAuth<S> {
    /// Verifies `req`'s credentials, inserting its [`Claims`] (or [`Anonymous`]); the outcome
    /// is recorded in `span`.
    fn authenticate<B>(&self, req: &mut Request<B>, span: &Span) -> Verdict {
        let token = match bearer::extract(req.headers()) {
            Ok(token) => token,
            Err(error) if self.optional && error.kind() == AuthErrorKind::MissingCredentials => {
                // Anonymous: no claims from outside may pass for ours.
                req.extensions_mut().remove::<Claims>();
                req.extensions_mut().insert(Anonymous);
                spans::authenticated(span, Ok(Outcome::Anonymous));
                return Verdict::Pass;
            }
            Err(error) => return reject(span, error),
        };
        let step = match self.verifier.cached(token) {
            // Byte for byte a token that passed the header checks and verification before.
            Some(claims) => Step::Done(Ok(claims)),
            None => match bearer::check(token, self.verifier.max_token_bytes()) {
                Ok(token) => self.verifier.try_verify_uncached(token),
                Err(error) => Step::Done(Err(error)),
            },
        };
        // Every path below either rejects or inserts this layer's `Claims`, which replaces any
        // that came from outside: the inner service never sees those.
        match step {
            Step::Done(Ok(claims)) if locked_out(self.log.as_ref(), &claims) => {
                reject(span, AuthError::locked_out())
            }
            Step::Done(Ok(claims)) => {
                req.extensions_mut().insert(claims);
                spans::authenticated(span, Ok(Outcome::Verified));
                Verdict::Pass
            }
            Step::Done(Err(error)) => reject(span, error),
            Step::NeedsKey => {
                // `try_verify_uncached` read it as text before it asked for the key.
                let token = String::from_utf8_lossy(token).into_owned();
                let verifier = self.verifier.clone();
                let log = self.log.clone();
                let recorded = span.clone();
                let verify = async move {
                    let verified = match verifier.verify(&token).await {
                        Ok(claims) if locked_out(log.as_ref(), &claims) => {
                            Err(AuthError::locked_out())
                        }
                        verified => verified,
                    };
                    let outcome = verified.as_ref().map(|_| Outcome::Verified);
                    spans::authenticated(&recorded, outcome);
                    verified
                };
                Verdict::Verify(Box::pin(verify.instrument(span.clone())))
            }
        }
    }
}

/// A rejection, recorded in `span`.
fn reject(span: &Span, error: AuthError) -> Verdict {
    spans::authenticated(span, Err(&error));
    Verdict::Reject(error)
}

/// Whether the change log locked these claims out (the one place both paths ask).
fn locked_out(log: Option<&ChangeLog>, claims: &Claims) -> bool {
    let locked = log.is_some_and(|log| log.freshness().is_locked_out(claims));
    if locked {
        tracing::debug!(target: "claimcheck::authn", "token refused: locked out");
    }
    locked
}
