//! Kinde webhooks over loopback: signature rules, de-duplication, ordering, and what a
//! `user.updated` does to strict and token-trusted routes.

mod common;

use std::time::{Duration, SystemTime};

use claimcheck::changes::Target as Change;
use claimcheck::live::KindeManagementApi;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, Fault};
use common::{Harness, Via, start_via};
use serde_json::json;

/// A long TTL: nothing here may depend on the cache expiring.
const TTL: Duration = Duration::from_secs(60);

/// A harness where `kp_1` holds both permissions live, with an old token that says so.
async fn granted() -> (Harness, String) {
    let h = start_via(Via::Management, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let token = h
        .kinde
        .user_token("kp_1")
        .permissions(["create:payments", "read:reports"])
        .issued_in(-30)
        .sign();
    (h, token)
}

/// The cached live answer for kp_1 is still used: no webhook took effect.
async fn assert_no_effect(h: &Harness, token: &str, what: &str) {
    let answer = h.post("/payments", token).await;
    assert_eq!(answer.source.as_deref(), Some("live-cache"), "{what}");
    let trusted = h.get("/reports", Some(token)).await;
    assert_eq!(trusted.source.as_deref(), Some("token"), "{what}");
}

#[tokio::test]
async fn only_genuine_kinde_webhooks_take_effect() {
    let (h, token) = granted().await;
    assert_eq!(h.post("/payments", &token).await.status, 200);
    let url = h.webhook_url();
    let event = h.kinde.user_updated("kp_1");
    let other_kid = h.kinde.current_kid();
    h.kinde.rotate_key();
    h.verifier.warm_up().await;
    let secret = h.kinde.public_key_encodings()[0].1.clone();
    let refused: Vec<(&str, String)> = vec![
        ("forged signature", event.token().forged().sign()),
        ("alg none", event.token().unsigned("none").sign()),
        (
            "alg None, junk signature",
            event.token().unsigned("None").sign() + "AAAA",
        ),
        (
            "HS256 with the public key",
            event.token().hs256(secret).sign(),
        ),
        (
            "signed by another published key",
            event.token().header("kid", other_kid).sign(),
        ),
        ("unknown kid", event.token().header("kid", "nope").sign()),
        ("no kid", event.token().without_header("kid").sign()),
        ("not a JWT", "garbage".into()),
        ("empty body", String::new()),
        ("oversized", "a".repeat(70 * 1024)),
        (
            "signed, but not an event",
            event.token().raw_payload(r#"{"hello":"world"}"#).sign(),
        ),
        (
            "signed, but a JSON array",
            event.token().raw_payload("[1,2]").sign(),
        ),
    ];
    for (what, body) in refused {
        assert_eq!(event.deliver_body(&url, &body).await, 400, "{what}");
        assert_no_effect(&h, &token, what).await;
    }

    let client = reqwest::Client::new();
    let as_json = client
        .post(&url)
        .header("content-type", "application/json")
        .body(event.token().sign())
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 415);
    assert_no_effect(&h, &token, "wrong content type").await;

    let unknown = h
        .kinde
        .webhook("customer.plan_changed", json!({"plan": "pro"}));
    assert_eq!(unknown.deliver(&url).await, 200);
    assert_no_effect(&h, &token, "unknown event type").await;

    // text/plain is accepted too (some proxies rewrite the type).
    let plain = client
        .post(&url)
        .header("content-type", "text/plain; charset=utf-8")
        .header("webhook-id", "msg_plain")
        .body(event.token().sign())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.text().await.unwrap(), "");
    let after = h.post("/payments", &token).await;
    assert_eq!(after.source.as_deref(), Some("live"));
}

#[tokio::test]
async fn after_user_updated_old_tokens_of_that_user_are_decided_live_everywhere() {
    let (h, token) = granted().await;
    let bystander = h
        .kinde
        .user_token("kp_2")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    assert_eq!(h.get("/reports", Some(&token)).await.status, 200);

    h.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    assert_eq!(
        h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await,
        200
    );

    let strict = h.post("/payments", &token).await;
    assert_eq!(strict.status, 403, "{}", strict.body);
    assert_eq!(strict.source.as_deref(), Some("live"));
    let trusted = h.get("/reports", Some(&token)).await;
    assert_eq!(trusted.status, 403, "{}", trusted.body);
    assert_eq!(trusted.source.as_deref(), Some("live-cache"));
    assert_eq!(h.runs(), 1);

    // Other users keep their fast path.
    let other = h.get("/reports", Some(&bystander)).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.source.as_deref(), Some("token"));

    // A token Kinde issues after the change is trusted from its claims again.
    let fresh = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(2)
        .sign();
    let trusted_again = h.get("/reports", Some(&fresh)).await;
    assert_eq!(trusted_again.status, 200);
    assert_eq!(trusted_again.source.as_deref(), Some("token"));
}

#[tokio::test]
async fn a_fresh_grant_is_honoured_at_once_after_the_webhook() {
    let h = start_via(Via::Account, TTL).await;
    let token = h.kinde.user_token("kp_1").issued_in(-30).sign();
    assert_eq!(h.post("/payments", &token).await.status, 403);
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    assert_eq!(h.post("/payments", &token).await.status, 403, "cached deny");
    assert_eq!(
        h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await,
        200
    );
    assert_eq!(h.post("/payments", &token).await.status, 200);
}

