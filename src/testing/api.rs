//! The fake Kinde's APIs: Management API permissions and refresh_claims, Account API
//! permissions (and the paging every Account API list shares), and the directory of who holds
//! which permission in which organization. Roles and feature flags: see `roles.rs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::roles::Assignments;
use super::server::State;
use super::token::now;
use super::webhook::SessionRecord;

/// The Management API scope the permissions endpoint requires.
pub const READ_PERMISSIONS_SCOPE: &str = "read:organization_user_permissions";
/// The Management API scope the endpoint of a user's roles in an organization requires.
pub const READ_ROLES_SCOPE: &str = "read:organization_user_roles";
/// The Management API scope `refresh_claims` requires.
pub const REFRESH_CLAIMS_SCOPE: &str = "update:user_refresh_claims";

/// Permissions per (org, user), their roles and feature flags, refresh counts per user, and the
/// machine tokens issued for the Management API with their scopes.
#[derive(Default)]
pub(crate) struct Directory {
    grants: Mutex<HashMap<(String, String), BTreeSet<String>>>,
    pub(crate) assignments: Assignments,
    refreshes: Mutex<HashMap<String, u64>>,
    management_tokens: Mutex<HashMap<String, Vec<String>>>,
    sessions: Mutex<HashMap<String, SessionRecord>>,
    signed_out: Mutex<BTreeSet<String>>,
}

pub(super) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Directory {
    pub(crate) fn grant(&self, org: &str, user: &str, permission: &str) {
        let mut grants = locked(&self.grants);
        let held = grants.entry((org.to_owned(), user.to_owned())).or_default();
        held.insert(permission.to_owned());
    }

    pub(crate) fn revoke(&self, org: &str, user: &str, permission: &str) {
        let mut grants = locked(&self.grants);
        if let Some(held) = grants.get_mut(&(org.to_owned(), user.to_owned())) {
            held.remove(permission);
        }
    }

    pub(crate) fn held(&self, org: &str, user: &str) -> Vec<String> {
        let grants = locked(&self.grants);
        let key = (org.to_owned(), user.to_owned());
        grants.get(&key).into_iter().flatten().cloned().collect()
    }

    pub(crate) fn refreshes(&self, user: &str) -> u64 {
        locked(&self.refreshes).get(user).copied().unwrap_or(0)
    }

    pub(crate) fn record_management_token(&self, token: &str, scopes: &[String]) {
        locked(&self.management_tokens).insert(token.to_owned(), scopes.to_vec());
    }

    pub(crate) fn sign_out(&self, access_token: &str) {
        locked(&self.signed_out).insert(access_token.to_owned());
    }

    fn is_signed_out(&self, access_token: &str) -> bool {
        locked(&self.signed_out).contains(access_token)
    }

    pub(crate) fn forget_management_tokens(&self) {
        locked(&self.management_tokens).clear();
    }

    /// The organizations in which `user` holds anything.
    pub(crate) fn orgs_of(&self, user: &str) -> Vec<String> {
        let grants = locked(&self.grants);
        let mut orgs: Vec<String> = grants
            .iter()
            .filter(|((_, u), held)| u == user && !held.is_empty())
            .map(|((org, _), _)| org.clone())
            .collect();
        orgs.sort();
        orgs
    }

    pub(crate) fn start_session(&self, refresh_token: &str, record: SessionRecord) {
        locked(&self.sessions).insert(refresh_token.to_owned(), record);
    }

    pub(crate) fn renew_session(
        &self,
        refresh_token: &str,
        renew: impl FnOnce(&mut SessionRecord) -> String,
    ) -> Option<String> {
        locked(&self.sessions).get_mut(refresh_token).map(renew)
    }
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(
            "/api/v1/organizations/{org}/users/{user}/permissions",
            get(management_permissions),
        )
        .route("/api/v1/users/{user}/refresh_claims", post(refresh_claims))
        .route("/account_api/v1/permissions", get(account_permissions))
        .merge(super::roles::routes())
}

