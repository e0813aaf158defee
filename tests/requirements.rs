//! Requirements of every shape on both kinds of route, over loopback: any-of, all-of, roles,
//! organizations and feature flags, from the token and from Kinde's live APIs.

mod common;

use std::time::Duration;

use claimcheck::live::{LiveCheck, PermissionQuery, PermissionSource, SourceFuture};
use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use claimcheck::{Auth, PermissionSet};
use common::{Answer, Via};
use serde_json::json;

/// Asserts a 403 that names `requirement`, with `scope` (and its challenge parameter) only when
/// the requirement is permissions, all of them.
fn assert_unmet(answer: &Answer, requirement: &str, scope: Option<&str>) {
    assert_eq!(answer.status, 403, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["requirement"], requirement);
    assert_eq!(body["scope"].as_str(), scope);
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""));
    match scope {
        Some(scope) => assert!(
            challenge.ends_with(&format!(", scope=\"{scope}\"")),
            "{challenge}"
        ),
        None => assert!(!challenge.contains("scope=\""), "{challenge}"),
    }
}

#[tokio::test]
async fn any_of_is_met_by_the_second_alone_on_both_kinds_of_route() {
    for via in Via::BOTH {
        let h = common::start_via(via, Duration::from_secs(5)).await;
        let second = h.kinde.user_token("kp_1").permissions(["admin:all"]).sign();
        let answer = h.get("/audit", Some(&second)).await;
        assert_eq!(
            (answer.status, answer.source.as_deref()),
            (200, Some("token"))
        );

        h.kinde.grant(DEFAULT_ORG, "kp_1", "admin:all");
        let bare = h
            .kinde
            .user_token("kp_1")
            .permissions(["read:reports"])
            .sign();
        let answer = h.get("/audit/strict", Some(&bare)).await;
        assert_eq!(
            (answer.status, answer.source.as_deref()),
            (200, Some("live")),
            "{via:?}"
        );
        // A strict any-of of permissions asks for permissions only.
        assert_eq!(h.kinde.calls(Endpoint::AccountRoles), 0);
        assert_eq!(h.kinde.calls(Endpoint::ManagementRoles), 0);

        let neither = h
            .kinde
            .user_token("kp_2")
            .permissions(["read:reports"])
            .sign();
        let requirement = "any of (read:audit, admin:all)";
        assert_unmet(&h.get("/audit", Some(&neither)).await, requirement, None);
        assert_unmet(
            &h.get("/audit/strict", Some(&neither)).await,
            requirement,
            None,
        );
    }
}

#[tokio::test]
async fn all_of_with_one_missing_is_denied_naming_the_scope() {
    let h = common::start_via(Via::Account, Duration::from_secs(5)).await;
    let requirement = "all of (create:payments, approve:refunds)";
    let scope = Some("create:payments approve:refunds");
    let one = h
        .kinde
        .user_token("kp_1")
        .permissions(["create:payments"])
        .sign();
    assert_unmet(&h.get("/settle", Some(&one)).await, requirement, scope);
    let both = h
        .kinde
        .user_token("kp_1")
        .permissions(["create:payments", "approve:refunds"])
        .sign();
    assert_eq!(h.get("/settle", Some(&both)).await.status, 200);

    // Strict: Kinde's answer counts, not the token's.
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    assert_unmet(
        &h.get("/settle/strict", Some(&both)).await,
        requirement,
        scope,
    );
    h.live.invalidate_user("kp_1");
    h.kinde.grant(DEFAULT_ORG, "kp_1", "approve:refunds");
    assert_eq!(h.get("/settle/strict", Some(&one)).await.status, 200);
}

#[tokio::test]
async fn a_role_revoked_at_kinde_is_denied_on_strict_routes_after_the_ttl_or_a_webhook() {
    for via in Via::BOTH {
        let ttl = Duration::from_millis(300);
        let h = common::start_via(via, ttl).await;
        h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
        let roles = json!([{"id": "role_1", "key": "admin", "name": "Admin"}]);
        let token = h
            .kinde
            .user_token("kp_1")
            .claim("roles", roles)
            .issued_in(-30)
            .sign();
        assert_eq!(
            h.get("/admin/strict", Some(&token)).await.status,
            200,
            "{via:?}"
        );
        let endpoint = match via {
            Via::Management => Endpoint::ManagementRoles,
            Via::Account => Endpoint::AccountRoles,
        };
        assert_eq!(h.kinde.calls(endpoint), 1, "{via:?}");
        // Roles only: no permission lookup for a role gate.
        assert_eq!(h.kinde.calls(via.endpoint()), 0, "{via:?}");

        h.kinde.remove_role(DEFAULT_ORG, "kp_1", "admin");
        // Within the time-to-live the cached answer stands; the token-trusted route follows
        // the token.
        assert_eq!(h.get("/admin/strict", Some(&token)).await.status, 200);
        assert_eq!(h.get("/admin", Some(&token)).await.status, 200);
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        assert_unmet(
            &h.get("/admin/strict", Some(&token)).await,
            "role admin",
            None,
        );

        // Kinde's webhook: the strict route sees the next change at once, and the token issued
        // before it is no longer trusted for its roles.
        h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
        h.kinde.remove_role(DEFAULT_ORG, "kp_1", "admin");
        let event = h.kinde.user_updated("kp_1");
        assert_eq!(event.deliver(&h.webhook_url()).await, 200);
        let answer = h.get("/admin", Some(&token)).await;
        assert_unmet(&answer, "role admin", None);
        assert_eq!(answer.source.as_deref(), Some("live"));
    }
}

