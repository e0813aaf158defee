//! Which published keys we accept, and the verification key built once per key.
//!
//! A JWKS is filtered key by key *before* jwks_client_rs parses it, because its strict model
//! rejects a whole set for one key it does not understand (an `oct` key, a key without `kid`).
//! A key is kept only if every rule holds:
//!
//! - `kty` is `RSA` (every accepted algorithm is in the RSA family);
//! - `kid` is a non-empty string, and no other key in the set has the same `kid`;
//! - `use` is absent or `sig`; `key_ops`, when present, contains `verify`;
//! - `alg`, when present, is one of the verifier's algorithms;
//! - `n` and `e` are unpadded base64url; the modulus is 2048 to 8192 bits; `e` is odd and > 1.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey};
use serde_json::Value;

/// A signature algorithm claimcheck can accept. All are RSA: Kinde signs with RS256 only, and
/// keeping to one key family means a key can never be used with another family's algorithm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Kinde's algorithm; the default).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
}

impl Algorithm {
    /// The JOSE name (`RS256`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
        }
    }

    /// Parses an exact, case-sensitive JOSE name (so `none`, `None` and `HS256` never parse).
    pub fn from_jose(name: &str) -> Option<Self> {
        [
            Self::RS256,
            Self::RS384,
            Self::RS512,
            Self::PS256,
            Self::PS384,
            Self::PS512,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    pub(crate) fn to_jwt(self) -> JwtAlgorithm {
        match self {
            Self::RS256 => JwtAlgorithm::RS256,
            Self::RS384 => JwtAlgorithm::RS384,
            Self::RS512 => JwtAlgorithm::RS512,
            Self::PS256 => JwtAlgorithm::PS256,
            Self::PS384 => JwtAlgorithm::PS384,
            Self::PS512 => JwtAlgorithm::PS512,
        }
    }
}

/// A usable verification key, built once per kid and key material.
pub(crate) struct VerifyingKey {
    /// The kid the issuer publishes it under.
    pub(crate) kid: Box<str>,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
    n: Box<str>,
    e: Box<str>,
}

impl VerifyingKey {
    /// Whether this key was built from exactly this material (so it can be reused).
    pub(crate) fn same_material(&self, n: &str, e: &str, alg: Option<Algorithm>) -> bool {
        *self.n == *n && *self.e == *e && self.alg == alg
    }

    /// A key that verifies nothing, for unit tests of what holds keys.
    #[cfg(test)]
    pub(crate) fn test_key() -> std::sync::Arc<Self> {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri";
        std::sync::Arc::new(Self::new("kid", n, "AQAB", None).unwrap())
    }

    pub(crate) fn new(
        kid: &str,
        n: &str,
        e: &str,
        alg: Option<Algorithm>,
    ) -> Result<Self, &'static str> {
        let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "unusable RSA components")?;
        Ok(Self {
            kid: kid.into(),
            alg,
            key,
            n: n.into(),
            e: e.into(),
        })
    }
}

/// Keeps the usable keys of a raw `keys` array; logs why each other key was dropped.
pub(crate) fn usable_keys(keys: Vec<Value>, allowed: &[Algorithm]) -> Vec<Value> {
    let mut kid_count: HashMap<String, usize> = HashMap::new();
    for key in &keys {
        if let Some(kid) = key.get("kid").and_then(Value::as_str) {
            *kid_count.entry(kid.to_owned()).or_default() += 1;
        }
    }
    keys.into_iter()
        .filter(|key| {
            let verdict = check(key, allowed).and_then(|kid| match kid_count.get(kid) {
                Some(1) => Ok(()),
                _ => Err("duplicate kid"),
            });
            if let Err(reason) = verdict {
                let kid = key.get("kid").and_then(Value::as_str).unwrap_or("");
                tracing::warn!(kid, reason, "JWKS key dropped");
            }
            verdict.is_ok()
        })
        .collect()
}

