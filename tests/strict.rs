//! Token-trusted and strict routes against the fake Kinde over loopback: who is allowed, from
//! which data, and how long a revoked permission keeps working on each kind of route.

mod common;

use std::time::Duration;

use axum::Router;
use axum::handler::Handler;
use axum::routing::get;
use claimcheck::authz::RequirePermissionLayer;
use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use common::{Via, start_via};

const TTL: Duration = Duration::from_millis(300);

#[tokio::test]
async fn token_trusted_routes_decide_from_the_claim() {
    let h = start_via(Via::Account, TTL).await;
    let with = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();
    let without = h.kinde.user_token("kp_1").permissions(["other"]).sign();
    let empty = h.kinde.user_token("kp_1").sign();
    // Live data disagrees with every token: token-trusted routes must not care.
    h.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");

    let allowed = h.get("/reports", Some(&with)).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.decision.as_deref(), Some("allow"));
    assert_eq!(allowed.source.as_deref(), Some("token"));
    for token in [&without, &empty] {
        let denied = h.get("/reports", Some(token)).await;
        assert_eq!(denied.status, 403, "{}", denied.body);
        assert_eq!(denied.json()["error"], "insufficient_scope");
        assert_eq!(denied.source.as_deref(), Some("token"));
    }
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn a_token_without_a_permissions_claim_is_decided_live_on_token_trusted_routes() {
    let h = start_via(Via::Account, TTL).await;
    let stripped = |sub: &str| h.kinde.user_token(sub).without_claim("permissions").sign();
    h.kinde.grant(DEFAULT_ORG, "kp_granted", "read:reports");

    let allowed = h.get("/reports", Some(&stripped("kp_granted"))).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.source.as_deref(), Some("live"));
    let denied = h.get("/reports", Some(&stripped("kp_other"))).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 2);
}

#[tokio::test]
async fn strict_routes_follow_live_data_against_the_token_both_ways() {
    for via in Via::BOTH {
        let h = start_via(via, TTL).await;
        // The token says yes, Kinde says no (revoked since issue).
        let stale = h
            .kinde
            .user_token("kp_revoked")
            .permissions(["create:payments"])
            .sign();
        let denied = h.post("/payments", &stale).await;
        assert_eq!(denied.status, 403, "{via:?}: {}", denied.body);
        assert_eq!(denied.decision.as_deref(), Some("deny"));
        assert_eq!(denied.source.as_deref(), Some("live"));

        // The token says no, Kinde says yes (granted since issue).
        h.kinde.grant(DEFAULT_ORG, "kp_granted", "create:payments");
        let fresh = h.kinde.user_token("kp_granted").sign();
        let allowed = h.post("/payments", &fresh).await;
        assert_eq!(allowed.status, 200, "{via:?}: {}", allowed.body);
        assert_eq!(allowed.body, "paid");
        assert_eq!(h.runs(), 1, "{via:?}");
        assert_eq!(h.kinde.calls(via.endpoint()), 2, "{via:?}");
    }
}

#[tokio::test]
async fn permissions_are_per_organization() {
    let h = start_via(Via::Management, TTL).await;
    h.kinde.grant("org_a", "kp_1", "create:payments");
    let in_a = h.kinde.user_token("kp_1").org_code("org_a").sign();
    let in_b = h.kinde.user_token("kp_1").org_code("org_b").sign();
    let no_org = h.kinde.user_token("kp_1").without_claim("org_code").sign();
    assert_eq!(h.post("/payments", &in_a).await.status, 200);
    assert_eq!(h.post("/payments", &in_b).await.status, 403);
    assert_eq!(h.post("/payments", &no_org).await.status, 403);
}

