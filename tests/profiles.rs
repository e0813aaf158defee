//! Issuer profiles (issue 15, item 3): where permissions are read from, what marks a machine
//! token, and what a claim the token lacks means, per issuer. Over loopback: the FakeKinde acts
//! as a generic RFC 9068 issuer (`typ: at+jwt`, `client_id`, `scope`), the app is the shared
//! harness (`/reports` token-trusted with a live fallback, `/payments` strict, `/fleet` strict
//! allowing machines, `/me` echoing the claims).

mod common;

use claimcheck::claims::{MachineToken, PermissionsClaim, Profile};
use claimcheck::testing::{Endpoint, FakeKinde, TokenBuilder};
use common::{Harness, start_with, verifier_for};

/// The harness with a verifier reading tokens the `profile` way.
async fn start(profile: Profile) -> Harness {
    let kinde = FakeKinde::start().await;
    let verifier = verifier_for(&kinde).profile(profile).build().unwrap();
    assert!(verifier.warm_up().await);
    start_with(kinde, verifier).await
}

/// An RFC 9068 access token: `typ: at+jwt`, `client_id`, the scopes in `scope`, no Kinde
/// `permissions`, `scp` or `org_code`.
fn rfc9068_token(kinde: &FakeKinde, sub: &str, client_id: &str, scope: &str) -> TokenBuilder {
    kinde
        .user_token(sub)
        .without_claim("permissions")
        .without_claim("scp")
        .without_claim("org_code")
        .header("typ", "at+jwt")
        .claim("client_id", client_id)
        .claim("scope", scope)
}

fn account_calls(h: &Harness) -> usize {
    h.kinde.calls(Endpoint::AccountPermissions)
}

#[tokio::test]
async fn the_generic_profile_reads_scope_and_never_asks_kinde_for_what_a_token_lacks() {
    let h = start(Profile::rfc9068()).await;
    let granted = rfc9068_token(&h.kinde, "u1", "app", "openid read:reports").sign();
    assert_eq!(h.get("/reports", Some(&granted)).await.status, 200);
    let media_type = rfc9068_token(&h.kinde, "u1", "app", "read:reports")
        .header("typ", "application/at+jwt")
        .sign();
    assert_eq!(h.get("/reports", Some(&media_type)).await.status, 200);

    // No scope at all: not held, 403; the live fallback (Kinde's Account API) is not asked.
    let bare = rfc9068_token(&h.kinde, "u1", "app", "")
        .without_claim("scope")
        .sign();
    let answer = h.get("/reports", Some(&bare)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.json()["error"], "insufficient_scope");
    // A Kinde-style `permissions` claim is not where this profile looks.
    let kinde_style = h
        .kinde
        .user_token("u1")
        .permissions(["read:reports"])
        .without_claim("scp")
        .sign();
    assert_eq!(h.get("/reports", Some(&kinde_style)).await.status, 403);
    assert_eq!(account_calls(&h), 0);
    let me = h.get("/me", Some(&granted)).await.json();
    assert_eq!(
        me["permissions"],
        serde_json::json!(["openid", "read:reports"])
    );
    assert_eq!(me["machine"], false);
}

#[tokio::test]
async fn kindes_profile_asks_live_for_a_token_without_permissions() {
    // The contrast: a token without a permissions claim goes to the Account API.
    let h = start(Profile::kinde()).await;
    let bare = h.kinde.user_token("u1").without_claim("permissions").sign();
    let answer = h.get("/reports", Some(&bare)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
    assert_eq!(account_calls(&h), 1);
}

#[tokio::test]
async fn client_credentials_tokens_are_machines_and_never_sent_to_a_user_api() {
    let h = start(Profile::rfc9068()).await;
    // RFC 9068: the client acting for itself has `sub` = `client_id`.
    let machine = rfc9068_token(&h.kinde, "svc-1", "svc-1", "sync:fleet create:payments").sign();
    let me = h.get("/me", Some(&machine)).await.json();
    assert_eq!(me["machine"], true);
    // Strict routes refuse machines unless they allow them, and never ask a user API.
    assert_eq!(h.post("/payments", &machine).await.status, 403);
    assert_eq!(h.post("/fleet", &machine).await.status, 200);
    assert_eq!(account_calls(&h), 0);
    // Auth0 marks them with `gty` and an `@clients` subject.
    let auth0 = rfc9068_token(&h.kinde, "svc-2@clients", "svc-2", "sync:fleet")
        .claim("gty", "client-credentials")
        .sign();
    assert_eq!(h.get("/me", Some(&auth0)).await.json()["machine"], true);
    assert_eq!(h.post("/fleet", &auth0).await.status, 200);
    // Another client's subject is a user.
    let user = rfc9068_token(&h.kinde, "u1", "svc-1", "").sign();
    assert_eq!(h.get("/me", Some(&user)).await.json()["machine"], false);
}

#[tokio::test]
async fn under_kindes_profile_only_gty_marks_a_machine() {
    let h = start(Profile::kinde()).await;
    let self_client = rfc9068_token(&h.kinde, "svc-1", "svc-1", "sync:fleet").sign();
    assert_eq!(
        h.get("/me", Some(&self_client)).await.json()["machine"],
        false
    );
    let kinde_m2m = h.kinde.m2m_token("svc-1", &["sync:fleet"]).sign();
    assert_eq!(h.get("/me", Some(&kinde_m2m)).await.json()["machine"], true);
    assert_eq!(h.post("/fleet", &kinde_m2m).await.status, 200);
}

#[tokio::test]
async fn machine_rules_and_the_permissions_claim_are_configurable() {
    const CLAIM: &str = "https://example.com/permissions";
    let profile = Profile::rfc9068()
        .permissions_from(PermissionsClaim::Claim(CLAIM.into()))
        .machine_tokens([MachineToken::Auth0ClientCredentials]);
    let h = start(profile).await;
    let token = |value: serde_json::Value| {
        rfc9068_token(&h.kinde, "u1", "app", "")
            .claim(CLAIM, value)
            .sign()
    };
    let list = token(serde_json::json!(["read:reports"]));
    assert_eq!(h.get("/reports", Some(&list)).await.status, 200);
    let spaced = token("other read:reports".into());
    assert_eq!(h.get("/reports", Some(&spaced)).await.status, 200);
    let elsewhere = rfc9068_token(&h.kinde, "u1", "app", "read:reports").sign();
    assert_eq!(h.get("/reports", Some(&elsewhere)).await.status, 403);
    // A mistyped permissions claim is a bad token, not an empty grant.
    for bad in [
        serde_json::json!(7),
        serde_json::json!(["a", 1]),
        serde_json::json!({}),
    ] {
        h.get("/reports", Some(&token(bad)))
            .await
            .assert_invalid_token();
    }
    // `sub` = `client_id` is no longer a machine here: only Auth0's marks are.
    let self_client = rfc9068_token(&h.kinde, "svc", "svc", "").sign();
    assert_eq!(
        h.get("/me", Some(&self_client)).await.json()["machine"],
        false
    );
}
