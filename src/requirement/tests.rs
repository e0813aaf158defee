use serde_json::json;

use super::*;
use crate::claims::Claims;
use crate::requirement::facts::TokenFacts;

const READ_AUDIT: Requirement = Requirement::permission("read:audit");
const ADMIN_ALL: Requirement = Requirement::permission("admin:all");
const AUDIT: Requirement = any_of![READ_AUDIT, ADMIN_ALL];
const ADMIN: Requirement = Requirement::role("admin");
const BETA: Requirement = Requirement::flag("beta");
const ACME: Requirement = Requirement::org("org_acme");
const NESTED: Requirement = all_of![ACME, any_of![ADMIN, BETA]];

fn user(fields: serde_json::Value) -> Claims {
    let mut base = json!({"sub": "kp_1", "org_code": "org_acme"});
    if let (Some(base), Some(fields)) = (base.as_object_mut(), fields.as_object()) {
        base.extend(fields.clone());
    }
    Claims::fixture(base)
}

#[test]
fn display_names_every_shape() {
    assert_eq!(READ_AUDIT.to_string(), "read:audit");
    assert_eq!(AUDIT.to_string(), "any of (read:audit, admin:all)");
    assert_eq!(
        NESTED.to_string(),
        "all of (org org_acme, any of (role admin, flag beta))"
    );
    assert_eq!(
        format!("{AUDIT:?}"),
        "Requirement(any of (read:audit, admin:all))"
    );
}

#[test]
fn scope_only_for_plain_all_of_permissions() {
    let both = Requirement::all([
        Permission::from_static("create:payments"),
        Permission::from_static("approve:refunds"),
    ]);
    assert_eq!(
        both.scope().as_deref(),
        Some("create:payments approve:refunds")
    );
    assert_eq!(READ_AUDIT.scope().as_deref(), Some("read:audit"));
    assert_eq!(AUDIT.scope(), None);
    assert_eq!(NESTED.scope(), None);
    let with_role = Requirement::all([READ_AUDIT, ADMIN]);
    assert_eq!(with_role.scope(), None);
}

#[test]
fn token_facts_decide_each_shape() {
    let second_only = user(json!({"permissions": ["admin:all"]}));
    assert!(AUDIT.is_met(&TokenFacts::of(&second_only)));
    assert!(!READ_AUDIT.is_met(&TokenFacts::of(&second_only)));

    let one_missing = Requirement::all([READ_AUDIT, ADMIN_ALL]);
    assert!(!one_missing.is_met(&TokenFacts::of(&second_only)));

    let admin = user(json!({"roles": [{"id": "r1", "key": "admin", "name": "Admin"}]}));
    assert!(ADMIN.is_met(&TokenFacts::of(&admin)) && NESTED.is_met(&TokenFacts::of(&admin)));

    let flags = user(json!({"feature_flags": {
        "beta": {"t": "b", "v": true},
        "off": {"t": "b", "v": false},
        "text": {"t": "s", "v": "true"},
    }}));
    assert!(BETA.is_met(&TokenFacts::of(&flags)));
    for not_on in ["off", "text", "absent"] {
        let flag = Requirement::try_flag(not_on).unwrap();
        assert!(!flag.is_met(&TokenFacts::of(&flags)), "{not_on}");
    }

    let other_org =
        Claims::fixture(json!({"sub": "kp_1", "org_code": "org_other", "roles": ["admin"]}));
    assert!(!NESTED.is_met(&TokenFacts::of(&other_org)));
    assert!(Requirement::all(Vec::<Requirement>::new()).is_met(&TokenFacts::of(&other_org)));
    assert!(!Requirement::any(Vec::<Requirement>::new()).is_met(&TokenFacts::of(&other_org)));
}

#[test]
fn needs_and_lacks() {
    assert_eq!(READ_AUDIT.needs(), Needs::PERMISSIONS);
    assert_eq!(ACME.needs(), Needs::NOTHING);
    assert_eq!(NESTED.needs(), Needs::ROLES.and(Needs::FLAGS));
    let bare = user(json!({}));
    assert!(TokenFacts::of(&bare).lacks(Needs::PERMISSIONS));
    assert!(TokenFacts::of(&bare).lacks(Needs::ROLES));
    assert!(!TokenFacts::of(&bare).lacks(Needs::NOTHING));
    let full = user(json!({"permissions": [], "roles": [], "feature_flags": {}}));
    assert!(!TokenFacts::of(&full).lacks(NESTED.needs().and(Needs::PERMISSIONS)));
    let machine = Claims::fixture(json!({"gty": ["client_credentials"], "scp": ["read:audit"]}));
    assert!(!TokenFacts::of(&machine).lacks(Needs::PERMISSIONS));
    assert!(AUDIT.is_met(&TokenFacts::of(&machine)));
}

#[test]
fn run_time_keys_are_checked() {
    assert!(Requirement::try_role("admin").is_ok());
    assert_eq!(
        Requirement::try_role("no spaces").unwrap_err().to_string(),
        "a role key is 1 to 128 characters from [A-Za-z0-9:_.-]"
    );
    assert!(Requirement::try_flag("").is_err());
    assert!(Requirement::try_org("org\"x").is_err());
}

#[test]
#[should_panic(expected = "invalid role key")]
fn role_panics_at_run_time_on_bad_input() {
    let key: &'static str = Box::leak(String::from("a b").into_boxed_str());
    let _ = Requirement::role(key);
}

#[test]
fn metric_labels_hide_keys_built_at_run_time() {
    let constant = any_of![
        Requirement::permission("read:audit"),
        Requirement::role("admin")
    ];
    assert_eq!(constant.metric_label(), "any of (read:audit, role admin)");
    let from_a_path = Requirement::all([
        Requirement::try_org("org_chosen_by_caller".to_owned()).unwrap(),
        Permission::new("read:chosen").unwrap().into(),
        Requirement::flag("beta"),
    ]);
    assert_eq!(from_a_path.metric_label(), "all of (org *, *, flag beta)");
    assert_eq!(
        from_a_path.to_string(),
        "all of (org org_chosen_by_caller, read:chosen, flag beta)"
    );
}
