//! [`KindeManagementApi`]: live permissions from Kinde's Management API.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::{PermissionQuery, PermissionSource, SourceError, SourceFuture};
use crate::error::ConfigError;
use crate::permission::PermissionSet;
use crate::single_flight::{Ended, Missed, SingleFlight};
use crate::upstream;

/// A machine token is replaced this long before it expires (or at half its life if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// After a failed token request, how long a held token past its refresh point (but unexpired)
/// serves without asking Kinde again.
const TOKEN_RETRY: Duration = Duration::from_secs(5);

/// The longest a token request may take (its HTTP timeout is 2 s).
const TOKEN_DEADLINE: Duration = Duration::from_secs(3);

/// The longest lifetime a token answer is believed: beyond any real machine token, and it
/// keeps the `Instant` arithmetic in range whatever `expires_in` says (a huge one panicked).
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The one machine-token request under way, if any.
type TokenFetches = SingleFlight<(), (), Result<String, SourceError>>;

/// Live permissions from `GET /api/v1/organizations/{org_code}/users/{sub}/permissions`.
///
/// Authenticates with a machine-to-machine token obtained by client credentials from
/// `{issuer}/oauth2/token` for the audience `{issuer}/api` (the M2M application needs the
/// `read:organization_user_permissions` scope). Kinde bills every token request, so the token is
/// reused until a minute before it expires, and concurrent needs for a new one share one
/// request, in its own task (a caller that gives up does not cancel it). Past its refresh
/// point, a token still unexpired keeps serving while Kinde cannot give a new one, without a
/// new request for 5 s after each failed one. A token Kinde rejects with 401 is dropped and
/// fetched again on the next call.
///
/// A token without `org_code` has no organization to look permissions up in: its user holds no
/// permissions here. Requests have a 1 s connect and 2 s total timeout, never follow redirects,
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
    token_url: Url,
    client_id: String,
    client_secret: String,
    audience: String,
    token: Mutex<Option<MachineToken>>,
    fetches: TokenFetches,
    /// When the last token request failed, if the one after it has not succeeded.
    failed_at: Mutex<Option<Instant>>,
}

struct MachineToken {
    value: String,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct PermissionsResponse {
    #[serde(default)]
    permissions: Option<Vec<KeyedPermission>>,
}

#[derive(Deserialize)]
pub(super) struct KeyedPermission {
    pub(super) key: String,
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
        let token_url = upstream::join(&base, &["oauth2", "token"]);
        let client = upstream::api_client()
            .map_err(|e| ConfigError::invalid("http client", e.to_string()))?;
        let audience = format!("{}/api", upstream::issuer_base(issuer));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                base,
                token_url,
                client_id,
                client_secret,
                audience,
                token: Mutex::new(None),
                fetches: TokenFetches::new(),
                failed_at: Mutex::new(None),
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
        let body: PermissionsResponse = self.call(request).await?;
        let granted = body.permissions.unwrap_or_default();
        Ok(granted.iter().map(|p| &p.key).collect())
    }

    /// Asks Kinde to rebuild `user_id`'s claims (`POST /api/v1/users/{user_id}/refresh_claims`,
    /// scope `update:user_refresh_claims`), so the next access token Kinde issues for them
    /// carries their current permissions. Tokens already issued are not changed: pair it with
    /// [`Auth::mark_changed`](crate::Auth::mark_changed) to stop trusting those.
    pub async fn refresh_user_claims(&self, user_id: &str) -> Result<(), SourceError> {
        let url = api_url(&self.inner.base, &["users", user_id, "refresh_claims"])?;
        let request = self.inner.client.post(url);
        let _: serde_json::Value = self.call(request).await?;
        Ok(())
    }

    /// Sends `request` with the machine token; a 401 drops the token so the next call fetches
    /// a new one.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SourceError> {
        let bearer = self.inner.bearer().await?;
        match upstream::json::<T>(request.bearer_auth(&bearer), upstream::API_MAX_BODY_BYTES).await
        {
            Ok(body) => Ok(body),
            Err(failure) => {
                if failure.status == Some(401) {
                    self.inner.drop_token(&bearer);
                }
                Err(failure.into())
            }
        }
    }
}

