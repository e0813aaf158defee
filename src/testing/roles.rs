//! Roles and feature flags of the fake Kinde: which roles each user holds and which flag values
//! they see in each organization, the Account API lists that report them to the user's own
//! token, the Management API's list of a user's roles, and the claims `login` puts them in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::FakeKinde;
use super::api::{PageQuery, READ_ROLES_SCOPE, account_list, key_id, locked, page_of};
use super::api::{refuse_machine, title};
use super::server::State;

type Who = (String, String);

/// Roles per (org, user), and feature flag values per (org, user) by key.
#[derive(Default)]
pub(crate) struct Assignments {
    roles: Mutex<HashMap<Who, BTreeSet<String>>>,
    flags: Mutex<HashMap<Who, BTreeMap<String, Value>>>,
}

fn who(org: &str, user: &str) -> Who {
    (org.to_owned(), user.to_owned())
}

impl Assignments {
    pub(crate) fn assign_role(&self, org: &str, user: &str, role: &str) {
        let mut roles = locked(&self.roles);
        roles
            .entry(who(org, user))
            .or_default()
            .insert(role.to_owned());
    }

    pub(crate) fn remove_role(&self, org: &str, user: &str, role: &str) {
        if let Some(held) = locked(&self.roles).get_mut(&who(org, user)) {
            held.remove(role);
        }
    }

    /// The role keys of `user` in `org`, sorted.
    pub(crate) fn roles_of(&self, org: &str, user: &str) -> Vec<String> {
        let roles = locked(&self.roles);
        roles
            .get(&who(org, user))
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub(crate) fn set_flag(&self, org: &str, user: &str, key: &str, value: Value) {
        let mut flags = locked(&self.flags);
        flags
            .entry(who(org, user))
            .or_default()
            .insert(key.to_owned(), value);
    }

    pub(crate) fn clear_flag(&self, org: &str, user: &str, key: &str) {
        if let Some(set) = locked(&self.flags).get_mut(&who(org, user)) {
            set.remove(key);
        }
    }

    /// The flags `user` sees in `org`, sorted by key.
    fn flags_of(&self, org: &str, user: &str) -> Vec<(String, Value)> {
        let flags = locked(&self.flags);
        let set = flags.get(&who(org, user)).into_iter().flatten();
        set.map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

/// Roles and feature flags of the fake's users.
impl FakeKinde {
    /// Assigns the role `role_key` to `user_id` in `org_code`: the Account API's `/roles`, the
    /// Management API's `.../users/{user_id}/roles` and the `roles` claim of tokens
    /// [`login`](Self::login) issues report it from now on (as `{id, key, name}`, with a stable
    /// `role_…` id derived from the key).
    pub fn assign_role(&self, org_code: &str, user_id: &str, role_key: &str) {
        let assignments = &self.state.directory.assignments;
        assignments.assign_role(org_code, user_id, role_key);
    }

    /// Removes the role `role_key` from `user_id` in `org_code`.
    pub fn remove_role(&self, org_code: &str, user_id: &str, role_key: &str) {
        let assignments = &self.state.directory.assignments;
        assignments.remove_role(org_code, user_id, role_key);
    }

    /// The role keys the live APIs report for `user_id` in `org_code`, sorted.
    pub fn roles_of(&self, org_code: &str, user_id: &str) -> Vec<String> {
        self.state.directory.assignments.roles_of(org_code, user_id)
    }

    /// Sets the feature flag `key` of `user_id` in `org_code` to `value`, typed by its JSON
    /// type: a boolean, a string or an integer (an Account API `type` of `"boolean"`,
    /// `"string"`, `"integer"`; in tokens `"t": "b"`, `"s"`, `"i"`). Any other value is reported
    /// as type `"object"` by the Account API and left out of tokens. The Account API's
    /// `/feature_flags` and the `feature_flags` claim of tokens [`login`](Self::login) issues
    /// report it from now on, with a stable `flag_…` id derived from the key.
    pub fn set_feature_flag(&self, org_code: &str, user_id: &str, key: &str, value: Value) {
        let assignments = &self.state.directory.assignments;
        assignments.set_flag(org_code, user_id, key, value);
    }

    /// Removes the feature flag `key` of `user_id` in `org_code` (it is absent from then on).
    pub fn clear_feature_flag(&self, org_code: &str, user_id: &str, key: &str) {
        let assignments = &self.state.directory.assignments;
        assignments.clear_flag(org_code, user_id, key);
    }
}

/// The type of a flag value: the Account API's word, and the token claim's code (none for
/// values Kinde documents no code for: objects, arrays, fractions, null).
fn flag_type(value: &Value) -> (&'static str, Option<&'static str>) {
    match value {
        Value::Bool(_) => ("boolean", Some("b")),
        Value::String(_) => ("string", Some("s")),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("integer", Some("i")),
        _ => ("object", None),
    }
}

/// A role as both APIs and the `roles` claim carry it: `{id, key, name}`.
fn role(key: &str) -> Value {
    json!({"id": key_id("role", key), "key": key, "name": title(key)})
}

fn roles_of(state: &State, org: &str, user: &str) -> Vec<Value> {
    let held = state.directory.assignments.roles_of(org, user);
    held.iter().map(|key| role(key)).collect()
}

/// The `roles` claim of a token for `user` in `org`: their roles now.
pub(crate) fn roles_claim(state: &State, org: &str, user: &str) -> Value {
    Value::Array(roles_of(state, org, user))
}

/// The `feature_flags` claim of a token for `user` in `org`: `{key: {"t": …, "v": …}}` for
/// every flag of a type tokens can carry.
pub(crate) fn flags_claim(state: &State, org: &str, user: &str) -> Value {
    let mut claim = Map::new();
    for (key, value) in state.directory.assignments.flags_of(org, user) {
        if let (_, Some(code)) = flag_type(&value) {
            claim.insert(key, json!({"t": code, "v": value}));
        }
    }
    Value::Object(claim)
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(
            "/api/v1/organizations/{org}/users/{user}/roles",
            get(management_roles),
        )
        .route("/account_api/v1/roles", get(account_roles))
        .route("/account_api/v1/feature_flags", get(account_feature_flags))
}

async fn account_roles(
    AxumState(state): AxumState<Arc<State>>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    account_list(&state, &headers, &page, "roles", |org, user| {
        roles_of(&state, org, user)
    })
}

async fn account_feature_flags(
    AxumState(state): AxumState<Arc<State>>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    account_list(&state, &headers, &page, "feature_flags", |org, user| {
        let flags = state.directory.assignments.flags_of(org, user);
        let entry = |(key, value): (String, Value)| {
            let (kind, _) = flag_type(&value);
            let id = key_id("flag", &key);
            json!({"id": id, "name": title(&key), "key": key, "type": kind, "value": value})
        };
        flags.into_iter().map(entry).collect()
    })
}

/// `{"code","message","roles","next_token"}`, pages of `page_size` (default 10) after
/// `next_token` (the last role id of the previous page; absent on the last page).
async fn management_roles(
    AxumState(state): AxumState<Arc<State>>,
    Path((org, user)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_machine(&state, &headers, READ_ROLES_SCOPE) {
        return refused;
    }
    let paged = match page_of(roles_of(&state, &org, &user), &page) {
        Ok(paged) => paged,
        Err(bad) => return bad.into_response(),
    };
    let next_token = paged.last.filter(|_| paged.more);
    Json(json!({
        "code": "OK",
        "message": "Success",
        "roles": paged.items,
        "next_token": next_token,
    }))
    .into_response()
}
