//! Errors and the default rejection.
//!
//! Every rejection claimcheck produces is an [`AuthError`]. It renders as a proper HTTP answer,
//! or, to a gRPC request (`content-type: application/grpc…`), as a gRPC status:
//!
//! | kind | status | `WWW-Authenticate` | gRPC status |
//! | --- | --- | --- | --- |
//! | [`AuthErrorKind::MissingCredentials`] | 401 | `Bearer` (bare, RFC 6750 §3.1) | `UNAUTHENTICATED` (16) |
//! | [`AuthErrorKind::InvalidRequest`] | 400 | `Bearer error="invalid_request", …` | `UNAUTHENTICATED` (16) |
//! | [`AuthErrorKind::InvalidToken`], [`AuthErrorKind::ExpiredToken`] | 401 | `Bearer error="invalid_token", …` | `UNAUTHENTICATED` (16) |
//! | [`AuthErrorKind::InsufficientScope`] | 403 | `Bearer error="insufficient_scope"`, with `scope="…"` when the requirement is permissions (all of them) | `PERMISSION_DENIED` (7) |
//! | [`AuthErrorKind::Unavailable`] | 503 + `Retry-After` | none | `UNAVAILABLE` (14) + `google.rpc.RetryInfo` |
//! | [`AuthErrorKind::Misconfigured`] | 500 | none | `INTERNAL` (13) |
//!
//! The HTTP body is always an RFC 9457 `application/problem+json` document. Descriptions are
//! generic per category on purpose: a client never learns which key ids exist or which check
//! failed. A 403 names what the route requires (member `requirement`, e.g. `any of
//! (read:audit, admin:all)`; `scope` too when that is a set of permissions), never what the
//! caller holds.
//!
//! A gRPC answer is *trailers-only* ([`AuthError::into_grpc_response`]): HTTP 200,
//! `content-type: application/grpc`, `grpc-status`, `grpc-message` (the problem's `detail`
//! sentence, followed for `PERMISSION_DENIED` by the requirement, percent-encoded as the gRPC
//! HTTP/2 protocol says) and an empty body. `UNAVAILABLE` also carries
//! `grpc-status-details-bin`: a `google.rpc.Status` whose one detail is a
//! `google.rpc.RetryInfo` with the `Retry-After` delay, which clients read with, e.g., tonic-types'
//! `StatusExt::get_details_retry_info`. With the feature `tonic`, `AuthError` and
//! [`Rejection`](crate::authz::Rejection) convert into the same `tonic::Status` for handlers.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

mod grpc;

pub(crate) use grpc::Protocol;

/// Media type of RFC 9457 problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, coarsely. Match on it to customise answers; new kinds may be added.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorKind {
    /// No `Authorization: Bearer` credentials at all.
    MissingCredentials,
    /// The `Authorization` header is malformed (for example sent twice).
    InvalidRequest,
    /// The token is malformed, forged, for another audience or issuer, or otherwise unacceptable.
    InvalidToken,
    /// The token was valid once but its `exp` has passed.
    ExpiredToken,
    /// The token is valid but its holder does not meet the route's requirement.
    InsufficientScope,
    /// An upstream we depend on (JWKS, permissions API) is unavailable: fail closed.
    Unavailable,
    /// The application is wired wrongly (for example a permission layer without the
    /// authentication layer in front of it).
    Misconfigured,
}

impl AuthErrorKind {
    /// The HTTP status this kind answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidToken | Self::ExpiredToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code this kind answers a gRPC request with: `UNAUTHENTICATED` (16) for
    /// missing, malformed, invalid and expired credentials, `PERMISSION_DENIED` (7),
    /// `UNAVAILABLE` (14), `INTERNAL` (13). As the `i32` of `google.rpc.Status.code`
    /// (`tonic::Code::from(code)` reads it).
    pub fn grpc_code(self) -> i32 {
        match self {
            Self::MissingCredentials
            | Self::InvalidRequest
            | Self::InvalidToken
            | Self::ExpiredToken => 16,
            Self::InsufficientScope => 7,
            Self::Unavailable => 14,
            Self::Misconfigured => 13,
        }
    }

