//! Live permissions for strict routes: [`LiveCheck`] in front of a [`PermissionSource`].
//!
//! A token's `permissions` claim is a snapshot taken when Kinde issued it, up to a day ago.
//! Strict routes ask Kinde instead, through one of two sources:
//!
//! - [`KindeManagementApi`]: `GET /api/v1/organizations/{org_code}/users/{sub}/permissions`
//!   (and `.../roles`) with a machine-to-machine token (client credentials, audience
//!   `{issuer}/api`), which it caches until shortly before it expires and fetches
//!   single-flight; its feature flags come from the Account API with the caller's token;
//! - [`KindeAccountApi`]: `GET {issuer}/account_api/v1/permissions` (and `/roles`,
//!   `/feature_flags`) with the caller's own token, following `metadata.has_more` pages. No
//!   credentials to configure, but it only works for user tokens: Kinde has no Account API for
//!   machine-to-machine tokens.
//!
//! [`LiveCheck`] caches the answer per (issuer, user, organization, kind: permissions, roles or
//! feature flags; a kind is asked for only when a route's requirement names it) for a short
//! time-to-live (default 5 s) so one upstream call serves every strict route of that user, coalesces
//! concurrent misses of one token into one upstream call made in a spawned task, gives each
//! caller its own deadline (default 2 s), never caches an error, and never serves an answer
//! fetched before an [`invalidate_user`](LiveCheck::invalidate_user) /
//! [`invalidate_org`](LiveCheck::invalidate_org) / [`invalidate_all`](LiveCheck::invalidate_all)
//! after it (each is O(1), whatever the cache holds). A failing source is not hammered: see
//! [`Backoff`].
//!
//! One caller's bad token is never everyone's outage. When the source refuses the caller's own
//! credentials ([`SourceError::refused`]: Kinde's Account API answering 401/403 to a token it no
//! longer accepts), that caller gets 401 `invalid_token`, the breaker does not count it, callers
//! with other tokens never receive that refusal, and the token is answered from memory for
//! [`refusal_memory`](LiveCheckBuilder::refusal_memory) (default 30 s) so a client retrying it
//! cannot drive Kinde's application-wide rate limit. See [`SourceError`] for every case.
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
mod budget;
mod check;
mod error;
mod flight;
mod held;
mod invalidation;
mod keyset;
mod machine_token;
mod management;
mod pages;
mod refusal;
mod state;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use account::KindeAccountApi;
pub use backoff::Backoff;
pub(crate) use budget::Priority;
pub use check::{LiveCheck, LiveCheckBuilder, Lookup};
pub use error::SourceError;
pub(crate) use held::{Held, LiveFacts};
pub use keyset::KeySet;
pub use management::KindeManagementApi;

use crate::claims::{AccessToken, Claims};
use crate::permission::PermissionSet;

/// What a [`PermissionSource`] returns: the user's [`PermissionSet`], or (for roles and
/// feature flags) a [`KeySet`].
pub type SourceFuture<'a, T = PermissionSet> =
    Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// Where live permissions (and, for requirements that name them, roles and feature flags) come
/// from. Object safe; implement it for your own store.
///
/// Each answer is the **whole** set the user holds in the query's organization: it is cached
/// and serves every strict route of that user until its time-to-live ends. Roles and feature
/// flags are asked for only by routes whose [`Requirement`](crate::Requirement) names them; a
/// source that does not provide them keeps the default methods, and such a route answers 500
/// (a server misconfiguration, logged at `error`), never an allow.
pub trait PermissionSource: Send + Sync + 'static {
    /// The permissions `query`'s user holds now, or why that cannot be known.
    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a>;

    /// The keys of the roles `query`'s user holds now in its organization. The default: this
    /// source does not know roles.
    fn roles<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        let _ = query;
        Box::pin(std::future::ready(Err(SourceError::unsupported("roles"))))
    }

    /// Whether the source can work, as far as it can tell before any caller (credentials
    /// accepted, say), for [`Auth::preflight`](crate::Auth::preflight): what it verified, as a
    /// sentence, or why it cannot work. The default: nothing to verify.
    fn preflight(&self) -> SourceFuture<'_, String> {
        Box::pin(std::future::ready(Ok(
            "nothing to verify before a caller's request".to_owned(),
        )))
    }

    /// The keys of the boolean feature flags that are on for `query`'s user now. The default:
    /// this source does not know feature flags.
    fn feature_flags<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        let _ = query;
        Box::pin(std::future::ready(Err(SourceError::unsupported(
            "feature flags",
        ))))
    }
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

#[cfg(test)]
mod tests;