#[tokio::test]
async fn a_revocation_is_denied_once_the_ttl_has_passed_on_strict_routes_only() {
    for via in Via::BOTH {
        let h = start_via(via, TTL).await;
        h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
        let token = h
            .kinde
            .user_token("kp_1")
            .permissions(["create:payments", "read:reports"])
            .sign();
        assert_eq!(h.post("/payments", &token).await.status, 200);

        h.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
        h.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
        // Within the TTL the cached answer is still served...
        let cached = h.post("/payments", &token).await;
        assert_eq!(cached.status, 200, "{via:?}");
        assert_eq!(cached.source.as_deref(), Some("live-cache"));

        tokio::time::sleep(TTL + Duration::from_millis(100)).await;
        // ...after it the revocation holds, without restarting anything,
        let denied = h.post("/payments", &token).await;
        assert_eq!(denied.status, 403, "{via:?}: {}", denied.body);
        assert_eq!(denied.source.as_deref(), Some("live"));
        // while the token-trusted route keeps trusting the stale token.
        assert_eq!(h.get("/reports", Some(&token)).await.status, 200);
        assert_eq!(h.runs(), 2, "{via:?}");
    }
}

#[tokio::test]
async fn decisions_report_the_age_of_their_data() {
    let h = start_via(Via::Account, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let age = |answer: &common::Answer| answer.age_ms.expect("age header");
    let old = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-600)
        .sign();
    let trusted = h.get("/reports", Some(&old)).await;
    assert!(
        (600_000..=602_000).contains(&age(&trusted)),
        "{:?}",
        trusted.age_ms
    );

    let live = h.post("/payments", &old).await;
    assert_eq!(live.source.as_deref(), Some("live"));
    assert!(age(&live) < 50, "{:?}", live.age_ms);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let cached = h.post("/payments", &old).await;
    assert_eq!(cached.source.as_deref(), Some("live-cache"));
    assert!((120..1_000).contains(&age(&cached)), "{:?}", cached.age_ms);
}

#[tokio::test]
async fn invalidate_user_ends_the_stale_window_at_once() {
    let h = start_via(Via::Management, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    assert_eq!(h.post("/payments", &token).await.status, 200);
    h.live.invalidate_user("kp_1");
    assert_eq!(h.post("/payments", &token).await.status, 403);

    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.live.invalidate_org(DEFAULT_ORG);
    assert_eq!(h.post("/payments", &token).await.status, 200);
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    h.live.invalidate_all();
    assert_eq!(h.post("/payments", &token).await.status, 403);
}

#[tokio::test]
async fn one_live_answer_serves_every_strict_route_of_the_user() {
    let h = start_via(Via::Account, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    let fleet = h.post("/fleet", &token).await;
    assert_eq!(fleet.status, 403);
    assert_eq!(fleet.source.as_deref(), Some("live-cache"));
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 1);
}

#[tokio::test]
async fn machine_tokens_are_denied_on_strict_routes_unless_the_route_allows_them() {
    let h = start_via(Via::Management, TTL).await;
    let machine = h
        .kinde
        .m2m_token("client_1", &["create:payments", "sync:fleet"])
        .sign();
    let denied = h.post("/payments", &machine).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.source.as_deref(), Some("token"));

    let allowed = h.post("/fleet", &machine).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let unscoped = h.kinde.m2m_token("client_2", &["read:users"]).sign();
    assert_eq!(h.post("/fleet", &unscoped).await.status, 403);
    assert_eq!(h.runs(), 1);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 0);
}

#[tokio::test]
async fn an_invalid_token_on_a_strict_route_costs_no_upstream_call() {
    for via in Via::BOTH {
        let h = start_via(via, TTL).await;
        h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
        let forged = h.kinde.user_token("kp_1").forged().sign();
        let expired = h.kinde.user_token("kp_1").expires_in(-3600).sign();
        for token in [forged.as_str(), expired.as_str(), "not-a-jwt"] {
            assert_eq!(h.post("/payments", token).await.status, 401, "{via:?}");
        }
        let anonymous = h.send(h.client.post(format!("{}/payments", h.base))).await;
        assert_eq!(anonymous.status, 401);
        assert_eq!(h.kinde.calls(via.endpoint()), 0, "{via:?}");
        assert_eq!(h.kinde.calls(Endpoint::Token), 0, "{via:?}");
        assert_eq!(h.runs(), 0);
    }
}