    /// The RFC 6750 error code, where there is one.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest => Some("invalid_request"),
            Self::InvalidToken | Self::ExpiredToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::MissingCredentials | Self::Unavailable | Self::Misconfigured => None,
        }
    }

    /// The one generic, client-safe description of this category.
    pub fn description(self) -> &'static str {
        match self {
            Self::MissingCredentials => "Bearer credentials are required",
            Self::InvalidRequest => "The Authorization header is malformed",
            Self::InvalidToken => "The access token is invalid",
            Self::ExpiredToken => "The access token expired",
            Self::InsufficientScope => "The caller does not meet this route's requirement",
            Self::Unavailable => "An upstream authorization service is unavailable",
            Self::Misconfigured => "Authorization is misconfigured on this server",
        }
    }
}

/// A rejection. Opaque on purpose: inspect it with [`AuthError::kind`].
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    scope: Option<Box<str>>,
    requirement: Option<Box<str>>,
    retry_after: Option<Duration>,
    /// A token the change log locked out (an `InvalidToken` to the caller, counted apart).
    locked_out: bool,
}

/// Default `Retry-After` when nothing better is known.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

impl AuthError {
    /// An error of this kind.
    pub fn new(kind: AuthErrorKind) -> Self {
        let retry_after = (kind == AuthErrorKind::Unavailable).then_some(DEFAULT_RETRY_AFTER);
        Self {
            kind,
            scope: None,
            requirement: None,
            retry_after,
            locked_out: false,
        }
    }

    /// A 401 for a token the change log locked out: to the caller, an invalid token.
    pub(crate) fn locked_out() -> Self {
        Self {
            locked_out: true,
            ..Self::new(AuthErrorKind::InvalidToken)
        }
    }

    /// Why the authentication layer refused, for its metric: the kind in snake case, or
    /// `locked_out`.
    pub(crate) fn rejection_reason(&self) -> &'static str {
        if self.locked_out {
            return "locked_out";
        }
        match self.kind {
            AuthErrorKind::MissingCredentials => "missing_credentials",
            AuthErrorKind::InvalidRequest => "invalid_request",
            AuthErrorKind::InvalidToken => "invalid_token",
            AuthErrorKind::ExpiredToken => "expired_token",
            AuthErrorKind::InsufficientScope => "insufficient_scope",
            AuthErrorKind::Unavailable => "unavailable",
            AuthErrorKind::Misconfigured => "misconfigured",
        }
    }

    /// A 403 naming the permission the route requires.
    pub fn insufficient_scope(permission: &str) -> Self {
        Self {
            scope: Some(permission.into()),
            requirement: Some(permission.into()),
            ..Self::new(AuthErrorKind::InsufficientScope)
        }
    }

    /// A 403 naming the requirement the caller does not meet (and its `scope`, when it has
    /// one: see [`Requirement::scope`](crate::Requirement::scope)).
    pub fn unmet(requirement: &crate::Requirement) -> Self {
        Self {
            scope: requirement.scope().map(String::into_boxed_str),
            requirement: Some(requirement.to_string().into_boxed_str()),
            ..Self::new(AuthErrorKind::InsufficientScope)
        }
    }

    /// A 503 advising the client to retry after `retry_after` (rounded up to whole seconds).
    pub fn unavailable(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(AuthErrorKind::Unavailable)
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The HTTP status of this rejection.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The `Retry-After` this rejection advises, for [`AuthErrorKind::Unavailable`].
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn www_authenticate(&self) -> Option<String> {
        let code = match self.kind {
            AuthErrorKind::MissingCredentials => return Some("Bearer".to_owned()),
            kind => kind.code()?,
        };
        let mut value = format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            self.kind.description()
        );
        if let Some(scope) = &self.scope {
            // Permission names are validated to a quote-free alphabet; see `Permission`.
            value.push_str(&format!(", scope=\"{scope}\""));
        }
        Some(value)
    }

    /// Renders the rejection for any body type that can be built from bytes
    /// (`axum::body::Body`, `http_body_util::Full<Bytes>`, …).
    pub fn into_http_response<B: From<Bytes>>(self) -> Response<B> {
        let mut extra = serde_json::Map::new();
        if let Some(code) = self.kind.code() {
            extra.insert("error".into(), code.into());
        }
        if let Some(scope) = &self.scope {
            extra.insert("scope".into(), scope.as_ref().into());
        }
        if let Some(requirement) = &self.requirement {
            extra.insert("requirement".into(), requirement.as_ref().into());
        }
        let mut response = problem(
            self.status(),
            self.kind.description(),
            extra,
            self.retry_after,
        );
        if let Some(Ok(value)) = self.www_authenticate().map(HeaderValue::try_from) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// Renders the rejection as a gRPC *trailers-only* answer, as the layers do for a request
    /// whose `content-type` is `application/grpc…`: HTTP 200, `content-type: application/grpc`,
    /// `grpc-status` ([`AuthErrorKind::grpc_code`]), `grpc-message` (percent-encoded), for
    /// [`AuthErrorKind::Unavailable`] `grpc-status-details-bin` (a `google.rpc.Status` carrying
    /// a `google.rpc.RetryInfo` with [`retry_after`](Self::retry_after) in whole seconds, rounded
    /// up as `Retry-After` is), and an empty body: any body type with an empty [`Default`]
    /// (`tonic::body::Body`, `axum::body::Body`, …).
    pub fn into_grpc_response<B: Default>(self) -> Response<B> {
        grpc::trailers_only(&self).map(|()| B::default())
    }
}

