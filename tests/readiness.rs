//! `Auth::readiness` as a load balancer sees it, over loopback: a `GET /ready` route answering
//! 200 or 503 with what fails.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use claimcheck::Auth;
use claimcheck::live::LiveCheck;
use claimcheck::readiness::Condition;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};
use common::Via;
use serde_json::Value;

/// Serves `GET /ready` for `auth`; GETs it once: status, `Retry-After`, content type, body.
async fn probe(auth: &Auth) -> (u16, Option<String>, String, Value) {
    let auth = auth.clone();
    let app = Router::new().route("/ready", get(move || async move { auth.readiness() }));
    let (base, server) = common::serve(app).await;
    let response = reqwest::get(format!("{base}/ready")).await.unwrap();
    server.abort();
    let header = |name: &str| {
        let value = response.headers().get(name)?;
        Some(value.to_str().unwrap().to_owned())
    };
    let (status, retry, kind) = (
        response.status().as_u16(),
        header("retry-after"),
        header("content-type").unwrap_or_default(),
    );
    (status, retry, kind, response.json().await.unwrap())
}

/// The `(condition, detail)` of the check `name` in a probe's body.
fn check(body: &Value, name: &str) -> (String, String) {
    let checks = body["checks"].as_array().expect("checks listed");
    let check = checks.iter().find(|c| c["name"] == name).expect(name);
    let text = |field: &str| check[field].as_str().unwrap().to_owned();
    (text("condition"), text("detail"))
}

fn auth_for(kinde: &FakeKinde, verifier: claimcheck::Verifier) -> Auth {
    Auth::new(verifier, common::live_for(kinde, Via::Account).build())
}

#[tokio::test]
async fn without_signing_keys_the_instance_is_not_ready_and_says_where_it_looked() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Status(500, vec![]));
    let verifier = common::verifier_for(&kinde).build().unwrap();
    assert!(!verifier.warm_up().await);
    let auth = auth_for(&kinde, verifier.clone());
    let (status, retry, kind, body) = probe(&auth).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
    assert_eq!(kind, "application/problem+json");
    assert_eq!(body["ready"], false);
    let (condition, detail) = check(&body, "keys");
    assert_eq!(condition, "failing");
    // Where it looked: the `jwks_uri` of the fake's discovery document (Kinde's
    // `/.well-known/jwks`), not the fixed `/.well-known/jwks.json`.
    let looked = format!("no key set fetched from {} yet", kinde.jwks_uri());
    assert_eq!(detail, looked);
    assert_eq!(check(&body, "change_log").0, "ok");
    assert!(!auth.readiness().is_ready());

    // Kinde answers again: ready once the keys are in.
    kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(Duration::from_millis(250)).await; // past the test refetch cooldown
    assert!(verifier.warm_up().await);
    let (status, retry, kind, body) = probe(&auth).await;
    assert_eq!(
        (status, retry, kind.as_str()),
        (200, None, "application/json")
    );
    assert_eq!(body["ready"], true);
    let (condition, detail) = check(&body, "keys");
    assert_eq!(condition, "ok");
    assert!(detail.starts_with("1 usable keys from "), "{detail}");
}

#[tokio::test]
async fn an_empty_key_set_is_named_as_such() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Body(r#"{"keys":[]}"#.into()));
    let verifier = common::verifier_for(&kinde).build().unwrap();
    verifier.warm_up().await;
    let (status, _, _, body) = probe(&auth_for(&kinde, verifier)).await;
    assert_eq!(status, 503);
    let (condition, detail) = check(&body, "keys");
    assert_eq!(condition, "failing");
    assert!(detail.contains("holds no usable key"), "{detail}");
}

#[tokio::test]
async fn a_paused_live_source_is_reported_but_the_instance_stays_ready() {
    let h = common::start_via(Via::Account, Duration::ZERO).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde
        .set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
    let token = h.kinde.user_token("kp_1").sign();
    // Three failures pause upstream calls (the harness's backoff).
    for _ in 0..3 {
        assert_eq!(h.post("/payments", &token).await.status, 503);
    }
    let readiness = h.auth.readiness();
    assert!(readiness.is_ready());
    let live = &readiness.checks()[2];
    assert_eq!(
        (live.name(), live.condition()),
        ("live_source", Condition::Degraded)
    );
    let (status, _, _, body) = probe(&h.auth).await;
    assert_eq!(status, 200);
    let (condition, detail) = check(&body, "live_source");
    assert_eq!(condition, "degraded");
    assert!(detail.contains("permissions ("), "{detail}");
    // Token-trusted routes serve meanwhile.
    let reader = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&reader)).await.status, 200);
}

#[tokio::test]
async fn a_live_check_built_by_hand_reports_its_breaker_too() {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let source = claimcheck::live::KindeAccountApi::new(kinde.issuer()).unwrap();
    let auth = Auth::new(verifier, LiveCheck::builder(source).build());
    let readiness = auth.readiness();
    let names: Vec<_> = readiness.checks().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["keys", "change_log", "live_source"]);
    assert!(
        readiness
            .checks()
            .iter()
            .all(|c| c.condition() == Condition::Ok)
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_replica_cut_off_from_its_change_log_is_not_ready() {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    // Nothing listens on port 1: the follower can neither replay nor follow.
    let redis = claimcheck::changes::RedisConfig::new("redis://127.0.0.1:1/")
        .unwrap()
        .prefix("claimcheck-readiness-test")
        .unwrap();
    let auth = auth_for(&kinde, verifier).with_redis(redis);
    let (status, _, _, body) = probe(&auth).await;
    assert_eq!(status, 503);
    let (condition, detail) = check(&body, "change_log");
    assert_eq!(condition, "failing");
    assert!(detail.starts_with("redis: not replayed"), "{detail}");
    auth.change_log().shutdown();
}
