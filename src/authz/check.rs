//! Checks inside a handler: [`RequirePermissionLayer::check`] and its [`Rejection`].
//!
//! For requirements that depend on the request itself (its body, its path: "refunds above
//! 1 000 need `approve:refunds`"), a handler asks the same layer value a route would use. The
//! decision is made by the same pure functions as the layer's ([`decide`]):
//! the same mode, freshness rules, live lookup, trace event, and the same answers.

use std::fmt;

use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::RequirePermissionLayer;
use super::decide::{self, Next};
use super::mode::{Mode, Verdict};
use crate::claims::Claims;
use crate::decision::Decision;
use crate::error::AuthError;
use crate::spans;

/// What a [`check`](RequirePermissionLayer::check) answers when it does not allow: the answer
/// the route layer would have given (403 `insufficient_scope`, 401 for a token the live source
/// refused, 503 + `Retry-After` when it is unavailable, RFC 9457 body), with its
/// [`Decision`] in the response extensions. Return it from the handler (it is
/// [`IntoResponse`]), or look at it first. A gRPC handler answers it as a status:
/// [`into_grpc_response`](Self::into_grpc_response), or with the feature `tonic`,
/// `tonic::Status::from` (which `?` calls).
#[derive(Debug)]
pub struct Rejection {
    error: AuthError,
    decision: Option<Decision>,
}

impl Rejection {
    /// The error the answer is made of.
    pub fn error(&self) -> &AuthError {
        &self.error
    }

    /// The decision, when one was made (a live source that could not answer makes one too:
    /// outcome `unavailable`).
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The answer as a gRPC trailers-only response (`PERMISSION_DENIED`, `UNAUTHENTICATED`,
    /// `UNAVAILABLE` with `RetryInfo`; see
    /// [`AuthError::into_grpc_response`]), with the decision in its extensions: what the route
    /// layer answers a gRPC request.
    pub fn into_grpc_response<B: Default>(self) -> http::Response<B> {
        let mut response = self.error.into_grpc_response();
        if let Some(decision) = self.decision {
            response.extensions_mut().insert(decision);
        }
        response
    }
}

/// For tonic handlers: `auth.strict(P).check(&claims).await?` answers the status the route
/// layer would (`RetryInfo` included). A `tonic::Status` has no extensions: the decision is
/// not carried (it was traced when made).
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl From<Rejection> for tonic::Status {
    fn from(rejection: Rejection) -> Self {
        rejection.error.into()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for Rejection {}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(decision) = self.decision {
            response.extensions_mut().insert(decision);
        }
        response
    }
}

/// What a handler gets of the layer's next step: allowed, or the answer it would give.
fn settle(next: Next) -> Result<Decision, Rejection> {
    match next {
        Next::Call(decision) => Ok(decision),
        Next::Reject(error, decision) => Err(Rejection { error, decision }),
    }
}

impl<M: Mode> RequirePermissionLayer<M> {
    /// Decides whether `claims` meet this layer's requirement, exactly as the layer decides
    /// for a route (token-trusted or strict, the same freshness rules and live lookup, the
    /// same trace event), for a handler whose requirement depends on the request.
    ///
    /// `Ok` carries the allowing [`Decision`]: return it with the response (it is
    /// `IntoResponseParts`) to put it in the extensions, as the layer does. `Err` is the
    /// layer's answer, ready to return with `?`.
    ///
    /// ```no_run
    /// use axum::Json;
    /// use axum::extract::State;
    /// use claimcheck::authz::Rejection;
    /// use claimcheck::decision::Decision;
    /// use claimcheck::{Auth, Claims, Permission};
    /// use serde_json::Value;
    ///
    /// const APPROVE_REFUNDS: Permission = Permission::from_static("approve:refunds");
    ///
    /// async fn refund(
    ///     State(auth): State<Auth>,
    ///     claims: Claims,
    ///     body: Json<Value>,
    /// ) -> Result<(Option<Decision>, &'static str), Rejection> {
    ///     let large = body["amount"].as_u64().unwrap_or(0) > 1_000;
    ///     // Large refunds need a live approval permission; small ones pass as they are.
    ///     let decision = match large {
    ///         true => Some(auth.strict(APPROVE_REFUNDS).check(&claims).await?),
    ///         false => None,
    ///     };
    ///     Ok((decision, "refunded"))
    /// }
    /// ```
    pub async fn check(&self, claims: &Claims) -> Result<Decision, Rejection> {
        let span = spans::authorize(&self.rule.requirement);
        self.decide(claims).instrument(span).await
    }

    /// [`check`](Self::check), in its span.
    async fn decide(&self, claims: &Claims) -> Result<Decision, Rejection> {
        let who = || decide::caller(claims);
        let rule = &*self.rule;
        let decision = match rule.mode.verdict(claims, &rule.requirement, rule.needs) {
            Verdict::Decided(decision) => decision,
            Verdict::Live(live, query, priority) => {
                let looked_up = match live.peek_held(&query, rule.needs) {
                    Some(answer) => answer,
                    None => live.held(&query, rule.needs, priority).await,
                };
                match looked_up {
                    Ok(held) => decide::from_held(&held, claims, &rule.requirement),
                    Err(error) => {
                        return settle(decide::failed_for(
                            &error,
                            &rule.requirement,
                            &rule.metrics,
                            who,
                        ));
                    }
                }
            }
        };
        settle(decide::next_for(decision, &rule.metrics, who))
    }
}