#[tokio::test]
async fn a_redelivered_webhook_applies_once() {
    let (h, token) = granted().await;
    let event = h.kinde.user_updated("kp_1");
    assert_eq!(event.deliver(&h.webhook_url()).await, 200);
    assert_eq!(
        h.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );
    // Kinde retries with the same webhook-id: acknowledged, not applied again.
    assert_eq!(event.deliver(&h.webhook_url()).await, 200);
    let answer = h.post("/payments", &token).await;
    assert_eq!(answer.source.as_deref(), Some("live-cache"));
    // A new event (new webhook-id) applies.
    assert_eq!(
        h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await,
        200
    );
    assert_eq!(
        h.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn events_delivered_out_of_order_keep_the_newest_watermark() {
    let h = start_via(Via::Account, TTL).await;
    let now = SystemTime::now();
    let older = h
        .kinde
        .user_updated("kp_1")
        .at(now - Duration::from_secs(100));
    let newer = h
        .kinde
        .user_updated("kp_1")
        .at(now - Duration::from_secs(10));
    assert_eq!(newer.deliver(&h.webhook_url()).await, 200);
    assert_eq!(older.deliver(&h.webhook_url()).await, 200);
    let watermark = h.auth.freshness().user_watermark("kp_1").unwrap();
    let expected = now - Duration::from_secs(10);
    let off = watermark
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_millis(1), "{off:?}");

    // Issued between the two events: stale under the newer one.
    let between = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-50)
        .sign();
    let answer = h.get("/reports", Some(&between)).await;
    assert_eq!(answer.status, 403, "decided live, where kp_1 holds nothing");
    assert_eq!(answer.source.as_deref(), Some("live"));
}

#[tokio::test]
async fn role_and_permission_events_drop_every_live_entry() {
    let (h, token) = granted().await;
    assert_eq!(
        h.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );
    let role = h.kinde.webhook(
        "role.updated",
        json!({"role": {"id": "r1", "key": "admin"}}),
    );
    assert_eq!(role.deliver(&h.webhook_url()).await, 200);
    assert_eq!(
        h.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );
    // By default the token-trusted fast path is kept for role changes.
    assert_eq!(
        h.get("/reports", Some(&token)).await.source.as_deref(),
        Some("token")
    );

    let org = h.kinde.webhook(
        "organization.updated",
        json!({"organization": {"code": DEFAULT_ORG}}),
    );
    assert_eq!(org.deliver(&h.webhook_url()).await, 200);
    assert_eq!(
        h.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn the_global_watermark_policy_distrusts_every_older_token() {
    let h = start_via(Via::Account, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let receiver = h.auth.webhook_receiver().distrust_all_on_role_changes(true);
    let app = axum::Router::new().route("/hook", axum::routing::post(receiver.into_handler()));
    let (base, _task) = common::serve(app).await;
    let old = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign();
    let event = h
        .kinde
        .webhook("permission.deleted", json!({"permission": {"id": "p1"}}));
    assert_eq!(event.deliver(&format!("{base}/hook")).await, 200);
    let answer = h.get("/reports", Some(&old)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.source.as_deref(), Some("live"));
}

#[tokio::test]
async fn a_live_fill_racing_a_webhook_never_serves_the_old_answer() {
    let (h, token) = granted().await;
    // Kinde computes the (still granted) answer now but it arrives 300 ms later.
    h.kinde.set_fault(
        Endpoint::ManagementPermissions,
        Fault::Late(Duration::from_millis(300)),
    );
    let racing = tokio::spawn({
        let (client, url, token) = (
            h.client.clone(),
            format!("{}/payments", h.base),
            token.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    assert_eq!(
        h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await,
        200
    );
    h.kinde.clear_fault(Endpoint::ManagementPermissions);
    assert_eq!(
        racing.await.unwrap(),
        403,
        "the pre-webhook answer was served"
    );
    assert_eq!(h.post("/payments", &token).await.status, 403);
    assert_eq!(h.runs(), 0);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 2);
}

#[tokio::test]
async fn apps_can_mark_changes_themselves() {
    let (h, token) = granted().await;
    assert_eq!(
        h.get("/reports", Some(&token)).await.source.as_deref(),
        Some("token")
    );
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    h.auth
        .mark_changed(Change::User("kp_1".into()), SystemTime::now());
    assert_eq!(h.get("/reports", Some(&token)).await.status, 403);
    h.auth
        .mark_changed(Change::Org("org_other".into()), SystemTime::now());
    let elsewhere = h
        .kinde
        .user_token("kp_9")
        .org_code("org_other")
        .permissions(["read:reports"])
        .issued_in(-5)
        .sign();
    assert_eq!(
        h.get("/reports", Some(&elsewhere)).await.source.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn refresh_user_claims_makes_the_next_token_fresh() {
    let h = start_via(Via::Account, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let session = h.kinde.login("kp_1");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", session.refresh_token.as_str()),
    ];
    let refresh = || common::token_grant(&h.kinde, &form);
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    // Kinde's claims cache: a refresh hands back the very same token.
    assert_eq!(refresh().await, session.access_token);
    assert_eq!(
        h.get("/reports", Some(&session.access_token)).await.status,
        200
    );

    let (id, secret) = h.kinde.register_management_client();
    let management = KindeManagementApi::new(h.kinde.issuer(), id, secret).unwrap();
    management.refresh_user_claims("kp_1").await.unwrap();
    assert_eq!(h.kinde.claims_refreshes("kp_1"), 1);
    let renewed = refresh().await;
    assert_ne!(renewed, session.access_token);
    assert_eq!(h.get("/reports", Some(&renewed)).await.status, 403);

    h.kinde
        .set_fault(Endpoint::RefreshClaims, Fault::Status(500, Vec::new()));
    assert!(management.refresh_user_claims("kp_1").await.is_err());
}
