//! Which published keys we accept.
//!
//! A JWKS is filtered key by key *before* jwks_client_rs parses it, because its strict model
//! rejects a whole set for one key it does not understand (an `oct` key, a key without `kid`).
//! A key is kept only if every rule holds:
//!
//! - `kty` is `RSA`, `EC` or `OKP`; an `EC` key's `crv` is `P-256` or `P-384`, an `OKP` key's
//!   `Ed25519` (P-521, secp256k1, Ed448 and X25519 keys are dropped);
//! - no private key member (`d`, and RSA's `p`, `q`, `dp`, `dq`, `qi`, `oth`): a key
//!   published with its private half signs for anyone;
//! - `kid` is a non-empty string, and no other key in the set has the same `kid`;
//! - `use` is absent or `sig`; `key_ops`, when present, contains `verify`;
//! - `alg`, when present, is one of the verifier's algorithms and one its key type and curve
//!   can verify (RFC 7518 §3, RFC 8037: `RS*`/`PS*` an RSA key, `ES256` P-256, `ES384`
//!   P-384, `EdDSA` Ed25519); when absent, at least one allowed algorithm must fit the key;
//! - RSA: `n` and `e` are unpadded base64url; the modulus is 2048 to 8192 bits; `e` is odd and
//!   \> 1;
//! - EC: `x` and `y` are unpadded base64url of exactly the curve's size (32 bytes for P-256,
//!   48 for P-384), and the point they make is on the curve;
//! - Ed25519: `x` is unpadded base64url of exactly 32 bytes.
//!
//! Each dropped key is logged at `warn` with its kid and the reason. What a set held, usable or
//! not, is [described](describe_keys) for the warning a set without any usable key gives.

use std::collections::{BTreeSet, HashMap};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::algorithm::{Algorithm, KeyKind};

/// Members only a private JWK has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Most distinct kinds of keys named when describing a set.
const MAX_DESCRIBED: usize = 8;

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
                let key = describe(key);
                tracing::warn!(kid, %key, reason, "JWKS key dropped");
            }
            verdict.is_ok()
        })
        .collect()
}

/// Checks one raw JWK; returns its kid when usable.
pub(crate) fn check<'a>(key: &'a Value, allowed: &[Algorithm]) -> Result<&'a str, &'static str> {
    let str_field = |name: &str| key.get(name).and_then(Value::as_str);
    let kind = KeyKind::of(str_field("kty"), str_field("crv"))?;
    if PRIVATE_MEMBERS.iter().any(|name| key.get(name).is_some()) {
        return Err("private key material published: anyone can sign with it");
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
            if alg.key_kind() != kind {
                return Err("alg does not fit the key type or curve");
            }
        }
        Some(_) => return Err("alg is not a string"),
    }
    if !allowed.iter().any(|alg| alg.key_kind() == kind) {
        return Err("no allowed alg fits the key type or curve");
    }
    match kind.coordinate_bytes() {
        None => check_rsa(str_field("n"), str_field("e"))?,
        Some(size) => check_point(kind, size, str_field("x"), str_field("y"))?,
    }
    Ok(kid)
}

fn check_rsa(n: Option<&str>, e: Option<&str>) -> Result<(), &'static str> {
    let n = decode_uint(n.ok_or("no n")?).ok_or("n is not base64url")?;
    let e = decode_uint(e.ok_or("no e")?).ok_or("e is not base64url")?;
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(2048..=8192).contains(&bits) {
        return Err("RSA modulus is not 2048 to 8192 bits");
    }
    if e.len() > 8 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
        return Err("unusable RSA exponent");
    }
    Ok(())
}

/// The coordinates must be `size` bytes each; an EC point must be on its curve: aws-lc checks
/// that while parsing it (once per fetch, microseconds), as it would again at every
/// verification, where a bad point could not be told from a bad signature. An Ed25519 key has
/// no `y`, and aws-lc does not check its point: a bad one never verifies.
fn check_point(
    kind: KeyKind,
    size: usize,
    x: Option<&str>,
    y: Option<&str>,
) -> Result<(), &'static str> {
    let x = coordinate(
        x,
        size,
        ["no x", "x is not base64url", "x is not the curve's size"],
    )?;
    let algorithm = match kind {
        KeyKind::P256 => &ECDSA_P256_SHA256_FIXED,
        KeyKind::P384 => &ECDSA_P384_SHA384_FIXED,
        KeyKind::Rsa | KeyKind::Ed25519 => return Ok(()),
    };
    let y = coordinate(
        y,
        size,
        ["no y", "y is not base64url", "y is not the curve's size"],
    )?;
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04); // SEC1 uncompressed
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ParsedPublicKey::new(algorithm, &point).map_err(|_| "EC point is not on the curve")?;
    Ok(())
}

/// Decodes an unpadded base64url coordinate of exactly `size` bytes; `why` says, in order,
/// that it is missing, not base64url, or not that size.
fn coordinate(
    field: Option<&str>,
    size: usize,
    why: [&'static str; 3],
) -> Result<Vec<u8>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(field.ok_or(why[0])?)
        .map_err(|_| why[1])?;
    if bytes.len() != size {
        return Err(why[2]);
    }
    Ok(bytes)
}

/// Decodes an unpadded base64url unsigned integer, without leading zero bytes (`None` if zero).
fn decode_uint(s: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let start = bytes.iter().position(|b| *b != 0)?;
    Some(bytes[start..].to_vec())
}

/// What the keys of a raw set are, usable or not: the distinct kinds, sorted, for example
/// `ES256 (EC P-256), RS256`; empty for an empty set. At most [`MAX_DESCRIBED`] kinds.
pub(crate) fn describe_keys(keys: &[Value]) -> String {
    let kinds: BTreeSet<String> = keys.iter().map(describe).collect();
    let mut text = kinds
        .iter()
        .take(MAX_DESCRIBED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if kinds.len() > MAX_DESCRIBED {
        text.push_str(", …");
    }
    text
}

/// One key as `alg (kty crv)`, `alg`, or `kty crv`, from what it says of itself. A JWKS is
/// not a secret, but its text is printed only in a safe alphabet and cut short.
fn describe(key: &Value) -> String {
    let field = |name: &str| {
        key.get(name).and_then(Value::as_str).map(|text| {
            text.chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_+.".contains(*c))
                .take(20)
                .collect::<String>()
        })
    };
    let shape = match (field("kty"), field("crv")) {
        (Some(kty), Some(crv)) => Some(format!("{kty} {crv}")),
        (Some(kty), None) => Some(kty),
        (None, _) => None,
    };
    match (field("alg"), shape) {
        (Some(alg), Some(shape)) if shape == "RSA" => alg,
        (Some(alg), Some(shape)) => format!("{alg} ({shape})"),
        (Some(alg), None) => alg,
        (None, Some(shape)) => shape,
        (None, None) => "a key without kty".to_owned(),
    }
}

#[cfg(test)]
mod tests;
