//! Talking to an upstream over HTTP, the one way every fetch in the crate does it: our own
//! reqwest client (timeouts, no redirects), a size-capped body, a JSON content-type check, and
//! `Retry-After` / `RateLimit-Reset` read into a sane delay.

use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use crate::error::ConfigError;

/// Longest upstream-suggested delay passed on; a larger value is treated as nonsense.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// `url` parsed, if it is `https://`, or `http://` to a loopback host (tests, local fakes).
pub(crate) fn check_url(setting: &'static str, url: &str) -> Result<url::Url, ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            let shown: String = url.chars().take(200).collect();
            let mut reason = format!("`{shown}` has no scheme: write `https://{shown}`");
            if setting == "KINDE_ISSUER_URL" {
                reason.push_str(" (or set KINDE_DOMAIN, which adds https://)");
            }
            ConfigError::invalid(setting, reason)
        }
        other => ConfigError::invalid(setting, format!("not a URL ({other})")),
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(parsed),
        "http" if loopback => Ok(parsed),
        "http" => Err(ConfigError::invalid(
            setting,
            "plain http is only allowed for loopback hosts; use https",
        )),
        _ => Err(ConfigError::invalid(setting, "must be an https:// URL")),
    }
}

/// Connect timeout of the permissions APIs (Management and Account).
pub(crate) const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole-request timeout of the permissions APIs (a lookup's own deadline is usually shorter).
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest body accepted from the permissions APIs.
pub(crate) const API_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The issuer without trailing `/`, the base every Kinde URL is built on.
pub(crate) fn issuer_base(issuer: &str) -> &str {
    issuer.trim_end_matches('/')
}

/// Whether a token of `issuer` belongs to the business whose API is at `base` (the checked
/// issuer URL its source was built on): both compared as parsed URLs (so a host's case or a
/// default port does not tell them apart), either with or without a trailing `/`.
pub(crate) fn same_issuer(issuer: &str, base: &url::Url) -> bool {
    url::Url::parse(issuer)
        .is_ok_and(|issuer| issuer_base(issuer.as_str()) == issuer_base(base.as_str()))
}

/// Kinde's JWKS location for `issuer`: `{issuer}/.well-known/jwks.json`.
pub(crate) fn default_jwks_url(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer_base(issuer))
}

/// Where the issuer's OpenID Connect discovery document is (OpenID Connect Discovery §4): the
/// issuer with any trailing `/` removed, then `/.well-known/openid-configuration`.
pub(crate) fn openid_configuration_url(issuer: &url::Url) -> url::Url {
    well_known(issuer, |path| {
        format!("{path}/.well-known/openid-configuration")
    })
}

/// Where the issuer's OAuth authorization server metadata is (RFC 8414 §3.1): the well-known
/// segment between the host and the issuer's path (without its trailing `/`), so
/// `https://h/tenant` gives `https://h/.well-known/oauth-authorization-server/tenant`.
pub(crate) fn authorization_server_metadata_url(issuer: &url::Url) -> url::Url {
    well_known(issuer, |path| {
        format!("/.well-known/oauth-authorization-server{path}")
    })
}

/// `issuer` with its path (trailing `/` removed) rewritten by `path`, without query or fragment
/// (an issuer has neither, OpenID Connect Discovery §4.3).
fn well_known(issuer: &url::Url, path: impl FnOnce(&str) -> String) -> url::Url {
    let mut url = issuer.clone();
    url.set_path(&path(issuer.path().trim_end_matches('/')));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// A client for the permissions APIs (Management and Account): their timeouts, no redirects.
pub(crate) fn api_client() -> Result<reqwest::Client, reqwest::Error> {
    client(API_CONNECT_TIMEOUT, API_TIMEOUT)
}

/// A client that never follows redirects and gives up after `timeout`.
pub(crate) fn client(
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("claimcheck/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why an upstream answer was not usable. `retry_after` is set when the upstream said when to
/// come back (429/503 with `RateLimit-Reset` or `Retry-After`).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            status: None,
            retry_after: None,
        }
    }
}

