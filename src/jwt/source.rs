//! Our [`JwksSource`] for jwks_client_rs: one HTTP fetch of the JWKS, done our way.
//!
//! - our own reqwest client: connect and total timeouts, no redirects, a body cap;
//! - unusable keys dropped one by one (see [`jwk`](super::jwk)) instead of failing the set;
//! - on success the set is published to the [`KeyStore`](super::KeyStore)'s lock-free-read map,
//!   reusing each `DecodingKey` whose kid and material are unchanged;
//! - on failure the last good set is served again (stale-if-error); with no good set yet the
//!   fetch fails and the store answers 503.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jwks_client_rs::source::JwksSource;
use jwks_client_rs::{JsonWebKey, JsonWebKeySet, JwksClientError};
use serde_json::Value;

use super::jwk::{Algorithm, VerifyingKey, usable_keys};

/// The keys currently served, by kid.
pub(crate) struct KeyMap {
    pub(crate) keys: HashMap<Box<str>, Arc<VerifyingKey>>,
    pub(crate) fetched_at: Option<Instant>,
}

/// State shared by the source (writer) and the key store (readers).
pub(crate) struct Published {
    map: RwLock<Arc<KeyMap>>,
    last_good: RwLock<Option<JsonWebKeySet>>,
    /// Bumped each time a published key is withdrawn (or replaced under its kid), so whatever
    /// was verified with it can tell, with one atomic load, whether to look again.
    epoch: AtomicU64,
}

impl Published {
    pub(crate) fn new() -> Self {
        Self {
            map: RwLock::new(Arc::new(KeyMap {
                keys: HashMap::new(),
                fetched_at: None,
            })),
            last_good: RwLock::new(None),
            epoch: AtomicU64::new(0),
        }
    }

    /// The current epoch: it changes whenever a key is withdrawn.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn current(&self) -> Arc<KeyMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, map: KeyMap, set: JsonWebKeySet) {
        let previous = self.current();
        let withdrawn: Vec<&str> = previous
            .keys
            .iter()
            .filter(|(kid, key)| map.keys.get(*kid).is_none_or(|new| !Arc::ptr_eq(new, key)))
            .map(|(kid, _)| &**kid)
            .collect();
        // The map first, then the epoch: a verification that read the old epoch may have used
        // a withdrawn key, and is looked at again; one that read the new epoch found the new map.
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        *self.last_good.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
        if !withdrawn.is_empty() {
            tracing::info!(kids = ?withdrawn, "JWKS keys withdrawn: tokens they verified are dropped");
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn last_good(&self) -> Option<JsonWebKeySet> {
        self.last_good
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Limits of one JWKS fetch.
#[derive(Debug, Clone)]
pub(crate) struct FetchLimits {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_body_bytes: usize,
}

pub(crate) struct HttpJwksSource {
    client: reqwest::Client,
    url: reqwest::Url,
    max_body_bytes: usize,
    algorithms: Vec<Algorithm>,
    published: Arc<Published>,
}

impl HttpJwksSource {
    pub(crate) fn new(
        url: reqwest::Url,
        limits: &FetchLimits,
        algorithms: Vec<Algorithm>,
        published: Arc<Published>,
    ) -> Result<Self, reqwest::Error> {
        let client = crate::upstream::client(limits.connect_timeout, limits.timeout)?;
        Ok(Self {
            client,
            url,
            max_body_bytes: limits.max_body_bytes,
            algorithms,
            published,
        })
    }

    /// GETs the JWKS and returns its `keys` array, or why it could not.
    async fn download(&self) -> Result<Vec<Value>, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let request = self.client.get(self.url.clone());
        let set: RawSet = crate::upstream::json(request, self.max_body_bytes)
            .await
            .map_err(|failure| failure.reason)?;
        Ok(set.keys)
    }

    /// Parses the usable keys with jwks_client_rs and builds the map, reusing unchanged keys.
    fn build(&self, raw: Vec<Value>) -> (KeyMap, JsonWebKeySet) {
        let previous = self.published.current();
        let mut keys = HashMap::new();
        let mut parsed = Vec::new();
        for value in usable_keys(raw, &self.algorithms) {
            let Ok(jwk) = serde_json::from_value::<JsonWebKey>(value) else {
                continue;
            };
            let Ok(rsa) = jwk.as_rsa_public_key() else {
                continue;
            };
            let alg = rsa.algorithm().and_then(Algorithm::from_jose);
            let (n, e) = (rsa.modulus(), rsa.exponent());
            let reused = previous
                .keys
                .get(rsa.key_id())
                .filter(|k| k.same_material(n, e, alg))
                .cloned();
            let key = match reused {
                Some(key) => key,
                None => match VerifyingKey::new(rsa.key_id(), n, e, alg) {
                    Ok(key) => Arc::new(key),
                    Err(reason) => {
                        tracing::warn!(kid = rsa.key_id(), reason, "JWKS key dropped");
                        continue;
                    }
                },
            };
            keys.insert(rsa.key_id().into(), key);
            parsed.push(jwk);
        }
        let map = KeyMap {
            keys,
            fetched_at: Some(Instant::now()),
        };
        (map, JsonWebKeySet::from(parsed))
    }
}

#[async_trait]
impl JwksSource for HttpJwksSource {
    async fn fetch_keys(&self) -> Result<JsonWebKeySet, JwksClientError> {
        match self.download().await {
            Ok(raw) => {
                let (map, set) = self.build(raw);
                tracing::debug!(keys = map.keys.len(), "JWKS fetched");
                self.published.publish(map, set.clone());
                Ok(set)
            }
            Err(reason) => {
                tracing::warn!(%reason, "JWKS fetch failed");
                // Stale-if-error: the last good set stays in service.
                self.published.last_good().ok_or_else(|| {
                    jsonwebtoken::errors::Error::from(
                        jsonwebtoken::errors::ErrorKind::InvalidKeyFormat,
                    )
                    .into()
                })
            }
        }
    }
}
