//! The JWKS located by discovery (issue 15, item 1), over loopback against a FakeKinde acting
//! as a generic issuer: a `jwks_uri` at its own path, a trailing-slash issuer, RFC 8414's
//! document, a document naming another issuer, `jwks_uri`s that break the URL rules, an
//! oversized document, a redirect, faults cold and warm, a `jwks_uri` that moves, and an
//! explicit `jwks_url` that reads no document.

mod common;

use std::time::{Duration, Instant};

use claimcheck::readiness::Condition;
use claimcheck::testing::{DiscoveryDocuments, Endpoint, FakeKinde, Fault};
use claimcheck::{Auth, AuthErrorKind, Discovery, Verifier};
use common::log::Log;
use common::{fast, start_with};
use serde_json::json;

const MODES: [Discovery; 2] = [Discovery::Required, Discovery::Preferred];

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn verifier(kinde: &FakeKinde, discovery: Discovery) -> Verifier {
    fast(Verifier::builder(kinde.issuer()).audience(kinde.audience()))
        .discovery(discovery)
        .build()
        .unwrap()
}

/// A fake laid out as a generic issuer: its JWKS at `/oauth/keys` only.
async fn generic() -> FakeKinde {
    FakeKinde::builder().jwks_path("/oauth/keys").start().await
}

/// A discovery document for `issuer` naming `jwks_uri`.
fn document(issuer: &str, jwks_uri: &str) -> Fault {
    Fault::Body(json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string())
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_jwks_uri_at_its_own_path_is_followed_when_required_or_preferred() {
    let kinde = generic().await;
    assert!(kinde.jwks_uri().ends_with("/oauth/keys"));
    // Kinde's JWKS paths are not served: only the document leads to the keys.
    let kinde_path = format!("{}/.well-known/jwks.json", kinde.issuer());
    assert_eq!(status_of(&kinde_path).await, 404);
    for (fetches, mode) in MODES.into_iter().enumerate() {
        let verifier = verifier(&kinde, mode);
        let token = kinde.user_token("kp_1").sign();
        assert!(verifier.verify(&token).await.is_ok(), "{mode:?}");
        assert_eq!(verifier.key_store().jwks_url(), Some(kinde.jwks_uri()));
        // One document request and one JWKS request per fetch.
        assert_eq!(kinde.calls(Endpoint::Discovery), fetches + 1);
        assert_eq!(kinde.calls(Endpoint::Jwks), fetches + 1);
    }
}

#[tokio::test]
async fn a_trailing_slash_issuer_works_end_to_end() {
    let kinde = FakeKinde::builder()
        .issuer_trailing_slash()
        .jwks_path("/oauth/keys")
        .start()
        .await;
    let issuer = kinde.issuer().to_owned();
    assert!(issuer.ends_with('/') && !issuer.ends_with("//"), "{issuer}");
    // The document is at `/.well-known/openid-configuration` (no doubled `/`) and names the
    // issuer with its slash.
    let url = format!("{issuer}.well-known/openid-configuration");
    let served: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(served["issuer"], issuer.as_str());
    kinde.reset_calls();

    let h = start_with(kinde, verifier_for_slash(&issuer)).await;
    let token = h.kinde.user_token("kp_slash").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    let bare = issuer.trim_end_matches('/');
    let without = h.kinde.user_token("kp_slash").claim("iss", bare).sign();
    h.get("/me", Some(&without)).await.assert_invalid_token();
    assert_eq!(h.kinde.calls(Endpoint::Discovery), 1);
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 1);
}

fn verifier_for_slash(issuer: &str) -> Verifier {
    fast(Verifier::builder(issuer).audience(claimcheck::testing::DEFAULT_AUDIENCE))
        .discovery(Discovery::Required)
        .build()
        .unwrap()
}

