//! Unit tests of [`VerifierBuilder`](super::VerifierBuilder): settings checked at build.

use super::*;

#[test]
fn audience_is_required() {
    let err = Verifier::builder("https://a.kinde.com")
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::Missing("audience"));
    assert!(err.to_string().contains("audience"));
}

#[test]
fn absurd_durations_are_configuration_errors() {
    let builder = || Verifier::builder("https://a.kinde.com").audience("api");
    let max = Duration::MAX;
    let errors = [
        builder().leeway(max).build().unwrap_err(),
        builder()
            .leeway(Duration::from_secs(3601))
            .build()
            .unwrap_err(),
        builder().jwks_refresh_interval(max).build().unwrap_err(),
        builder().unknown_kid_ttl(max).build().unwrap_err(),
        builder().jwks_refetch_cooldown(max).build().unwrap_err(),
        builder().jwks_cold_retry(max).build().unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
    }
    assert!(builder().leeway(Duration::from_secs(3600)).build().is_ok());
    // Caps that cannot hurt are taken as given.
    let lenient = builder()
        .token_cache_max_ttl(max)
        .max_token_age(max)
        .jwks_timeouts(max, max)
        .build();
    assert!(lenient.is_ok());
}

#[test]
fn the_issuer_is_kept_exactly_and_urls_work_with_either_form() {
    for issuer in ["https://a.kinde.com/", "https://a.kinde.com"] {
        let v = Verifier::builder(issuer).audience("api").build().unwrap();
        assert_eq!(v.issuer(), issuer);
        assert_eq!(
            v.key_store().jwks_url().as_deref(),
            Some("https://a.kinde.com/.well-known/jwks.json")
        );
    }
}

#[test]
fn an_explicit_jwks_url_turns_discovery_off_unless_it_is_set_too() {
    let builder = || Verifier::builder("https://a.example.com/").audience("api");
    let mode = |builder: VerifierBuilder| {
        let verifier = builder.build().unwrap();
        let locator = verifier.key_store().discovery_mode();
        (locator, verifier.key_store().jwks_url())
    };
    let fixed = "https://keys.example.com/jwks";
    let default = "https://a.example.com/.well-known/jwks.json".to_owned();
    assert_eq!(
        mode(builder()),
        (Discovery::Preferred, Some(default.clone()))
    );
    assert_eq!(
        mode(builder().jwks_url(fixed)),
        (Discovery::Off, Some(fixed.to_owned()))
    );
    assert_eq!(
        mode(builder().jwks_url(fixed).discovery(Discovery::Preferred)),
        (Discovery::Preferred, Some(fixed.to_owned()))
    );
    assert_eq!(
        mode(builder().discovery(Discovery::Required)),
        (Discovery::Required, None)
    );
    assert_eq!(
        mode(builder().discovery(Discovery::Off)),
        (Discovery::Off, Some(default))
    );
    let both = builder()
        .jwks_url(fixed)
        .discovery(Discovery::Required)
        .build()
        .unwrap_err();
    assert!(both.to_string().contains("Discovery::Required"), "{both}");
}
