//! [`Preflight`]: what could be verified at startup, before the first request.
//!
//! [`Auth::preflight`](crate::Auth::preflight) (run by [`Auth::kinde`](crate::Auth::kinde)) checks,
//! each at most one request:
//!
//! | check | ok | failing |
//! | --- | --- | --- |
//! | `keys` | the JWKS answered with usable keys (URL and count named) | unreachable, or no usable key for the allowed algorithms (what the set holds named, e.g. `ES256 (EC P-256)`): every token would be refused (503, then 401) |
//! | `discovery` | the issuer's discovery document (`/.well-known/openid-configuration`, or RFC 8414's) names exactly the configured issuer | it names another issuer: every token would be refused for `iss`; or, with [`Discovery::Required`], it is unreadable or unusable |
//! | `live_source` | the live source works as far as it can tell without a caller (the Management API issued a machine token) | the source refused its credentials: every strict route would answer 503 |
//!
//! With discovery on (the default), the `discovery` check reports what the key fetch of the
//! `keys` check read (no second request); with [`Discovery::Off`] it
//! reads the document itself. A document that cannot be read, or names no usable `jwks_uri`,
//! is `degraded`, not failing, unless discovery is required (not every issuer publishes one;
//! Kinde does). What a failure does is the [`PreflightPolicy`]: by default each is
//! logged at `warn` (target `claimcheck::preflight`) and the application starts, failing closed
//! as it always does; with [`PreflightPolicy::Strict`] (`CLAIMCHECK_PREFLIGHT=strict`) startup
//! fails with a [`ConfigError::Preflight`] that names each
//! failure.
//!
//! An application that builds its [`Auth`](crate::Auth) by hand runs them itself:
//!
//! ```no_run
//! use claimcheck::preflight::PreflightPolicy;
//! # async fn run(auth: claimcheck::Auth) -> Result<(), claimcheck::ConfigError> {
//! let report = auth.preflight().await;
//! println!("{report}"); // one line per check: "keys: ok: 2 usable keys from https://…"
//! report.enforce(PreflightPolicy::Strict)?; // warns about each, fails on failures
//! # Ok(()) }
//! ```

use std::fmt;

use crate::Discovery;
use crate::error::ConfigError;
use crate::jwt::{Found, Verifier};
use crate::live::LiveCheck;
use crate::readiness::{Check, Condition};

/// What a failed [`Preflight`] does at startup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PreflightPolicy {
    /// Log each failure at `warn` and start (requests fail closed meanwhile). The default.
    #[default]
    Warn,
    /// Refuse to start: [`Auth::kinde`](crate::Auth::kinde) returns the failures as an error.
    Strict,
}

/// The result of the startup checks. `Display` prints one line per check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    checks: Vec<Check>,
}

impl Preflight {
    /// Runs the checks for `verifier` (fetching its keys now) and `live`.
    pub(crate) async fn run(verifier: &Verifier, live: &LiveCheck) -> Self {
        // The discovery check reads what the key fetch found: after it. Both per issuer, each
        // naming its issuer when there are several.
        let keys_then_discovery = async {
            let issuers = verifier.each_issuer();
            let several = issuers.len() > 1;
            let mut checks = Vec::new();
            for v in &issuers {
                let (keys, discovery) = (keys(v).await, discovery(v).await);
                checks.push(keys.for_issuer(v.issuer(), several));
                checks.push(discovery.for_issuer(v.issuer(), several));
            }
            checks
        };
        let (mut checks, live_source) = tokio::join!(keys_then_discovery, live_source(live));
        checks.push(live_source);
        Self { checks }
    }

    /// Whether no check failed.
    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Every check: `keys`, `discovery` (each issuer's, with several), `live_source`.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|check| check.condition() == Condition::Failing)
    }

    /// Applies `policy`: logs every check that did not pass at `warn` (target
    /// `claimcheck::preflight`); under [`PreflightPolicy::Strict`], failures are an error
    /// naming each of them.
    pub fn enforce(&self, policy: PreflightPolicy) -> Result<(), ConfigError> {
        self.warn();
        if policy == PreflightPolicy::Warn || self.is_ok() {
            return Ok(());
        }
        let failures: Vec<String> = self
            .failures()
            .map(|check| format!("{}: {}", check.name(), check.detail()))
            .collect();
        Err(ConfigError::Preflight(failures.join("\n")))
    }

    fn warn(&self) {
        for check in &self.checks {
            if check.condition() != Condition::Ok {
                tracing::warn!(
                    target: "claimcheck::preflight",
                    check = check.name(),
                    condition = check.condition().as_str(),
                    "{}",
                    check.detail()
                );
            }
        }
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, check) in self.checks.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let (name, condition) = (check.name(), check.condition().as_str());
            write!(f, "{name}: {condition}: {}", check.detail())?;
        }
        Ok(())
    }
}

async fn keys(verifier: &Verifier) -> Check {
    let fetched = verifier.warm_up().await;
    let store = verifier.key_store();
    let (count, url) = (store.key_count(), store.jwks_location());
    match (fetched, count) {
        (_, 1..) => Check::new(
            "keys",
            Condition::Ok,
            format!("{count} usable keys from {url}"),
        ),
        (true, 0) => Check::new("keys", Condition::Failing, store.no_usable_key()),
        (false, _) => Check::new(
            "keys",
            Condition::Failing,
            format!(
                "could not fetch the key set from {url} (the reason is logged by claimcheck::jwt)"
            ),
        ),
    }
}

async fn discovery(verifier: &Verifier) -> Check {
    let (store, issuer) = (verifier.key_store(), verifier.issuer());
    let required = store.discovery_mode() == Discovery::Required;
    let unusable = if required {
        Condition::Failing
    } else {
        Condition::Degraded
    };
    let (condition, detail) = match store.discovery_document().await {
        Found::Usable { document, .. } => (
            Condition::Ok,
            format!("{document} names the configured issuer"),
        ),
        Found::OtherIssuer {
            document,
            issuer: named,
        } => (
            Condition::Failing,
            format!(
                "{document} names the issuer {named:?}, not the configured {issuer:?}: tokens will be refused for `iss`"
            ),
        ),
        Found::Unreadable { document, reason } => {
            (unusable, format!("could not read {document}: {reason}"))
        }
        Found::Refused { document, reason } => {
            (unusable, format!("{document} is not usable: {reason}"))
        }
    };
    let detail = if required && condition != Condition::Ok {
        format!("{detail} (discovery is required: no keys without it)")
    } else {
        detail
    };
    Check::new("discovery", condition, detail)
}

async fn live_source(live: &LiveCheck) -> Check {
    match live.preflight().await {
        Ok(detail) => Check::new("live_source", Condition::Ok, detail),
        Err(error) => Check::new(
            "live_source",
            Condition::Failing,
            format!("{error}: strict routes would answer 503"),
        ),
    }
}
