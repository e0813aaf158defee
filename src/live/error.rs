//! [`SourceError`]: why a [`PermissionSource`](super::PermissionSource) gave no permissions, and
//! whose fault that is.
//!
//! The blame decides everything that follows:
//!
//! | blame | answer | breaker ([`Backoff`](super::Backoff)) | shared with coalesced callers | remembered |
//! | --- | --- | --- | --- | --- |
//! | the upstream failed ([`SourceError::unavailable`]) | 503 + `Retry-After` | counted | yes | no |
//! | the request could not even be made (an id that cannot be put in a URL) | 503 | not counted | yes | no |
//! | the upstream refused the caller's own credentials ([`SourceError::refused`]) | 401 `invalid_token` | not counted | never (callers with another token ask for themselves) | yes, that token, briefly |
//! | the caller's token expired (inside the verifier's leeway, never forwarded) | 401 `invalid_token`, "expired" | not counted | never | no |
//! | the source does not provide what the route needs (roles, feature flags) | 500, logged at `error` | not counted | yes | no |

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::error::{AuthError, AuthErrorKind};

/// A [`PermissionSource`](super::PermissionSource) could not answer for this caller.
///
/// Strict routes answer 503 with `Retry-After` (the source's suggestion when it has one) when the
/// source is [unavailable](Self::unavailable), and 401 `invalid_token` when it
/// [refused](Self::refused) the caller's own token. Errors are never cached as answers.
#[derive(Debug, Clone)]
pub struct SourceError {
    reason: Cow<'static, str>,
    retry_after: Option<Duration>,
    blame: Blame,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// The upstream failed: counts towards the breaker.
    Upstream,
    /// Nothing was sent: the request could not be made.
    NotSent,
    /// The upstream refused the credentials the caller presented.
    Caller,
    /// The caller's token is past `exp`: not forwarded.
    Expired,
    /// The source does not provide what was asked: a server misconfiguration.
    Unsupported,
}

/// How an upstream call counts for the [`Backoff`](super::Backoff) breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The upstream answered usefully.
    Healthy,
    /// The upstream failed, asking (perhaps) for this pause.
    Failed(Option<Duration>),
    /// Says nothing about the upstream's health (a caller's own refusal, a request never sent).
    Unjudged,
}

