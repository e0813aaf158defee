//! Issuers are compared exactly as configured (issue 15, item 2): a trailing `/` is part of the
//! issuer, as several providers put one in `iss`, while every URL built on the issuer (JWKS,
//! discovery, the Kinde APIs) comes out right with either form. Over loopback, against the
//! FakeKinde.

mod common;

use claimcheck::live::{KindeAccountApi, KindeManagementApi, LiveCheck, PermissionQuery};
use claimcheck::readiness::Condition;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde};
use claimcheck::{AuthErrorKind, Verifier};

fn verifier(kinde: &FakeKinde, issuer: &str) -> Verifier {
    Verifier::builder(issuer)
        .audience(kinde.audience())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_trailing_slash_is_part_of_the_issuer() {
    let kinde = FakeKinde::start().await;
    let bare = kinde.issuer().to_owned();
    let slashed = format!("{bare}/");
    let token = |iss: &str| kinde.user_token("kp_iss").claim("iss", iss).sign();
    let (with_slash, without) = (verifier(&kinde, &slashed), verifier(&kinde, &bare));

    assert!(with_slash.verify(&token(&slashed)).await.is_ok());
    let refused = with_slash.verify(&token(&bare)).await.unwrap_err();
    assert_eq!(refused.kind(), AuthErrorKind::InvalidToken);
    assert!(without.verify(&token(&bare)).await.is_ok());
    let refused = without.verify(&token(&slashed)).await.unwrap_err();
    assert_eq!(refused.kind(), AuthErrorKind::InvalidToken);
    // Both fetched the one key set: the bare issuer from the `jwks_uri` of its discovery
    // document, the slashed one (whose document names the bare issuer) from the fixed URL,
    // built without a doubled `/`.
    assert_eq!(without.key_store().jwks_url(), Some(kinde.jwks_uri()));
    assert_eq!(with_slash.key_store().jwks_url(), Some(kinde.jwks_url()));
    assert_eq!(kinde.calls(Endpoint::Jwks), 2);
    assert_eq!(kinde.calls(Endpoint::Discovery), 2);
}

#[tokio::test]
async fn the_kinde_apis_are_reached_from_either_form() {
    let kinde = FakeKinde::start().await;
    let slashed = format!("{}/", kinde.issuer());
    let token = kinde
        .user_token("kp_iss")
        .claim("iss", slashed.as_str())
        .sign();
    let claims = verifier(&kinde, &slashed).verify(&token).await.unwrap();
    let query = PermissionQuery::from_claims(&claims).unwrap();
    kinde.grant(DEFAULT_ORG, "kp_iss", "read:reports");

    let account = LiveCheck::builder(KindeAccountApi::new(&slashed).unwrap()).build();
    let lookup = account
        .lookup(&query)
        .await
        .expect("the Account API answers");
    assert!(lookup.permissions.contains("read:reports"));
    assert_eq!(kinde.calls(Endpoint::AccountPermissions), 1);

    let (id, secret) = kinde.register_management_client();
    let management = KindeManagementApi::new(&slashed, id, secret).unwrap();
    let held = management.user_permissions(DEFAULT_ORG, "kp_iss").await;
    assert!(
        held.expect("the Management API answers")
            .contains("read:reports")
    );
    assert_eq!(kinde.calls(Endpoint::Token), 1);
    assert_eq!(kinde.calls(Endpoint::ManagementPermissions), 1);
}

/// A Kinde user who writes `KINDE_ISSUER_URL` with a `/` that Kinde's tokens do not carry is
/// told at startup, naming both forms.
#[tokio::test]
async fn a_slash_kinde_does_not_issue_is_named_at_startup() {
    let kinde = FakeKinde::start().await;
    let slashed = format!("{}/", kinde.issuer());
    let auth = claimcheck::Auth::new(
        verifier(&kinde, &slashed),
        LiveCheck::builder(KindeAccountApi::new(&slashed).unwrap()).build(),
    );
    let report = auth.preflight().await;
    let discovery = report
        .checks()
        .iter()
        .find(|check| check.name() == "discovery")
        .unwrap();
    assert_eq!(discovery.condition(), Condition::Failing);
    let detail = discovery.detail();
    assert!(
        detail.contains(&format!("\"{}\"", kinde.issuer())),
        "{detail}"
    );
    assert!(detail.contains(&format!("\"{slashed}\"")), "{detail}");
}
