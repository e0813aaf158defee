//! Attacks on requirements (roles, flags, organizations, all-of / any-of) from outside, over
//! loopback: one caller's failures against everyone's service, one kind's outage against the
//! others, invalidations racing fetches, hostile token claims and hostile upstream answers.

mod common;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::handler::Handler;
use axum::routing::get;
use claimcheck::changes::Target;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};
use claimcheck::{Auth, Requirement, all_of, any_of};
use common::{Answer, Harness, Via};
use serde_json::{Value, json};

const ADMIN_AND_PAY: Requirement = all_of![
    Requirement::permission("create:payments"),
    Requirement::role("admin"),
];
const ADMIN_OR_PAY: Requirement = any_of![
    Requirement::permission("create:payments"),
    Requirement::role("admin"),
];
const EVERYTHING: Requirement = all_of![
    Requirement::permission("create:payments"),
    Requirement::role("admin"),
    Requirement::flag("beta"),
];

/// A harness whose live check gives up after `deadline`, with a second app at `extra` serving
/// `/both`, `/either`, `/all` (strict) and `/{admin,beta,acme}/machines` (strict, machines
/// allowed) in front of the same `Auth`.
async fn start(via: Via, ttl: Duration, deadline: Duration) -> (Harness, String) {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = common::live_for(&kinde, via)
        .time_to_live(ttl)
        .deadline(deadline)
        .build();
    let h = common::start_live(kinde, verifier, live).await;
    let auth: &Auth = &h.auth;
    let ok = || async { "ok" };
    let mut extra = Router::new()
        .route("/both", get(ok.layer(auth.strict(ADMIN_AND_PAY))))
        .route("/either", get(ok.layer(auth.strict(ADMIN_OR_PAY))))
        .route("/all", get(ok.layer(auth.strict(EVERYTHING))));
    for (path, requirement) in [
        ("/admin", common::ADMIN),
        ("/beta", common::BETA),
        ("/acme", common::ACME),
    ] {
        let layer = auth.strict(requirement).allow_machines();
        extra = extra.route(&format!("{path}/machines"), get(ok.layer(layer)));
    }
    let (base, server) = common::serve(extra.layer(auth.layer())).await;
    // The server lives as long as the test's runtime.
    drop(server);
    (h, base)
}

async fn at(base: &str, path: &str, token: &str) -> Answer {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let req = CLIENT
        .get_or_init(reqwest::Client::new)
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"));
    common::send(req).await
}

fn roles_endpoint(via: Via) -> Endpoint {
    match via {
        Via::Management => Endpoint::ManagementRoles,
        Via::Account => Endpoint::AccountRoles,
    }
}

const SHORT: Duration = Duration::from_millis(300);
const TTL: Duration = Duration::from_secs(5);

