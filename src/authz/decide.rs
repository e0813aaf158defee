//! The decisions of a permission layer, as pure functions: claims or a live answer to a
//! [`Decision`], and a decision (or a failed lookup) to what happens next. The service and its
//! response future only carry them out.

use http::Request;

use crate::claims::Claims;
use crate::decision::{Age, Decision, Outcome, Provenance};
use crate::error::AuthError;
use crate::live::{Lookup, SourceError};
use crate::permission::Permission;

/// What a request gets once decided.
pub(super) enum Next {
    /// Call the inner service; put the decision in the response.
    Call(Decision),
    /// Answer `error` (and the decision, when there is one) without calling it.
    Reject(AuthError, Option<Decision>),
}

/// The verdict of the token's claims (`permissions`, or for machines `scp`).
pub(super) fn from_token(allowed: bool, claims: &Claims, permission: &Permission) -> Decision {
    let outcome = if allowed {
        Outcome::Allow
    } else {
        Outcome::Deny
    };
    let age = claims.issued_at().map_or(Age::Unknown, Age::IssuedAt);
    Decision::new(outcome, permission.clone(), Provenance::Token, age)
}

/// A machine token's scopes decide.
pub(super) fn from_scopes(claims: &Claims, permission: &Permission) -> Decision {
    let allowed = claims.scopes().iter().any(|s| s == permission.as_str());
    from_token(allowed, claims, permission)
}

/// The decision a live answer makes.
pub(super) fn from_lookup(lookup: &Lookup, permission: &Permission) -> Decision {
    let outcome = if lookup.permissions.contains(permission.as_str()) {
        Outcome::Allow
    } else {
        Outcome::Deny
    };
    Decision::new(
        outcome,
        permission.clone(),
        lookup.provenance,
        Age::Measured(lookup.age),
    )
}

/// Allow: call. Anything else: 403 `insufficient_scope`. Traced either way.
pub(super) fn next<B>(decision: Decision, req: &Request<B>) -> Next {
    next_for(decision, || subject(req))
}

/// [`next`] for the caller `who` names (read only when the decision is traced).
pub(super) fn next_for<'a>(decision: Decision, who: impl FnOnce() -> &'a str) -> Next {
    decision.trace(who);
    match decision.outcome() {
        Outcome::Allow => Next::Call(decision),
        _ => {
            let error = AuthError::insufficient_scope(decision.permission().as_str());
            Next::Reject(error, Some(decision))
        }
    }
}

/// What a live lookup's result makes of the request.
pub(super) fn after_lookup<B>(
    looked_up: Result<Lookup, SourceError>,
    permission: &Permission,
    req: &Request<B>,
) -> Next {
    match looked_up {
        Ok(lookup) => next(from_lookup(&lookup, permission), req),
        Err(error) => failed(&error, permission, req),
    }
}

/// The answer when the live source gave no permissions: 503 when it is unavailable, 401 when it
/// refused the caller's token.
pub(super) fn failed<B>(error: &SourceError, permission: &Permission, req: &Request<B>) -> Next {
    failed_for(error, permission, || subject(req))
}

/// [`failed`] for the caller `who` names.
pub(super) fn failed_for<'a>(
    error: &SourceError,
    permission: &Permission,
    who: impl FnOnce() -> &'a str,
) -> Next {
    let outcome = if error.is_refused() {
        Outcome::Refused
    } else {
        Outcome::Unavailable
    };
    let decision = Decision::new(outcome, permission.clone(), Provenance::Live, Age::Unknown);
    decision.trace(who);
    if error.is_refused() {
        tracing::debug!(
            target: "claimcheck::authz",
            reason = error.reason(),
            "live permissions refused the caller's token"
        );
    } else {
        tracing::warn!(
            target: "claimcheck::authz",
            reason = error.reason(),
            "live permissions unavailable: failing closed"
        );
    }
    Next::Reject(error.to_auth_error(), Some(decision))
}

/// Who the request is from, for logs: `sub`, or `azp` for machine tokens.
fn subject<B>(req: &Request<B>) -> &str {
    req.extensions().get::<Claims>().map_or("", caller)
}

/// Who the claims are of, for logs: `sub`, or `azp` for machine tokens.
pub(super) fn caller(claims: &Claims) -> &str {
    claims.subject().or(claims.authorized_party()).unwrap_or("")
}
