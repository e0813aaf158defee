//! Key handling over real HTTP: unknown kids, floods, rotation, odd keys and JWKS outages.

mod common;

use std::time::{Duration, Instant};

use claimcheck::jwt::Algorithm;
use claimcheck::testing::{Endpoint, FakeKinde, Fault};
use common::{start, start_with, verifier_for};
use serde_json::json;

#[tokio::test]
async fn unknown_kid_is_an_invalid_token() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").header("kid", "nope").sign();
    let res = h.get("/me", Some(&token)).await;
    res.assert_invalid_token();
    // The answer does not reveal whether the kid exists.
    let forged = h.kinde.user_token("kp_1").forged().sign();
    assert_eq!(res.challenge, h.get("/me", Some(&forged)).await.challenge);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_amplify_into_jwks_fetches() {
    let kinde = FakeKinde::start().await;
    // Production cooldown (30 s): after warm-up, no unknown kid may cause another fetch.
    let verifier = verifier_for(&kinde)
        .jwks_refetch_cooldown(Duration::from_secs(30))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(kinde, verifier).await;
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 1);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let token = h
            .kinde
            .user_token("kp_1")
            .header("kid", format!("bogus-{i}"))
            .sign();
        let (client, url) = (h.client.clone(), format!("{}/me", h.base));
        tasks.push(tokio::spawn(async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            res.status().as_u16()
        }));
    }
    // Valid requests keep passing during the flood.
    let valid = h.kinde.user_token("kp_ok").sign();
    assert_eq!(h.get("/me", Some(&valid)).await.status, 200);
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    assert_eq!(
        h.kinde.calls(Endpoint::Jwks),
        1,
        "unknown kids refetched the JWKS"
    );
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_cooldown() {
    let h = start().await; // cooldown 200 ms
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = h.kinde.calls(Endpoint::Jwks);
    for i in 0..20 {
        let token = h
            .kinde
            .user_token("kp_1")
            .header("kid", format!("x{i}"))
            .sign();
        h.get("/me", Some(&token)).await.assert_invalid_token();
    }
    let fetched = h.kinde.calls(Endpoint::Jwks) - before;
    assert!(
        fetched >= 1,
        "an unknown kid after the cooldown should refetch"
    );
    assert!(fetched <= 2, "{fetched} fetches for 20 unknown kids");
}

#[tokio::test]
async fn rotation_to_a_new_kid_is_picked_up() {
    let h = start().await;
    let old = h.kinde.user_token("kp_1").sign();
    let new_kid = h.kinde.rotate_key();
    tokio::time::sleep(Duration::from_millis(250)).await; // past the 200 ms cooldown
    let new = h.kinde.user_token("kp_1").sign();
    assert_eq!(new_kid, h.kinde.current_kid());
    assert_eq!(h.get("/me", Some(&new)).await.status, 200);
    assert_eq!(h.get("/me", Some(&old)).await.status, 200);
}

#[tokio::test]
async fn a_retired_key_stops_verifying_once_the_set_is_refetched() {
    let h = start().await;
    let old_kid = h.kinde.current_kid();
    h.kinde.rotate_key();
    h.kinde.retire_key(&old_kid);
    tokio::time::sleep(Duration::from_millis(250)).await; // past the 200 ms cooldown
    // A token under the new kid makes the store refetch; the retired key leaves with it.
    let new = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&new)).await.status, 200);
    let old = h.kinde.user_token("kp_2").signed_with(&old_kid).sign();
    h.get("/me", Some(&old)).await.assert_invalid_token();
    assert_eq!(h.verifier.key_store().key_count(), 1);
}