/// Checks one raw JWK; returns its kid when usable.
pub(crate) fn check<'a>(key: &'a Value, allowed: &[Algorithm]) -> Result<&'a str, &'static str> {
    let str_field = |name: &str| key.get(name).and_then(Value::as_str);
    if str_field("kty") != Some("RSA") {
        return Err("kty is not RSA");
    }
    let kid = str_field("kid").filter(|k| !k.is_empty()).ok_or("no kid")?;
    match key.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("use is not sig"),
    }
    if let Some(ops) = key.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|op| op == "verify") {
            return Err("key_ops lacks verify");
        }
    }
    match key.get("alg") {
        None => {}
        Some(Value::String(alg)) => {
            let alg = Algorithm::from_jose(alg).ok_or("alg not allowed")?;
            if !allowed.contains(&alg) {
                return Err("alg not allowed");
            }
        }
        Some(_) => return Err("alg is not a string"),
    }
    let n = decode_uint(str_field("n").ok_or("no n")?).ok_or("n is not base64url")?;
    let e = decode_uint(str_field("e").ok_or("no e")?).ok_or("e is not base64url")?;
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(2048..=8192).contains(&bits) {
        return Err("RSA modulus is not 2048 to 8192 bits");
    }
    if e.len() > 8 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
        return Err("unusable RSA exponent");
    }
    Ok(kid)
}

/// Decodes an unpadded base64url unsigned integer, without leading zero bytes (`None` if zero).
fn decode_uint(s: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let start = bytes.iter().position(|b| *b != 0)?;
    Some(bytes[start..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALLOWED: &[Algorithm] = &[Algorithm::RS256];

    fn modulus(bits: usize) -> String {
        let mut n = vec![0xffu8; bits / 8];
        n[0] = 0x80;
        URL_SAFE_NO_PAD.encode(n)
    }

    fn good() -> Value {
        json!({"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":modulus(2048),"e":"AQAB"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut key = good();
        key[field] = value;
        key
    }

    fn without(field: &str) -> Value {
        let mut key = good();
        key.as_object_mut().unwrap().remove(field);
        key
    }

    #[test]
    fn accepts_a_kinde_key_and_optional_fields_absent() {
        assert_eq!(check(&good(), ALLOWED), Ok("k1"));
        assert!(check(&without("use"), ALLOWED).is_ok());
        assert!(check(&without("alg"), ALLOWED).is_ok());
        assert!(check(&with("key_ops", json!(["verify"])), ALLOWED).is_ok());
        assert!(check(&with("n", json!(modulus(4096))), ALLOWED).is_ok());
    }

    #[test]
    fn rejects_each_unusable_key() {
        let cases = [
            (with("kty", json!("oct")), "kty is not RSA"),
            (with("kty", json!("EC")), "kty is not RSA"),
            (without("kid"), "no kid"),
            (with("kid", json!("")), "no kid"),
            (with("use", json!("enc")), "use is not sig"),
            (with("key_ops", json!(["encrypt"])), "key_ops lacks verify"),
            (with("alg", json!("RS384")), "alg not allowed"),
            (with("alg", json!("HS256")), "alg not allowed"),
            (
                with("n", json!(modulus(1024))),
                "RSA modulus is not 2048 to 8192 bits",
            ),
            (
                with("n", json!(modulus(2040))),
                "RSA modulus is not 2048 to 8192 bits",
            ),
            (with("n", json!("!!")), "n is not base64url"),
            (with("e", json!("AQA=")), "e is not base64url"),
            (with("e", json!("AQ")), "unusable RSA exponent"),
            (with("e", json!("Ag")), "unusable RSA exponent"),
        ];
        for (key, reason) in cases {
            assert_eq!(check(&key, ALLOWED), Err(reason), "{key}");
        }
    }

    #[test]
    fn filter_keeps_good_keys_and_drops_duplicated_kids() {
        let keys = vec![
            json!({"kty":"oct","k":"c2VjcmV0"}),
            json!({"kty":"AKP","kid":"pq"}),
            good(),
            with("kid", json!("dup")),
            with("kid", json!("dup")),
        ];
        let kept = usable_keys(keys, ALLOWED);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["kid"], "k1");
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(Algorithm::from_jose("RS256"), Some(Algorithm::RS256));
        for bad in ["none", "None", "NONE", "rs256", "HS256", "ES256", ""] {
            assert_eq!(Algorithm::from_jose(bad), None, "{bad}");
        }
    }
}
