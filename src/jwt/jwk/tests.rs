use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair,
};
use serde_json::json;

use super::*;

const RS256_ONLY: &[Algorithm] = &[Algorithm::RS256];
const PRIVATE: &str = "private key material published: anyone can sign with it";
const ALL: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn modulus(bits: usize) -> String {
    let mut n = vec![0xffu8; bits / 8];
    n[0] = 0x80;
    URL_SAFE_NO_PAD.encode(n)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa() -> Value {
    json!({"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":modulus(2048),"e":"AQAB"})
}

/// A fresh EC public JWK on the curve `signing` is for.
fn ec_key(signing: &'static EcdsaSigningAlgorithm, crv: &str, alg: &str) -> Value {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let size = (point.len() - 1) / 2;
    let (x, y) = point[1..].split_at(size);
    json!({"kty":"EC","kid":"e1","use":"sig","alg":alg,"crv":crv,"x":b64(x),"y":b64(y)})
}

fn p256() -> Value {
    ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", "ES256")
}

fn p384() -> Value {
    ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", "ES384")
}

fn ed25519() -> Value {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = b64(pair.public_key().as_ref());
    json!({"kty":"OKP","kid":"o1","use":"sig","alg":"EdDSA","crv":"Ed25519","x":x})
}

fn with(mut key: Value, field: &str, value: Value) -> Value {
    key[field] = value;
    key
}

fn without(mut key: Value, field: &str) -> Value {
    key.as_object_mut().unwrap().remove(field);
    key
}

/// `field` of `key` decoded, changed by `change`, encoded again.
fn edited(key: Value, field: &str, change: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut bytes = URL_SAFE_NO_PAD
        .decode(key[field].as_str().unwrap())
        .unwrap();
    change(&mut bytes);
    with(key, field, json!(b64(&bytes)))
}

#[test]
fn accepts_a_kinde_key_and_optional_fields_absent() {
    assert_eq!(check(&rsa(), RS256_ONLY), Ok("k1"));
    assert!(check(&without(rsa(), "use"), RS256_ONLY).is_ok());
    assert!(check(&without(rsa(), "alg"), RS256_ONLY).is_ok());
    assert!(check(&with(rsa(), "key_ops", json!(["verify"])), RS256_ONLY).is_ok());
    assert!(check(&with(rsa(), "n", json!(modulus(4096))), RS256_ONLY).is_ok());
}

#[test]
fn accepts_ec_and_ed25519_keys_when_their_algorithm_is_allowed() {
    for key in [p256(), p384(), ed25519()] {
        assert!(check(&key, ALL).is_ok(), "{key}");
        assert!(check(&without(key.clone(), "alg"), ALL).is_ok(), "{key}");
        assert!(check(&without(key.clone(), "use"), ALL).is_ok(), "{key}");
        let ops = with(key.clone(), "key_ops", json!(["verify"]));
        assert!(check(&ops, ALL).is_ok(), "{key}");
    }
    // Only the algorithm the key needs has to be allowed.
    assert!(check(&p256(), &[Algorithm::ES256]).is_ok());
    assert!(check(&p384(), &[Algorithm::ES384]).is_ok());
    assert!(check(&ed25519(), &[Algorithm::EdDSA]).is_ok());
}

#[test]
fn rejects_each_unusable_rsa_key() {
    let cases = [
        (
            with(rsa(), "kty", json!("oct")),
            "kty is not RSA, EC or OKP",
        ),
        (
            with(rsa(), "kty", json!("rsa")),
            "kty is not RSA, EC or OKP",
        ),
        (without(rsa(), "kty"), "kty is not RSA, EC or OKP"),
        (without(rsa(), "kid"), "no kid"),
        (with(rsa(), "kid", json!("")), "no kid"),
        (with(rsa(), "d", json!("AQAB")), PRIVATE),
        (with(rsa(), "p", json!("AQAB")), PRIVATE),
        (with(rsa(), "qi", json!(null)), PRIVATE),
        (with(rsa(), "use", json!("enc")), "use is not sig"),
        (with(rsa(), "use", json!(["sig"])), "use is not sig"),
        (
            with(rsa(), "key_ops", json!(["encrypt"])),
            "key_ops lacks verify",
        ),
        (
            with(rsa(), "key_ops", json!("verify")),
            "key_ops is not an array",
        ),
        (with(rsa(), "alg", json!("RS384")), "alg not allowed"),
        (with(rsa(), "alg", json!("HS256")), "alg not allowed"),
        (with(rsa(), "alg", json!(256)), "alg is not a string"),
        (
            with(rsa(), "n", json!(modulus(1024))),
            "RSA modulus is not 2048 to 8192 bits",
        ),
        (
            with(rsa(), "n", json!(modulus(2040))),
            "RSA modulus is not 2048 to 8192 bits",
        ),
        (with(rsa(), "n", json!("!!")), "n is not base64url"),
        (without(rsa(), "n"), "no n"),
        (with(rsa(), "e", json!("AQA=")), "e is not base64url"),
        (with(rsa(), "e", json!("AQ")), "unusable RSA exponent"),
        (with(rsa(), "e", json!("Ag")), "unusable RSA exponent"),
    ];
    for (key, reason) in cases {
        assert_eq!(check(&key, RS256_ONLY), Err(reason), "{key}");
    }
}

#[test]
fn rejects_each_key_bound_to_another_algorithm_or_curve() {
    let cases = [
        // The JWK's alg needs another key type or curve.
        (
            with(p256(), "alg", json!("ES384")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        (
            with(p384(), "alg", json!("ES256")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        (
            with(p256(), "alg", json!("RS256")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        (
            with(p256(), "alg", json!("EdDSA")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        (
            with(ed25519(), "alg", json!("ES256")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        (
            with(rsa(), "alg", json!("ES256")),
            ALL,
            "alg does not fit the key type or curve",
        ),
        // Names outside the list, in any casing, are never algorithms.
        (with(p256(), "alg", json!("es256")), ALL, "alg not allowed"),
        (with(p256(), "alg", json!("ES256K")), ALL, "alg not allowed"),
        (
            with(ed25519(), "alg", json!("Ed25519")),
            ALL,
            "alg not allowed",
        ),
        // Not opted in: the key's alg, or (without one) any algorithm its kind needs.
        (p256(), RS256_ONLY, "alg not allowed"),
        (
            without(p256(), "alg"),
            RS256_ONLY,
            "no allowed alg fits the key type or curve",
        ),
        (
            without(p384(), "alg"),
            &[Algorithm::ES256],
            "no allowed alg fits the key type or curve",
        ),
        (
            without(ed25519(), "alg"),
            RS256_ONLY,
            "no allowed alg fits the key type or curve",
        ),
        (
            without(rsa(), "alg"),
            &[Algorithm::ES256],
            "no allowed alg fits the key type or curve",
        ),
    ];
    for (key, allowed, reason) in cases {
        assert_eq!(check(&key, allowed), Err(reason), "{key} {allowed:?}");
    }
}

#[test]
fn rejects_each_unusable_ec_or_ed25519_key() {
    let cases = [
        (with(p256(), "crv", json!("P-521")), "unsupported curve"),
        (with(p256(), "crv", json!("secp256k1")), "unsupported curve"),
        (with(p256(), "crv", json!("p-256")), "unsupported curve"),
        (with(ed25519(), "crv", json!("Ed448")), "unsupported curve"),
        (with(ed25519(), "crv", json!("X25519")), "unsupported curve"),
        (with(ed25519(), "kty", json!("EC")), "unsupported curve"),
        (without(p256(), "crv"), "no crv"),
        (without(ed25519(), "crv"), "no crv"),
        (without(p256(), "kid"), "no kid"),
        (with(p256(), "d", json!(b64(&[7; 32]))), PRIVATE),
        (with(ed25519(), "d", json!(b64(&[7; 32]))), PRIVATE),
        (with(p256(), "use", json!("enc")), "use is not sig"),
        (
            with(ed25519(), "key_ops", json!(["sign"])),
            "key_ops lacks verify",
        ),
        (without(p256(), "x"), "no x"),
        (without(p384(), "y"), "no y"),
        (without(ed25519(), "x"), "no x"),
        (with(p256(), "x", json!(7)), "no x"),
        // Padded, standard alphabet, or not base64 at all.
        (edited(p256(), "x", |_| {}), "ok"),
        (
            with(
                p256(),
                "x",
                json!(format!("{}=", p256()["x"].as_str().unwrap())),
            ),
            "x is not base64url",
        ),
        (with(p384(), "y", json!("a+b/")), "y is not base64url"),
        (
            with(ed25519(), "x", json!("not base64!")),
            "x is not base64url",
        ),
        // Exact lengths: a leading zero dropped or added, or the other curve's size.
        (
            edited(p256(), "x", |x| x.truncate(31)),
            "x is not the curve's size",
        ),
        (
            edited(p256(), "y", |y| y.insert(0, 0)),
            "y is not the curve's size",
        ),
        (
            with(without(p256(), "alg"), "crv", json!("P-384")),
            "x is not the curve's size",
        ),
        (
            with(without(p384(), "alg"), "crv", json!("P-256")),
            "x is not the curve's size",
        ),
        (
            edited(ed25519(), "x", |x| x.push(0)),
            "x is not the curve's size",
        ),
        (
            edited(ed25519(), "x", |x| x.truncate(31)),
            "x is not the curve's size",
        ),
        // A point off the curve (the identity among them).
        (
            edited(p256(), "y", |y| y[31] ^= 1),
            "EC point is not on the curve",
        ),
        (
            edited(p384(), "x", |x| x[0] ^= 0x80),
            "EC point is not on the curve",
        ),
        (
            with(
                with(p256(), "x", json!(b64(&[0; 32]))),
                "y",
                json!(b64(&[0; 32])),
            ),
            "EC point is not on the curve",
        ),
        // Coordinates past the field prime are not reduced into a valid point.
        (
            with(
                with(p256(), "x", json!(b64(&[0xff; 32]))),
                "y",
                json!(b64(&[0xff; 32])),
            ),
            "EC point is not on the curve",
        ),
    ];
    for (key, reason) in cases {
        let verdict = check(&key, ALL);
        if reason == "ok" {
            assert!(verdict.is_ok(), "{key}: {verdict:?}");
        } else {
            assert_eq!(verdict, Err(reason), "{key}");
        }
    }
}

#[test]
fn filter_keeps_good_keys_and_drops_duplicated_kids() {
    let keys = vec![
        json!({"kty":"oct","k":"c2VjcmV0"}),
        json!({"kty":"AKP","kid":"pq"}),
        rsa(),
        p256(),
        with(rsa(), "kid", json!("dup")),
        with(p384(), "kid", json!("dup")),
    ];
    let kept = usable_keys(keys.clone(), RS256_ONLY);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["kid"], "k1");
    let kept = usable_keys(keys, ALL);
    let kids: Vec<&str> = kept.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["k1", "e1"]);
}

#[test]
fn sets_are_described_by_what_their_keys_say() {
    let keys = [
        p256(),
        p256(),
        rsa(),
        without(ed25519(), "alg"),
        json!({"kty":"oct","k":"c2VjcmV0"}),
        json!({"kty":"EC","crv":"P-521\n\u{1b}[31mforged log line"}),
        json!({"alg":"HS256"}),
        json!("not even an object"),
    ];
    assert_eq!(
        describe_keys(&keys),
        "EC P-52131mforgedloglin, ES256 (EC P-256), HS256, OKP Ed25519, RS256, a key without kty, oct"
    );
    assert_eq!(describe_keys(&[]), "");
    let many: Vec<Value> = (0..20)
        .map(|i| json!({"kty": format!("k{i:02}")}))
        .collect();
    let described = describe_keys(&many);
    assert!(described.ends_with("k07, …"), "{described}");
}
