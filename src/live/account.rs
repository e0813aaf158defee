//! [`KindeAccountApi`]: live permissions, roles and feature flags from Kinde's Account API,
//! with the caller's token.

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::pages::{self, Keyed, Page};
use super::{KeySet, PermissionQuery, PermissionSource, SourceError, SourceFuture};
use crate::error::ConfigError;
use crate::upstream::{self, Endpoint};

const DEFAULT_PAGE_SIZE: u32 = 100;

/// Live permissions, roles and feature flags from Kinde's Account API, called with the
/// caller's own access token: no credentials to configure, and Kinde answers for the token's
/// user in the token's organization.
///
/// - permissions: `GET {issuer}/account_api/v1/permissions`, the keys of `data.permissions`;
/// - roles: `GET {issuer}/account_api/v1/roles`, the keys of `data.roles`;
/// - feature flags: `GET {issuer}/account_api/v1/feature_flags`, the keys of the flags in
///   `data.feature_flags` whose `type` is `"boolean"` and whose `value` is `true`. A flag of any
///   other type is never "on", whatever its value (a string `"true"` included).
///
/// Every list is read the same way. Pages are followed while `metadata.has_more` is true,
/// passing `metadata.next_page_starting_after` as `starting_after` (a page without `metadata`
/// is the last); a cursor that does not advance, or more than 50 pages, is an error. Kinde
/// refusing the caller's token (401/403) is a [refusal](SourceError::refused): that caller gets
/// 401, nobody else is affected. A token past its `exp` (let in by the verifier's leeway) is
/// never sent. Kinde has no Account API for machine-to-machine tokens; use
/// [`KindeManagementApi`](super::KindeManagementApi) if a strict route must serve them.
/// Requests have a 1 s connect and 2 s total timeout, never follow redirects and read at most
/// 1 MiB.
///
/// ```
/// use claimcheck::live::{KindeAccountApi, LiveCheck};
///
/// let live = LiveCheck::builder(KindeAccountApi::new("https://example.kinde.com")?).build();
/// # Ok::<(), claimcheck::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KindeAccountApi {
    client: reqwest::Client,
    base: Url,
    page_size: u32,
}

/// One page of an Account API list: `{"data": {...}, "metadata": {...}}`.
#[derive(Deserialize)]
struct AccountPage<D> {
    data: D,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    next_page_starting_after: Option<String>,
}

/// The `data` of one Account API list, and the entries it carries.
trait ListData: DeserializeOwned {
    /// The list's path under `/account_api/v1/`.
    const PATH: &'static str;
    /// The list's endpoint, for the upstream metrics.
    const ENDPOINT: Endpoint;
    type Item;
    fn items(self) -> Vec<Self::Item>;
}

#[derive(Deserialize)]
struct PermissionsData {
    #[serde(default)]
    permissions: Option<Vec<Keyed>>,
}