#[tokio::test]
async fn account_api_pages_are_followed() {
    use claimcheck::live::{KindeAccountApi, LiveCheck};
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let verifier = common::verifier_for(&kinde).build().unwrap();
    let source = KindeAccountApi::new(kinde.issuer()).unwrap().page_size(10);
    let live = LiveCheck::builder(source).build();
    // 25 permissions sorted so that the one the route needs is on the third page.
    for i in 0..24 {
        kinde.grant(DEFAULT_ORG, "kp_1", &format!("a:{i:02}"));
    }
    kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    assert_eq!(
        kinde.permissions_of(DEFAULT_ORG, "kp_1")[24],
        "create:payments"
    );
    let h = common::start_live(kinde, verifier, live).await;
    let token = h.kinde.user_token("kp_1").sign();
    let answer = h.post("/payments", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 3);
}

#[tokio::test]
async fn a_user_id_never_escapes_its_path_segment() {
    for via in Via::BOTH {
        let h = start_via(via, TTL).await;
        let odd = "kp_../../x?y=%2F#z/..";
        h.kinde.grant(DEFAULT_ORG, odd, "create:payments");
        // The ids the path tricks would reach if they escaped: none has the permission, but
        // a request for them would be a different (wrong) lookup.
        let token = h.kinde.user_token(odd).sign();
        let answer = h.post("/payments", &token).await;
        assert_eq!(answer.status, 200, "{via:?}: {}", answer.body);
        assert_eq!(h.kinde.calls(via.endpoint()), 1, "{via:?}");

        let dots = h.kinde.user_token("..").sign();
        let refused = h.post("/payments", &dots).await;
        if via == Via::Management {
            // `..` cannot be a path segment at all: fail closed rather than ask about another URL.
            assert_eq!(refused.status, 503, "{}", refused.body);
            assert_eq!(h.kinde.calls(via.endpoint()), 1);
        } else {
            assert_eq!(refused.status, 403, "{}", refused.body);
        }
    }
}

#[tokio::test]
async fn chained_route_layer_wraps_earlier_methods_too() {
    // design §3 pitfall: `route_layer` applies to every method registered before it.
    let h = start_via(Via::Account, TTL).await;
    let reader = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();
    let read = || RequirePermissionLayer::token_trusted(common::READ_REPORTS);
    let write = || {
        RequirePermissionLayer::token_trusted(claimcheck::Permission::from_static("write:reports"))
    };
    let handler = || async { "ok" };
    let auth = claimcheck::JwtAuthLayer::new(h.verifier.clone());
    let chained: Router = Router::new()
        .route(
            "/r",
            get(handler)
                .route_layer(read())
                .post(handler)
                .route_layer(write()),
        )
        .layer(auth.clone());
    let scoped: Router = Router::new()
        .route(
            "/r",
            get(handler.layer(read())).post(handler.layer(write())),
        )
        .layer(auth);
    let (chained, _c) = common::serve(chained).await;
    let (scoped, _s) = common::serve(scoped).await;
    let status = |base: String| {
        let req = h.client.get(format!("{base}/r")).bearer_auth(&reader);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(chained).await,
        403,
        "GET is wrapped in the POST layer too"
    );
    assert_eq!(
        status(scoped).await,
        200,
        "Handler::layer scopes to one method"
    );
}

#[tokio::test]
async fn strict_routes_without_the_authentication_layer_are_a_500() {
    let h = start_via(Via::Account, TTL).await;
    let miswired: Router = Router::new().route(
        "/payments",
        axum::routing::post((|| async { "paid" }).layer(RequirePermissionLayer::strict(
            common::CREATE_PAYMENTS,
            h.live.clone(),
        ))),
    );
    let (base, _task) = common::serve(miswired).await;
    let token = h.kinde.user_token("kp_1").sign();
    let answer = h
        .send(h.client.post(format!("{base}/payments")).bearer_auth(token))
        .await;
    assert_eq!(answer.status, 500);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json")
    );
}
