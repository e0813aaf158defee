//! The signing keys in service: the map requests read, replaced whole when a fetch succeeds.
//!
//! - Reads clone an `Arc` behind a `RwLock` that is only written when a fetch lands.
//! - A new set reuses each [`VerifyingKey`] whose kid and material are unchanged, so a refresh
//!   that changes nothing withdraws nothing.
//! - Withdrawing a key (or replacing one under its kid) bumps the **epoch**, so whatever was
//!   verified with it can tell, with one atomic load, whether to look again.
//! - A failed fetch publishes nothing: the last good keys stay in service (stale-if-error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use jwks_client_rs::JsonWebKeySet;

use super::jwk::{Algorithm, VerifyingKey};

/// The keys currently served, by kid.
pub(crate) struct KeyMap {
    pub(crate) keys: HashMap<Box<str>, Arc<VerifyingKey>>,
    /// When the set was fetched; `None` while no set was ever obtained.
    pub(crate) fetched_at: Option<Instant>,
}

/// The key map and its epoch, shared by the key store's fetches (writers) and requests
/// (readers).
pub(crate) struct Published {
    map: RwLock<Arc<KeyMap>>,
    epoch: AtomicU64,
}

impl Published {
    pub(crate) fn new() -> Self {
        Self {
            map: RwLock::new(Arc::new(KeyMap {
                keys: HashMap::new(),
                fetched_at: None,
            })),
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

    /// Puts the usable keys of `set` in service.
    pub(crate) fn publish(&self, set: JsonWebKeySet) {
        let previous = self.current();
        let map = build(set, &previous);
        let withdrawn: Vec<&str> = previous
            .keys
            .iter()
            .filter(|(kid, key)| map.keys.get(*kid).is_none_or(|new| !Arc::ptr_eq(new, key)))
            .map(|(kid, _)| &**kid)
            .collect();
        tracing::debug!(keys = map.keys.len(), "JWKS fetched");
        crate::metrics::jwks_keys(map.keys.len());
        // The map first, then the epoch: a verification that read the old epoch may have used
        // a withdrawn key, and is looked at again; one that read the new epoch found the new map.
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        if !withdrawn.is_empty() {
            tracing::info!(kids = ?withdrawn, "JWKS keys withdrawn: tokens they verified are dropped");
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The map of `set`'s RSA keys, reusing `previous`'s key for every unchanged kid. A key whose
/// material cannot be used is dropped alone, with a warning.
fn build(set: JsonWebKeySet, previous: &KeyMap) -> KeyMap {
    let mut keys = HashMap::new();
    for jwk in set.keys() {
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
    }
    KeyMap {
        keys,
        fetched_at: Some(Instant::now()),
    }
}
