//! The fake Kinde's HTTP side: routes, fault injection and call counting.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Body;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::api::Directory;
use super::fault::{Effect, Fault, Limiter, RateLimit};
use super::keys::SigningKey;
use super::site::{Route, Site};
use super::token::now;

/// An endpoint of the fake Kinde, for faults and call counts.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /.well-known/jwks` and `/.well-known/jwks.json` (after the issuer's path), or the
    /// JWKS path the fake was given.
    Jwks,
    /// `GET /.well-known/openid-configuration` (after the issuer's path) and
    /// `/.well-known/oauth-authorization-server` (before it), served or not.
    Discovery,
    /// `POST /oauth2/token`.
    Token,
    /// Management API `GET /api/v1/organizations/{org_code}/users/{user_id}/permissions`.
    ManagementPermissions,
    /// Management API `POST /api/v1/users/{user_id}/refresh_claims`.
    RefreshClaims,
    /// Account API `GET /account_api/v1/permissions`.
    AccountPermissions,
    /// Account API `GET /account_api/v1/roles`.
    AccountRoles,
    /// Account API `GET /account_api/v1/feature_flags`.
    AccountFeatureFlags,
    /// Management API `GET /api/v1/organizations/{org_code}/users/{user_id}/roles`.
    ManagementRoles,
}

impl Endpoint {
    const ALL: [Endpoint; 9] = [
        Endpoint::Jwks,
        Endpoint::Discovery,
        Endpoint::Token,
        Endpoint::ManagementPermissions,
        Endpoint::RefreshClaims,
        Endpoint::AccountPermissions,
        Endpoint::AccountRoles,
        Endpoint::AccountFeatureFlags,
        Endpoint::ManagementRoles,
    ];

    fn of(path: &str) -> Option<Self> {
        match path {
            "/oauth2/token" => Some(Self::Token),
            "/account_api/v1/permissions" => Some(Self::AccountPermissions),
            "/account_api/v1/roles" => Some(Self::AccountRoles),
            "/account_api/v1/feature_flags" => Some(Self::AccountFeatureFlags),
            p if p.starts_with("/api/v1/organizations/") && p.ends_with("/permissions") => {
                Some(Self::ManagementPermissions)
            }
            p if p.starts_with("/api/v1/organizations/") && p.ends_with("/roles") => {
                Some(Self::ManagementRoles)
            }
            p if p.starts_with("/api/v1/users/") && p.ends_with("/refresh_claims") => {
                Some(Self::RefreshClaims)
            }
            _ => None,
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|e| *e == self).unwrap_or(0)
    }

    /// Whether Kinde's API rate limit applies (everything but the JWKS and discovery).
    fn is_api(self) -> bool {
        !matches!(self, Self::Jwks | Self::Discovery)
    }
}

pub(crate) struct State {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) keys: RwLock<Vec<SigningKey>>,
    current: AtomicUsize,
    pub(crate) extra_jwks: RwLock<Vec<Value>>,
    pub(crate) retired: RwLock<Vec<String>>,
    faults: Mutex<HashMap<Endpoint, Fault>>,
    limiter: Mutex<Option<Limiter>>,
    calls: [AtomicUsize; Endpoint::ALL.len()],
    pub(crate) clients: Mutex<HashMap<String, (String, Vec<String>)>>,
    pub(crate) directory: Directory,
    pub(crate) site: Site,
}

impl State {
    pub(crate) fn new(issuer: String, audience: String, site: Site) -> Self {
        Self {
            issuer,
            audience,
            keys: RwLock::new(vec![SigningKey::generate()]),
            current: AtomicUsize::new(0),
            extra_jwks: RwLock::new(Vec::new()),
            retired: RwLock::new(Vec::new()),
            faults: Mutex::new(HashMap::new()),
            limiter: Mutex::new(None),
            calls: Default::default(),
            clients: Mutex::new(HashMap::new()),
            directory: Directory::default(),
            site,
        }
    }

