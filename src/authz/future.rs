//! [`ResponseFuture`] of [`RequirePermission`](super::RequirePermission).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use pin_project_lite::pin_project;

use crate::error::AuthError;

pin_project! {
    /// Response future of [`RequirePermission`](super::RequirePermission).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Rejected { error: Option<AuthError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn call(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn reject(error: AuthError) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx),
            StateProj::Rejected { error } => {
                let error = error
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(error.into_http_response()))
            }
        }
    }
}