#[tokio::test]
async fn a_flag_switched_off_at_kinde_is_seen_by_strict_routes_after_the_ttl() {
    for via in Via::BOTH {
        let ttl = Duration::from_millis(300);
        let h = common::start_via(via, ttl).await;
        h.kinde
            .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
        let flags = json!({"beta": {"t": "b", "v": true}});
        let token = h
            .kinde
            .user_token("kp_1")
            .claim("feature_flags", flags)
            .sign();
        assert_eq!(
            h.get("/beta/strict", Some(&token)).await.status,
            200,
            "{via:?}"
        );
        // Kinde has no flags in its Management API: both sources ask the Account API, with the
        // caller's token.
        assert_eq!(h.kinde.calls(Endpoint::AccountFeatureFlags), 1, "{via:?}");
        assert_eq!(h.kinde.calls(Endpoint::Token), 0, "{via:?}");

        h.kinde
            .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(false));
        assert_eq!(
            h.get("/beta/strict", Some(&token)).await.status,
            200,
            "cached"
        );
        assert_eq!(
            h.get("/beta", Some(&token)).await.status,
            200,
            "the token's flag"
        );
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        assert_unmet(
            &h.get("/beta/strict", Some(&token)).await,
            "flag beta",
            None,
        );

        // A flag that is not boolean `true` is not on.
        h.kinde
            .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!("true"));
        h.live.invalidate_user("kp_1");
        assert_eq!(h.get("/beta/strict", Some(&token)).await.status, 403);
        let string_flag = json!({"beta": {"t": "s", "v": "true"}});
        let token = h
            .kinde
            .user_token("kp_1")
            .claim("feature_flags", string_flag)
            .sign();
        assert_eq!(h.get("/beta", Some(&token)).await.status, 403);
    }
}

#[tokio::test]
async fn token_trusted_routes_ask_live_for_a_claim_the_token_does_not_carry() {
    let h = common::start_via(Via::Account, Duration::from_secs(5)).await;
    h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    // Kinde adds `roles` only when asked to: without the claim, the role is looked up live.
    let without_roles = h.kinde.user_token("kp_1").sign();
    let answer = h.get("/admin", Some(&without_roles)).await;
    assert_eq!(
        (answer.status, answer.source.as_deref()),
        (200, Some("live"))
    );
    // An empty `roles` claim is an answer: no role.
    let empty = h.kinde.user_token("kp_1").claim("roles", json!([])).sign();
    let answer = h.get("/admin", Some(&empty)).await;
    assert_eq!(
        (answer.status, answer.source.as_deref()),
        (403, Some("token"))
    );
    assert_eq!(h.kinde.calls(Endpoint::AccountRoles), 1);
}

#[tokio::test]
async fn concurrent_strict_requests_share_one_call_per_kind() {
    let h = common::start_via(Via::Account, Duration::from_secs(5)).await;
    h.kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    h.kinde
        .set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
    h.kinde.set_fault(
        Endpoint::AccountRoles,
        claimcheck::testing::Fault::Slow(Duration::from_millis(200)),
    );
    let token = h.kinde.user_token("kp_1").sign();
    let burst = (0..20).map(|i| {
        let path = if i % 2 == 0 {
            "/admin/strict"
        } else {
            "/beta/strict"
        };
        h.get(path, Some(&token))
    });
    let answers = futures_util::future::join_all(burst).await;
    assert!(answers.iter().all(|a| a.status == 200));
    assert_eq!(h.kinde.calls(Endpoint::AccountRoles), 1);
    assert_eq!(h.kinde.calls(Endpoint::AccountFeatureFlags), 1);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn the_organization_is_the_tokens_on_both_kinds_of_route() {
    let h = common::start_via(Via::Account, Duration::from_secs(5)).await;
    let acme = h.kinde.user_token("kp_1").org_code("org_acme").sign();
    let other = h.kinde.user_token("kp_1").org_code("org_other").sign();
    for path in ["/acme", "/acme/strict"] {
        assert_eq!(h.get(path, Some(&acme)).await.status, 200, "{path}");
        assert_unmet(&h.get(path, Some(&other)).await, "org org_acme", None);
    }
    // Nothing to ask Kinde for an organization gate.
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
}

/// A source that knows permissions only.
struct PermissionsOnly;

impl PermissionSource for PermissionsOnly {
    fn permissions<'a>(&'a self, _query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async { Ok(["admin:all"].into_iter().collect::<PermissionSet>()) })
    }
}

#[tokio::test]
async fn a_source_without_roles_answers_500_on_a_role_gate_and_keeps_serving_permissions() {
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = LiveCheck::builder(PermissionsOnly).build();
    let h = common::start_auth(kinde, Auth::new(verifier, live)).await;
    let token = h.kinde.user_token("kp_1").sign();
    for _ in 0..5 {
        let answer = h.get("/admin/strict", Some(&token)).await;
        assert_eq!(answer.status, 500, "{}", answer.body);
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/problem+json")
        );
    }
    // Not an outage: the breaker did not open, permissions still answer.
    assert_eq!(h.get("/audit/strict", Some(&token)).await.status, 200);
}