#[tokio::test]
async fn rfc_8414_metadata_is_read_when_the_openid_document_is_missing() {
    for (path, slash) in [
        ("", false),
        ("", true),
        ("/tenant", false),
        ("/tenant", true),
    ] {
        let mut builder = FakeKinde::builder()
            .issuer_path(path)
            .jwks_path("/oauth/keys")
            .discovery(DiscoveryDocuments::OAuthServer);
        if slash {
            builder = builder.issuer_trailing_slash();
        }
        let kinde = builder.start().await;
        let metadata = format!(
            "http://{}/.well-known/oauth-authorization-server{path}",
            kinde.addr()
        );
        assert_eq!(status_of(&metadata).await, 200, "{metadata}");
        kinde.reset_calls();
        let verifier = verifier(&kinde, Discovery::Required);
        let token = kinde.user_token("kp_1").sign();
        let issuer = kinde.issuer();
        assert!(verifier.verify(&token).await.is_ok(), "{issuer}");
        // The OpenID document (404), then RFC 8414's.
        assert_eq!(kinde.calls(Endpoint::Discovery), 2, "{issuer}");
        assert_eq!(verifier.key_store().jwks_url(), Some(kinde.jwks_uri()));
    }
}

#[tokio::test]
async fn no_document_at_all_is_a_503_when_required_and_the_fixed_url_when_preferred() {
    let kinde = FakeKinde::builder()
        .discovery(DiscoveryDocuments::Neither)
        .start()
        .await;
    let required = verifier(&kinde, Discovery::Required);
    let token = kinde.user_token("kp_1").sign();
    let refused = required.verify(&token).await.unwrap_err();
    assert_eq!(refused.kind(), AuthErrorKind::Unavailable);
    assert_eq!(kinde.calls(Endpoint::Discovery), 2);
    assert_eq!(kinde.calls(Endpoint::Jwks), 0);
    assert_eq!(required.key_store().jwks_url(), None);

    let preferred = verifier(&kinde, Discovery::Preferred);
    assert!(preferred.verify(&token).await.is_ok());
    assert_eq!(preferred.key_store().jwks_url(), Some(kinde.jwks_url()));
}

#[tokio::test]
async fn a_document_naming_another_issuer_is_not_used() {
    let other = "https://other.example.com";
    let kinde = FakeKinde::builder().discovery_issuer(other).start().await;
    let token = kinde.user_token("kp_1").sign();

    // Required: no keys at all (503), no JWKS request, and a warning naming both issuers.
    let log = Log::default();
    let guard = log.capture();
    let issuer = kinde.issuer().to_owned();
    let h = start_with(kinde, verifier_for_issuer(&issuer, Discovery::Required)).await;
    let answer = h.get("/me", Some(&token)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.retry_after.is_some());
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 0);
    let text = log.text();
    assert!(text.contains("names another issuer"), "{text}");
    assert!(text.contains(&format!("{other:?}")), "{text}");
    assert!(text.contains(&format!("{issuer:?}")), "{text}");
    drop(guard);

    // Preferred (Kinde's): the fixed URL, which works.
    let preferred = verifier_for_issuer(&issuer, Discovery::Preferred);
    assert!(preferred.verify(&token).await.is_ok());
    assert_eq!(preferred.key_store().jwks_url(), Some(h.kinde.jwks_url()));
    assert!(!h.kinde.jwks_url().ends_with("/.well-known/jwks"));
}

#[tokio::test]
async fn an_issuer_differing_by_a_trailing_slash_is_another_issuer() {
    // Each fake's document names its own issuer; the verifier is configured with the other form.
    let bare = generic().await;
    let slashed = FakeKinde::builder()
        .issuer_trailing_slash()
        .jwks_path("/oauth/keys")
        .start()
        .await;
    let other_forms = [
        (&bare, format!("{}/", bare.issuer())),
        (&slashed, slashed.issuer().trim_end_matches('/').to_owned()),
    ];
    for (kinde, configured) in other_forms {
        let token = kinde
            .user_token("kp_1")
            .claim("iss", configured.as_str())
            .sign();
        let verifier = verifier_for_issuer(&configured, Discovery::Required);
        let refused = verifier.verify(&token).await.unwrap_err();
        assert_eq!(refused.kind(), AuthErrorKind::Unavailable, "{configured}");
        assert_eq!(kinde.calls(Endpoint::Discovery), 1, "{configured}");
        assert_eq!(kinde.calls(Endpoint::Jwks), 0, "{configured}");
    }
}

