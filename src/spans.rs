//! The `tracing` spans of authentication and authorization, made in one place.
//!
//! | span (target) | made by | fields |
//! | --- | --- | --- |
//! | `claimcheck.authenticate` (`claimcheck::authn`) | each request through [`JwtAuthLayer`](crate::JwtAuthLayer) | `outcome`: `ok`, `anonymous` (optional layer, no credentials), or the rejection's reason (`missing_credentials`, `invalid_token`, `expired_token`, `locked_out`, `unavailable`, …) |
//! | `claimcheck.authorize` (`claimcheck::authz`) | each decision of a requirement layer or a handler's [`check`](crate::authz::RequirePermissionLayer::check) | `requirement`, then as the decision event: `decision`, `provenance`, `age_ms`, `subject` |
//!
//! Both are at `debug`, as tower-http's `TraceLayer` makes its spans, and are children of the
//! span current when the request reaches the layer (the request's, under `TraceLayer`), so a
//! `tracing-opentelemetry` subscriber gets a trace tree: request → authenticate, authorize.
//! A strict decision's span covers its live lookup. The names are dotted, as OpenTelemetry
//! names spans. With no subscriber, or one that leaves `claimcheck` at `info`, a span costs a
//! level check.

use tracing::Span;
use tracing::field::Empty;

use crate::error::AuthError;
use crate::requirement::Requirement;

/// A new `claimcheck.authenticate` span, its outcome to be recorded.
#[inline]
pub(crate) fn authenticate() -> Span {
    tracing::debug_span!(target: "claimcheck::authn", "claimcheck.authenticate", outcome = Empty)
}

/// Records how an authentication ended: `Ok(())`, anonymous (`Ok` with `anonymous`), or the
/// rejection.
#[inline]
pub(crate) fn authenticated(span: &Span, result: Result<Outcome, &AuthError>) {
    if span.is_disabled() {
        return;
    }
    let outcome = match result {
        Ok(Outcome::Verified) => "ok",
        Ok(Outcome::Anonymous) => "anonymous",
        Err(error) => error.rejection_reason(),
    };
    span.record("outcome", outcome);
}

/// How an authentication that did not refuse ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// A verified token.
    Verified,
    /// No credentials, through the optional layer.
    Anonymous,
}

/// The name of the authorization span.
const AUTHORIZE: &str = "claimcheck.authorize";

/// A new `claimcheck.authorize` span for `requirement`; [`Decision`](crate::decision::Decision)'s
/// trace records the rest while it is entered.
#[inline]
pub(crate) fn authorize(requirement: &Requirement) -> Span {
    tracing::debug_span!(
        target: "claimcheck::authz",
        AUTHORIZE,
        requirement = %requirement,
        decision = Empty,
        provenance = Empty,
        age_ms = Empty,
        subject = Empty,
    )
}

/// Records a decision on the current span, if that is its `claimcheck.authorize` span: when
/// that span is filtered out, the current one is the application's, whose fields are not ours.
pub(crate) fn decided(decision: &str, provenance: &str, age_ms: Option<u64>, subject: &str) {
    let span = Span::current();
    let ours = span
        .metadata()
        .is_some_and(|meta| meta.name() == AUTHORIZE && meta.target() == "claimcheck::authz");
    if ours {
        span.record("decision", decision);
        span.record("provenance", provenance);
        span.record("age_ms", age_ms);
        span.record("subject", subject);
    }
}
