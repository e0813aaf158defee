//! [`KindeManagementApi`]: live permissions and roles from Kinde's Management API.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::machine_token::MachineTokens;
use super::pages::{self, Keyed, Page};
use super::{
    KeySet, KindeAccountApi, PermissionQuery, PermissionSource, SourceError, SourceFuture,
};
use crate::error::ConfigError;
use crate::permission::PermissionSet;
use crate::upstream::{self, Endpoint};

/// Live permissions from `GET /api/v1/organizations/{org_code}/users/{sub}/permissions` and
/// roles from `GET /api/v1/organizations/{org_code}/users/{sub}/roles`.
///
/// Authenticates with a machine-to-machine token obtained by client credentials from
/// `{issuer}/oauth2/token` for the audience `{issuer}/api`. The M2M application needs the
/// scope `read:organization_user_permissions` for permissions, and
/// `read:organization_user_roles` for roles (without it, every lookup of roles fails: Kinde
/// answers 403, the route answers 503). Kinde bills every token request, so the token is
/// reused until a minute before it expires, and concurrent needs for a new one share one
/// request, in its own task (a caller that gives up does not cancel it). Past its refresh
/// point, a token still unexpired keeps serving at once while the new one is requested in the
/// background (a slow or hanging token endpoint delays nobody), without a new request for 5 s
/// after each failed one. A held token Kinde rejects with 401 is dropped and the call made once
/// more with a new one; a new token rejected is not replaced before the next call.
///
/// Roles are read page after page while Kinde answers a non-empty `next_token` (passed back as
/// the `next_token` query parameter); a token that comes back a second time, or more than 50
/// pages, is an error.
///
/// **Feature flags always come from the Account API, with the caller's token; machine tokens
/// have none.** Kinde's Management API has no endpoint for a user's effective feature flags,
/// so [`feature_flags`](PermissionSource::feature_flags) asks a [`KindeAccountApi`] for the
/// same issuer, exactly as that source would (a refused or expired caller token is the
/// caller's [refusal](SourceError::refused)).
///
/// A token without `org_code` has no organization to look permissions or roles up in: its user
/// holds none here. Requests have a 1 s connect and 2 s total timeout, never follow redirects,
/// and read at most 1 MiB.
///
/// ```
/// use claimcheck::live::{KindeManagementApi, LiveCheck};
///
/// let source = KindeManagementApi::new("https://example.kinde.com", "client-id", "client-secret")?;
/// let live = LiveCheck::builder(source).build();
/// # Ok::<(), claimcheck::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KindeManagementApi {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    base: Url,
    tokens: Arc<MachineTokens>,
    /// Feature flags: Kinde's Management API has none per user.
    account: KindeAccountApi,
}

#[derive(Deserialize)]
struct PermissionsResponse {
    #[serde(default)]
    permissions: Option<Vec<Keyed>>,
}

/// `{"code","message","roles":[{"id","key","name"}],"next_token"}`.
#[derive(Deserialize)]
struct RolesResponse {
    #[serde(default)]
    roles: Option<Vec<Keyed>>,
    #[serde(default)]
    next_token: Option<String>,
}

impl KindeManagementApi {
    /// A source for the Kinde business at `issuer` (`https://<sub>.kinde.com`, or a custom
    /// domain), authenticating as the M2M application `client_id`.
    pub fn new(
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let base = crate::upstream::check_url("issuer", issuer)?;
        let client_id = client_id.into();
        let client_secret = client_secret.into();
        if client_id.is_empty() || client_secret.is_empty() {
            return Err(ConfigError::invalid(
                "management credentials",
                "client id and secret must not be empty",
            ));
        }
        let client = upstream::api_client()
            .map_err(|e| ConfigError::invalid("http client", e.to_string()))?;
        let tokens = MachineTokens::new(client.clone(), &base, issuer, client_id, client_secret);
        let account = KindeAccountApi::with_client(client.clone(), base.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                base,
                tokens: Arc::new(tokens),
                account,
            }),
        })
    }

    /// The permissions `user_id` holds in `org_code`, straight from Kinde (no cache).
    pub async fn user_permissions(
        &self,
        org_code: &str,
        user_id: &str,
    ) -> Result<PermissionSet, SourceError> {
        let segments = ["organizations", org_code, "users", user_id, "permissions"];
        let url = api_url(&self.inner.base, &segments)?;
        let request = self.inner.client.get(url);
        let body: PermissionsResponse = self.call(Endpoint::ManagementPermissions, request).await?;
        let granted = body.permissions.unwrap_or_default();
        Ok(granted.iter().map(|p| &p.key).collect())
    }

    /// The keys of the roles `user_id` holds in `org_code`, straight from Kinde (no cache;
    /// scope `read:organization_user_roles`).
    pub async fn user_roles(&self, org_code: &str, user_id: &str) -> Result<KeySet, SourceError> {
        let segments = ["organizations", org_code, "users", user_id, "roles"];
        let url = api_url(&self.inner.base, &segments)?;
        let roles = pages::collect(|token| {
            let mut url = url.clone();
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("next_token", token);
            }
            async move {
                let request = self.inner.client.get(url);
                let body: RolesResponse = self.call(Endpoint::ManagementRoles, request).await?;
                Ok(Page {
                    items: body.roles.unwrap_or_default(),
                    next: body.next_token.filter(|token| !token.is_empty()),
                })
            }
        })
        .await?;
        Ok(roles.iter().map(|r| &r.key).collect())
    }

    /// Asks Kinde to rebuild `user_id`'s claims (`POST /api/v1/users/{user_id}/refresh_claims`,
    /// scope `update:user_refresh_claims`), so the next access token Kinde issues for them
    /// carries their current permissions. Tokens already issued are not changed: pair it with
    /// [`Auth::mark_changed`](crate::Auth::mark_changed) to stop trusting those.
    pub async fn refresh_user_claims(&self, user_id: &str) -> Result<(), SourceError> {
        let url = api_url(&self.inner.base, &["users", user_id, "refresh_claims"])?;
        let request = self.inner.client.post(url);
        let _: serde_json::Value = self
            .call(Endpoint::ManagementRefreshClaims, request)
            .await?;
        Ok(())
    }

    /// Sends `request` with the machine token; a 401 drops the token (and, for a held one,
    /// sends once more with a new one).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SourceError> {
        // A held token (past its refresh point, it serves while its successor is requested)
        // that Kinde refuses (revoked, replaced) is dropped and the call made once more with a
        // new one. A token issued for this very call and refused is not replaced at once:
        // the next would be refused too, and Kinde bills each.
        let mut retry = request.try_clone();
        let mut request = request;
        loop {
            let bearer = self.inner.tokens.bearer().await?;
            let sent = request.bearer_auth(&bearer.value);
            match upstream::json::<T>(endpoint, sent, upstream::API_MAX_BODY_BYTES).await {
                Ok(body) => return Ok(body),
                Err(failure) if failure.status == Some(401) => {
                    self.inner.tokens.drop_token(&bearer.value);
                    match retry.take().filter(|_| !bearer.fresh) {
                        Some(again) => request = again,
                        None => return Err(failure.into()),
                    }
                }
                Err(failure) => return Err(failure.into()),
            }
        }
    }
}