fn verifier_for_issuer(issuer: &str, discovery: Discovery) -> Verifier {
    fast(Verifier::builder(issuer).audience(claimcheck::testing::DEFAULT_AUDIENCE))
        .discovery(discovery)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_jwks_uri_breaking_the_url_rules_is_refused() {
    let kinde = FakeKinde::start().await;
    let issuer = kinde.issuer().to_owned();
    let token = kinde.user_token("kp_1").sign();
    let port = kinde.addr().port();
    for bad in [
        format!("http://example.com:{port}/.well-known/jwks"),
        "not a url".to_owned(),
        "/.well-known/jwks".to_owned(),
        format!("ftp://127.0.0.1:{port}/.well-known/jwks"),
        "file:///etc/passwd".to_owned(),
        "https://".to_owned(),
    ] {
        kinde.set_fault(Endpoint::Discovery, document(&issuer, &bad));
        kinde.reset_calls();
        let refused = verifier(&kinde, Discovery::Required)
            .verify(&token)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), AuthErrorKind::Unavailable, "{bad}");
        assert_eq!(kinde.calls(Endpoint::Jwks), 0, "{bad}");
        let preferred = verifier(&kinde, Discovery::Preferred);
        assert!(preferred.verify(&token).await.is_ok(), "{bad}");
        assert_eq!(preferred.key_store().jwks_url(), Some(kinde.jwks_url()));
    }
    // The same document with a loopback http `jwks_uri` is fine.
    kinde.set_fault(Endpoint::Discovery, document(&issuer, &kinde.jwks_url()));
    let verifier = verifier(&kinde, Discovery::Required);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn hostile_documents_are_refused_and_never_logged() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = generic().await;
    let issuer = kinde.issuer().to_owned();
    let token = kinde.user_token("kp_1").sign();
    let usable = json!({"issuer": issuer, "jwks_uri": kinde.jwks_uri()});
    // Usable, but over the 64 KiB cap.
    let mut oversized = usable.clone();
    oversized["padding"] = json!("BODY-MARKER".repeat(7000));
    let duplicated = format!(
        r#"{{"issuer":{issuer:?},"issuer":"https://evil.example.com","jwks_uri":{:?},"x":"BODY-MARKER"}}"#,
        kinde.jwks_uri()
    );
    let forged_line = json!({
        "issuer": "x\nERROR claimcheck: forged line",
        "jwks_uri": kinde.jwks_uri(),
    });
    for fault in [
        Fault::Body(oversized.to_string()),
        Fault::Huge(1024 * 1024),
        Fault::Body(duplicated),
        Fault::Body(json!({"issuer": [issuer], "jwks_uri": kinde.jwks_uri()}).to_string()),
        Fault::Body(json!({"jwks_uri": kinde.jwks_uri()}).to_string()),
        Fault::Garbage,
        Fault::Nested(100_000),
        Fault::Body(forged_line.to_string()),
    ] {
        kinde.set_fault(Endpoint::Discovery, fault.clone());
        let refused = verifier(&kinde, Discovery::Required)
            .verify(&token)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), AuthErrorKind::Unavailable, "{fault:?}");
    }
    assert_eq!(kinde.calls(Endpoint::Jwks), 0);
    // Sanity: the usable document itself works.
    kinde.set_fault(Endpoint::Discovery, Fault::Body(usable.to_string()));
    assert!(
        verifier(&kinde, Discovery::Required)
            .verify(&token)
            .await
            .is_ok()
    );
    let text = log.text();
    assert!(text.contains("body over the size cap"), "{text}");
    // Of a document, only the issuer it names is logged, escaped: no body, no forged line.
    assert!(!text.contains("BODY-MARKER"), "{text}");
    assert!(text.contains("\\nERROR claimcheck: forged line"), "{text}");
    assert!(!text.contains("\nERROR claimcheck: forged"), "{text}");
}