/// A failing roles (or flags) endpoint must not pause permission lookups: each kind has its
/// own breaker (one breaker for every kind made another user's strict permission route answer
/// 503, with no permission call made, after 3 failed roles calls).
#[tokio::test]
async fn a_roles_or_flags_only_outage_does_not_pause_strict_permission_routes() {
    let mut report = Vec::new();
    for (via, broken) in [
        (Via::Account, Endpoint::AccountRoles),
        (Via::Management, Endpoint::ManagementRoles),
        (Via::Management, Endpoint::AccountFeatureFlags),
    ] {
        for fault in [Fault::Status(500, vec![]), Fault::Hang] {
            let (h, _) = start(via, TTL, SHORT).await;
            h.kinde.set_fault(broken, fault.clone());
            let a = h.kinde.user_token("kp_a").sign();
            let path = match broken {
                Endpoint::AccountFeatureFlags => "/beta/strict",
                _ => "/admin/strict",
            };
            for _ in 0..3 {
                assert_eq!(h.get(path, Some(&a)).await.status, 503);
            }
            h.kinde.grant(DEFAULT_ORG, "kp_b", "create:payments");
            let b = h.kinde.user_token("kp_b").sign();
            let answer = h.post("/payments", &b).await;
            let upstream = h.kinde.calls(via.endpoint());
            if answer.status != 200 {
                report.push(format!(
                    "{via:?} {broken:?} {fault:?}: /payments of another user {} \
                     (retry-after {:?}, {upstream} permission calls)",
                    answer.status, answer.retry_after
                ));
            }
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

/// A refused token costs Kinde one call whatever kinds it is tried on, never pauses anyone,
/// and a flood of refused tokens of one user costs a bounded number of calls.
#[tokio::test]
async fn refused_tokens_on_role_and_flag_routes_cost_little_and_pause_nobody() {
    let (h, _) = start(Via::Account, TTL, SHORT).await;
    let a = h.kinde.user_token("kp_a").sign();
    h.kinde.sign_out(&a);
    for path in [
        "/admin/strict",
        "/beta/strict",
        "/admin",
        "/beta",
        "/audit/strict",
    ] {
        for _ in 0..5 {
            h.get(path, Some(&a)).await.assert_invalid_token();
        }
    }
    let calls = |h: &Harness| {
        h.kinde.calls(Endpoint::AccountRoles)
            + h.kinde.calls(Endpoint::AccountFeatureFlags)
            + h.kinde.calls(Endpoint::AccountPermissions)
    };
    // Remembered per kind (each kind's endpoint judges the token for itself): one call each.
    assert_eq!(calls(&h), 3, "one refusal remembered per kind");

    // Twenty distinct refused tokens of one user, issued before the refusals.
    let tokens: Vec<String> = (0..20)
        .map(|_| h.kinde.user_token("kp_c").issued_in(-30).sign())
        .collect();
    for token in &tokens {
        h.kinde.sign_out(token);
    }
    for (i, token) in tokens.iter().enumerate() {
        let path = ["/admin/strict", "/beta/strict"][i % 2];
        h.get(path, Some(token)).await.assert_invalid_token();
    }
    // Three distinct refused tokens per kind, then the user's older tokens are refused from
    // memory: at most 3 calls per kind.
    let flood = calls(&h) - 3;
    assert!(
        flood <= 6,
        "{flood} calls for 20 refused tokens of one user"
    );

    // Nobody else is paused.
    h.kinde.assign_role(DEFAULT_ORG, "kp_b", "admin");
    h.kinde
        .set_feature_flag(DEFAULT_ORG, "kp_b", "beta", json!(true));
    h.kinde.grant(DEFAULT_ORG, "kp_b", "create:payments");
    let b = h.kinde.user_token("kp_b").sign();
    for path in ["/admin/strict", "/beta/strict", "/settle/strict"] {
        let status = h.get(path, Some(&b)).await.status;
        assert!(status == 200 || path == "/settle/strict" && status == 403);
    }
    assert_eq!(h.post("/payments", &b).await.status, 200);
}

/// With the Management API as source, permissions never use the caller's token; the Account
/// API refusing that token for flags must not turn the caller's permission routes into 401
/// (a refusal memory shared by every kind did, with no permission call made).
#[tokio::test]
async fn a_flags_refusal_does_not_refuse_management_permission_lookups() {
    let (h, _) = start(Via::Management, TTL, SHORT).await;
    h.kinde.grant(DEFAULT_ORG, "kp_a", "create:payments");
    // The Account API refuses every token for flags (not enabled for this application, say).
    h.kinde
        .set_fault(Endpoint::AccountFeatureFlags, Fault::Status(403, vec![]));
    let a = h.kinde.user_token("kp_a").sign();
    h.get("/beta/strict", Some(&a)).await.assert_invalid_token();
    let same_token = h.post("/payments", &a).await;
    // Three more tokens refused for flags: the user's older tokens are refused from memory.
    let older = h.kinde.user_token("kp_a").issued_in(-60).sign();
    for _ in 0..3 {
        let t = h.kinde.user_token("kp_a").issued_in(-30).sign();
        h.get("/beta/strict", Some(&t)).await.assert_invalid_token();
    }
    let older_token = h.post("/payments", &older).await;
    let calls = h.kinde.calls(Endpoint::ManagementPermissions);
    assert_eq!(
        (same_token.status, older_token.status),
        (200, 200),
        "Management permission lookups made: {calls}; bodies {} / {}",
        same_token.body,
        older_token.body
    );
}

/// A strict route needing a permission and a role: one kind failing is 503 + Retry-After (or
/// the caller's 401), never an allow, and the handler never runs.
#[tokio::test]
async fn one_kind_failing_never_allows_a_route_needing_two() {
    for via in Via::BOTH {
        for (fault, want) in [
            (Fault::Status(500, vec![]), 503),
            (Fault::Hang, 503),
            (Fault::Slow(Duration::from_millis(600)), 503),
            (Fault::Garbage, 503),
        ] {
            let (h, extra) = start(via, TTL, SHORT).await;
            h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
            h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
            h.kinde.set_fault(roles_endpoint(via), fault.clone());
            let token = h.kinde.user_token("kp_1").sign();
            for path in ["/both", "/all"] {
                let answer = at(&extra, path, &token).await;
                assert_eq!(answer.status, want, "{via:?} {fault:?} {path}");
                assert!(answer.retry_after.is_some(), "{via:?} {fault:?}");
            }
            // Any-of: the permission alone would do, but the first failure is the answer.
            let either = at(&extra, "/either", &token).await;
            assert_eq!(either.status, 503, "{via:?} {fault:?}: any-of");
        }
    }
    // The Account API refusing roles only (and answering permissions): the caller's 401.
    let (h, extra) = start(Via::Account, TTL, SHORT).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    h.kinde
        .set_fault(Endpoint::AccountRoles, Fault::Status(403, vec![]));
    let token = h.kinde.user_token("kp_1").sign();
    at(&extra, "/both", &token).await.assert_invalid_token();
    h.kinde.clear_fault(Endpoint::AccountRoles);
    let fresh = h.kinde.user_token("kp_1").sign();
    assert_eq!(at(&extra, "/both", &fresh).await.status, 200);
}

/// A user.updated webhook, `mark_changed` and `invalidate_org` drop cached roles and flags,
/// not only permissions.
#[tokio::test]
async fn every_invalidation_drops_roles_and_flags() {
    for via in Via::BOTH {
        let (h, _) = start(via, TTL, SHORT).await;
        let token = h.kinde.user_token("kp_1").issued_in(-10).sign();
        for how in [
            "webhook",
            "mark_changed",
            "invalidate_org",
            "invalidate_user",
        ] {
            h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
            h.kinde
                .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
            // Cached (or first) answers: allowed.
            h.live.invalidate_user("kp_1");
            assert_eq!(h.get("/admin/strict", Some(&token)).await.status, 200);
            assert_eq!(h.get("/beta/strict", Some(&token)).await.status, 200);
            h.kinde.remove_role(DEFAULT_ORG, "kp_1", "admin");
            h.kinde.clear_feature_flag(DEFAULT_ORG, "kp_1", "beta");
            assert_eq!(h.get("/admin/strict", Some(&token)).await.status, 200);
            match how {
                "webhook" => {
                    let event = h.kinde.user_updated("kp_1");
                    assert_eq!(event.deliver(&h.webhook_url()).await, 200);
                }
                "mark_changed" => h
                    .auth
                    .mark_changed(Target::User("kp_1".into()), SystemTime::now()),
                "invalidate_org" => h.auth.invalidate_org(DEFAULT_ORG),
                _ => h.auth.invalidate_user("kp_1"),
            }
            for path in ["/admin/strict", "/beta/strict"] {
                let answer = h.get(path, Some(&token)).await;
                assert_eq!(answer.status, 403, "{via:?} {how} {path}");
            }
        }
    }
}

/// An invalidation landing while a roles (or flags) fetch is in flight: the answer fetched
/// before it is neither used nor cached.
#[tokio::test]
async fn an_invalidation_during_a_roles_or_flags_fetch_wins() {
    for (endpoint, path) in [
        (Endpoint::AccountRoles, "/admin/strict"),
        (Endpoint::AccountFeatureFlags, "/beta/strict"),
    ] {
        let (h, _) = start(Via::Account, TTL, Duration::from_millis(1500)).await;
        h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
        h.kinde
            .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
        h.kinde
            .set_fault(endpoint, Fault::Late(Duration::from_millis(300)));
        let token = h.kinde.user_token("kp_1").sign();
        let (first, _) = tokio::join!(h.get(path, Some(&token)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            h.kinde.remove_role(DEFAULT_ORG, "kp_1", "admin");
            h.kinde.clear_feature_flag(DEFAULT_ORG, "kp_1", "beta");
            h.auth.invalidate_user("kp_1");
        });
        assert_eq!(first.status, 403, "{path}: the stale answer was used");
        h.kinde.clear_fault(endpoint);
        assert_eq!(h.get(path, Some(&token)).await.status, 403, "{path}");
        assert_eq!(
            h.kinde.calls(endpoint),
            2,
            "{path}: refetched once, then cached"
        );
    }
}

/// Role, flag and organization claims in hostile shapes, on both kinds of route: never an
/// allow, never a 500. The user holds no role and no flag at Kinde either.
#[tokio::test]
async fn hostile_claims_never_allow_and_never_answer_500() {
    let (h, _) = start(Via::Account, TTL, SHORT).await;
    let many: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
    let cases: Vec<(&str, Value)> = vec![
        ("roles", json!({"admin": true})),
        ("roles", json!("admin")),
        ("roles", json!([["admin"]])),
        ("roles", json!([{"id": "admin"}])),
        ("roles", json!([{"key": "Admin"}])),
        ("roles", json!([{"key": "admin "}])),
        ("roles", json!([" admin"])),
        ("roles", json!([{"key": ""}])),
        ("roles", json!([{"key": 1}])),
        ("roles", json!([null])),
        ("roles", json!([{"key": "admin", "id": 5}])),
        ("roles", json!([{"key": {"admin": 1}}])),
        ("roles", json!(many)),
        ("feature_flags", json!({"beta": {"v": true}})),
        ("feature_flags", json!({"beta": {"t": "b"}})),
        ("feature_flags", json!({"beta": {"t": "b", "v": "true"}})),
        ("feature_flags", json!({"beta": {"t": "b", "v": 1}})),
        ("feature_flags", json!({"beta": {"t": "B", "v": true}})),
        ("feature_flags", json!({"beta": {"t": "s", "v": true}})),
        ("feature_flags", json!({"beta": true})),
        ("feature_flags", json!([{"beta": {"t": "b", "v": true}}])),
        ("feature_flags", json!({"Beta": {"t": "b", "v": true}})),
        ("feature_flags", json!("beta")),
        ("org_code", json!(["org_acme"])),
        ("org_code", json!({"org_acme": true})),
        ("org_code", json!("ORG_ACME")),
        ("org_code", json!("org_acme ")),
        ("org_code", json!(null)),
        ("x-hasura-org-code", json!(5)),
    ];
    let mut bad = Vec::new();
    for (claim, value) in &cases {
        let token = h
            .kinde
            .user_token("kp_x")
            .claim(claim, value.clone())
            .sign();
        for path in [
            "/admin",
            "/admin/strict",
            "/beta",
            "/beta/strict",
            "/acme",
            "/acme/strict",
        ] {
            let status = h.get(path, Some(&token)).await.status;
            if status == 200 || status >= 500 {
                bad.push(format!("{claim}={value}: {path} {status}"));
            }
        }
    }
    let no_org = h.kinde.user_token("kp_x").without_claim("org_code").sign();
    for path in ["/acme", "/acme/strict"] {
        let status = h.get(path, Some(&no_org)).await.status;
        if status != 403 {
            bad.push(format!("no org_code: {path} {status}"));
        }
    }
    // A huge roles claim holding the role is met, within the token size limit.
    let mut with_admin = many.clone();
    with_admin.push("admin".into());
    let token = h
        .kinde
        .user_token("kp_x")
        .claim("roles", json!(with_admin))
        .sign();
    assert!(token.len() < 8 * 1024, "{}", token.len());
    assert_eq!(h.get("/admin", Some(&token)).await.status, 200);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Duplicate claim names in the signed payload: never an allow by the later (or earlier) one.
#[tokio::test]
async fn duplicate_claims_never_allow() {
    let (h, _) = start(Via::Account, TTL, SHORT).await;
    let base = h.kinde.user_token("kp_x");
    let mut json = serde_json::to_string(base.claims()).unwrap();
    json.pop();
    for (dupes, path) in [
        (r#""roles":[],"roles":["admin"]"#, "/admin"),
        (r#""roles":["admin"],"roles":[]"#, "/admin"),
        (r#""roles":[{"key":"x","key":"admin"}]"#, "/admin"),
        (
            r#""feature_flags":{"beta":{"t":"b","v":false},"beta":{"t":"b","v":true}}"#,
            "/beta",
        ),
        (
            r#""feature_flags":{"beta":{"t":"b","v":false,"v":true}}"#,
            "/beta",
        ),
        (r#""org_code":"org_acme","org_code":"org_x""#, "/acme"),
        (r#""org_code":"org_x","org_code":"org_acme""#, "/acme"),
    ] {
        let payload = format!("{json},{dupes}}}");
        let token = h.kinde.user_token("kp_x").raw_payload(payload).sign();
        let answer = h.get(path, Some(&token)).await;
        assert!(
            answer.status == 401 || answer.status == 403,
            "{dupes}: {} {}",
            answer.status,
            answer.body
        );
    }
}

/// Machine tokens on role, flag and organization routes of both kinds: decided on the token
/// (strict routes deny them unless they allow machines), never a live call, never a 500.
#[tokio::test]
async fn machine_tokens_on_role_flag_and_org_routes() {
    let (h, extra) = start(Via::Account, TTL, SHORT).await;
    let bare = h.kinde.m2m_token("m2m_1", &["sync:fleet"]).sign();
    let claiming = h
        .kinde
        .m2m_token("m2m_1", &["sync:fleet"])
        .claim("roles", json!(["admin"]))
        .claim("feature_flags", json!({"beta": {"t": "b", "v": true}}))
        .claim("org_code", "org_acme")
        .sign();
    let mut seen = Vec::new();
    for (name, token) in [("bare", &bare), ("claiming", &claiming)] {
        for path in [
            "/admin",
            "/beta",
            "/acme",
            "/admin/strict",
            "/beta/strict",
            "/acme/strict",
        ] {
            seen.push((name, path, h.get(path, Some(token)).await.status));
        }
        for path in ["/admin/machines", "/beta/machines", "/acme/machines"] {
            seen.push((name, path, at(&extra, path, token).await.status));
        }
    }
    for &(name, path, status) in &seen {
        assert!(status != 500, "{name} {path}");
        if name == "bare" || path.ends_with("/strict") {
            assert_eq!(status, 403, "{name} {path}");
        }
    }
    println!("machine tokens: {seen:?}");
    let live = [
        Endpoint::AccountRoles,
        Endpoint::AccountFeatureFlags,
        Endpoint::AccountPermissions,
        Endpoint::Token,
    ];
    assert!(live.iter().all(|e| h.kinde.calls(*e) == 0));
}

/// Account API answers in hostile shapes: never an allow nor a 500; a cursor that never ends
/// costs a bounded number of calls and answers within the deadline.
#[tokio::test]
async fn hostile_upstream_shapes_never_allow() {
    let list = |field: &str, items: Value, more: bool| {
        json!({"data": {field: items},
               "metadata": {"has_more": more, "next_page_starting_after": "loop"}})
        .to_string()
    };
    let flag = |value: Value, kind: &str| json!([{"key": "beta", "type": kind, "value": value}]);
    let cases: Vec<(Endpoint, &str, String)> = vec![
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", Value::Null, false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            json!({"data": {}}).to_string(),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            json!({}).to_string(),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            json!({"data": null}).to_string(),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!([{"key": "admin "}]), false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!([{"key": ""}]), false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!([{"key": 1}]), false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!(["admin"]), false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!({"admin": {}}), false),
        ),
        (
            Endpoint::AccountRoles,
            "/admin/strict",
            list("roles", json!([{"key": "admin"}]), true),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", flag(json!(1), "boolean"), false),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", flag(json!("true"), "boolean"), false),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", flag(json!(true), "Boolean"), false),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", flag(json!(true), "string"), false),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list(
                "feature_flags",
                json!([{"key": "beta", "value": true}]),
                false,
            ),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", json!({"beta": true}), false),
        ),
        (
            Endpoint::AccountFeatureFlags,
            "/beta/strict",
            list("feature_flags", flag(json!(true), "boolean"), true),
        ),
    ];
    let mut seen = Vec::new();
    for (endpoint, path, body) in cases {
        let (h, _) = start(Via::Account, TTL, Duration::from_millis(1500)).await;
        h.kinde.set_fault(endpoint, Fault::Body(body.clone()));
        let token = h.kinde.user_token("kp_x").sign();
        let started = std::time::Instant::now();
        let answer = h.get(path, Some(&token)).await;
        let took = started.elapsed();
        let calls = h.kinde.calls(endpoint);
        assert!(
            answer.status != 200 && answer.status != 500,
            "{body}: {}",
            answer.status
        );
        assert!(calls <= 50, "{body}: {calls} calls");
        assert!(took < Duration::from_millis(1700), "{body}: {took:?}");
        seen.push(format!(
            "{body} -> {} ({calls} calls, {took:?})",
            answer.status
        ));
    }
    println!("{seen:#?}");
}

/// A burst mixing kinds for one user: one upstream call per kind; a request dropped while its
/// fetch is under way stalls nobody.
#[tokio::test]
async fn bursts_coalesce_per_kind_and_a_dropped_starter_stalls_nobody() {
    let (h, extra) = start(Via::Account, TTL, Duration::from_millis(1500)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.grant(DEFAULT_ORG, "kp_1", "approve:refunds");
    h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    h.kinde
        .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
    let slow = Fault::Slow(Duration::from_millis(300));
    for endpoint in [
        Endpoint::AccountRoles,
        Endpoint::AccountFeatureFlags,
        Endpoint::AccountPermissions,
    ] {
        h.kinde.set_fault(endpoint, slow.clone());
    }
    let token = h.kinde.user_token("kp_1").sign();
    // The first request gives up (its client drops it) after 50 ms, mid-fetch.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let dropped = impatient
        .get(format!("{extra}/all"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await;
    assert!(dropped.is_err(), "the client gave up");
    let burst = (0..30).map(|i| {
        let (base, path) = match i % 5 {
            0 => (h.base.as_str(), "/admin/strict"),
            1 => (h.base.as_str(), "/beta/strict"),
            2 => (h.base.as_str(), "/settle/strict"),
            3 => (extra.as_str(), "/all"),
            _ => (extra.as_str(), "/both"),
        };
        at(base, path, &token)
    });
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(burst).await;
    let took = started.elapsed();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        took < Duration::from_millis(400),
        "{took:?}: joined the dropped one's fetches"
    );
    assert_eq!(h.kinde.calls(Endpoint::AccountRoles), 1);
    assert_eq!(h.kinde.calls(Endpoint::AccountFeatureFlags), 1);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 1);
}