impl ListData for PermissionsData {
    const PATH: &'static str = "permissions";
    const ENDPOINT: Endpoint = Endpoint::AccountPermissions;
    type Item = Keyed;
    fn items(self) -> Vec<Keyed> {
        self.permissions.unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct RolesData {
    #[serde(default)]
    roles: Option<Vec<Keyed>>,
}

impl ListData for RolesData {
    const PATH: &'static str = "roles";
    const ENDPOINT: Endpoint = Endpoint::AccountRoles;
    type Item = Keyed;
    fn items(self) -> Vec<Keyed> {
        self.roles.unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct FlagsData {
    #[serde(default)]
    feature_flags: Option<Vec<Flag>>,
}

/// A feature flag as the Account API reports it; `type` and `value` may be anything.
#[derive(Deserialize)]
struct Flag {
    key: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    value: serde_json::Value,
}

impl Flag {
    /// A boolean flag whose value is `true`: nothing else counts as on.
    fn is_on(&self) -> bool {
        self.kind.as_deref() == Some("boolean") && self.value == serde_json::Value::Bool(true)
    }
}

impl ListData for FlagsData {
    const PATH: &'static str = "feature_flags";
    const ENDPOINT: Endpoint = Endpoint::AccountFlags;
    type Item = Flag;
    fn items(self) -> Vec<Flag> {
        self.feature_flags.unwrap_or_default()
    }
}

impl KindeAccountApi {
    /// A source for the Kinde business at `issuer` (the tokens' `iss`).
    pub fn new(issuer: &str) -> Result<Self, ConfigError> {
        let base = upstream::check_url("issuer", issuer)?;
        let client = upstream::api_client()
            .map_err(|e| ConfigError::invalid("http client", e.to_string()))?;
        Ok(Self::with_client(client, base))
    }

    /// A source for the business at `base` (a checked issuer URL) sending with `client`.
    pub(super) fn with_client(client: reqwest::Client, base: Url) -> Self {
        Self {
            client,
            base,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Entries asked for per page, for every list (default 100; Kinde's own default is 10).
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Ok when `query`'s caller is a user of this business: a token of another issuer is
    /// neither sent here nor looked up (Kinde would answer for whoever has that id here).
    pub(super) fn serves(&self, query: &PermissionQuery) -> Result<(), SourceError> {
        if upstream::same_issuer(query.issuer(), &self.base) {
            Ok(())
        } else {
            Err(SourceError::other_issuer(
                query.issuer(),
                self.base.as_str(),
            ))
        }
    }

    /// Every entry of the list `D` for the caller of `query`, page after page.
    async fn list<D: ListData>(
        &self,
        query: &PermissionQuery,
    ) -> Result<Vec<D::Item>, SourceError> {
        self.serves(query)?;
        // The verifier's leeway lets a just-expired token in here; Kinde has none for it.
        let now = i64::try_from(crate::clock::now_secs()).unwrap_or(i64::MAX);
        if query.claims().expires_at() <= now {
            return Err(SourceError::expired());
        }
        let token = query.access_token().expose();
        let url = upstream::join(&self.base, &["account_api", "v1", D::PATH]);
        pages::collect(|cursor| {
            let mut url = url.clone();
            {
                let mut pairs = url.query_pairs_mut();
                pairs.append_pair("page_size", &self.page_size.to_string());
                if let Some(cursor) = &cursor {
                    pairs.append_pair("starting_after", cursor);
                }
            }
            let request = self.client.get(url).bearer_auth(token);
            async move {
                let page: AccountPage<D> =
                    upstream::json(D::ENDPOINT, request, upstream::API_MAX_BODY_BYTES)
                        .await
                        .map_err(refusal_or_failure)?;
                let next = match page.metadata {
                    Some(Metadata {
                        has_more: true,
                        next_page_starting_after: Some(next),
                    }) => Some(next),
                    Some(Metadata { has_more: true, .. }) => {
                        return Err(SourceError::unavailable("has_more without a cursor"));
                    }
                    _ => None,
                };
                Ok(Page {
                    items: page.data.items(),
                    next,
                })
            }
        })
        .await
    }
}

/// Kinde answers 403 "Invalid credentials." (or 401) when it does not accept the caller's own
/// token: that is the caller's problem, not an outage.
fn refusal_or_failure(failure: upstream::Failure) -> SourceError {
    match failure.status {
        Some(401 | 403) => SourceError::refused(failure.reason),
        _ => failure.into(),
    }
}

impl PermissionSource for KindeAccountApi {
    fn preflight(&self) -> SourceFuture<'_, String> {
        let detail =
            "the Account API is called with each caller's own token: nothing to verify first";
        Box::pin(std::future::ready(Ok(detail.to_owned())))
    }

    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async move {
            let granted = self.list::<PermissionsData>(query).await?;
            Ok(granted.iter().map(|p| &p.key).collect())
        })
    }

    fn roles<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        Box::pin(async move {
            let roles = self.list::<RolesData>(query).await?;
            Ok(roles.iter().map(|r| &r.key).collect())
        })
    }

    fn feature_flags<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        Box::pin(async move {
            let flags = self.list::<FlagsData>(query).await?;
            Ok(flags.iter().filter(|f| f.is_on()).map(|f| &f.key).collect())
        })
    }
}

impl fmt::Debug for KindeAccountApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindeAccountApi")
            .field("base", &self.base.as_str())
            .field("page_size", &self.page_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(body: serde_json::Value) -> Flag {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn only_boolean_flags_valued_true_are_on() {
        use serde_json::json;
        assert!(flag(json!({"key": "a", "type": "boolean", "value": true})).is_on());
        for off in [
            json!({"key": "a", "type": "boolean", "value": false}),
            json!({"key": "a", "type": "string", "value": "true"}),
            json!({"key": "a", "type": "integer", "value": 1}),
            json!({"key": "a", "type": "boolean", "value": "true"}),
            json!({"key": "a", "type": "Boolean", "value": true}),
            json!({"key": "a", "value": true}),
            json!({"key": "a", "type": "boolean"}),
            json!({"key": "a", "type": "object", "value": {"on": true}}),
        ] {
            assert!(!flag(off.clone()).is_on(), "{off}");
        }
    }

    #[test]
    fn debug_shows_the_base_and_urls_are_built_from_the_issuer() {
        let api = KindeAccountApi::new("https://example.kinde.com/").unwrap();
        let printed = format!("{api:?}");
        assert!(printed.contains("https://example.kinde.com/"), "{printed}");
        let url = upstream::join(&api.base, &["account_api", "v1", RolesData::PATH]);
        assert_eq!(
            url.as_str(),
            "https://example.kinde.com/account_api/v1/roles"
        );
        assert!(KindeAccountApi::new("http://example.kinde.com").is_err());
    }
}