#[tokio::test]
async fn a_cached_token_is_dropped_when_its_key_is_withdrawn() {
    let h = start().await;
    let old_kid = h.kinde.current_kid();
    let cached = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&cached)).await.status, 200);
    // A second key, published and used before the first is withdrawn.
    h.kinde.rotate_key();
    let spare = h.kinde.user_token("kp_2").sign();
    tokio::time::sleep(Duration::from_millis(250)).await; // past the 200 ms cooldown
    assert_eq!(
        h.get("/me", Some(&spare)).await.status,
        200,
        "refetch picks it up"
    );
    assert_eq!(h.verifier.key_store().key_count(), 2);

    // The issuer stops publishing the first key (a leak, say) and starts a third.
    h.kinde.retire_key(&old_kid);
    h.kinde.rotate_key();
    assert_eq!(
        h.get("/me", Some(&cached)).await.status,
        200,
        "not refetched yet"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let newest = h.kinde.user_token("kp_3").sign();
    assert_eq!(h.get("/me", Some(&newest)).await.status, 200, "refetch");
    assert_eq!(h.verifier.key_store().key_count(), 2);
    // Right after the refetch: the token cached under the withdrawn key is refused...
    h.get("/me", Some(&cached)).await.assert_invalid_token();
    // ...while one cached under a key still published is served as before.
    assert_eq!(h.get("/me", Some(&spare)).await.status, 200);
}