pub(super) fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    (status, Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The Management API's check: a machine token this fake issued for `{issuer}/api` that
/// carries `scope`. `Some` is the refusal to send.
pub(super) fn refuse_machine(state: &State, headers: &HeaderMap, scope: &str) -> Option<Response> {
    let tokens = locked(&state.directory.management_tokens);
    match bearer(headers).and_then(|token| tokens.get(token)) {
        None => Some(errors(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "Invalid credentials.",
        )),
        Some(scopes) if !scopes.iter().any(|s| s == scope) => Some(errors(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            &format!("Missing required scope: {scope}"),
        )),
        Some(_) => None,
    }
}

/// A stable id for a key, in the Account API's style: `perm_…`, `role_…`, `flag_…` (`kind`).
pub(super) fn key_id(kind: &str, key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{kind}_{hex}")
}

pub(super) fn title(key: &str) -> String {
    key.replace([':', '_', '-', '.'], " ")
}

async fn management_permissions(
    AxumState(state): AxumState<Arc<State>>,
    Path((org, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_machine(&state, &headers, READ_PERMISSIONS_SCOPE) {
        return refused;
    }
    let permissions: Vec<Value> = state
        .directory
        .held(&org, &user)
        .iter()
        .map(|key| {
            json!({
                "id": key_id("perm", key),
                "key": key,
                "name": title(key),
                "description": format!("Can {}", title(key)),
                "roles": [],
            })
        })
        .collect();
    Json(json!({"code": "OK", "message": "Success", "permissions": permissions})).into_response()
}

async fn refresh_claims(
    AxumState(state): AxumState<Arc<State>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_machine(&state, &headers, REFRESH_CLAIMS_SCOPE) {
        return refused;
    }
    *locked(&state.directory.refreshes).entry(user).or_default() += 1;
    Json(json!({"code": "OK", "message": "Success"})).into_response()
}

/// `page_size` (default 10) and `starting_after` (an entry's id) of an Account API list, or
/// `page_size` and `next_token` of a Management API list.
#[derive(Deserialize)]
pub(super) struct PageQuery {
    page_size: Option<usize>,
    #[serde(alias = "next_token")]
    starting_after: Option<String>,
}

/// One page of a list: its entries, the id of the last one, and whether more follow.
pub(super) struct Paged {
    pub(super) items: Vec<Value>,
    pub(super) last: Option<String>,
    pub(super) more: bool,
}

/// A page that cannot be served: Kinde's error code and the parameter at fault (a 400).
pub(super) struct BadPage(&'static str, &'static str);

impl IntoResponse for BadPage {
    fn into_response(self) -> Response {
        errors(StatusCode::BAD_REQUEST, self.0, self.1)
    }
}

/// One page of `entries` (JSON objects with an `id`, in a stable order): the entries after the
/// cursor.
pub(super) fn page_of(entries: Vec<Value>, page: &PageQuery) -> Result<Paged, BadPage> {
    let size = page.page_size.unwrap_or(10);
    if !(1..=500).contains(&size) {
        return Err(BadPage("INVALID_PAGE_SIZE", "page_size"));
    }
    let start = match &page.starting_after {
        None => 0,
        Some(cursor) => match entries.iter().position(|e| e["id"] == cursor.as_str()) {
            Some(index) => index + 1,
            None => return Err(BadPage("INVALID_CURSOR", "cursor")),
        },
    };
    let total = entries.len();
    let items: Vec<Value> = entries.into_iter().skip(start).take(size).collect();
    let more = start + items.len() < total;
    let last = items
        .last()
        .and_then(|i| i["id"].as_str())
        .map(str::to_owned);
    Ok(Paged { items, last, more })
}

/// An Account API list (`data.{field}` with `metadata`) for the caller's own token, checked as
/// Kinde does (403 "Invalid credentials."): `entries` gives the (org, user)'s entries.
/// `data.org_code` is sent unless the list is `feature_flags`, as in Kinde's answers.
pub(super) fn account_list(
    state: &State,
    headers: &HeaderMap,
    page: &PageQuery,
    field: &str,
    entries: impl FnOnce(&str, &str) -> Vec<Value>,
) -> Response {
    let Some((user, org)) = bearer(headers).and_then(|t| token_user(state, t)) else {
        return errors(StatusCode::FORBIDDEN, "FORBIDDEN", "Invalid credentials.");
    };
    let paged = match page_of(entries(&org, &user), page) {
        Ok(paged) => paged,
        Err(bad) => return bad.into_response(),
    };
    let mut data = json!({ field: paged.items });
    if field != "feature_flags" {
        data["org_code"] = json!(org);
    }
    Json(json!({
        "data": data,
        "metadata": {"has_more": paged.more, "next_page_starting_after": paged.last},
    }))
    .into_response()
}

/// `(sub, org_code)` of a user access token this fake signed with a key it holds, that has
/// not expired and was not signed out.
fn token_user(state: &State, token: &str) -> Option<(String, String)> {
    if state.directory.is_signed_out(token) {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let kid = decode(header)?.get("kid")?.as_str()?.to_owned();
    let keys = state.keys.read().unwrap_or_else(|e| e.into_inner());
    let key = keys.iter().find(|k| k.kid == kid)?;
    let message = format!("{header}.{payload}");
    if !key.verifies(message.as_bytes(), signature) {
        return None;
    }
    let claims = decode(payload)?;
    if claims.get("exp")?.as_i64()? <= now() {
        return None;
    }
    let sub = claims.get("sub")?.as_str()?.to_owned();
    let org = claims.get("org_code")?.as_str()?.to_owned();
    Some((sub, org))
}

async fn account_permissions(
    AxumState(state): AxumState<Arc<State>>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    account_list(&state, &headers, &page, "permissions", |org, user| {
        let held = state.directory.held(org, user);
        let entry =
            |key: &String| json!({"id": key_id("perm", key), "name": title(key), "key": key});
        held.iter().map(entry).collect()
    })
}