impl SourceError {
    /// The source is unavailable, for `reason` (logged; never shown to clients). Counts as an
    /// upstream failure.
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            retry_after: None,
            blame: Blame::Upstream,
        }
    }

    /// The source refused the caller's own credentials (Kinde's Account API answering 401/403
    /// to the caller's token, say): the caller gets 401 `invalid_token`; the source is not
    /// counted as failing, the refusal is not handed to callers with other tokens, and the
    /// refused token is answered from memory for a short while.
    pub fn refused(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            retry_after: None,
            blame: Blame::Caller,
        }
    }

    /// The caller's token is past its `exp` (accepted by the verifier's leeway): it is not
    /// forwarded upstream.
    pub(crate) fn expired() -> Self {
        Self {
            reason: "token expired: not forwarded".into(),
            retry_after: None,
            blame: Blame::Expired,
        }
    }

    /// The source does not provide `what` (roles, feature flags): the route answers 500.
    pub(crate) fn unsupported(what: &'static str) -> Self {
        Self {
            reason: Cow::Owned(format!("this permission source does not provide {what}")),
            retry_after: None,
            blame: Blame::Unsupported,
        }
    }

    /// The source serves the Kinde business at `base`, and a token of `issuer` reached it (a
    /// route behind several issuers): nothing is sent (the caller's token is never shown to
    /// another issuer); the route answers 500, as for any misconfiguration.
    pub(crate) fn other_issuer(issuer: &str, base: &str) -> Self {
        Self {
            reason: Cow::Owned(format!(
                "a token of the issuer {issuer:?} reached the live source of {base:?}:                  route only that issuer's tokens to it"
            )),
            retry_after: None,
            blame: Blame::Unsupported,
        }
    }

    /// Whether the source does not provide what was asked (a misconfiguration).
    pub(crate) fn is_unsupported(&self) -> bool {
        self.blame == Blame::Unsupported
    }

    /// Marks an error the upstream is not to blame for: nothing was sent.
    pub(crate) fn not_sent(mut self) -> Self {
        self.blame = Blame::NotSent;
        self
    }

    /// Suggests when to try again (from a 429's `RateLimit-Reset`, say).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The suggested delay, if the source gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether the caller's own credentials were refused (or had expired), as opposed to the
    /// source being unavailable.
    pub fn is_refused(&self) -> bool {
        matches!(self.blame, Blame::Caller | Blame::Expired)
    }

    /// Whether the upstream itself refused the caller's credentials (so the refusal is worth
    /// remembering).
    pub(crate) fn is_upstream_refusal(&self) -> bool {
        self.blame == Blame::Caller
    }

    pub(crate) fn verdict(&self) -> Verdict {
        match self.blame {
            Blame::Upstream => Verdict::Failed(self.retry_after),
            Blame::NotSent | Blame::Caller | Blame::Expired | Blame::Unsupported => {
                Verdict::Unjudged
            }
        }
    }

    /// The rejection a strict route answers with.
    pub(crate) fn to_auth_error(&self) -> AuthError {
        match self.blame {
            Blame::Caller => AuthError::new(AuthErrorKind::InvalidToken),
            Blame::Expired => AuthError::new(AuthErrorKind::ExpiredToken),
            Blame::Unsupported => AuthError::new(AuthErrorKind::Misconfigured),
            Blame::Upstream | Blame::NotSent => AuthError::unavailable(
                self.retry_after
                    .unwrap_or(crate::error::DEFAULT_RETRY_AFTER),
            ),
        }
    }
}

impl From<crate::upstream::Failure> for SourceError {
    fn from(failure: crate::upstream::Failure) -> Self {
        Self {
            reason: failure.reason.into(),
            retry_after: failure.retry_after,
            blame: Blame::Upstream,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_refused() {
            write!(f, "caller's credentials refused: {}", self.reason)
        } else if self.is_unsupported() {
            f.write_str(&self.reason)
        } else {
            write!(f, "permission source unavailable: {}", self.reason)
        }
    }
}

impl std::error::Error for SourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_decides_the_answer_and_the_breaker() {
        let down = SourceError::unavailable("500").with_retry_after(Duration::from_secs(7));
        assert_eq!(
            down.verdict(),
            Verdict::Failed(Some(Duration::from_secs(7)))
        );
        assert_eq!(down.to_auth_error().status(), 503);
        assert_eq!(
            down.to_auth_error().retry_after(),
            Some(Duration::from_secs(7))
        );
        assert!(!down.is_refused());

        let unsent = SourceError::unavailable("bad id").not_sent();
        assert_eq!(unsent.verdict(), Verdict::Unjudged);
        assert_eq!(unsent.to_auth_error().status(), 503);

        let refused = SourceError::refused("403");
        assert_eq!(refused.verdict(), Verdict::Unjudged);
        assert!(refused.is_refused() && refused.is_upstream_refusal());
        assert_eq!(refused.to_auth_error().kind(), AuthErrorKind::InvalidToken);

        let expired = SourceError::expired();
        assert_eq!(expired.verdict(), Verdict::Unjudged);
        assert!(expired.is_refused() && !expired.is_upstream_refusal());
        assert_eq!(expired.to_auth_error().kind(), AuthErrorKind::ExpiredToken);

        let unsupported = SourceError::unsupported("roles");
        assert_eq!(unsupported.verdict(), Verdict::Unjudged);
        assert_eq!(unsupported.to_auth_error().status(), 500);
        assert_eq!(
            unsupported.to_string(),
            "this permission source does not provide roles"
        );
    }
}