impl PermissionSource for KindeManagementApi {
    /// One machine-token request (kept for the first lookups): Kinde accepting the client's
    /// credentials.
    fn preflight(&self) -> SourceFuture<'_, String> {
        Box::pin(async move {
            let tokens = &self.inner.tokens;
            let id = tokens.client_id();
            match tokens.bearer().await {
                Ok(_) => Ok(format!("Kinde issued a machine token to the client {id}")),
                Err(error) => Err(SourceError::unavailable(format!(
                    "no machine token for the client {id} ({}): check \
                     KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET",
                    error.reason()
                ))),
            }
        })
    }

    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async move {
            self.inner.account.serves(query)?;
            let Some(org_code) = query.org_code() else {
                tracing::debug!(target: "claimcheck::live", "token has no org_code: no permissions");
                return Ok(PermissionSet::new());
            };
            self.user_permissions(org_code, query.user_id()).await
        })
    }

    fn roles<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        Box::pin(async move {
            self.inner.account.serves(query)?;
            let Some(org_code) = query.org_code() else {
                tracing::debug!(target: "claimcheck::live", "token has no org_code: no roles");
                return Ok(KeySet::new());
            };
            self.user_roles(org_code, query.user_id()).await
        })
    }

    /// From the Account API with the caller's own token: see the type's documentation.
    fn feature_flags<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a, KeySet> {
        self.inner.account.feature_flags(query)
    }
}

/// `{base}/api/v1/{segments…}`, each segment percent-encoded into exactly one path segment.
/// `.` and `..` cannot be carried in a URL path (every parser folds them), so such ids are
/// refused rather than sent.
pub(super) fn api_url(base: &Url, segments: &[&str]) -> Result<Url, SourceError> {
    if segments.iter().any(|s| matches!(*s, "" | "." | "..")) {
        return Err(
            SourceError::unavailable("user id or org code cannot be a URL path segment").not_sent(),
        );
    }
    Ok(upstream::join(base, &[&["api", "v1"], segments].concat()))
}

impl fmt::Debug for KindeManagementApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindeManagementApi")
            .field("base", &self.inner.base.as_str())
            .field("client_id", &self.inner.tokens.client_id())
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_inside_their_segment() {
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        let permissions_url = |org: &str, user: &str| {
            api_url(&base, &["organizations", org, "users", user, "permissions"])
        };
        let url = permissions_url("org_1", "kp_a/../b?c=d%2F#e").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/v1/organizations/org_1/users/kp_a%2F..%2Fb%3Fc=d%252F%23e/permissions"
        );
        let segments: Vec<_> = url.path_segments().unwrap().collect();
        assert_eq!(segments.len(), 7);
        for bad in ["..", ".", ""] {
            assert!(permissions_url("org_1", bad).is_err(), "{bad:?}");
            assert!(permissions_url(bad, "kp_1").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let api = KindeManagementApi::new("https://example.kinde.com", "id", "s3cr3t").unwrap();
        let printed = format!("{api:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(KindeManagementApi::new("https://example.kinde.com", "id", "").is_err());
        assert!(KindeManagementApi::new("not a url", "id", "secret").is_err());
    }
}