#[tokio::test]
async fn cache_hits_alone_keep_the_key_set_refreshed() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier_for(&kinde)
        .jwks_refresh_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let leaked = kinde.user_token("kp_1").sign();
    verifier.verify(&leaked).await.unwrap();
    let old_kid = kinde.current_kid();
    kinde.rotate_key();
    kinde.retire_key(&old_kid);
    let fetches = kinde.calls(Endpoint::Jwks);
    // Only the leaked token, every 20 ms: every request is a verified-token cache hit.
    let start = Instant::now();
    let mut answers = Vec::new();
    while start.elapsed() < Duration::from_millis(700) {
        let accepted = verifier.verify(&leaked).await.is_ok();
        answers.push((start.elapsed(), accepted));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        kinde.calls(Endpoint::Jwks) > fetches,
        "refreshed on schedule"
    );
    assert!(answers[0].1, "served from the cache until the refresh");
    let late: Vec<_> = answers
        .iter()
        .filter(|(at, _)| *at > Duration::from_millis(400))
        .collect();
    assert!(
        !late.is_empty() && late.iter().all(|(_, ok)| !ok),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_key_published_for_encryption_is_not_used_to_verify() {
    let h = start().await;
    let mut jwk = h.kinde.current_jwk();
    jwk["kid"] = json!("enc-key");
    jwk["use"] = json!("enc");
    h.kinde.publish_jwk(jwk.clone());
    jwk["kid"] = json!("ops-key");
    jwk["use"] = json!("sig");
    jwk["key_ops"] = json!(["encrypt"]);
    h.kinde.publish_jwk(jwk);
    tokio::time::sleep(Duration::from_millis(250)).await;
    for kid in ["enc-key", "ops-key"] {
        // Signed by the very key material the JWK carries: only the `use` rule stops it.
        let token = h.kinde.user_token("kp_1").header("kid", kid).sign();
        h.get("/me", Some(&token)).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn jwk_alg_must_match_the_header_alg() {
    let kinde = FakeKinde::start().await;
    let mut jwk = kinde.current_jwk();
    jwk["kid"] = json!("rs384-key");
    jwk["alg"] = json!("RS384");
    kinde.publish_jwk(jwk);
    let verifier = verifier_for(&kinde)
        .algorithms([Algorithm::RS256, Algorithm::RS384])
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(kinde, verifier).await;
    // A valid RS256 signature by the same key, but the JWK pins RS384.
    let token = h.kinde.user_token("kp_1").header("kid", "rs384-key").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn rsa_keys_under_2048_bits_are_not_used() {
    let h = start().await;
    let mut jwk = h.kinde.current_jwk();
    let mut weak = vec![0xffu8; 128];
    weak[0] = 0xc1;
    jwk["kid"] = json!("weak-1024");
    jwk["n"] = json!(base64_url(&weak));
    h.kinde.publish_jwk(jwk);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let token = h.kinde.user_token("kp_1").header("kid", "weak-1024").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    assert_eq!(h.verifier.key_store().key_count(), 1);
}

#[tokio::test]
async fn one_bad_key_does_not_spoil_the_set() {
    let kinde = FakeKinde::start().await;
    kinde.publish_jwk(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
    kinde.publish_jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
    kinde.publish_jwk(json!({"kty": "AKP", "kid": "post-quantum", "alg": "ML-DSA-44"}));
    kinde.publish_jwk(json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}));
    kinde.publish_jwk(json!("not even an object"));
    let verifier = common::warm_verifier(&kinde).await;
    assert_eq!(verifier.key_store().key_count(), 1);
    let h = start_with(kinde, verifier).await;
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn jwks_down_after_warm_up_keeps_serving_the_last_good_keys() {
    let h = start().await;
    for fault in [
        Fault::Down,
        Fault::Hang,
        Fault::Drip(Duration::from_millis(60)),
        Fault::Status(500, vec![]),
        Fault::Status(429, vec![("retry-after".into(), "soon".into())]),
        Fault::Garbage,
        Fault::Truncated,
        Fault::InvalidUtf8,
        Fault::Nested(100_000),
        Fault::Huge(10 * 1024 * 1024),
    ] {
        h.kinde.set_fault(Endpoint::Jwks, fault.clone());
        tokio::time::sleep(Duration::from_millis(250)).await;
        // An unknown kid triggers a (failing) refetch; the keys survive it.
        let bogus = h.kinde.user_token("kp_1").header("kid", "bogus").sign();
        h.get("/me", Some(&bogus)).await.assert_invalid_token();
        let fresh = h.kinde.user_token("kp_fresh").sign();
        assert_eq!(h.get("/me", Some(&fresh)).await.status, 200, "{fault:?}");
    }
}

async fn cold(fault: Fault, timeout: Duration) -> (common::Harness, Duration) {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, fault);
    let verifier = verifier_for(&kinde)
        .jwks_timeouts(timeout, timeout)
        .jwks_max_bytes(64 * 1024)
        .build()
        .unwrap();
    let h = start_with(kinde, verifier).await;
    let token = h.kinde.user_token("kp_1").sign();
    let started = Instant::now();
    let res = h.get("/me", Some(&token)).await;
    let took = started.elapsed();
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.retry_after.is_some());
    assert_eq!(
        res.content_type.as_deref(),
        Some("application/problem+json")
    );
    (h, took)
}

#[tokio::test]
async fn jwks_unavailable_cold_is_a_503_and_recovery_is_picked_up() {
    let (h, _) = cold(Fault::Down, Duration::from_millis(500)).await;
    h.kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(Duration::from_millis(60)).await; // past the 50 ms cold retry
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn jwks_faults_cold_are_503s() {
    let ms = Duration::from_millis;
    for fault in [
        Fault::Status(503, vec![]),
        Fault::Status(404, vec![]),
        Fault::Garbage,
        Fault::Huge(1024 * 1024),
        Fault::Status(302, vec![("location".into(), "/.well-known/jwks".into())]),
        Fault::Status(429, vec![("ratelimit-reset".into(), "-1".into())]),
        Fault::Truncated,
        Fault::InvalidUtf8,
        Fault::Nested(100_000),
        Fault::Huge(10 * 1024 * 1024),
    ] {
        cold(fault, ms(500)).await;
    }
    for fault in [Fault::Hang, Fault::Drip(ms(60))] {
        let (_, took) = cold(fault.clone(), ms(200)).await;
        assert!(took < ms(1200), "{fault:?} held the request for {took:?}");
    }
    let (_, took) = cold(Fault::Slow(ms(1500)), ms(200)).await;
    assert!(took < ms(1200), "a slow JWKS held the request for {took:?}");
}

#[tokio::test]
async fn the_jwks_is_also_served_without_the_json_suffix() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier_for(&kinde)
        .jwks_url(format!("{}/.well-known/jwks", kinde.issuer()))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let token = kinde.user_token("kp_1").sign();
    assert!(verifier.verify(&token).await.is_ok());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
