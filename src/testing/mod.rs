//! [`FakeKinde`]: a real Kinde look-alike HTTP server on `127.0.0.1`, for tests, benches and
//! demos (feature `test-util`).
//!
//! It serves Kinde's wire formats over real HTTP: the JWKS on both `/.well-known/jwks` and
//! `/.well-known/jwks.json`, OIDC discovery, `/oauth2/token` (client credentials), the
//! Management API's `GET /api/v1/organizations/{org}/users/{user}/permissions`,
//! `GET /api/v1/organizations/{org}/users/{user}/roles` (pages of 10 linked by `next_token`) and
//! `POST /api/v1/users/{user}/refresh_claims` (machine token with the right scope required), and
//! the Account API's `GET /account_api/v1/permissions`, `/roles` and `/feature_flags` (the
//! user's own token; pages of 10 unless `page_size` says otherwise). Its RSA keys are generated
//! at start. From Rust you mint user, M2M and ID tokens with any header and claims, grant and
//! revoke live permissions, assign roles and set feature flags per (organization, user), rotate
//! or retire keys, publish odd JWKs, inject faults per endpoint (down, slow, status with
//! headers, garbage, huge, redirect) and count calls. [`FakeKinde::builder`] lays it out as a
//! generic OpenID provider instead (an issuer with a path or a trailing `/`, the JWKS at its
//! own path named by the discovery document, RFC 8414's document, a document naming another
//! issuer).
//!
//! ```
//! use claimcheck::testing::FakeKinde;
//! use claimcheck::{Claims, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let kinde = FakeKinde::start().await;
//! let verifier = Verifier::builder(kinde.issuer())
//!     .audience(kinde.audience())
//!     .build()
//!     .unwrap();
//! let token = kinde.user_token("kp_1").permissions(["read:reports"]).sign();
//! let claims: Claims = verifier.verify(&token).await.unwrap();
//! assert!(claims.has_permission("read:reports"));
//! # }
//! ```
//!
//! The first test most apps write: the whole [`Auth`](crate::Auth) against the fake, a router,
//! and requests over loopback (here, a strict route that follows Kinde's live permissions):
//!
//! ```
//! use axum::{Router, handler::Handler, routing::post};
//! use claimcheck::live::{KindeAccountApi, LiveCheck};
//! use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
//! use claimcheck::{Auth, Permission, Verifier};
//!
//! const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let kinde = FakeKinde::start().await;
//! let verifier = Verifier::builder(kinde.issuer()).audience(kinde.audience()).build().unwrap();
//! let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap()).build();
//! let auth = Auth::new(verifier, live);
//! let app: Router = Router::new()
//!     .route("/payments", post((|| async { "paid" }).layer(auth.strict(CREATE_PAYMENTS))))
//!     .layer(auth.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let url = format!("http://{}/payments", listener.local_addr().unwrap());
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // The token claims the permission; Kinde has not granted it: the strict route says 403.
//! let token = kinde.user_token("kp_1").permissions(["create:payments"]).sign();
//! let pay = || reqwest::Client::new().post(&url).bearer_auth(&token).send();
//! assert_eq!(pay().await.unwrap().status(), 403);
//! auth.invalidate_user("kp_1");
//! kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
//! assert_eq!(pay().await.unwrap().status(), 200);
//! # }
//! ```

mod api;
mod builder;
mod fault;
mod keys;
mod roles;
mod server;
mod signing;
mod site;
mod token;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use api::{READ_PERMISSIONS_SCOPE, READ_ROLES_SCOPE, REFRESH_CLAIMS_SCOPE};
pub use builder::FakeKindeBuilder;
pub use fault::{Fault, RateLimit};
pub use keys::KeyType;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_server::RedisServer;
pub use server::Endpoint;
pub use site::DiscoveryDocuments;
pub use token::TokenBuilder;
pub use webhook::{Session, Webhook};

#[cfg(feature = "redis")]
mod redis_server;