/// Which of the issuer's endpoints a request is for: the `endpoint` label of the upstream
/// metrics (see [`metrics`](crate::metrics)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Jwks,
    Discovery,
    Token,
    AccountPermissions,
    AccountRoles,
    AccountFlags,
    ManagementPermissions,
    ManagementRoles,
    ManagementRefreshClaims,
}

impl Endpoint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Jwks => "jwks",
            Self::Discovery => "discovery",
            Self::Token => "token",
            Self::AccountPermissions => "account_permissions",
            Self::AccountRoles => "account_roles",
            Self::AccountFlags => "account_feature_flags",
            Self::ManagementPermissions => "management_permissions",
            Self::ManagementRoles => "management_roles",
            Self::ManagementRefreshClaims => "management_refresh_claims",
        }
    }
}

/// Sends `request` to `endpoint` and reads a JSON body of at most `max_bytes` into `T`;
/// counted and timed (to the response's headers) in the upstream metrics.
///
/// Anything else is a [`Failure`]: a connect error or timeout, a redirect, a non-2xx status, a
/// content type that is not JSON, a body over the cap, or JSON of the wrong shape.
pub(crate) async fn json<T: DeserializeOwned>(
    endpoint: Endpoint,
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<T, Failure> {
    let started = Instant::now();
    let sent = request
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await;
    let status = sent
        .as_ref()
        .ok()
        .map(|response| response.status().as_u16());
    crate::metrics::upstream(endpoint.as_str(), status, started.elapsed());
    let response = sent.map_err(|e| Failure::new(send_error(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let kind = if status.is_redirection() {
            "redirect refused"
        } else {
            "status"
        };
        return Err(Failure {
            reason: format!("{kind} {}", status.as_u16()),
            status: Some(status.as_u16()),
            retry_after: retry_after(response.headers()),
        });
    }
    if !is_json(response.headers()) {
        return Err(Failure::new("content type is not JSON"));
    }
    let body = read_capped(response, max_bytes)
        .await
        .map_err(Failure::new)?;
    serde_json::from_slice(&body).map_err(|_| Failure::new("malformed JSON body"))
}

fn send_error(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connect failed"
    } else {
        "request failed"
    };
    format!("{what}: {}", error_chain(error))
}

/// The error and its sources, without the URL (which may carry user ids).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text.push_str("no detail");
    }
    text
}

/// Reads the body, failing as soon as it exceeds `max_bytes`.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err("body over the size cap".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("body failed: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err("body over the size cap".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `base` with `segments` appended, each percent-encoded into exactly one path segment (`/`,
/// `?`, `%` and `#` included). `url` silently drops `.` and `..` segments: callers that append
/// untrusted ids must refuse those first.
pub(crate) fn join(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The media type of `Content-Type` without its parameters (`application/json`), if any.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim())
}

/// `application/json`, `application/problem+json` and the like, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(essence) = media_type(headers) else {
        return false;
    };
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

