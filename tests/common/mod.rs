//! Shared harness: a FakeKinde, an app protected by claimcheck, both on loopback, and a client.
#![allow(dead_code)]

use std::time::Duration;

use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use claimcheck::jwt::VerifierBuilder;
use claimcheck::testing::FakeKinde;
use claimcheck::{Auth, Claims, Permission, Verifier};
use serde_json::{Value, json};

pub const READ_REPORTS: Permission = Permission::from_static("read:reports");

pub struct Harness {
    pub kinde: FakeKinde,
    pub verifier: Verifier,
    pub base: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Verifier settings for tests: short cooldowns so no test waits for seconds.
pub fn fast(builder: VerifierBuilder) -> VerifierBuilder {
    builder
        .jwks_refetch_cooldown(Duration::from_millis(200))
        .jwks_cold_retry(Duration::from_millis(50))
        .unknown_kid_ttl(Duration::from_millis(100))
        .jwks_timeouts(Duration::from_millis(500), Duration::from_millis(800))
}

pub fn verifier_for(kinde: &FakeKinde) -> VerifierBuilder {
    fast(Verifier::builder(kinde.issuer()).audience(kinde.audience()))
}

pub fn app(auth: &Auth) -> Router {
    async fn me(claims: Claims) -> Json<Value> {
        Json(json!({
            "sub": claims.subject(),
            "org_code": claims.org_code(),
            "permissions": claims.permissions(),
            "machine": claims.is_machine(),
        }))
    }
    Router::new()
        .route("/me", get(me))
        .route(
            "/reports",
            get((|| async { "reports" }).layer(auth.token_trusted(READ_REPORTS))),
        )
        .layer(auth.layer())
        .merge(Router::new().route("/health", get(|| async { "ok" })))
}

pub async fn serve(router: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (base, task)
}

/// Starts everything with the JWKS warmed up.
pub async fn start() -> Harness {
    let kinde = FakeKinde::start().await;
    let verifier = verifier_for(&kinde).build().unwrap();
    assert!(verifier.warm_up().await);
    start_with(kinde, verifier).await
}

pub async fn start_with(kinde: FakeKinde, verifier: Verifier) -> Harness {
    let auth = Auth::new(verifier.clone());
    let (base, server) = serve(app(&auth)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        kinde,
        verifier,
        base,
        client,
        server,
    }
}

pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts a 401 `invalid_token` problem answer.
    pub fn assert_invalid_token(&self) {
        assert_eq!(self.status, 401, "body: {}", self.body);
        let challenge = self.challenge.as_deref().unwrap_or("");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(self.json()["error"], "invalid_token");
    }
}

impl Harness {
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("app reachable");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Answer {
            status: res.status().as_u16(),
            challenge: header("www-authenticate"),
            retry_after: header("retry-after"),
            content_type: header("content-type"),
            body: res.text().await.unwrap(),
        }
    }
}
