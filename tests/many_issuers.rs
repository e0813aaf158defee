//! Several issuers on one authentication layer (issue 15, item 5): each token goes to the
//! issuer its `iss` names, before any signature work, and is checked with that issuer's keys,
//! audiences and profile only. Two FakeKindes on loopback: A (Kinde's profile) and B (a generic
//! RFC 9068 issuer: a trailing-slash issuer, its JWKS at a path of its own found through its
//! discovery document, its own audience), and tokens crossing over.

mod common;

use claimcheck::testing::{Endpoint, FakeKinde};
use claimcheck::{AuthErrorKind, ConfigError, Verifier};
use common::issuers::{B_AUDIENCE, b_issuer, b_token, b_verifier, generic_issuer, two_issuers};
use common::{fast, start_with, verifier_for};

#[tokio::test]
async fn each_issuer_verifies_its_own_tokens_its_own_way() {
    let (h, b) = two_issuers().await;
    let a_token = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&a_token)).await.status, 200);
    let b_granted = b_token(&b, "read:reports").sign();
    assert_eq!(h.get("/reports", Some(&b_granted)).await.status, 200);
    let me = h.get("/me", Some(&b_granted)).await.json();
    assert_eq!(me["sub"], "b-user");
    assert_eq!(me["permissions"], serde_json::json!(["read:reports"]));
    // B's profile: a missing grant is a 403, never a call to A's (Kinde's) live API.
    let b_bare = b_token(&b, "openid").sign();
    assert_eq!(h.get("/reports", Some(&b_bare)).await.status, 403);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
    // Cached tokens of either issuer are served again.
    assert_eq!(h.get("/reports", Some(&b_granted)).await.status, 200);
    assert_eq!(h.get("/reports", Some(&a_token)).await.status, 200);
    let issuers: Vec<&str> = h.verifier.issuers().collect();
    assert_eq!(issuers, [h.kinde.issuer(), b_issuer(&b).as_str()]);
}

#[tokio::test]
async fn tokens_crossing_issuers_are_refused() {
    let (h, b) = two_issuers().await;
    let (a_iss, b_iss) = (h.kinde.issuer().to_owned(), b_issuer(&b));
    let refused = [
        // A's issuer, signed with B's key (B's kid): an unknown key to A.
        b.user_token("x")
            .claim("iss", a_iss.as_str())
            .permissions(["read:reports"])
            .sign(),
        // B's issuer, signed with A's key.
        h.kinde
            .user_token("x")
            .claim("iss", b_iss.as_str())
            .claim("scope", "read:reports")
            .audience(B_AUDIENCE)
            .sign(),
        // A's issuer with B's audience, properly signed by A.
        h.kinde
            .user_token("x")
            .audience(B_AUDIENCE)
            .permissions(["read:reports"])
            .sign(),
        // B's issuer with A's audience, properly signed by B.
        b_token(&b, "read:reports")
            .audience(h.kinde.audience())
            .sign(),
        // B's issuer without its trailing slash: another issuer.
        b_token(&b, "read:reports")
            .claim("iss", b_iss.trim_end_matches('/'))
            .sign(),
        // The issuer named twice.
        b_token(&b, "read:reports")
            .raw_payload(format!(
                r#"{{"iss":"{b_iss}","iss":"{a_iss}","aud":"{B_AUDIENCE}","exp":9999999999}}"#
            ))
            .sign(),
        // No issuer, or not a string.
        b_token(&b, "read:reports").without_claim("iss").sign(),
        b_token(&b, "read:reports")
            .claim("iss", serde_json::json!([b_iss.as_str()]))
            .sign(),
    ];
    for (i, token) in refused.iter().enumerate() {
        let answer = h.get("/reports", Some(token)).await;
        assert_eq!(answer.status, 401, "case {i}: {}", answer.body);
        answer.assert_invalid_token();
    }
}

#[tokio::test]
async fn an_unknown_issuer_costs_no_key_lookup_even_cold() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    // Never warmed up: a token of a known issuer would make the first fetch.
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    let stranger = FakeKinde::start().await;
    let h = start_with(a, verifier).await;
    for _ in 0..20 {
        let token = stranger
            .user_token("x")
            .permissions(["read:reports"])
            .sign();
        let answer = h.get("/reports", Some(&token)).await;
        // Refused as a bad token, not 503 for keys nobody has: no fetch was tried.
        answer.assert_invalid_token();
    }
    for kinde in [&h.kinde, &b, &stranger] {
        assert_eq!(kinde.calls(Endpoint::Jwks), 0);
        assert_eq!(kinde.calls(Endpoint::Discovery), 0);
    }
    // A known issuer's token then fetches its own keys only.
    let b_granted = b_token(&b, "read:reports").sign();
    assert_eq!(h.get("/reports", Some(&b_granted)).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 0);
    assert!(b.calls(Endpoint::Jwks) >= 1);
    assert!(
        b.calls(Endpoint::Discovery) >= 1,
        "B's keys are found by discovery"
    );
}