impl Inner {
    /// A machine token: the held one while it is fresh, or a new one from the one request
    /// under way (started now if none is). Past its refresh point but unexpired, the held
    /// token is still used while Kinde cannot give a new one.
    async fn bearer(self: &Arc<Self>) -> Result<String, SourceError> {
        if let Some(value) = self.held(|t| Instant::now() < t.refresh_at) {
            return Ok(value);
        }
        // Kinde failed a moment ago: the unexpired token serves without asking again.
        if self.retry_paused()
            && let Some(value) = self.held(|t| Instant::now() < t.expires_at)
        {
            return Ok(value);
        }
        let waiter = {
            let flights = self.fetches.lock();
            // Looked at again under the lock: a request may have just landed.
            if let Some(value) = self.held(|t| Instant::now() < t.refresh_at) {
                return Ok(value);
            }
            match flights.join(&()) {
                Some(waiter) => waiter,
                None => {
                    let inner = self.clone();
                    let call = async move {
                        let fetched = inner.fetch_token().await;
                        *inner.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
                            fetched.is_err().then(Instant::now);
                        let token = fetched?;
                        let value = token.value.clone();
                        // Held before the flight lands, so no caller misses both.
                        *inner.slot() = Some(token);
                        Ok(value)
                    };
                    let settle = |result: Result<_, Ended>| {
                        result.unwrap_or_else(|ended| {
                            let reason = match ended {
                                Ended::TimedOut => "machine token request timed out",
                                Ended::Aborted => "machine token request aborted",
                            };
                            Err(SourceError::unavailable(reason))
                        })
                    };
                    flights.start((), (), Instant::now() + TOKEN_DEADLINE, call, settle)
                }
            }
        };
        let fetched = match waiter.wait(Instant::now() + TOKEN_DEADLINE).await {
            Ok(landed) => landed.value,
            Err(Missed::Deadline | Missed::Lost) => {
                Err(SourceError::unavailable("machine token request timed out"))
            }
        };
        fetched.or_else(|error| self.held(|t| Instant::now() < t.expires_at).ok_or(error))
    }

    /// Whether a token request failed less than [`TOKEN_RETRY`] ago.
    fn retry_paused(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < TOKEN_RETRY)
    }

    /// The held token's value, if `usable` says it may serve.
    fn held(&self, usable: impl Fn(&MachineToken) -> bool) -> Option<String> {
        self.slot()
            .as_ref()
            .filter(|t| usable(t))
            .map(|t| t.value.clone())
    }

    /// Forgets the held token if it is still `value` (Kinde rejected it).
    fn drop_token(&self, value: &str) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|t| t.value == value) {
            *slot = None;
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MachineToken>> {
        self.token.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn fetch_token(&self) -> Result<MachineToken, SourceError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("audience", &self.audience)
            .finish();
        let request = self
            .client
            .post(self.token_url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let response: TokenResponse = upstream::json(request, upstream::API_MAX_BODY_BYTES)
            .await
            .map_err(|failure| {
                if matches!(failure.status, Some(400 | 401 | 403)) {
                    tracing::error!(
                        target: "claimcheck::live",
                        client_id = %self.client_id,
                        reason = %failure.reason,
                        "Kinde refused the management client credentials"
                    );
                }
                SourceError::from(failure)
            })?;
        if response.access_token.is_empty() {
            return Err(SourceError::unavailable("empty machine token"));
        }
        let lifetime = Duration::from_secs(response.expires_in).min(MAX_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let now = Instant::now();
        tracing::debug!(target: "claimcheck::live", expires_in = response.expires_in, "machine token fetched");
        Ok(MachineToken {
            value: response.access_token,
            refresh_at: now + (lifetime - margin),
            expires_at: now + lifetime,
        })
    }
}

impl PermissionSource for KindeManagementApi {
    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async move {
            let Some(org_code) = query.org_code() else {
                tracing::debug!(target: "claimcheck::live", "token has no org_code: no permissions");
                return Ok(PermissionSet::new());
            };
            self.user_permissions(org_code, query.user_id()).await
        })
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
            .field("client_id", &self.inner.client_id)
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