/// The delay an upstream asked for: `RateLimit-Reset` (Kinde's) or `Retry-After`, in whole
/// seconds. Dates, garbage and values over an hour are ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["ratelimit-reset", RETRY_AFTER.as_str()]
        .iter()
        .filter_map(|name| {
            headers
                .get(*name)?
                .to_str()
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|secs| Duration::from_secs(secs.max(1)))
        .find(|delay| *delay <= MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn url_rules() {
        assert!(check_url("x", "https://a.kinde.com").is_ok());
        assert!(check_url("x", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("x", "http://localhost:1").is_ok());
        assert!(check_url("x", "http://[::1]:1").is_ok());
        assert!(check_url("x", "http://a.kinde.com").is_err());
        assert!(check_url("x", "ftp://a.kinde.com").is_err());
        assert!(check_url("x", "a.kinde.com").is_err());
        let missing_scheme = check_url("KINDE_ISSUER_URL", "mybiz.kinde.com").unwrap_err();
        assert_eq!(
            missing_scheme.to_string(),
            "KINDE_ISSUER_URL is invalid: `mybiz.kinde.com` has no scheme: write \
             `https://mybiz.kinde.com` (or set KINDE_DOMAIN, which adds https://)"
        );
    }

    #[test]
    fn an_issuer_is_the_same_business_however_its_url_is_spelled() {
        let base = |url: &str| check_url("issuer", url).unwrap();
        for (issuer, configured) in [
            ("https://a.kinde.com", "https://a.kinde.com"),
            ("https://a.kinde.com/", "https://a.kinde.com"),
            ("https://a.kinde.com", "https://a.kinde.com/"),
            // As configured by hand, and so in the tokens' `iss`: the base URL is normalised.
            ("https://Auth.Example.com", "https://Auth.Example.com"),
            ("https://a.kinde.com:443", "https://a.kinde.com:443"),
            ("https://h/tenant", "https://h/tenant/"),
        ] {
            assert!(
                same_issuer(issuer, &base(configured)),
                "{issuer} {configured}"
            );
        }
        for (issuer, configured) in [
            ("https://b.kinde.com", "https://a.kinde.com"),
            ("https://a.kinde.com/other", "https://a.kinde.com"),
            ("https://a.kinde.com:8443", "https://a.kinde.com"),
            ("http://a.kinde.com", "https://a.kinde.com"),
            ("not a url", "https://a.kinde.com"),
        ] {
            assert!(
                !same_issuer(issuer, &base(configured)),
                "{issuer} {configured}"
            );
        }
    }

    #[test]
    fn discovery_locations_from_either_issuer_form_and_a_path() {
        let both = |issuer: &str| {
            let issuer = url::Url::parse(issuer).unwrap();
            (
                openid_configuration_url(&issuer).to_string(),
                authorization_server_metadata_url(&issuer).to_string(),
            )
        };
        for issuer in ["https://h", "https://h/"] {
            assert_eq!(
                both(issuer),
                (
                    "https://h/.well-known/openid-configuration".to_owned(),
                    "https://h/.well-known/oauth-authorization-server".to_owned()
                ),
                "{issuer}"
            );
        }
        for issuer in ["https://h/tenant", "https://h/tenant/"] {
            assert_eq!(
                both(issuer),
                (
                    "https://h/tenant/.well-known/openid-configuration".to_owned(),
                    "https://h/.well-known/oauth-authorization-server/tenant".to_owned()
                ),
                "{issuer}"
            );
        }
        let (oidc, rfc8414) = both("http://127.0.0.1:8080/a/b%2Fc/?q=1#f");
        assert_eq!(
            oidc,
            "http://127.0.0.1:8080/a/b%2Fc/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc8414,
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server/a/b%2Fc"
        );
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ] {
            assert!(is_json(&headers(&[("content-type", ok)])), "{ok}");
        }
        for bad in ["text/html", "application/jsonp", "json", "text/json", ""] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn retry_after_prefers_rate_limit_reset_and_ignores_nonsense() {
        let secs = |pairs: &[(&'static str, &'static str)]| retry_after(&headers(pairs));
        assert_eq!(
            secs(&[("ratelimit-reset", "7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(secs(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(
            secs(&[("retry-after", "3"), ("ratelimit-reset", "9")]),
            Some(Duration::from_secs(9))
        );
        assert_eq!(secs(&[("retry-after", "0")]), Some(Duration::from_secs(1)));
        assert_eq!(
            secs(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            None
        );
        assert_eq!(secs(&[("retry-after", "-4")]), None);
        assert_eq!(secs(&[("retry-after", "99999999")]), None);
        assert_eq!(
            secs(&[("ratelimit-reset", "junk"), ("retry-after", "2")]),
            Some(Duration::from_secs(2))
        );
    }
}