#[tokio::test]
async fn an_issuer_configured_twice_is_a_configuration_error() {
    let a = FakeKinde::start().await;
    let again = || verifier_for(&a).build().unwrap();
    let twice = verifier_for(&a).other_issuer(again()).build().unwrap_err();
    assert!(matches!(twice, ConfigError::Invalid { .. }), "{twice}");
    assert!(twice.to_string().contains(a.issuer()), "{twice}");
    // Nested lists are flattened: A + (B + A) names A twice.
    let b = generic_issuer().await;
    let b_and_a = fast(Verifier::builder(b_issuer(&b)))
        .audience(B_AUDIENCE)
        .other_issuer(again())
        .build()
        .unwrap();
    assert!(verifier_for(&a).other_issuer(b_and_a).build().is_err());
    // Garbage never panics on the dispatch path.
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    let huge = format!("e30.{}.c2ln", "A".repeat(4 << 20));
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "e30.e30.e30",
        "x.eyJpc3MiOjF9.y",
        &huge,
    ] {
        let err = verifier.verify(junk).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{:.20}", junk);
    }
    // A token over every issuer's size cap is refused before its payload is decoded to read
    // the issuer (decoded, this one would be refused for naming none).
    let log = common::log::Log::default();
    let _debug = log.capture_at(tracing::Level::DEBUG);
    assert!(verifier.verify(&huge).await.is_err());
    let text = log.text();
    assert!(text.contains("token over the size cap"), "{text}");
    assert!(!text.contains("no iss"), "{text}");
}

#[tokio::test]
async fn a_live_source_never_sees_another_issuers_token() {
    // The harness's strict routes ask A's Account API with the caller's token: a token of B
    // reaching one is a misconfiguration (500), and B's token is never sent to A.
    let (h, b) = two_issuers().await;
    let b_user = b_token(&b, "create:payments").sign();
    let answer = h.post("/payments", &b_user).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
    assert_eq!(b.calls(Endpoint::AccountPermissions), 0);
    assert_eq!(h.runs(), 0);
    // A's own users are looked up as ever.
    h.kinde.grant(
        claimcheck::testing::DEFAULT_ORG,
        "a-user",
        "create:payments",
    );
    let a_user = h.kinde.user_token("a-user").sign();
    assert_eq!(h.post("/payments", &a_user).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 1);
}

#[tokio::test]
async fn changes_told_about_kindes_users_do_not_unsettle_another_issuers_tokens() {
    use claimcheck::changes::Target;
    let (h, b) = two_issuers().await;
    let b_granted = b_token(&b, "read:reports").sign();
    let a_granted = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    // A change for everyone (a Kinde `role.updated`, say), stamped after both tokens.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    h.auth.mark_changed(Target::Everyone, later);
    h.auth.mark_changed(Target::User("b-user".into()), later);
    // A's token is no longer trusted: decided live (the fake grants nothing: 403).
    let answer = h.get("/reports", Some(&a_granted)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
    // B has no live lookups: its token decides, never a 500 from A's live source.
    let answer = h.get("/reports", Some(&b_granted)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("token"));
    assert_eq!(b.calls(Endpoint::AccountPermissions), 0);
    // A lock-out, by contrast, refuses the user's tokens whoever issued them.
    h.auth.lock_out_user("b-user", later);
    h.get("/reports", Some(&b_granted))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn startup_and_readiness_checks_cover_every_issuer() {
    use claimcheck::readiness::Condition;
    let (h, b) = two_issuers().await;
    let report = h.auth.preflight().await;
    let keys: Vec<_> = report
        .checks()
        .iter()
        .filter(|c| c.name() == "keys")
        .collect();
    assert_eq!(keys.len(), 2, "{report}");
    assert!(keys[0].detail().contains(h.kinde.issuer()), "{report}");
    assert!(keys[1].detail().contains(&b.jwks_uri()), "{report}");
    assert!(
        keys.iter().all(|c| c.condition() == Condition::Ok),
        "{report}"
    );
    let discovery = report
        .checks()
        .iter()
        .filter(|c| c.name() == "discovery")
        .count();
    assert_eq!(discovery, 2, "{report}");
    assert!(h.auth.readiness().is_ready());

    // B's keys never fetched (its JWKS down from the start): not ready, naming B.
    let a = FakeKinde::start().await;
    let down = generic_issuer().await;
    down.set_fault(
        Endpoint::Jwks,
        claimcheck::testing::Fault::Status(500, Vec::new()),
    );
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&down))
        .build()
        .unwrap();
    assert!(!verifier.warm_up().await, "one issuer's keys are missing");
    let h = start_with(a, verifier).await;
    let readiness = h.auth.readiness();
    assert!(!readiness.is_ready());
    let failing: Vec<_> = readiness
        .checks()
        .iter()
        .filter(|c| c.condition() == Condition::Failing)
        .collect();
    assert_eq!(failing.len(), 1);
    assert!(
        failing[0].detail().contains(down.issuer()),
        "{}",
        failing[0].detail()
    );
    // Meanwhile one issuer's outage is not the other's: A serves, B's callers get 503.
    let a_token = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&a_token)).await.status, 200);
    let b_token = b_token(&down, "read:reports").sign();
    let answer = h.get("/reports", Some(&b_token)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.retry_after.is_some());
    // B's JWKS back: its callers are served at the next cold retry, and the layer is ready.
    down.clear_fault(Endpoint::Jwks);
    let mut status = 0;
    for _ in 0..40 {
        status = h.get("/reports", Some(&b_token)).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status, 200);
    assert!(h.auth.readiness().is_ready());
}

#[test]
fn each_issuer_has_its_own_key_count_gauge() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a_issuer, b_issuer) = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let a = FakeKinde::start().await;
            let b = generic_issuer().await;
            b.rotate_key();
            let verifier = verifier_for(&a)
                .other_issuer(b_verifier(&b))
                .build()
                .unwrap();
            assert!(verifier.warm_up().await);
            (a.issuer().to_owned(), b_issuer(&b))
        })
    });
    let scrape = handle.render();
    for (issuer, keys) in [(a_issuer, 1), (b_issuer, 2)] {
        let series = format!("claimcheck_jwks_keys{{issuer=\"{issuer}\"}} {keys}");
        assert!(scrape.lines().any(|l| l == series), "{series}\n{scrape}");
    }
}
