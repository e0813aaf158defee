//! Hostile tokens and keys against ES256, ES384 and EdDSA, over real HTTP against FakeKinde,
//! with every algorithm allowed (the most a verifier can accept): `alg: none`, HMAC forged with
//! the EC or Ed25519 public key in every encoding, tampered payloads and signatures (DER-encoded
//! ECDSA, wrong lengths, non-canonical Ed25519), keys off their curve or on curves we do not
//! support, and a kid republished for a key of another type.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimcheck::jwt::Algorithm;
use claimcheck::testing::{Endpoint, FakeKinde, Fault, KeyType};
use common::{Harness, start_with, verifier_for};
use serde_json::{Value, json};

const EVERY: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Key types other than Kinde's.
const OTHER_TYPES: [KeyType; 3] = [KeyType::Es256, KeyType::Es384, KeyType::EdDsa];

/// A fake with one key of each of [`OTHER_TYPES`] (their kids, in that order) and the app
/// behind a verifier allowing [`EVERY`] algorithm, keys fetched.
async fn start() -> (Harness, Vec<String>) {
    let kinde = FakeKinde::start().await;
    let kids: Vec<String> = OTHER_TYPES
        .iter()
        .map(|t| kinde.add_signing_key(*t))
        .collect();
    let verifier = verifier_for(&kinde).algorithms(EVERY).build().unwrap();
    assert!(verifier.warm_up().await);
    assert_eq!(verifier.key_store().key_count(), 4);
    (start_with(kinde, verifier).await, kids)
}

fn segments(token: &str) -> (String, String, Vec<u8>) {
    let mut parts = token.split('.');
    let (header, payload) = (parts.next().unwrap(), parts.next().unwrap());
    let signature = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (header.to_owned(), payload.to_owned(), signature)
}

fn with_signature(token: &str, signature: &[u8]) -> String {
    let (header, payload, _) = segments(token);
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The fixed-length `r || s` ECDSA signature as ASN.1 DER (`SEQUENCE { INTEGER r, INTEGER s }`),
/// the form X.509 and most crypto libraries use, which JOSE does not.
fn der(signature: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let mut value = bytes[start..].to_vec();
        if value[0] & 0x80 != 0 {
            value.insert(0, 0);
        }
        let mut out = vec![0x02, value.len() as u8];
        out.extend(value);
        out
    };
    let (r, s) = signature.split_at(signature.len() / 2);
    let body = [integer(r), integer(s)].concat();
    assert!(body.len() < 128);
    [vec![0x30, body.len() as u8], body].concat()
}

