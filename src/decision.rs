//! [`Decision`]: what an authorization layer decided, and from which data.
//!
//! Every decision of a [`RequirePermissionLayer`](crate::authz::RequirePermissionLayer) is
//! emitted as a `tracing` event (target `claimcheck::authz`, fields `decision`, `requirement`,
//! `provenance`, `age_ms`, `subject`) inside the decision's `claimcheck.authorize` span (which
//! records the same fields), and inserted into the response extensions, allowed or not:
//!
//! ```
//! # async fn demo(response: http::Response<axum::body::Body>) {
//! use claimcheck::decision::{Decision, Outcome};
//!
//! if let Some(decision) = response.extensions().get::<Decision>() {
//!     if decision.outcome() == Outcome::Unavailable {
//!         eprintln!("{} could not be checked ({})", decision.requirement(), decision.provenance());
//!     }
//! }
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use crate::requirement::Requirement;

/// The verdict.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler ran.
    Allow,
    /// 403: the caller does not meet the requirement.
    Deny,
    /// 503: the data needed to decide could not be had; the handler did not run.
    Unavailable,
    /// 401: the live source refused the caller's token (it is not, or no longer, valid at the
    /// issuer); the handler did not run.
    Refused,
}

impl Outcome {
    /// `allow`, `deny`, `unavailable` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
        }
    }
}

/// The old name of [`Provenance`].
#[deprecated(since = "0.3.0", note = "use `claimcheck::decision::Provenance`")]
pub type Source = Provenance;

/// Where the permissions a decision used came from: its provenance. ("Source" is kept for the
/// [`PermissionSource`](crate::live::PermissionSource)s the live permissions come from.)
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// The verified token's claims (`permissions`, or `scp` for machine tokens).
    Token,
    /// The live-permissions cache, filled by an earlier upstream call.
    LiveCache,
    /// An upstream call this request started.
    Live,
    /// An upstream call another request had started, which this one waited for.
    Coalesced,
}

impl Provenance {
    /// `token`, `live-cache`, `live` or `coalesced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::LiveCache => "live-cache",
            Self::Live => "live",
            Self::Coalesced => "coalesced",
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One authorization decision. Found in the response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    outcome: Outcome,
    requirement: Requirement,
    provenance: Provenance,
    age: Age,
}

/// How old the data was, kept in the cheapest form to record: a token decision stores `iat`
/// and turns it into an age only when asked (no clock read on the token-trusted path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Age {
    Unknown,
    Measured(Duration),
    IssuedAt(i64),
}

impl Decision {
    pub(crate) fn new(
        outcome: Outcome,
        requirement: Requirement,
        provenance: Provenance,
        age: Age,
    ) -> Self {
        Self {
            outcome,
            requirement,
            provenance,
            age,
        }
    }

    /// Allow, deny, unavailable or refused.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The requirement the route (or the handler's check) enforced.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    /// Where the permissions came from (or, when unavailable, where they were sought).
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// The old name of [`provenance`](Self::provenance).
    #[deprecated(since = "0.3.0", note = "use `Decision::provenance`")]
    pub fn source(&self) -> Provenance {
        self.provenance
    }

    /// How old the data was: time since the token's `iat` for [`Provenance::Token`], since the
    /// upstream answered for the live sources. `None` when unknown or unavailable.
    pub fn age(&self) -> Option<Duration> {
        match self.age {
            Age::Unknown => None,
            Age::Measured(age) => Some(age),
            Age::IssuedAt(iat) => {
                let now = crate::clock::now_secs() as i64;
                Some(Duration::from_secs(now.saturating_sub(iat).max(0) as u64))
            }
        }
    }

    /// Emits the decision as a `tracing` event (`subject` is only called when it is recorded).
    pub(crate) fn trace<'a>(&self, subject: impl FnOnce() -> &'a str) {
        let enabled = match self.outcome {
            Outcome::Unavailable => {
                tracing::enabled!(target: "claimcheck::authz", tracing::Level::WARN)
            }
            _ => tracing::enabled!(target: "claimcheck::authz", tracing::Level::DEBUG),
        };
        if !enabled {
            return;
        }
        let subject = subject();
        let age_ms = self.age().map(|age| age.as_millis() as u64);
        let (decision, requirement, provenance) = (
            self.outcome.as_str(),
            tracing::field::display(&self.requirement),
            self.provenance.as_str(),
        );
        crate::spans::decided(decision, provenance, age_ms, subject);
        match self.outcome {
            Outcome::Unavailable => tracing::warn!(
                target: "claimcheck::authz",
                decision, requirement, provenance, age_ms, subject,
                "authorization decision"
            ),
            _ => tracing::debug!(
                target: "claimcheck::authz",
                decision, requirement, provenance, age_ms, subject,
                "authorization decision"
            ),
        }
    }
}

/// Returned with a handler's response (`(decision, body)`), a decision made by
/// [`RequirePermissionLayer::check`](crate::authz::RequirePermissionLayer::check) lands in the
/// response extensions, as a route layer's does.
impl axum::response::IntoResponseParts for Decision {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut parts: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        parts.extensions_mut().insert(self);
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_documented_ones() {
        let names: Vec<_> = [
            Provenance::Token,
            Provenance::LiveCache,
            Provenance::Live,
            Provenance::Coalesced,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(names, ["token", "live-cache", "live", "coalesced"]);
        let outcomes: Vec<_> = [
            Outcome::Allow,
            Outcome::Deny,
            Outcome::Unavailable,
            Outcome::Refused,
        ]
        .iter()
        .map(|o| o.as_str())
        .collect();
        assert_eq!(outcomes, ["allow", "deny", "unavailable", "refused"]);
    }
}
