//! [`JwtAuth`].

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::ResponseFuture;
use crate::bearer;
use crate::claims::Claims;
use crate::jwt::{Step, Verifier};

/// Verifies the bearer token, then calls the inner service with [`Claims`] in the request
/// extensions. See [`authn`](crate::authn).
#[derive(Debug, Clone)]
pub struct JwtAuth<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> JwtAuth<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, verifier: Verifier) -> Self {
        Self { inner, verifier }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
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
        req.extensions_mut().remove::<Claims>();
        let token = match bearer::extract(req.headers(), self.verifier.max_token_bytes()) {
            Ok(token) => token,
            Err(error) => return ResponseFuture::reject(error),
        };
        match self.verifier.try_verify(token) {
            Step::Done(Ok(claims)) => {
                req.extensions_mut().insert(claims);
                ResponseFuture::call(self.inner.call(req))
            }
            Step::Done(Err(error)) => ResponseFuture::reject(error),
            Step::NeedsKey => {
                let token = token.to_owned();
                let verifier = self.verifier.clone();
                // Take the service that was driven to readiness; leave a fresh clone behind.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let verify = Box::pin(async move { verifier.verify(&token).await });
                ResponseFuture::verifying(verify, req, ready)
            }
        }
    }
}
