//! [`JwtAuth`].

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
use crate::bearer;
use crate::changes::ChangeLog;
use crate::claims::{Anonymous, Claims};
use crate::error::{AuthError, AuthErrorKind, Protocol};
use crate::jwt::{Step, Verifier};

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
        let token = match bearer::extract(req.headers()) {
            Ok(token) => token,
            Err(error) if self.optional && error.kind() == AuthErrorKind::MissingCredentials => {
                // Anonymous: no claims from outside may pass for ours.
                req.extensions_mut().remove::<Claims>();
                req.extensions_mut().insert(Anonymous);
                return ResponseFuture::call(self.inner.call(req));
            }
            Err(error) => return ResponseFuture::reject(error, Protocol::of(req.headers())),
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
                ResponseFuture::reject(AuthError::locked_out(), Protocol::of(req.headers()))
            }
            Step::Done(Ok(claims)) => {
                req.extensions_mut().insert(claims);
                ResponseFuture::call(self.inner.call(req))
            }
            Step::Done(Err(error)) => ResponseFuture::reject(error, Protocol::of(req.headers())),
            Step::NeedsKey => {
                // `try_verify_uncached` read it as text before it asked for the key.
                let token = String::from_utf8_lossy(token).into_owned();
                let verifier = self.verifier.clone();
                let log = self.log.clone();
                // Take the service that was driven to readiness; leave a fresh clone behind.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let verify = Box::pin(async move {
                    let claims = verifier.verify(&token).await?;
                    if locked_out(log.as_ref(), &claims) {
                        return Err(AuthError::locked_out());
                    }
                    Ok(claims)
                });
                ResponseFuture::verifying(verify, req, ready)
            }
        }
    }
}

/// Whether the change log locked these claims out (the one place both paths ask).
fn locked_out(log: Option<&ChangeLog>, claims: &Claims) -> bool {
    let locked = log.is_some_and(|log| log.freshness().is_locked_out(claims));
    if locked {
        tracing::debug!(target: "claimcheck::authn", "token refused: locked out");
    }
    locked
}
