//! Unit tests of [`Claims`](super::Claims): Kinde's token shapes.

use super::*;

fn claims(json: &str) -> Claims {
    Claims::unverified(json).unwrap()
}

#[test]
fn kinde_user_token_shapes() {
    let c = claims(
        r#"{"iss":"https://x.kinde.com","sub":"kp_1","aud":["api"],"exp":10,"iat":1,
        "org_code":"org_1","permissions":["read:reports"],"scp":["openid"],
        "roles":[{"id":"r1","key":"admin","name":"Admin"},"owner"],
        "feature_flags":{"dark":{"t":"b","v":true},"theme":{"t":"s","v":"pink"},
                         "limit":{"t":"i","v":5},"blob":{"t":"j","v":{"a":1}}},
        "email":"a@b.c"}"#,
    );
    assert_eq!(c.subject(), Some("kp_1"));
    assert_eq!(c.org_code(), Some("org_1"));
    assert!(c.has_permission("read:reports"));
    assert!(!c.has_permission("read"));
    assert_eq!(c.roles()[0].key, "admin");
    assert_eq!(c.roles()[1].key, "owner");
    assert_eq!(c.feature_flag("dark"), Some(FeatureFlag::Bool(true)));
    assert_eq!(
        c.feature_flag("theme"),
        Some(FeatureFlag::String("pink".into()))
    );
    assert_eq!(c.feature_flag("limit"), Some(FeatureFlag::Integer(5)));
    assert!(matches!(
        c.feature_flag("blob"),
        Some(FeatureFlag::Other { .. })
    ));
    assert_eq!(c.get::<String>("email").as_deref(), Some("a@b.c"));
    assert!(!c.is_machine());
}

#[test]
fn m2m_token_has_no_subject_and_scope_string() {
    let c = claims(
        r#"{"iss":"i","aud":"api","exp":10,"gty":["client_credentials"],"azp":"c1",
        "scope":"read:users write:flags"}"#,
    );
    assert!(c.is_machine());
    assert_eq!(c.subject(), None);
    assert_eq!(c.audiences(), ["api"]);
    assert_eq!(c.scopes(), ["read:users", "write:flags"]);
}

#[test]
fn hasura_fallbacks() {
    let c = claims(
        r#"{"iss":"i","aud":[],"exp":10,"x-hasura-permissions":["p:1"],
        "x-hasura-org-code":"org_h","x-hasura-roles":["admin"],
        "x-hasura-feature-flags":{"f":{"t":"b","v":false}}}"#,
    );
    assert_eq!(c.permissions(), Some(&["p:1".to_owned()][..]));
    assert_eq!(c.org_code(), Some("org_h"));
    assert_eq!(c.roles()[0].key, "admin");
    assert_eq!(c.feature_flag("f"), Some(FeatureFlag::Bool(false)));
}

#[test]
fn absent_and_empty_permissions_differ() {
    assert_eq!(claims(r#"{"iss":"i","exp":1}"#).permissions(), None);
    assert_eq!(
        claims(r#"{"iss":"i","exp":1,"permissions":[]}"#).permissions(),
        Some(&[][..])
    );
}

#[test]
fn wrongly_typed_registered_claims_are_rejected() {
    for bad in [
        r#"{"iss":["i"],"exp":1}"#,
        r#"{"iss":"i","exp":"1"}"#,
        r#"{"iss":"i","exp":1,"aud":5}"#,
        r#"{"iss":"i","exp":1,"aud":[5]}"#,
        r#"{"iss":"i","exp":1,"permissions":"read"}"#,
        r#"{"iss":"i"}"#,
    ] {
        assert!(serde_json::from_str::<Repr>(bad).is_err(), "{bad}");
    }
}