use keys::{SigningKey, random_bytes};
use server::State;

/// The default audience of tokens minted by the fake.
pub const DEFAULT_AUDIENCE: &str = "claimcheck:test-api";

/// The `org_code` of user tokens minted by the fake unless set otherwise.
pub const DEFAULT_ORG: &str = "org_0195ac80a14";

/// A fake Kinde business on `127.0.0.1:<random port>`. Stops when dropped.
pub struct FakeKinde {
    state: Arc<State>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeKinde {
    /// Starts a fake with one fresh RSA-2048 key and [`DEFAULT_AUDIENCE`].
    pub async fn start() -> Self {
        Self::start_with_audience(DEFAULT_AUDIENCE).await
    }

    /// Starts a fake whose user tokens carry `audience`.
    pub async fn start_with_audience(audience: &str) -> Self {
        Self::builder().audience(audience).start().await
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer (`http://127.0.0.1:<port>`, unless [`FakeKinde::builder`] said otherwise), as
    /// in the tokens' `iss` and the discovery documents' `issuer`.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The audience of user tokens.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// `{issuer}/.well-known/jwks.json` (Kinde's JWKS URL without discovery), or the JWKS path
    /// the fake was given. See also [`FakeKinde::jwks_uri`].
    pub fn jwks_url(&self) -> String {
        self.state.site.jwks_url()
    }

    /// A user access token like Kinde's: `sub`, `aud: [audience]`, `org_code`, `permissions: []`,
    /// `scp`, `azp`, `iat`, `exp` in one hour, `jti`; header `{"alg":"RS256","kid":…,"typ":"JWT"}`.
    pub fn user_token(&self, sub: &str) -> TokenBuilder {
        TokenBuilder::new(
            self.state.clone(),
            json!({
                "sub": sub,
                "aud": [self.audience()],
                "azp": "dee7f3c57b3c47e8b96edde2c7ecab7d",
                "org_code": DEFAULT_ORG,
                "permissions": [],
                "scp": ["openid", "profile", "email", "offline"],
            }),
        )
    }

    /// A machine-to-machine token like Kinde's: no `sub`, `gty: ["client_credentials"]`,
    /// `scope` and `scp` from `scopes`, `azp` = `client_id`.
    pub fn m2m_token(&self, client_id: &str, scopes: &[&str]) -> TokenBuilder {
        TokenBuilder::new(
            self.state.clone(),
            json!({
                "aud": [self.audience()],
                "azp": client_id,
                "gty": ["client_credentials"],
                "scope": scopes.join(" "),
                "scp": scopes,
                "v": "2",
            }),
        )
    }

    /// An ID token like Kinde's: `aud` is the client id, with `at_hash`, `auth_time`, `email`.
    pub fn id_token(&self, sub: &str) -> TokenBuilder {
        TokenBuilder::new(
            self.state.clone(),
            json!({
                "sub": sub,
                "aud": ["dee7f3c57b3c47e8b96edde2c7ecab7d"],
                "azp": "dee7f3c57b3c47e8b96edde2c7ecab7d",
                "at_hash": "VZ6cU0Ay0RKB5EosbWuTCQ",
                "auth_time": token::now(),
                "email": "jane@example.com",
                "name": "Jane Smith",
                "org_codes": [DEFAULT_ORG],
            }),
        )
    }

    /// The kid of the key new tokens are signed with.
    pub fn current_kid(&self) -> String {
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        keys[self.state.current_key()].kid.clone()
    }

    /// The published JWK of the current key.
    pub fn current_jwk(&self) -> Value {
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        keys[self.state.current_key()].jwk()
    }

    /// Generates a new key, publishes it beside the old ones and signs with it from now on.
    /// Returns its kid.
    pub fn rotate_key(&self) -> String {
        let key = SigningKey::generate();
        let kid = key.kid.clone();
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.push(key);
        self.state.set_current_key(keys.len() - 1);
        kid
    }

    /// Stops publishing the key `kid` (tokens can still be signed with it, as after a leak).
    pub fn retire_key(&self, kid: &str) {
        let mut retired = self
            .state
            .retired
            .write()
            .unwrap_or_else(|e| e.into_inner());
        retired.push(kid.to_owned());
    }

    /// Publishes an extra raw JWK (any JSON, usable or not) in the JWKS.
    pub fn publish_jwk(&self, jwk: Value) {
        let mut extra = self
            .state
            .extra_jwks
            .write()
            .unwrap_or_else(|e| e.into_inner());
        extra.push(jwk);
    }

    /// The current public key in several encodings (PEM, DER, modulus, JWK JSON, …), the
    /// secrets an attacker would try for an HS256 key-confusion forgery.
    pub fn public_key_encodings(&self) -> Vec<(&'static str, Vec<u8>)> {
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        keys[self.state.current_key()].public_encodings()
    }

    /// Registers an M2M application allowed to call `/oauth2/token`; returns `(id, secret)`.
    pub fn register_m2m_client(&self, scopes: &[&str]) -> (String, String) {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let id = hex(&random_bytes::<16>());
        let secret = hex(&random_bytes::<24>());
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let mut clients = self.state.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.insert(id.clone(), (secret.clone(), scopes));
        (id, secret)
    }

    /// Registers an M2M application that may call the Management API's permissions, roles and
    /// refresh_claims endpoints ([`READ_PERMISSIONS_SCOPE`], [`READ_ROLES_SCOPE`],
    /// [`REFRESH_CLAIMS_SCOPE`]); returns `(id, secret)`.
    pub fn register_management_client(&self) -> (String, String) {
        self.register_m2m_client(&[
            READ_PERMISSIONS_SCOPE,
            READ_ROLES_SCOPE,
            REFRESH_CLAIMS_SCOPE,
        ])
    }

    /// Makes every Management API token issued so far invalid (401), as after a revocation.
    pub fn revoke_management_tokens(&self) {
        self.state.directory.forget_management_tokens();
    }

    /// Grants `permission` to `user_id` in `org_code`: the live APIs report it from now on.
    pub fn grant(&self, org_code: &str, user_id: &str, permission: &str) {
        self.state.directory.grant(org_code, user_id, permission);
    }

    /// Revokes `permission` from `user_id` in `org_code`.
    pub fn revoke(&self, org_code: &str, user_id: &str, permission: &str) {
        self.state.directory.revoke(org_code, user_id, permission);
    }

    /// The permissions the live APIs report for `user_id` in `org_code`, sorted.
    pub fn permissions_of(&self, org_code: &str, user_id: &str) -> Vec<String> {
        self.state.directory.held(org_code, user_id)
    }

    /// How often `refresh_claims` was called for `user_id`.
    pub fn claims_refreshes(&self, user_id: &str) -> u64 {
        self.state.directory.refreshes(user_id)
    }

    /// Signs `user_id` in to [`DEFAULT_ORG`]: an access token whose `permissions`, `roles` and
    /// `feature_flags` are the user's current grants, roles and flags, and a refresh token. Refreshing (`grant_type=refresh_token` at
    /// `/oauth2/token`) hands back the same access token until `refresh_claims` is called for
    /// the user, as Kinde's claims cache does.
    pub fn login(&self, user_id: &str) -> Session {
        webhook::login(&self.state, user_id, DEFAULT_ORG)
    }

    /// A webhook event of type `kind` with this `data`, timestamped now.
    pub fn webhook(&self, kind: &str, data: Value) -> Webhook {
        Webhook::new(self.state.clone(), kind, data)
    }

    /// `user.updated` for `user_id`, with Kinde's full user object (organizations and
    /// permissions from the current grants).
    pub fn user_updated(&self, user_id: &str) -> Webhook {
        let organizations: Vec<Value> = self
            .state
            .directory
            .orgs_of(user_id)
            .into_iter()
            .map(|org| {
                let permissions: Vec<Value> = self
                    .permissions_of(&org, user_id)
                    .iter()
                    .map(|key| json!({"id": format!("perm_{key}"), "key": key}))
                    .collect();
                json!({"code": org, "permissions": permissions, "roles": null})
            })
            .collect();
        let user = json!({
            "email": "jane@example.com",
            "first_name": "Jane",
            "id": user_id,
            "is_password_reset_requested": false,
            "is_suspended": false,
            "last_name": "Smith",
            "organizations": organizations,
            "phone": null,
            "username": "jane",
        });
        self.webhook("user.updated", json!({ "user": user }))
    }

    /// Makes `endpoint` misbehave until [`FakeKinde::clear_fault`].
    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.state.set_fault(endpoint, Some(fault));
    }

    /// Makes `endpoint` behave again.
    pub fn clear_fault(&self, endpoint: Endpoint) {
        self.state.set_fault(endpoint, None);
    }

    /// Applies Kinde's application-wide API rate limit from now on (`None`: no limit, the
    /// default). See [`RateLimit`].
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.state.set_rate_limit(limit);
    }

