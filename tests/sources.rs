//! The live sources' roles and feature flags, called directly against the fake Kinde over
//! loopback: Account API lists with the caller's token, Management API roles with the machine
//! token, paging, refusals and faults.

mod common;

use claimcheck::live::{
    KeySet, KindeAccountApi, KindeManagementApi, PermissionQuery, PermissionSource, SourceError,
};
use claimcheck::testing::{
    DEFAULT_ORG, Endpoint, FakeKinde, Fault, READ_PERMISSIONS_SCOPE, READ_ROLES_SCOPE,
};
use serde_json::json;

/// The fake, and a verified query for `user`'s own token (from `login`, so it also carries the
/// user's roles and flags as claims).
async fn start() -> (FakeKinde, claimcheck::Verifier) {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    (kinde, verifier)
}

async fn query(verifier: &claimcheck::Verifier, token: &str) -> PermissionQuery {
    let claims = verifier.verify(token).await.expect("a token of the fake");
    PermissionQuery::from_claims(&claims).expect("a user token")
}

async fn query_for(
    kinde: &FakeKinde,
    verifier: &claimcheck::Verifier,
    user: &str,
) -> PermissionQuery {
    query(verifier, &kinde.login(user).access_token).await
}

fn keys(set: &KeySet) -> Vec<&str> {
    set.iter().collect()
}

fn management(kinde: &FakeKinde) -> KindeManagementApi {
    let (id, secret) = kinde.register_management_client();
    KindeManagementApi::new(kinde.issuer(), id, secret).unwrap()
}

fn account(kinde: &FakeKinde) -> KindeAccountApi {
    KindeAccountApi::new(kinde.issuer()).unwrap()
}

/// The error, after checking it is an outage (not the caller's refusal).
fn unavailable<T: std::fmt::Debug>(result: Result<T, SourceError>) -> SourceError {
    let error = result.expect_err("an error");
    assert!(!error.is_refused(), "{error:?}");
    error
}

#[tokio::test]
async fn account_roles_follow_every_page() {
    let (kinde, verifier) = start().await;
    for role in ["admin", "billing", "support"] {
        kinde.assign_role(DEFAULT_ORG, "kp_1", role);
    }
    kinde.assign_role("org_other", "kp_1", "owner");
    let q = query_for(&kinde, &verifier, "kp_1").await;

    let roles = account(&kinde).page_size(1).roles(&q).await.unwrap();
    assert_eq!(keys(&roles), ["admin", "billing", "support"]);
    assert_eq!(kinde.calls(Endpoint::AccountRoles), 3);
    // Live: a removal shows at once, whatever the token says.
    kinde.remove_role(DEFAULT_ORG, "kp_1", "billing");
    assert_eq!(kinde.roles_of(DEFAULT_ORG, "kp_1"), ["admin", "support"]);
    let roles = account(&kinde).roles(&q).await.unwrap();
    assert_eq!(keys(&roles), ["admin", "support"]);
    assert_eq!(kinde.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn only_boolean_flags_that_are_true_are_on() {
    let (kinde, verifier) = start().await;
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "legacy", json!(false));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "looks_on", json!("true"));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "limit", json!(5));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "dark_mode", json!(true));
    kinde.set_feature_flag("org_other", "kp_1", "elsewhere", json!(true));
    let q = query_for(&kinde, &verifier, "kp_1").await;

    let flags = account(&kinde)
        .page_size(2)
        .feature_flags(&q)
        .await
        .unwrap();
    assert_eq!(keys(&flags), ["beta", "dark_mode"]);
    assert!(!flags.contains("legacy") && !flags.contains("looks_on"));
    assert!(!flags.contains("absent") && !flags.contains("elsewhere"));
    assert_eq!(kinde.calls(Endpoint::AccountFeatureFlags), 3);

    kinde.clear_feature_flag(DEFAULT_ORG, "kp_1", "beta");
    let flags = account(&kinde).feature_flags(&q).await.unwrap();
    assert_eq!(keys(&flags), ["dark_mode"]);
}

#[tokio::test]
async fn login_tokens_carry_roles_and_typed_flags() {
    let (kinde, verifier) = start().await;
    kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "theme", json!("pink"));
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "seats", json!(12));
    let claims = verifier
        .verify(&kinde.login("kp_1").access_token)
        .await
        .unwrap();
    let roles = claims.roles();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].key, "admin");
    assert!(roles[0].id.as_deref().unwrap().starts_with("role_"));
    let flags: serde_json::Value = claims.get("feature_flags").unwrap();
    assert_eq!(
        flags,
        json!({"beta": {"t": "b", "v": true}, "theme": {"t": "s", "v": "pink"},
               "seats": {"t": "i", "v": 12}})
    );
}