/// An RFC 9457 `application/problem+json` answer (`no-store`): `type`, `title`, `status`,
/// `detail` and `extra` members, and `Retry-After` in whole seconds (rounded up) when given.
pub(crate) fn problem<B: From<Bytes>>(
    status: StatusCode,
    detail: &str,
    extra: serde_json::Map<String, serde_json::Value>,
    retry_after: Option<Duration>,
) -> Response<B> {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(members) = body.as_object_mut() {
        members.extend(extra);
    }
    let mut response = Response::new(B::from(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(after) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(whole_seconds(after)));
    }
    response
}

/// A delay as `Retry-After` says it: whole seconds, rounded up, at least one.
pub(crate) fn whole_seconds(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("scope", &self.scope)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())
    }
}

impl std::error::Error for AuthError {}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self::new(kind)
    }
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        self.into_http_response()
    }
}

/// A configuration value is missing or unusable. The message names the setting, never its
/// value when that value is a secret.
///
/// Its `Debug` prints the same sentence as its `Display`, so a `main` returning
/// `Result<(), Box<dyn Error>>` that fails on it prints something a person can act on.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required setting is absent.
    Missing(&'static str),
    /// A setting is present but unusable.
    Invalid {
        /// The setting (an environment variable or builder method).
        setting: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// Startup checks failed under [`PreflightPolicy::Strict`](crate::preflight::PreflightPolicy):
    /// each failure, one per line.
    Preflight(String),
}

impl ConfigError {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(setting) => write!(f, "{setting} is required but not set"),
            Self::Invalid { setting, reason } => write!(f, "{setting} is invalid: {reason}"),
            Self::Preflight(failures) => {
                write!(
                    f,
                    "startup checks failed (CLAIMCHECK_PREFLIGHT=strict):\n{failures}"
                )
            }
        }
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(err: AuthError) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let res: Response<Bytes> = err.into_http_response();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&body).unwrap(),
        )
    }

    #[test]
    fn a_locked_out_token_is_an_invalid_token_counted_apart() {
        let locked = AuthError::locked_out();
        assert_eq!(locked.kind(), AuthErrorKind::InvalidToken);
        assert_eq!(locked.rejection_reason(), "locked_out");
        let invalid = AuthError::new(AuthErrorKind::InvalidToken);
        assert_eq!(invalid.rejection_reason(), "invalid_token");
        let (status, _, body) = render(locked);
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
    }

    #[test]
    fn missing_credentials_is_a_bare_challenge() {
        let (status, headers, body) = render(AuthErrorKind::MissingCredentials.into());
        assert_eq!(status, 401);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["status"], 401);
        assert!(body.get("error").is_none());
    }

    #[test]
    fn insufficient_scope_names_the_permission() {
        let (status, headers, body) = render(AuthError::insufficient_scope("read:reports"));
        assert_eq!(status, 403);
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""));
        assert!(challenge.ends_with("scope=\"read:reports\""));
        assert_eq!(body["scope"], "read:reports");
    }

    #[test]
    fn unavailable_has_retry_after_rounded_up() {
        let (status, headers, _) = render(AuthError::unavailable(Duration::from_millis(1500)));
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn expired_and_invalid_share_the_code_but_not_the_description() {
        let (_, expired, _) = render(AuthErrorKind::ExpiredToken.into());
        let (_, invalid, _) = render(AuthErrorKind::InvalidToken.into());
        let e = expired[header::WWW_AUTHENTICATE].to_str().unwrap();
        let i = invalid[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(e.contains("invalid_token") && i.contains("invalid_token"));
        assert_ne!(e, i);
    }
}
