//! [`KindeAccountApi`]: live permissions from Kinde's Account API, with the caller's token.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::management::KeyedPermission;
use super::{PermissionQuery, PermissionSource, SourceError, SourceFuture};
use crate::error::ConfigError;
use crate::permission::PermissionSet;
use crate::upstream;

const DEFAULT_PAGE_SIZE: u32 = 100;
/// More pages than this is taken as a broken cursor, not as a user with that many permissions.
const MAX_PAGES: usize = 50;

/// Live permissions from `GET {issuer}/account_api/v1/permissions`, called with the caller's
/// own access token: no credentials to configure, and Kinde answers for the token's user in the
/// token's organization.
///
/// Pages are followed while `metadata.has_more` is true, passing
/// `metadata.next_page_starting_after` as `starting_after`; a cursor that does not advance, or
/// more than 50 pages, is an error. Kinde refusing the caller's token (401/403) is a
/// [refusal](SourceError::refused): that caller gets 401, nobody else is affected. A token past
/// its `exp` (let in by the verifier's leeway) is never sent. Kinde has no Account API for machine-to-machine tokens; use
/// [`KindeManagementApi`](super::KindeManagementApi) if a strict route must serve them. Requests
/// have a 1 s connect and 2 s total timeout, never follow redirects and read at most 1 MiB.
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
    url: Url,
    page_size: u32,
}

#[derive(Deserialize)]
struct Page {
    data: PageData,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct PageData {
    #[serde(default)]
    permissions: Option<Vec<KeyedPermission>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    next_page_starting_after: Option<String>,
}

impl KindeAccountApi {
    /// A source for the Kinde business at `issuer` (the tokens' `iss`).
    pub fn new(issuer: &str) -> Result<Self, ConfigError> {
        let base = upstream::check_url("issuer", issuer)?;
        let url = upstream::join(&base, &["account_api", "v1", "permissions"]);
        let client = upstream::api_client()
            .map_err(|e| ConfigError::invalid("http client", e.to_string()))?;
        Ok(Self {
            client,
            url,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Permissions asked for per page (default 100; Kinde's own default is 10).
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    async fn fetch(&self, token: &str) -> Result<PermissionSet, SourceError> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("page_size", &self.page_size.to_string());
                if let Some(cursor) = &cursor {
                    query.append_pair("starting_after", cursor);
                }
            }
            let request = self.client.get(url).bearer_auth(token);
            let page: Page = upstream::json(request, upstream::API_MAX_BODY_BYTES)
                .await
                .map_err(refusal_or_failure)?;
            keys.extend(page.data.permissions.unwrap_or_default());
            let next = match page.metadata {
                Some(Metadata {
                    has_more: true,
                    next_page_starting_after: Some(next),
                }) => next,
                Some(Metadata { has_more: true, .. }) => {
                    return Err(SourceError::unavailable("has_more without a cursor"));
                }
                _ => return Ok(keys.iter().map(|p| &p.key).collect()),
            };
            if cursor.as_deref() == Some(next.as_str()) {
                return Err(SourceError::unavailable(
                    "pagination cursor did not advance",
                ));
            }
            cursor = Some(next);
        }
        Err(SourceError::unavailable("too many pages"))
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
    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async move {
            // The verifier's leeway lets a just-expired token in here; Kinde has none for it.
            let now = i64::try_from(crate::clock::now_secs()).unwrap_or(i64::MAX);
            if query.claims().expires_at() <= now {
                return Err(SourceError::expired());
            }
            self.fetch(query.access_token().expose()).await
        })
    }
}

impl fmt::Debug for KindeAccountApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindeAccountApi")
            .field("url", &self.url.as_str())
            .field("page_size", &self.page_size)
            .finish()
    }
}
