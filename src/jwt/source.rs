//! [`HttpJwksSource`]: our [`JwksSource`] for jwks_client_rs, one HTTP fetch of the JWKS done
//! our way. The [`KeyStore`](super::KeyStore) calls it (through its single flight, with its
//! own cooldown and last good keys) and publishes what it returns; jwks_client_rs's own
//! `JwksClient` is not used, since its TTL cache refetches for every unknown kid.
//!
//! - the URL asked of the [`Locator`] right before each fetch (the discovery document's
//!   `jwks_uri`, or the fixed URL), the document read with the same client;
//! - our own reqwest client: connect and total timeouts, no redirects, a body cap;
//! - unusable keys dropped one by one (see [`jwk`](super::jwk)) before jwks_client_rs parses
//!   each of the rest into its [`JsonWebKey`], because its set parse is all-or-nothing: one odd
//!   key would fail the whole set;
//! - what the set's keys were, usable or not, kept beside the usable ones ([`Fetched`]), so a
//!   set without a usable key can say what it holds instead.
//!
//! The key store calls it through jwks_client_rs's [`JwksSource`] trait, as that crate's own
//! client would.

use std::sync::Mutex;

use async_trait::async_trait;
use jwks_client_rs::source::JwksSource;
use jwks_client_rs::{JsonWebKey, JsonWebKeySet, JwksClientError};
use serde_json::Value;

use super::algorithm::Algorithm;
use super::discovery::{Found, Locator};
use super::jwk::{describe_keys, usable_keys};
use crate::upstream::Endpoint;

/// Limits of one JWKS fetch.
#[derive(Debug, Clone)]
pub(crate) struct FetchLimits {
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) timeout: std::time::Duration,
    pub(crate) max_body_bytes: usize,
}

pub(crate) struct HttpJwksSource {
    client: reqwest::Client,
    locator: Locator,
    max_body_bytes: usize,
    algorithms: Vec<Algorithm>,
    /// What the last set downloaded held (see [`found`](Self::found)).
    found: Mutex<String>,
}

impl HttpJwksSource {
    /// Where the key set is found.
    pub(crate) fn locator(&self) -> &Locator {
        &self.locator
    }

    /// What the issuer's discovery document says (see [`Locator::document`]).
    pub(crate) async fn discovery(&self) -> Found {
        self.locator.document(&self.client).await
    }

    pub(crate) fn new(
        locator: Locator,
        limits: &FetchLimits,
        algorithms: Vec<Algorithm>,
    ) -> Result<Self, reqwest::Error> {
        let client = crate::upstream::client(limits.connect_timeout, limits.timeout)?;
        Ok(Self {
            client,
            locator,
            max_body_bytes: limits.max_body_bytes,
            algorithms,
            found: Mutex::new(String::new()),
        })
    }

    /// GETs the JWKS at `url` and returns its `keys` array, or why it could not.
    async fn download(&self, url: &url::Url) -> Result<Vec<Value>, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let request = self.client.get(url.clone());
        let set: RawSet = crate::upstream::json(Endpoint::Jwks, request, self.max_body_bytes)
            .await
            .map_err(|failure| failure.reason)?;
        Ok(set.keys)
    }
}

/// A key set as fetched: its usable keys, and what all its keys were.
pub(crate) struct Fetched {
    /// The usable keys, parsed.
    pub(crate) set: JsonWebKeySet,
    /// What the set's keys were, usable or not (see [`describe_keys`]); empty for no key.
    pub(crate) found: String,
}

impl HttpJwksSource {
    /// The algorithms the keys are kept for.
    pub(crate) fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// What the last key set downloaded held, usable or not (see [`describe_keys`]): read by
    /// the key store right after its fetch (fetches are single-flight), for [`Fetched`].
    pub(crate) fn found(&self) -> String {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl JwksSource for HttpJwksSource {
    /// Locates the JWKS (asking the discovery document when on), GETs it and keeps its usable
    /// keys. A failure is logged here (or by the locator), with its reason: jwks_client_rs's
    /// error type cannot carry ours (its variants are private), so the caller gets a generic
    /// jsonwebtoken error.
    async fn fetch_keys(&self) -> Result<JsonWebKeySet, JwksClientError> {
        let failed =
            || jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat);
        // No URL: the locator said why.
        let url = self.locator.locate(&self.client).await.ok_or_else(failed)?;
        let raw = self.download(&url).await.map_err(|reason| {
            tracing::warn!(%url, %reason, "JWKS fetch failed");
            failed()
        })?;
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = describe_keys(&raw);
        let keys = usable_keys(raw, &self.algorithms)
            .into_iter()
            .filter_map(|value| serde_json::from_value::<JsonWebKey>(value).ok())
            .collect::<Vec<_>>();
        Ok(JsonWebKeySet::from(keys))
    }
}
