//! Misconfiguration explains itself: tokens refused for their issuer, audience, key id or
//! algorithm produce one `warn` a minute per reason saying what they carry and what is
//! configured, never the token. Logs are captured with a test subscriber; the fake Kinde is
//! on loopback.

mod common;

use claimcheck::testing::FakeKinde;
use common::log::Log;
use common::warm_verifier;

#[tokio::test]
async fn each_mismatch_is_explained_once_a_minute_without_the_token() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    let verifier = warm_verifier(&kinde).await;

    let other_api = kinde
        .user_token("kp_1")
        .audience("https://other-api")
        .sign();
    assert!(verifier.verify(&other_api).await.is_err());
    let text = log.text();
    assert!(
        text.contains("none of their aud is a configured audience"),
        "{text}"
    );
    assert!(text.contains("https://other-api"), "{text}");
    assert!(text.contains(kinde.audience()), "{text}");

    let other_issuer = kinde
        .user_token("kp_1")
        .claim("iss", "https://mybiz.kinde.com")
        .sign();
    assert!(verifier.verify(&other_issuer).await.is_err());
    let text = log.text();
    assert!(
        text.contains("their iss is not the configured issuer"),
        "{text}"
    );
    assert!(text.contains("https://mybiz.kinde.com"), "{text}");

    let unknown_kid = kinde
        .user_token("kp_1")
        .header("kid", "kid-of-another-business")
        .claim("iss", "https://elsewhere.kinde.com")
        .sign();
    assert!(verifier.verify(&unknown_kid).await.is_err());
    let text = log.text();
    assert!(
        text.contains("their kid is not in the issuer's key set"),
        "{text}"
    );
    assert!(text.contains("kid-of-another-business"), "{text}");
    assert!(
        text.contains("https://elsewhere.kinde.com"),
        "the unverified iss: {text}"
    );

    let symmetric = kinde.user_token("kp_1").hs256("shared-secret").sign();
    assert!(verifier.verify(&symmetric).await.is_err());
    assert!(
        log.text().contains("their alg is not accepted"),
        "{}",
        log.text()
    );

    // The same mistakes again: no new warning within the minute.
    let before = log.text().lines().count();
    for token in [&other_api, &other_issuer, &unknown_kid, &symmetric] {
        assert!(verifier.verify(token).await.is_err());
    }
    let text = log.text();
    assert_eq!(text.lines().count(), before, "{text}");
    // Never the token, nor a piece of its signature.
    for token in [&other_api, &other_issuer, &unknown_kid, &symmetric] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "{text}");
    }
}

#[tokio::test]
async fn a_hostile_token_cannot_write_log_lines() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    let verifier = warm_verifier(&kinde).await;
    let injected = format!("x\nFAKE WARN granted admin{}", "y".repeat(300));
    let token = kinde
        .user_token("kp_1")
        .header("kid", injected.as_str())
        .sign();
    assert!(verifier.verify(&token).await.is_err());
    let text = log.text();
    assert!(
        text.contains("their kid is not in the issuer's key set"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("FAKE WARN")), "{text}");
    assert!(!text.contains(&"y".repeat(200)), "quoted pieces are cut");
}