#[tokio::test]
async fn a_redirect_from_the_discovery_endpoint_is_not_followed() {
    let kinde = generic().await;
    // Where the redirect leads: a document for the very issuer, naming an attacker's keys.
    let attacker = FakeKinde::builder()
        .discovery_issuer(kinde.issuer())
        .start()
        .await;
    let location = format!("{}/.well-known/openid-configuration", attacker.issuer());
    kinde.set_fault(Endpoint::Discovery, Fault::Redirect(location));
    let forged = attacker
        .user_token("kp_1")
        .claim("iss", kinde.issuer())
        .sign();
    for mode in MODES {
        // Refused, unread: no keys (the fixed URL, Preferred's fallback, is not served).
        let refused = verifier(&kinde, mode).verify(&forged).await.unwrap_err();
        assert_eq!(refused.kind(), AuthErrorKind::Unavailable, "{mode:?}");
    }
    assert_eq!(attacker.calls(Endpoint::Discovery), 0);
    assert_eq!(attacker.calls(Endpoint::Jwks), 0);
}

#[tokio::test]
async fn discovery_faults_cold_are_503s_when_required_and_bounded_in_time() {
    for fault in [
        Fault::Status(500, vec![]),
        Fault::Status(404, vec![]),
        Fault::Down,
        Fault::Hang,
        Fault::Slow(ms(1500)),
        Fault::Drip(ms(60)),
        Fault::Garbage,
    ] {
        let kinde = generic().await;
        kinde.set_fault(Endpoint::Discovery, fault.clone());
        let verifier = fast(Verifier::builder(kinde.issuer()).audience(kinde.audience()))
            .discovery(Discovery::Required)
            .jwks_timeouts(ms(200), ms(200))
            .build()
            .unwrap();
        let h = start_with(kinde, verifier).await;
        let token = h.kinde.user_token("kp_1").sign();
        let started = Instant::now();
        let answer = h.get("/me", Some(&token)).await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "{fault:?}: {}", answer.body);
        assert!(answer.retry_after.is_some());
        assert!(took < ms(1200), "{fault:?} held the request for {took:?}");
        assert_eq!(h.kinde.calls(Endpoint::Jwks), 0);
        // The issuer recovers: picked up at the next cold retry.
        h.kinde.clear_fault(Endpoint::Discovery);
        tokio::time::sleep(ms(60)).await;
        assert_eq!(h.get("/me", Some(&token)).await.status, 200, "{fault:?}");
    }
}

#[tokio::test]
async fn discovery_faults_warm_keep_the_last_good_keys_and_jwks_uri() {
    let kinde = generic().await;
    let verifier = verifier(&kinde, Discovery::Required);
    assert!(verifier.warm_up().await);
    let h = start_with(kinde, verifier).await;
    let old = h.kinde.user_token("kp_old").sign();
    for fault in [
        Fault::Status(500, vec![]),
        Fault::Down,
        Fault::Hang,
        Fault::Garbage,
    ] {
        h.kinde.set_fault(Endpoint::Discovery, fault.clone());
        h.kinde.rotate_key();
        let fetched = h.kinde.calls(Endpoint::Jwks);
        tokio::time::sleep(ms(250)).await; // past the refetch cooldown
        // The new kid needs a fetch: the document fails, the known `jwks_uri` answers.
        let new = h.kinde.user_token("kp_new").sign();
        assert_eq!(h.get("/me", Some(&new)).await.status, 200, "{fault:?}");
        assert_eq!(h.kinde.calls(Endpoint::Jwks), fetched + 1, "{fault:?}");
        assert_eq!(h.get("/me", Some(&old)).await.status, 200, "{fault:?}");
        assert_eq!(h.verifier.key_store().jwks_url(), Some(h.kinde.jwks_uri()));
    }
    // A document naming another issuer is not used at all: no fetch, the last good keys stay.
    h.kinde.clear_fault(Endpoint::Discovery);
    h.kinde
        .set_discovery_issuer(Some("https://other.example.com"));
    h.kinde.rotate_key();
    let fetched = h.kinde.calls(Endpoint::Jwks);
    tokio::time::sleep(ms(250)).await;
    let newest = h.kinde.user_token("kp_newest").sign();
    h.get("/me", Some(&newest)).await.assert_invalid_token();
    assert_eq!(h.kinde.calls(Endpoint::Jwks), fetched);
    assert_eq!(h.get("/me", Some(&old)).await.status, 200);
    assert_eq!(h.verifier.key_store().jwks_url(), Some(h.kinde.jwks_uri()));
}

