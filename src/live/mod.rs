//! Live permissions for strict routes: [`LiveCheck`] in front of a [`PermissionSource`].
//!
//! A token's `permissions` claim is a snapshot taken when Kinde issued it, up to a day ago.
//! Strict routes ask Kinde instead, through one of two sources:
//!
//! - [`KindeManagementApi`]: `GET /api/v1/organizations/{org_code}/users/{sub}/permissions`
//!   with a machine-to-machine token (client credentials, audience `{issuer}/api`), which it
//!   caches until shortly before it expires and fetches single-flight;
//! - [`KindeAccountApi`]: `GET {issuer}/account_api/v1/permissions` with the caller's own token,
//!   following `metadata.has_more` pages. No credentials to configure, but it only works for
//!   user tokens: Kinde has no Account API for machine-to-machine tokens.
//!
//! [`LiveCheck`] caches the answer per (issuer, user, organization) for a short time-to-live
//! (default 5 s) so one upstream call serves every strict route of that user, coalesces
//! concurrent misses into one upstream call made in a spawned task, gives each caller its own
//! deadline (default 2 s), never caches an error, and never serves an answer fetched before an
//! [`invalidate_user`](LiveCheck::invalidate_user) /
//! [`invalidate_org`](LiveCheck::invalidate_org) / [`invalidate_all`](LiveCheck::invalidate_all)
//! after it. A failing source is not hammered: see [`Backoff`].
//!
//! Any other source plugs in by implementing [`PermissionSource`]:
//!
//! ```
//! use claimcheck::PermissionSet;
//! use claimcheck::live::{LiveCheck, PermissionQuery, PermissionSource, SourceError, SourceFuture};
//!
//! /// Permissions from the application's own database (here: a fixed answer).
//! struct MyDatabase;
//!
//! impl PermissionSource for MyDatabase {
//!     fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
//!         Box::pin(async move {
//!             match query.user_id() {
//!                 "kp_admin" => Ok(["create:payments"].into_iter().collect()),
//!                 "kp_down" => Err(SourceError::unavailable("database unreachable")),
//!                 _ => Ok(PermissionSet::new()),
//!             }
//!         })
//!     }
//! }
//!
//! let live = LiveCheck::builder(MyDatabase)
//!     .time_to_live(std::time::Duration::from_secs(2))
//!     .build();
//! ```

mod account;
mod backoff;
mod check;
mod management;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use account::KindeAccountApi;
pub use backoff::Backoff;
pub use check::{LiveCheck, LiveCheckBuilder, Lookup};
pub use management::KindeManagementApi;

use crate::claims::{AccessToken, Claims};
use crate::permission::PermissionSet;

/// What a [`PermissionSource`] returns.
pub type SourceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PermissionSet, SourceError>> + Send + 'a>>;

/// Where live permissions come from. Object safe; implement it for your own store.
///
/// The answer is the **whole** set the user holds in the query's organization: it is cached and
/// serves every strict route of that user until its time-to-live ends.
pub trait PermissionSource: Send + Sync + 'static {
    /// The permissions `query`'s user holds now, or why that cannot be known.
    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a>;
}

/// Who a live lookup is for: the verified caller of a request.
#[derive(Clone)]
pub struct PermissionQuery {
    claims: Claims,
}

impl PermissionQuery {
    /// A query for the caller `claims` describe. `None` for tokens without `sub`
    /// (machine-to-machine tokens), which have no user to look up.
    pub fn from_claims(claims: &Claims) -> Option<Self> {
        claims.subject()?;
        Some(Self {
            claims: claims.clone(),
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        self.claims.issuer()
    }

    /// The user id (`sub`).
    pub fn user_id(&self) -> &str {
        self.claims.subject().unwrap_or_default()
    }

    /// The organization (`org_code`) the permissions are asked for.
    pub fn org_code(&self) -> Option<&str> {
        self.claims.org_code()
    }

    /// The caller's token, for sources that act on the caller's behalf.
    pub fn access_token(&self) -> &AccessToken {
        self.claims.access_token()
    }

    /// All of the caller's verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
}

impl fmt::Debug for PermissionQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermissionQuery")
            .field("issuer", &self.issuer())
            .field("user_id", &self.user_id())
            .field("org_code", &self.org_code())
            .finish_non_exhaustive()
    }
}

/// A [`PermissionSource`] could not answer. Strict routes then answer 503 with `Retry-After`
/// (the source's suggestion when it has one) and the error is not cached.
#[derive(Debug, Clone)]
pub struct SourceError {
    reason: Cow<'static, str>,
    retry_after: Option<Duration>,
    /// Whether the upstream failed (counted by the [`Backoff`] breaker), as opposed to a request
    /// that could not even be made (an id that cannot be put in a URL).
    upstream: bool,
}

impl SourceError {
    /// The source is unavailable, for `reason` (logged; never shown to clients).
    pub fn unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            retry_after: None,
            upstream: true,
        }
    }

    /// Marks an error the upstream is not to blame for: it does not count towards [`Backoff`].
    pub(crate) fn not_upstream(mut self) -> Self {
        self.upstream = false;
        self
    }

    pub(crate) fn is_upstream(&self) -> bool {
        self.upstream
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
}

impl From<crate::upstream::Failure> for SourceError {
    fn from(failure: crate::upstream::Failure) -> Self {
        Self {
            reason: failure.reason.into(),
            retry_after: failure.retry_after,
            upstream: true,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permission source unavailable: {}", self.reason)
    }
}

impl std::error::Error for SourceError {}