    pub(crate) fn current_key(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    pub(crate) fn set_current_key(&self, index: usize) {
        self.current.store(index, Ordering::SeqCst);
    }

    pub(crate) fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            Some(fault) => faults.insert(endpoint, fault),
            None => faults.remove(&endpoint),
        };
    }

    pub(crate) fn set_rate_limit(&self, limit: Option<RateLimit>) {
        *self.limiter.lock().unwrap_or_else(|e| e.into_inner()) = limit.map(Limiter::new);
    }

    pub(crate) fn rate_limited(&self) -> usize {
        let limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        limiter.as_ref().map_or(0, Limiter::refused)
    }

    /// The 429 to answer if `endpoint` is over the application's rate limit.
    fn over_limit(&self, endpoint: Endpoint) -> Option<Response> {
        if !endpoint.is_api() {
            return None;
        }
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        limiter.as_mut()?.admit()
    }

    fn fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.get(&endpoint).cloned()
    }

    pub(crate) fn calls(&self, endpoint: Endpoint) -> usize {
        self.calls[endpoint.index()].load(Ordering::SeqCst)
    }

    pub(crate) fn reset_calls(&self) {
        for count in &self.calls {
            count.store(0, Ordering::SeqCst);
        }
    }

    fn jwks(&self) -> Value {
        let retired = self.retired.read().unwrap_or_else(|e| e.into_inner());
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut published: Vec<Value> = keys
            .iter()
            .filter(|k| !retired.contains(&k.kid))
            .map(SigningKey::jwk)
            .collect();
        published.extend(
            self.extra_jwks
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        json!({ "keys": published })
    }
}

/// Serves the fake until the returned task is aborted.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>) {
    let router = routes(state.clone());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let router = router.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let router = router.clone();
                let state = state.clone();
                async move { answer(state, router, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The connection is dropped when this error is returned (`Fault::Down`).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn answer(
    state: Arc<State>,
    router: Router,
    req: Request<hyper::body::Incoming>,
) -> Result<Response, Dropped> {
    let path = req.uri().path();
    let endpoint = state.site.endpoint(path).or_else(|| Endpoint::of(path));
    let mut late = None;
    if let Some(endpoint) = endpoint {
        state.calls[endpoint.index()].fetch_add(1, Ordering::SeqCst);
        if let Some(throttled) = state.over_limit(endpoint) {
            return Ok(throttled);
        }
        match state.fault(endpoint).map(Fault::effect) {
            None => {}
            Some(Effect::Drop) => return Err(Dropped),
            Some(Effect::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Effect::Respond(response)) => return Ok(response),
            Some(Effect::Late(delay)) => late = Some(delay),
        }
    }
    let response = match state.site.route(req.uri().path(), &state.issuer) {
        Some(Route::Jwks) => Json(state.jwks()).into_response(),
        Some(Route::Document(document)) => Json(document).into_response(),
        Some(Route::Missing) => StatusCode::NOT_FOUND.into_response(),
        None => {
            let response = router.oneshot(req.map(Body::new)).await;
            response.unwrap_or_else(|never: Infallible| match never {})
        }
    };
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    Ok(response)
}

fn routes(state: Arc<State>) -> Router {
    // The JWKS and the discovery documents are the site's (see `answer`).
    Router::new()
        .route("/oauth2/token", post(token))
        .merge(super::api::routes())
        .with_state(state)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}

async fn token(
    AxumState(state): AxumState<Arc<State>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") == Some("refresh_token") {
        let renewed = field("refresh_token").and_then(|t| super::webhook::refresh(&state, t));
        let Some(access_token) = renewed else {
            let msg = "unknown refresh token";
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", msg);
        };
        return Json(json!({
            "access_token": access_token,
            "expires_in": 3600,
            "refresh_token": field("refresh_token"),
            "scope": "openid profile email offline",
            "token_type": "bearer",
        }))
        .into_response();
    }
    if field("grant_type") != Some("client_credentials") {
        let msg = "only client_credentials and refresh_token are supported by the fake";
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", msg);
    }
    let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        let msg = "client_id and client_secret are required";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
    };
    let scopes = {
        let clients = state.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(id) {
            Some((known, scopes)) if known == secret => scopes.clone(),
            _ => {
                let msg = "client authentication failed";
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", msg);
            }
        }
    };
    let management = format!("{}/api", state.issuer);
    let audiences: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "audience")
        .map(|(_, v)| v.as_str())
        .collect();
    if audiences
        .iter()
        .any(|a| *a != management && *a != state.audience)
    {
        let msg = "the client is not authorized for that audience";
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", msg);
    }
    let expires_in = 86_400;
    let for_management = audiences.contains(&management.as_str());
    let token = super::token::TokenBuilder::new(state.clone(), json!({}))
        .claim("aud", audiences)
        .claim("azp", id)
        .claim("gty", json!(["client_credentials"]))
        .claim("scope", scopes.join(" "))
        .claim("scp", scopes.clone())
        .claim("v", "2")
        .claim("exp", now() + expires_in)
        .sign();
    if for_management {
        state.directory.record_management_token(&token, &scopes);
    }
    Json(json!({
        "access_token": token,
        "expires_in": expires_in,
        "scope": scopes.join(" "),
        "token_type": "bearer",
    }))
    .into_response()
}