/// An Ed25519 signature whose `S` (little-endian, second half) has the group order `L` added:
/// the same equation holds, but RFC 8032 §5.1.7 requires `S < L`.
fn non_canonical(signature: &[u8]) -> Vec<u8> {
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = signature.to_vec();
    let mut carry = 0u16;
    for (i, l) in L.iter().enumerate() {
        let sum = u16::from(out[32 + i]) + u16::from(*l) + carry;
        out[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

#[tokio::test]
async fn alg_none_in_every_casing_is_refused_for_ec_and_ed25519_keys() {
    let (h, kids) = start().await;
    for kid in &kids {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = h
                .kinde
                .user_token("kp_1")
                .unsigned(alg)
                .header("kid", kid.as_str())
                .sign();
            h.get("/me", Some(&token)).await.assert_invalid_token();
            // A genuine signature of the same input does not help either.
            let signed = h.kinde.user_token("kp_1").signed_with(kid).sign();
            let (_, _, signature) = segments(&signed);
            let token = format!("{token}{}", URL_SAFE_NO_PAD.encode(signature));
            h.get("/me", Some(&token)).await.assert_invalid_token();
        }
    }
}

// Catches: a verifier that lets the token's alg pick HMAC and uses the public key's bytes, in
// whatever encoding, as the secret.
#[tokio::test]
async fn hmac_keyed_with_the_public_key_in_every_encoding_is_refused() {
    let (h, kids) = start().await;
    let rsa = h.kinde.current_kid();
    for kid in kids.iter().chain([&rsa]) {
        let encodings = h.kinde.public_key_encodings_of(kid);
        assert!(encodings.len() >= 6, "{kid}: {}", encodings.len());
        for (name, secret) in encodings {
            let base = || h.kinde.user_token("kp_1").header("kid", kid.as_str());
            for token in [base().hs256(secret.clone()), base().hs384(secret.clone())] {
                let token = token.sign();
                let answer = h.get("/me", Some(&token)).await;
                assert_eq!(answer.status, 401, "{kid} {name}");
                answer.assert_invalid_token();
            }
        }
    }
    assert!(h.kinde.public_key_encodings_of("no-such-kid").is_empty());
}

#[tokio::test]
async fn every_ec_encoding_an_attacker_would_try_is_offered() {
    let kinde = FakeKinde::start().await;
    let kid = kinde.add_signing_key(KeyType::Es256);
    let names: Vec<&str> = kinde
        .public_key_encodings_of(&kid)
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for expected in [
        "spki-pem",
        "spki-der",
        "jwk-json",
        "sec1-uncompressed",
        "sec1-compressed",
        "raw-x-y",
        "x-base64url",
        "y-base64url",
        "x-y-base64url",
        "raw-x-y-base64url",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    let encodings = kinde.public_key_encodings_of(&kid);
    let find = |name: &str| &encodings.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(find("sec1-uncompressed").len(), 65);
    assert_eq!(find("sec1-compressed").len(), 33);
    assert_eq!(&find("sec1-uncompressed")[1..], &find("raw-x-y")[..]);
}

// Catches: a panic, or an acceptance, on signatures of the wrong shape or content.
#[tokio::test]
async fn tampered_payloads_and_signatures_are_refused_without_panic() {
    let (h, kids) = start().await;
    for (key_type, kid) in OTHER_TYPES.iter().zip(&kids) {
        let genuine = h
            .kinde
            .user_token("kp_1")
            .permissions(["read:reports"])
            .signed_with(kid)
            .sign();
        assert_eq!(h.get("/reports", Some(&genuine)).await.status, 200);
        let (header, _, signature) = segments(&genuine);
        let other = h.kinde.user_token("kp_2").signed_with(kid).sign();
        let (_, other_payload, _) = segments(&other);
        let mut hostile = vec![(
            "payload swapped",
            format!(
                "{header}.{other_payload}.{}",
                URL_SAFE_NO_PAD.encode(&signature)
            ),
        )];
        let mut variants: Vec<(&str, Vec<u8>)> = vec![
            ("one byte short", signature[..signature.len() - 1].to_vec()),
            ("one byte long", [&signature[..], &[0]].concat()),
            ("doubled", signature.repeat(2)),
            ("half", signature[..signature.len() / 2].to_vec()),
            ("one byte", vec![0]),
            ("zeros", vec![0; signature.len()]),
            ("ones", vec![0xff; signature.len()]),
            ("r and s swapped", {
                let (a, b) = signature.split_at(signature.len() / 2);
                [b, a].concat()
            }),
        ];
        for at in [0, signature.len() / 2, signature.len() - 1] {
            let mut flipped = signature.clone();
            flipped[at] ^= 1;
            variants.push(("a bit flipped", flipped));
        }
        if *key_type == KeyType::EdDsa {
            variants.push(("non-canonical S", non_canonical(&signature)));
        } else {
            variants.push(("DER-encoded", der(&signature)));
        }
        for (name, bytes) in variants {
            hostile.push((name, with_signature(&genuine, &bytes)));
        }
        for (name, token) in hostile {
            let answer = h.get("/reports", Some(&token)).await;
            assert_eq!(answer.status, 401, "{key_type:?}: {name}");
            answer.assert_invalid_token();
        }
    }
}

// Catches: keys kept whose point is not on their curve, is the other curve's size, is on a
// curve we do not support, or is published with its private half; and tokens naming such a
// key getting anything but 401.
#[tokio::test]
async fn keys_off_their_curve_or_on_unsupported_curves_are_never_used() {
    let kinde = FakeKinde::start().await;
    let p256 = kinde.add_signing_key(KeyType::Es256);
    let p384 = kinde.add_signing_key(KeyType::Es384);
    let ed = kinde.add_signing_key(KeyType::EdDsa);
    let edit = |kid: &str, name: &str, change: &dyn Fn(&mut Value)| {
        let mut jwk = kinde.jwk_of(kid).unwrap();
        change(&mut jwk);
        jwk["kid"] = json!(name);
        kinde.publish_jwk(jwk);
        (kid.to_owned(), name.to_owned())
    };
    let flip_last = |field: &'static str| {
        move |jwk: &mut Value| {
            let mut bytes = URL_SAFE_NO_PAD
                .decode(jwk[field].as_str().unwrap())
                .unwrap();
            *bytes.last_mut().unwrap() ^= 1;
            jwk[field] = json!(URL_SAFE_NO_PAD.encode(bytes));
        }
    };
    let hostile = [
        edit(&p256, "off-curve", &flip_last("y")),
        edit(&p384, "off-curve-384", &flip_last("x")),
        edit(&p256, "x-y-swapped", &|jwk| {
            let x = jwk["x"].clone();
            jwk["x"] = jwk["y"].clone();
            jwk["y"] = x;
        }),
        edit(&p384, "p384-as-p256", &|jwk| {
            jwk["crv"] = json!("P-256");
            jwk["alg"] = json!("ES256");
        }),
        edit(&p256, "compressed-x", &|jwk| {
            let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
            jwk["x"] = json!(URL_SAFE_NO_PAD.encode([&[2u8][..], &x].concat()));
        }),
        edit(&p256, "p521", &|jwk| jwk["crv"] = json!("P-521")),
        edit(&p256, "secp256k1", &|jwk| {
            jwk["crv"] = json!("secp256k1");
            jwk["alg"] = json!("ES256K");
        }),
        edit(&ed, "ed448", &|jwk| jwk["crv"] = json!("Ed448")),
        edit(&ed, "x25519", &|jwk| jwk["crv"] = json!("X25519")),
        edit(&ed, "ed-as-ec", &|jwk| jwk["kty"] = json!("EC")),
        edit(&p256, "with-private-key", &|jwk| {
            jwk["d"] = json!("c2VjcmV0")
        }),
        edit(&ed, "ed-with-private-key", &|jwk| {
            jwk["d"] = json!("c2VjcmV0")
        }),
        edit(&p256, "padded", &|jwk| {
            jwk["x"] = json!(format!("{}=", jwk["x"].as_str().unwrap()));
        }),
    ];
    let verifier = verifier_for(&kinde).algorithms(EVERY).build().unwrap();
    assert!(verifier.warm_up().await);
    assert_eq!(verifier.key_store().key_count(), 4, "only the genuine keys");
    let h = start_with(kinde, verifier).await;
    for (signer, name) in hostile {
        // Signed by the key the hostile JWK was made from, in its own algorithm.
        let token = h
            .kinde
            .user_token("kp_1")
            .signed_with(&signer)
            .header("kid", name.as_str())
            .sign();
        let answer = h.get("/me", Some(&token)).await;
        assert_eq!(answer.status, 401, "{name}");
        answer.assert_invalid_token();
    }
}

// Catches: a kid whose key changes type (RSA to EC) under the same kid kept as the old key, or
// the tokens it verified kept in the cache.
#[tokio::test]
async fn a_kid_republished_for_a_key_of_another_type_replaces_the_old_key() {
    let kinde = FakeKinde::start().await;
    let rsa = kinde.current_kid();
    let ec = kinde.add_signing_key(KeyType::Es256);
    let under_shared = |kid: &str| {
        let mut jwk = kinde.jwk_of(kid).unwrap();
        jwk["kid"] = json!("shared");
        json!({ "keys": [jwk] }).to_string()
    };
    let (rsa_set, ec_set) = (under_shared(&rsa), under_shared(&ec));
    kinde.set_fault(Endpoint::Jwks, Fault::Body(rsa_set));
    let verifier = verifier_for(&kinde).algorithms(EVERY).build().unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(kinde, verifier).await;
    let token = |kid: &str| {
        h.kinde
            .user_token("kp_1")
            .signed_with(kid)
            .header("kid", "shared")
            .sign()
    };
    let (rsa_token, ec_token) = (token(&rsa), token(&ec));
    assert_eq!(h.get("/me", Some(&rsa_token)).await.status, 200); // now cached
    h.get("/me", Some(&ec_token)).await.assert_invalid_token();

    h.kinde.set_fault(Endpoint::Jwks, Fault::Body(ec_set));
    tokio::time::sleep(std::time::Duration::from_millis(250)).await; // past the cooldown
    let unknown = h.kinde.user_token("kp_1").header("kid", "unknown").sign();
    h.get("/me", Some(&unknown)).await.assert_invalid_token(); // makes the store refetch
    assert!(h.kinde.calls(Endpoint::Jwks) >= 2);
    assert_eq!(h.get("/me", Some(&ec_token)).await.status, 200);
    h.get("/me", Some(&rsa_token)).await.assert_invalid_token();
    // And a fresh RS256 token under the kid, never cached, is refused for its key type.
    let fresh = h
        .kinde
        .user_token("kp_2")
        .signed_with(&rsa)
        .header("kid", "shared")
        .sign();
    h.get("/me", Some(&fresh)).await.assert_invalid_token();
}