#[tokio::test]
async fn a_moved_jwks_uri_is_followed_at_the_next_refresh() {
    let kinde = FakeKinde::builder().jwks_path("/keys/a").start().await;
    let verifier = fast(Verifier::builder(kinde.issuer()).audience(kinde.audience()))
        .discovery(Discovery::Required)
        .jwks_refresh_interval(ms(100))
        .build()
        .unwrap();
    let token = kinde.user_token("kp_1").sign();
    assert!(verifier.verify(&token).await.is_ok());
    kinde.set_jwks_path("/keys/b");
    assert!(kinde.jwks_uri().ends_with("/keys/b"));
    assert_eq!(
        status_of(&format!("http://{}/keys/a", kinde.addr())).await,
        404
    );
    // The background refresh (due after 100 ms) reads the document again and follows it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while verifier.key_store().jwks_url() != Some(kinde.jwks_uri()) {
        assert!(
            Instant::now() < deadline,
            "the new jwks_uri was not followed"
        );
        tokio::time::sleep(ms(50)).await;
        assert!(verifier.verify(&token).await.is_ok());
    }
    // A key published after the move verifies: fetched from the new location.
    kinde.rotate_key();
    tokio::time::sleep(ms(250)).await;
    let rotated = kinde.user_token("kp_2").sign();
    assert!(verifier.verify(&rotated).await.is_ok());
}

#[tokio::test]
async fn an_explicit_jwks_url_or_discovery_off_reads_no_document() {
    let kinde = FakeKinde::start().await;
    let token = kinde.user_token("kp_1").sign();
    let explicit = fast(Verifier::builder(kinde.issuer()).audience(kinde.audience()))
        .jwks_url(kinde.jwks_url())
        .jwks_refresh_interval(ms(50))
        .build()
        .unwrap();
    // Refreshed in the background too (every 50 ms while verifying): still no document.
    let off = verifier(&kinde, Discovery::Off);
    for verifier in [explicit, off] {
        assert!(verifier.verify(&token).await.is_ok());
        kinde.rotate_key();
        tokio::time::sleep(ms(250)).await;
        let rotated = kinde.user_token("kp_2").sign();
        assert!(verifier.verify(&rotated).await.is_ok());
        assert_eq!(verifier.key_store().jwks_url(), Some(kinde.jwks_url()));
    }
    assert!(kinde.calls(Endpoint::Jwks) >= 4);
    assert_eq!(kinde.calls(Endpoint::Discovery), 0);
}

#[tokio::test]
async fn the_startup_check_reports_the_document_the_key_fetch_read() {
    let kinde = generic().await;
    let live = common::live_for(&kinde, common::Via::Account).build();
    let auth = Auth::new(verifier(&kinde, Discovery::Required), live.clone());
    let report = auth.preflight().await;
    assert!(report.is_ok(), "{report}");
    let checks = report.checks();
    let expected = format!("1 usable keys from {}", kinde.jwks_uri());
    assert_eq!(checks[0].detail(), expected);
    assert!(checks[1].detail().ends_with("names the configured issuer"));
    // One document request: the key fetch's, reused by the `discovery` check.
    assert_eq!(kinde.calls(Endpoint::Discovery), 1);

    // Required, and the document names another issuer: both checks fail, saying why.
    let other = FakeKinde::builder()
        .discovery_issuer("https://other.example.com")
        .start()
        .await;
    let auth = Auth::new(verifier(&other, Discovery::Required), live);
    let report = auth.preflight().await;
    let checks = report.checks();
    assert_eq!(checks[0].condition(), Condition::Failing);
    let document = format!("{}/.well-known/openid-configuration", other.issuer());
    let detail = checks[0].detail();
    assert!(
        detail.contains(&format!("the jwks_uri of {document}")),
        "{detail}"
    );
    assert_eq!(checks[1].condition(), Condition::Failing);
    let detail = checks[1].detail();
    assert!(detail.contains("\"https://other.example.com\""), "{detail}");
    assert!(detail.contains("discovery is required"), "{detail}");
    assert_eq!(other.calls(Endpoint::Discovery), 1);
}
