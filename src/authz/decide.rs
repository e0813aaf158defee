//! The decisions of a requirement layer, as pure functions: claims or live facts to a
//! [`Decision`], and a decision (or a failed lookup) to what happens next. The service and its
//! response future only carry them out.

use http::Request;

use crate::claims::Claims;
use crate::decision::{Age, Decision, Outcome, Provenance};
use crate::error::{AuthError, AuthErrorKind};
use crate::live::{Held, LiveFacts, SourceError};
use crate::metrics::DecisionMetrics;
use crate::requirement::{Requirement, TokenFacts};

/// What a request gets once decided.
pub(super) enum Next {
    /// Call the inner service; put the decision in the response.
    Call(Decision),
    /// Answer `error` (and the decision, when there is one) without calling it.
    Reject(AuthError, Option<Decision>),
}

/// The verdict of the token's claims (`permissions`, or for machines `scp`; `roles`,
/// `org_code`, `feature_flags`).
#[inline(always)]
pub(super) fn from_facts(facts: &TokenFacts<'_>, requirement: &Requirement) -> Decision {
    let allowed = requirement.is_met(facts);
    from_token(allowed, facts.claims(), requirement)
}

/// A deny by the token, whatever it holds.
pub(super) fn denied(claims: &Claims, requirement: &Requirement) -> Decision {
    from_token(false, claims, requirement)
}

#[inline(always)]
fn from_token(allowed: bool, claims: &Claims, requirement: &Requirement) -> Decision {
    let outcome = if allowed {
        Outcome::Allow
    } else {
        Outcome::Deny
    };
    let age = claims.issued_at().map_or(Age::Unknown, Age::IssuedAt);
    Decision::new(outcome, requirement.clone(), Provenance::Token, age)
}

/// The decision live facts make for the caller `claims` describe.
pub(super) fn from_held(held: &Held, claims: &Claims, requirement: &Requirement) -> Decision {
    let facts = LiveFacts {
        held,
        org: claims.org_code(),
    };
    let outcome = if requirement.is_met(&facts) {
        Outcome::Allow
    } else {
        Outcome::Deny
    };
    Decision::new(
        outcome,
        requirement.clone(),
        held.provenance(),
        Age::Measured(held.age()),
    )
}

/// Allow: call. Anything else: 403 `insufficient_scope`. Traced and counted either way.
pub(super) fn next<B>(decision: Decision, metrics: &DecisionMetrics, req: &Request<B>) -> Next {
    next_for(decision, metrics, || subject(req))
}

/// [`next`] for the caller `who` names (read only when the decision is traced).
pub(super) fn next_for<'a>(
    decision: Decision,
    metrics: &DecisionMetrics,
    who: impl FnOnce() -> &'a str,
) -> Next {
    metrics.record(&decision);
    decision.trace(who);
    match decision.outcome() {
        Outcome::Allow => Next::Call(decision),
        _ => {
            let error = AuthError::unmet(decision.requirement());
            Next::Reject(error, Some(decision))
        }
    }
}

/// What a live lookup's result makes of the request.
pub(super) fn after_lookup<B>(
    looked_up: Result<Held, SourceError>,
    requirement: &Requirement,
    metrics: &DecisionMetrics,
    req: &Request<B>,
) -> Next {
    match looked_up {
        Ok(held) => {
            let claims = req.extensions().get::<Claims>();
            match claims {
                Some(claims) => next(from_held(&held, claims, requirement), metrics, req),
                // Never: the claims were there when the lookup started, and stay.
                None => Next::Reject(AuthError::new(AuthErrorKind::Misconfigured), None),
            }
        }
        Err(error) => failed(&error, requirement, metrics, req),
    }
}

/// The answer when the live source gave no facts: 503 when it is unavailable, 401 when it
/// refused the caller's token, 500 when it does not provide what the requirement names.
pub(super) fn failed<B>(
    error: &SourceError,
    requirement: &Requirement,
    metrics: &DecisionMetrics,
    req: &Request<B>,
) -> Next {
    failed_for(error, requirement, metrics, || subject(req))
}

/// [`failed`] for the caller `who` names. The source's own log line says why; the decision's
/// trace event says what it cost this request.
pub(super) fn failed_for<'a>(
    error: &SourceError,
    requirement: &Requirement,
    metrics: &DecisionMetrics,
    who: impl FnOnce() -> &'a str,
) -> Next {
    let outcome = if error.is_refused() {
        Outcome::Refused
    } else {
        Outcome::Unavailable
    };
    let decision = Decision::new(outcome, requirement.clone(), Provenance::Live, Age::Unknown);
    metrics.record(&decision);
    decision.trace(who);
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