#[tokio::test]
async fn management_roles_follow_next_token() {
    let (kinde, verifier) = start().await;
    let expected: Vec<String> = (0..25).map(|i| format!("role_{i:02}")).collect();
    for role in &expected {
        kinde.assign_role(DEFAULT_ORG, "kp_1", role);
    }
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let source = management(&kinde);

    let roles = source.roles(&q).await.unwrap();
    assert_eq!(keys(&roles), expected);
    // Pages of 10: three requests, one machine token.
    assert_eq!(kinde.calls(Endpoint::ManagementRoles), 3);
    assert_eq!(kinde.calls(Endpoint::Token), 1);
    assert_eq!(kinde.calls(Endpoint::AccountRoles), 0);
}

#[tokio::test]
async fn management_roles_of_a_token_without_org_or_with_unsendable_ids_ask_nothing() {
    let (kinde, verifier) = start().await;
    let source = management(&kinde);
    let no_org = kinde.user_token("kp_1").without_claim("org_code").sign();
    let roles = source
        .roles(&query(&verifier, &no_org).await)
        .await
        .unwrap();
    assert!(roles.is_empty());
    let dots = kinde.user_token("..").sign();
    let error = unavailable(source.roles(&query(&verifier, &dots).await).await);
    assert!(error.reason().contains("path segment"), "{error:?}");
    assert_eq!(kinde.calls(Endpoint::ManagementRoles), 0);
    assert_eq!(kinde.calls(Endpoint::Token), 0);
}

#[tokio::test]
async fn management_feature_flags_come_from_the_account_api_with_the_callers_token() {
    let (kinde, verifier) = start().await;
    kinde.set_feature_flag(DEFAULT_ORG, "kp_1", "beta", json!(true));
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let source = management(&kinde);

    let flags = source.feature_flags(&q).await.unwrap();
    assert_eq!(keys(&flags), ["beta"]);
    assert_eq!(kinde.calls(Endpoint::AccountFeatureFlags), 1);
    assert_eq!(kinde.calls(Endpoint::Token), 0);

    // The caller's token refused: the caller's problem, as with the Account API itself.
    kinde.sign_out(q.access_token().expose());
    assert!(source.feature_flags(&q).await.unwrap_err().is_refused());
    assert_eq!(kinde.calls(Endpoint::Token), 0);
}

#[tokio::test]
async fn a_refused_caller_token_is_a_refusal_for_roles_and_flags() {
    let (kinde, verifier) = start().await;
    kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let source = account(&kinde);
    assert!(source.roles(&q).await.is_ok());

    kinde.sign_out(q.access_token().expose());
    assert!(source.roles(&q).await.unwrap_err().is_refused());
    assert!(source.feature_flags(&q).await.unwrap_err().is_refused());
    // A 403 however it comes.
    let fresh = query_for(&kinde, &verifier, "kp_1").await;
    kinde.set_fault(Endpoint::AccountRoles, Fault::Status(403, Vec::new()));
    assert!(source.roles(&fresh).await.unwrap_err().is_refused());
}

#[tokio::test]
async fn an_expired_token_is_never_sent() {
    let kinde = FakeKinde::start().await;
    let claims = claimcheck::testing::claims(json!({
        "iss": kinde.issuer(), "sub": "kp_1", "org_code": DEFAULT_ORG, "exp": 1,
    }))
    .unwrap();
    let q = PermissionQuery::from_claims(&claims).unwrap();
    let source = account(&kinde);
    assert!(source.roles(&q).await.unwrap_err().is_refused());
    assert!(source.feature_flags(&q).await.unwrap_err().is_refused());
    assert_eq!(kinde.calls(Endpoint::AccountRoles), 0);
    assert_eq!(kinde.calls(Endpoint::AccountFeatureFlags), 0);
}