    /// API requests answered 429 by the rate limit so far.
    pub fn rate_limited(&self) -> usize {
        self.state.rate_limited()
    }

    /// Signs `access_token` out: the Account API refuses it from now on (403 "Invalid
    /// credentials."), though its signature and `exp` still verify, as after a logout at Kinde.
    pub fn sign_out(&self, access_token: &str) {
        self.state.directory.sign_out(access_token);
    }

    /// Requests received by `endpoint` (faulted ones included).
    pub fn calls(&self, endpoint: Endpoint) -> usize {
        self.state.calls(endpoint)
    }

    /// Sets every call counter to zero.
    pub fn reset_calls(&self) {
        self.state.reset_calls();
    }
}

/// Claims as if verified from a token with this `payload`, without any token, key or
/// signature: for unit tests of handlers and of custom
/// [`PermissionSource`](crate::live::PermissionSource)s. `None` when the payload is not an
/// object with at least a string `iss` and a numeric `exp`.
///
/// ```
/// use claimcheck::testing;
///
/// let claims = testing::claims(serde_json::json!({
///     "iss": "https://example.kinde.com", "exp": 2_000_000_000, "sub": "kp_1",
///     "permissions": ["read:reports"],
/// })).unwrap();
/// assert!(claims.has_permission("read:reports"));
/// ```
pub fn claims(payload: Value) -> Option<crate::Claims> {
    crate::Claims::unverified(&payload.to_string())
}

