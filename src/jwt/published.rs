//! The signing keys in service: the map requests read, replaced whole when a fetch succeeds.
//!
//! - Reads clone an `Arc` behind a `RwLock` that is only written when a fetch lands.
//! - A new set reuses each [`VerifyingKey`] whose kid and material are unchanged, so a refresh
//!   that changes nothing withdraws nothing.
//! - Withdrawing a key (or replacing one under its kid) bumps the **epoch**, so whatever was
//!   verified with it can tell, with one atomic load, whether to look again.
//! - A failed fetch publishes nothing: the last good keys stay in service (stale-if-error).
//! - A set that holds keys but none usable (an EC-only JWKS for an RS256-only verifier) is
//!   published as it is (no key), and said once when it arrives, again only if what it holds
//!   changes: the key store warns, naming what it holds and what is allowed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::algorithm::Algorithm;
use super::source::Fetched;
use super::verifying_key::{Material, VerifyingKey};

/// The keys currently served, by kid.
pub(crate) struct KeyMap {
    pub(crate) keys: HashMap<Box<str>, Arc<VerifyingKey>>,
    /// When the set was fetched; `None` while no set was ever obtained.
    pub(crate) fetched_at: Option<Instant>,
    /// What the set's keys were, usable or not (`ES256 (EC P-256), RS256`); empty for none.
    pub(crate) found: String,
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
                found: String::new(),
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

    /// Puts the usable keys of `fetched` in service. Returns whether a set with keys, none of
    /// them usable, has just arrived (the first set, the first after usable keys, or one
    /// holding other keys than the last): the caller warns about it.
    pub(crate) fn publish(&self, fetched: Fetched) -> bool {
        let previous = self.current();
        let map = build(fetched, &previous);
        let unusable = map.keys.is_empty()
            && !map.found.is_empty()
            && (previous.fetched_at.is_none()
                || !previous.keys.is_empty()
                || previous.found != map.found);
        let withdrawn: Vec<&str> = previous
            .keys
            .iter()
            .filter(|(kid, key)| map.keys.get(*kid).is_none_or(|new| !Arc::ptr_eq(new, key)))
            .map(|(kid, _)| &**kid)
            .collect();
        tracing::debug!(keys = map.keys.len(), "JWKS fetched");
        // The map first, then the epoch: a verification that read the old epoch may have used
        // a withdrawn key, and is looked at again; one that read the new epoch found the new map.
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        if !withdrawn.is_empty() {
            tracing::info!(kids = ?withdrawn, "JWKS keys withdrawn: tokens they verified are dropped");
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        unusable
    }
}

/// The map of `fetched`'s keys, reusing `previous`'s key for every unchanged kid. A key whose
/// material cannot be used is dropped alone, with a warning.
fn build(fetched: Fetched, previous: &KeyMap) -> KeyMap {
    let mut keys = HashMap::new();
    for jwk in fetched.set.keys() {
        let Some((kid, alg, material)) = Material::of(&jwk) else {
            continue;
        };
        let alg = alg.and_then(Algorithm::from_jose);
        let reused = previous
            .keys
            .get(kid)
            .filter(|k| k.same_material(material, alg))
            .cloned();
        let key = match reused {
            Some(key) => key,
            None => match VerifyingKey::new(kid, material, alg) {
                Ok(key) => Arc::new(key),
                Err(reason) => {
                    tracing::warn!(kid, reason, "JWKS key dropped");
                    continue;
                }
            },
        };
        keys.insert(kid.into(), key);
    }
    KeyMap {
        keys,
        fetched_at: Some(Instant::now()),
        found: fetched.found,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const X: &str = "LEBfQpwTDXJtLFiPcnYvGv-WaFXZGBnFP_yGhLL9MGc";
    const Y: &str = "a1Or3ovkpH12b0o3ruZUtm_z8bg3xQtHXi-uPC7UJT0";

    fn fetched(keys: &[Value], found: &str) -> Fetched {
        Fetched {
            set: serde_json::from_value(json!({ "keys": keys })).unwrap(),
            found: found.to_owned(),
        }
    }

    fn keys() -> Vec<Value> {
        vec![
            json!({"kty":"RSA","kid":"r","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri","e":"AQAB"}),
            json!({"kty":"EC","kid":"e","alg":"ES256","crv":"P-256","x":X,"y":Y}),
            json!({"kty":"OKP","kid":"o","crv":"Ed25519","x":X}),
        ]
    }

    #[test]
    fn a_refresh_reuses_every_unchanged_key_of_every_type() {
        let published = Published::new();
        published.publish(fetched(&keys(), "RS256, ES256 (EC P-256), OKP Ed25519"));
        let (first, epoch) = (published.current(), published.epoch());
        assert_eq!(first.keys.len(), 3);
        published.publish(fetched(&keys(), "RS256, ES256 (EC P-256), OKP Ed25519"));
        let second = published.current();
        for kid in ["r", "e", "o"] {
            assert!(Arc::ptr_eq(&first.keys[kid], &second.keys[kid]), "{kid}");
        }
        assert_eq!(published.epoch(), epoch, "nothing withdrawn");

        // Each change of material or alg replaces that key alone, and withdraws the old one.
        let changes: [(usize, &str, Value); 4] = [
            (1, "y", json!(X)),
            (1, "crv", json!("P-384")),
            (2, "x", json!(Y)),
            (2, "alg", json!("EdDSA")),
        ];
        for (index, field, value) in changes {
            let mut changed = keys();
            changed[index][field] = value;
            published.publish(fetched(&keys(), "before"));
            let (before, epoch) = (published.current(), published.epoch());
            published.publish(fetched(&changed, "after"));
            let after = published.current();
            let kid = changed[index]["kid"].as_str().unwrap();
            assert!(!Arc::ptr_eq(&before.keys[kid], &after.keys[kid]), "{field}");
            assert_eq!(published.epoch(), epoch + 1, "{field}");
            let others = ["r", "e", "o"].into_iter().filter(|k| *k != kid);
            for other in others {
                assert!(Arc::ptr_eq(&before.keys[other], &after.keys[other]));
            }
        }
    }

    #[test]
    fn a_set_without_usable_keys_is_reported_once_per_change() {
        let published = Published::new();
        assert!(
            published.publish(fetched(&[], "ES256 (EC P-256)")),
            "the first set"
        );
        assert!(
            !published.publish(fetched(&[], "ES256 (EC P-256)")),
            "the same again"
        );
        assert!(
            published.publish(fetched(&[], "EdDSA (OKP Ed25519)")),
            "other keys"
        );
        assert!(
            !published.publish(fetched(&[], "")),
            "an empty set is no news"
        );
        assert!(
            !published.publish(fetched(&keys(), "RS256, …")),
            "usable keys"
        );
        assert!(
            published.publish(fetched(&[], "EdDSA (OKP Ed25519)")),
            "none again"
        );
    }
}