#[tokio::test]
async fn a_fault_on_each_new_endpoint_makes_it_unavailable() {
    let (kinde, verifier) = start().await;
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let (account, management) = (account(&kinde), management(&kinde));
    for fault in [Fault::Down, Fault::Status(500, Vec::new()), Fault::Garbage] {
        for endpoint in [
            Endpoint::AccountRoles,
            Endpoint::AccountFeatureFlags,
            Endpoint::ManagementRoles,
        ] {
            kinde.set_fault(endpoint, fault.clone());
            let before = kinde.calls(endpoint);
            let result = match endpoint {
                Endpoint::AccountRoles => account.roles(&q).await,
                Endpoint::AccountFeatureFlags => account.feature_flags(&q).await,
                _ => management.roles(&q).await,
            };
            unavailable(result);
            assert_eq!(kinde.calls(endpoint), before + 1, "{endpoint:?} {fault:?}");
            kinde.clear_fault(endpoint);
        }
    }
    assert!(account.roles(&q).await.is_ok());
    assert!(management.roles(&q).await.is_ok());
}

#[tokio::test]
async fn a_machine_token_without_the_roles_scope_is_unavailable() {
    let (kinde, verifier) = start().await;
    kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let (id, secret) = kinde.register_m2m_client(&[READ_PERMISSIONS_SCOPE]);
    let source = KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();

    let error = unavailable(source.roles(&q).await);
    assert!(error.reason().contains("403"), "{error:?}");
    assert!(
        source
            .permissions(&q)
            .await
            .unwrap()
            .contains("read:reports")
    );
    // A 403 keeps the machine token: only a 401 drops it.
    assert_eq!(kinde.calls(Endpoint::Token), 1);

    let (id, secret) = kinde.register_m2m_client(&[READ_ROLES_SCOPE]);
    let source = KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();
    assert_eq!(keys(&source.roles(&q).await.unwrap()), ["admin"]);
}

#[tokio::test]
async fn a_rejected_machine_token_is_dropped_by_the_roles_endpoint_too() {
    let (kinde, verifier) = start().await;
    kinde.assign_role(DEFAULT_ORG, "kp_1", "admin");
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let source = management(&kinde);
    assert!(source.roles(&q).await.is_ok());

    // Refused: dropped, and the call made once more with a new token.
    kinde.revoke_management_tokens();
    assert_eq!(keys(&source.roles(&q).await.unwrap()), ["admin"]);
    assert_eq!(kinde.calls(Endpoint::Token), 2);
    assert_eq!(kinde.calls(Endpoint::ManagementRoles), 3);
    assert_eq!(keys(&source.roles(&q).await.unwrap()), ["admin"]);
    assert_eq!(kinde.calls(Endpoint::Token), 2);
}

#[tokio::test]
async fn cursors_that_come_back_are_errors() {
    let (kinde, verifier) = start().await;
    let q = query_for(&kinde, &verifier, "kp_1").await;
    let role = json!({"id": "role_1", "key": "admin", "name": "Admin"});
    let looping = json!({"code": "OK", "roles": [role], "next_token": "same"});
    kinde.set_fault(Endpoint::ManagementRoles, Fault::Body(looping.to_string()));
    let error = unavailable(management(&kinde).roles(&q).await);
    assert!(error.reason().contains("did not advance"), "{error:?}");
    assert_eq!(kinde.calls(Endpoint::ManagementRoles), 2);

    let stuck = json!({"data": {"roles": [role]},
                       "metadata": {"has_more": true, "next_page_starting_after": "role_1"}});
    kinde.set_fault(Endpoint::AccountRoles, Fault::Body(stuck.to_string()));
    unavailable(account(&kinde).roles(&q).await);
    assert_eq!(kinde.calls(Endpoint::AccountRoles), 2);

    // An empty next_token ends the list; flags without metadata are one page.
    let last = json!({"code": "OK", "roles": [role], "next_token": ""});
    kinde.set_fault(Endpoint::ManagementRoles, Fault::Body(last.to_string()));
    assert_eq!(
        keys(&management(&kinde).roles(&q).await.unwrap()),
        ["admin"]
    );
    let flags = json!({"data": {"feature_flags": [
        {"id": "flag_1", "name": "Beta", "key": "beta", "type": "boolean", "value": true}]}});
    kinde.set_fault(
        Endpoint::AccountFeatureFlags,
        Fault::Body(flags.to_string()),
    );
    let on = account(&kinde).feature_flags(&q).await.unwrap();
    assert_eq!(keys(&on), ["beta"]);
    assert_eq!(kinde.calls(Endpoint::AccountFeatureFlags), 1);
}
