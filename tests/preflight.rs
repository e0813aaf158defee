//! Startup checks as a careless operator meets them, over loopback: the JWKS unreachable, a
//! discovery document naming another issuer, Management API credentials Kinde refuses; warned
//! by default, fatal under `CLAIMCHECK_PREFLIGHT=strict`.

mod common;

use claimcheck::kinde::KindeConfig;
use claimcheck::preflight::PreflightPolicy;
use claimcheck::readiness::Condition;
use claimcheck::testing::{Endpoint, FakeKinde, Fault};
use claimcheck::{Auth, ConfigError};
use common::log::Log;

fn config(kinde: &FakeKinde) -> KindeConfig {
    KindeConfig::new(kinde.issuer(), [kinde.audience()])
        .unwrap()
        .with_jwks_url(kinde.jwks_url())
        .unwrap()
}

fn managed(kinde: &FakeKinde, secret: Option<&str>) -> KindeConfig {
    let (id, real) = kinde.register_management_client();
    config(kinde).with_management_credentials(id, secret.unwrap_or(&real))
}

/// The `(condition, detail)` of each check, by name.
fn conditions(report: &claimcheck::preflight::Preflight) -> Vec<(&'static str, Condition, String)> {
    report
        .checks()
        .iter()
        .map(|c| (c.name(), c.condition(), c.detail().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_sound_setup_passes_every_check_with_one_token_request() {
    let kinde = FakeKinde::start().await;
    let auth = Auth::kinde(&managed(&kinde, None)).await.unwrap();
    assert_eq!(kinde.calls(Endpoint::Token), 1);
    let report = auth.preflight().await;
    assert!(report.is_ok(), "{report}");
    let checks = conditions(&report);
    assert!(
        checks.iter().all(|(_, c, _)| *c == Condition::Ok),
        "{report}"
    );
    assert_eq!(
        checks[0].2,
        format!("1 usable keys from {}", kinde.jwks_url())
    );
    assert!(checks[1].2.ends_with("names the configured issuer"));
    assert!(
        checks[2]
            .2
            .starts_with("Kinde issued a machine token to the client ")
    );
    // The token fetched at startup serves the first lookups: no second request.
    assert_eq!(kinde.calls(Endpoint::Token), 1);
    let text = report.to_string();
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("keys: ok: 1 usable keys from "), "{text}");
}

#[tokio::test]
async fn an_unreachable_jwks_is_warned_about_by_default_and_fatal_when_strict() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Status(500, vec![]));
    let auth = Auth::kinde(&config(&kinde))
        .await
        .expect("warn: starts anyway");
    let text = log.text();
    assert!(text.contains("WARN claimcheck::preflight"), "{text}");
    assert!(text.contains(&format!(
        "could not fetch the key set from {}",
        kinde.jwks_url()
    )));
    assert!(!auth.preflight().await.is_ok());

    let strict = config(&kinde).with_preflight(PreflightPolicy::Strict);
    let error = Auth::kinde(&strict).await.unwrap_err();
    assert!(matches!(error, ConfigError::Preflight(_)));
    let message = error.to_string();
    assert!(message.starts_with("startup checks failed (CLAIMCHECK_PREFLIGHT=strict):\nkeys: "));
    assert!(message.contains(&kinde.jwks_url()), "{message}");
}

#[tokio::test]
async fn a_key_set_without_usable_keys_is_named() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(
        Endpoint::Jwks,
        Fault::Body(r#"{"keys":[{"kty":"EC"}]}"#.into()),
    );
    let auth = Auth::new(
        config(&kinde).verifier().build().unwrap(),
        config(&kinde).live_check().unwrap().build(),
    );
    let report = auth.preflight().await;
    let (_, condition, detail) = &conditions(&report)[0];
    assert_eq!(*condition, Condition::Failing);
    assert!(detail.contains("holds no usable key"), "{detail}");
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_fails_and_says_both() {
    let kinde = FakeKinde::start().await;
    let other = r#"{"issuer":"https://other.kinde.com","jwks_uri":"https://other.kinde.com/.well-known/jwks"}"#;
    kinde.set_fault(Endpoint::Discovery, Fault::Body(other.into()));
    let strict = config(&kinde).with_preflight(PreflightPolicy::Strict);
    let message = Auth::kinde(&strict).await.unwrap_err().to_string();
    assert!(message.contains("discovery: "), "{message}");
    assert!(message.contains("\"https://other.kinde.com\""), "{message}");
    assert!(message.contains(&format!("not the configured \"{}\"", kinde.issuer())));
    assert!(message.contains("refused for `iss`"), "{message}");
}

#[tokio::test]
async fn a_missing_discovery_document_is_degraded_not_failing() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Discovery, Fault::Status(404, vec![]));
    let strict = config(&kinde).with_preflight(PreflightPolicy::Strict);
    let auth = Auth::kinde(&strict).await.expect("degraded is not fatal");
    let report = auth.preflight().await;
    assert!(report.is_ok());
    assert_eq!(conditions(&report)[1].1, Condition::Degraded);
}

#[tokio::test]
async fn refused_management_credentials_are_named_without_the_secret() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    let secret = "wrong-secret-value";
    let auth = Auth::kinde(&managed(&kinde, Some(secret))).await.unwrap();
    let report = auth.preflight().await;
    let (name, condition, detail) = &conditions(&report)[2];
    assert_eq!((*name, *condition), ("live_source", Condition::Failing));
    assert!(detail.contains("check KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET"));
    assert!(
        detail.contains("strict routes would answer 503"),
        "{detail}"
    );
    assert!(!log.text().contains(secret));
    assert!(!report.to_string().contains(secret));

    let strict = managed(&kinde, Some(secret)).with_preflight(PreflightPolicy::Strict);
    let message = Auth::kinde(&strict).await.unwrap_err().to_string();
    assert!(message.contains("live_source: "), "{message}");
    assert!(
        message.contains("no machine token for the client"),
        "{message}"
    );
    assert!(!message.contains(secret));
}

#[tokio::test]
async fn the_account_api_has_nothing_to_verify_first() {
    let kinde = FakeKinde::start().await;
    let auth = Auth::kinde(&config(&kinde)).await.unwrap();
    let report = auth.preflight().await;
    assert!(report.is_ok(), "{report}");
    assert!(conditions(&report)[2].2.contains("each caller's own token"));
    assert_eq!(kinde.calls(Endpoint::Token), 0);
}

#[test]
fn the_policy_comes_from_the_environment() {
    let lookup = |policy: &'static str| {
        move |name: &str| match name {
            "KINDE_ISSUER_URL" => Some("https://example.kinde.com".to_owned()),
            "KINDE_AUDIENCE" => Some("api".to_owned()),
            "CLAIMCHECK_PREFLIGHT" => Some(policy.to_owned()),
            _ => None,
        }
    };
    let strict = KindeConfig::from_lookup(lookup("strict")).unwrap();
    assert_eq!(strict.preflight(), PreflightPolicy::Strict);
    let warn = KindeConfig::from_lookup(lookup("warn")).unwrap();
    assert_eq!(warn.preflight(), PreflightPolicy::Warn);
    let error = KindeConfig::from_lookup(lookup("fatal")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "CLAIMCHECK_PREFLIGHT is invalid: must be `warn` or `strict`"
    );
}
