//! [`Readiness`]: whether this instance can serve, for a load balancer's readiness probe.
//!
//! [`Auth::readiness`](crate::Auth::readiness) looks at three things, without any network call:
//!
//! | check | failing (not ready) | degraded (ready) |
//! | --- | --- | --- |
//! | `keys` | no usable signing key yet (the JWKS was never fetched, or held none): every token would be refused | |
//! | `change_log` | the shared change log is not replayed, or this replica is cut off from it: token-trusted routes decide everything live | |
//! | `live_source` | | upstream calls paused after failures: strict routes answer 503 meanwhile |
//!
//! A paused live source does not make an instance unready: Kinde's outage is every replica's,
//! and taking them all out of rotation would turn a strict-route outage into a total one (their
//! token-trusted routes still serve). It is reported, so dashboards see it.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use claimcheck::Auth;
//!
//! fn probes(auth: Auth) -> Router {
//!     // 200 with each check, or 503 + Retry-After with the failing ones named.
//!     Router::new().route("/ready", get(move || async move { auth.readiness() }))
//! }
//! ```

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::changes::ChangeLog;
use crate::error::problem;
use crate::jwt::Verifier;
use crate::live::LiveCheck;

/// How long a load balancer is told to wait before probing an unready instance again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How one part of the instance is doing.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Working.
    Ok,
    /// Working in part; the instance still serves.
    Degraded,
    /// The instance cannot serve as it should.
    Failing,
}

impl Condition {
    /// `ok`, `degraded` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }
}

/// One part of a [`Readiness`] report (or of a [`Preflight`](crate::preflight::Preflight)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    name: &'static str,
    condition: Condition,
    detail: String,
}

impl Check {
    pub(crate) fn new(name: &'static str, condition: Condition, detail: String) -> Self {
        Self {
            name,
            condition,
            detail,
        }
    }

    /// The same check of another issuer (its detail starting with the issuer's name) when
    /// `several` issuers are configured; unchanged otherwise.
    pub(crate) fn for_issuer(self, issuer: &str, several: bool) -> Self {
        if !several {
            return self;
        }
        Self {
            detail: format!("issuer {issuer}: {}", self.detail),
            ..self
        }
    }

    /// `keys`, `change_log`, `live_source` (readiness); `keys`, `discovery`, `live_source`
    /// ([preflight](crate::preflight)).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How it is doing.
    pub fn condition(&self) -> Condition {
        self.condition
    }

    /// What was seen, as a sentence (URLs and counts; never a secret).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    fn to_json(&self) -> Value {
        json!({"name": self.name, "condition": self.condition.as_str(), "detail": self.detail})
    }
}

/// Whether this instance can serve, and why. As a response: 200 with every check, or 503 +
/// `Retry-After` (RFC 9457 problem document whose `checks` member names each check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    checks: Vec<Check>,
}

impl Readiness {
    pub(crate) fn of(verifier: &Verifier, live: &LiveCheck, log: &ChangeLog) -> Self {
        // One `keys` check per issuer, each naming its issuer when there are several.
        let issuers = verifier.each_issuer();
        let several = issuers.len() > 1;
        let mut checks: Vec<Check> = issuers
            .iter()
            .map(|v| keys(v).for_issuer(v.issuer(), several))
            .collect();
        checks.extend([change_log(log), live_source(live)]);
        Self { checks }
    }

    /// Whether no check is failing.
    pub fn is_ready(&self) -> bool {
        self.checks
            .iter()
            .all(|check| check.condition != Condition::Failing)
    }

    /// Every check, in the order of the table above.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    fn checks_json(&self) -> Value {
        Value::Array(self.checks.iter().map(Check::to_json).collect())
    }
}

fn keys(verifier: &Verifier) -> Check {
    let store = verifier.key_store();
    let (count, url) = (store.key_count(), store.jwks_location());
    if count > 0 {
        return Check::new(
            "keys",
            Condition::Ok,
            format!("{count} usable keys from {url}"),
        );
    }
    let detail = if store.has_fetched() {
        store.no_usable_key()
    } else {
        format!("no key set fetched from {url} yet")
    };
    Check::new("keys", Condition::Failing, detail)
}

fn change_log(log: &ChangeLog) -> Check {
    let status = log.status();
    let (kind, gaps, outbox) = (status.kind, status.gaps, status.outbox);
    if status.caught_up {
        let detail = format!("{kind}: caught up ({gaps} gaps found, {outbox} changes to send)");
        return Check::new("change_log", Condition::Ok, detail);
    }
    let detail = format!("{kind}: not replayed, or out of contact: tokens are decided live");
    Check::new("change_log", Condition::Failing, detail)
}

fn live_source(live: &LiveCheck) -> Check {
    let paused: Vec<String> = live
        .paused()
        .map(|(kind, left)| format!("{kind} ({} ms left)", left.as_millis()))
        .collect();
    if paused.is_empty() {
        return Check::new("live_source", Condition::Ok, "accepting calls".to_owned());
    }
    let detail = format!(
        "upstream calls paused after failures: {}; strict routes needing them answer 503",
        paused.join(", ")
    );
    Check::new("live_source", Condition::Degraded, detail)
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        if self.is_ready() {
            let body = json!({"ready": true, "checks": self.checks_json()});
            let mut response = Response::new(Bytes::from(body.to_string()).into());
            let headers = response.headers_mut();
            let json = HeaderValue::from_static("application/json");
            headers.insert(header::CONTENT_TYPE, json);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let mut extra = serde_json::Map::new();
        extra.insert("ready".into(), false.into());
        extra.insert("checks".into(), self.checks_json());
        let detail = "This instance cannot serve yet";
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            detail,
            extra,
            Some(RETRY_AFTER),
        )
    }
}