/// A [`FakeKinde`] on its own multi-threaded runtime, with a warmed-up [`Verifier`](crate::Verifier) for its
/// tokens: for synchronous harnesses (property tests, fuzz targets) that `block_on` one request
/// at a time while the fake keeps serving.
pub struct BlockingKinde {
    /// The runtime the fake serves on; drive requests with its `block_on`.
    pub runtime: tokio::runtime::Runtime,
    /// The fake.
    pub kinde: FakeKinde,
    /// A verifier for the fake's tokens (default audience), keys already fetched.
    pub verifier: crate::Verifier,
}

impl BlockingKinde {
    /// Starts the runtime, the fake and the verifier. Panics if any cannot start: test code.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let kinde = runtime.block_on(FakeKinde::start());
        let verifier = crate::Verifier::builder(kinde.issuer())
            .audience(kinde.audience())
            .build()
            .expect("verifier for the fake");
        assert!(runtime.block_on(verifier.warm_up()), "fake JWKS reachable");
        Self {
            runtime,
            kinde,
            verifier,
        }
    }
}

impl std::fmt::Debug for BlockingKinde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingKinde")
            .field("kinde", &self.kinde)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeKinde {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeKinde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKinde")
            .field("issuer", &self.issuer())
            .finish_non_exhaustive()
    }
}
