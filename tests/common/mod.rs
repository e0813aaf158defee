//! Shared harness: a FakeKinde, an app protected by claimcheck, both on loopback, and a client.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::handler::Handler;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use claimcheck::decision::Decision;
use claimcheck::jwt::VerifierBuilder;
use claimcheck::live::{Backoff, KindeAccountApi, KindeManagementApi, LiveCheck, LiveCheckBuilder};
use claimcheck::testing::FakeKinde;
use claimcheck::{Auth, Claims, Permission, Requirement, Verifier, all_of, any_of};
use serde_json::{Value, json};

pub mod example;
#[cfg(feature = "redis")]
pub mod fleet;
pub mod issuers;
pub mod log;

pub const READ_REPORTS: Permission = Permission::from_static("read:reports");
pub const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
pub const SYNC_FLEET: Permission = Permission::from_static("sync:fleet");
pub const APPROVE_REFUNDS: Permission = Permission::from_static("approve:refunds");
/// `GET /audit` (token-trusted) and `GET /audit/strict`.
pub const AUDIT: Requirement = any_of![
    Requirement::permission("read:audit"),
    Requirement::permission("admin:all"),
];
/// `GET /settle` and `GET /settle/strict`.
pub const SETTLE: Requirement = all_of![
    Requirement::permission("create:payments"),
    Requirement::permission("approve:refunds"),
];
/// `GET /admin` and `GET /admin/strict`.
pub const ADMIN: Requirement = Requirement::role("admin");
/// `GET /beta` and `GET /beta/strict`.
pub const BETA: Requirement = Requirement::flag("beta");
/// `GET /acme` and `GET /acme/strict`: the token is for the organization `org_acme`.
pub const ACME: Requirement = Requirement::org("org_acme");

pub struct Harness {
    pub kinde: FakeKinde,
    pub verifier: Verifier,
    pub auth: Auth,
    pub live: LiveCheck,
    /// How many times a strict handler (`POST /payments`, `POST /fleet`) ran.
    pub runs: Arc<AtomicUsize>,
    pub base: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

/// Which live source a harness uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Management,
    Account,
}

impl Via {
    pub const BOTH: [Via; 2] = [Via::Management, Via::Account];

    /// The fake's endpoint this source calls for permissions.
    pub fn endpoint(self) -> claimcheck::testing::Endpoint {
        match self {
            Via::Management => claimcheck::testing::Endpoint::ManagementPermissions,
            Via::Account => claimcheck::testing::Endpoint::AccountPermissions,
        }
    }
}

/// A live check against `kinde` through `via`, with a short deadline for tests.
pub fn live_for(kinde: &FakeKinde, via: Via) -> LiveCheckBuilder {
    let builder = match via {
        Via::Management => {
            let (id, secret) = kinde.register_management_client();
            LiveCheck::builder(KindeManagementApi::new(kinde.issuer(), id, secret).unwrap())
        }
        Via::Account => LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap()),
    };
    builder
        .deadline(Duration::from_millis(800))
        .backoff(Backoff {
            after_failures: 3,
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_millis(200),
        })
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

/// A verifier for `kinde`'s tokens with test timings, its keys already fetched.
pub async fn warm_verifier(kinde: &FakeKinde) -> Verifier {
    let verifier = verifier_for(kinde).build().unwrap();
    assert!(verifier.warm_up().await, "the fake's JWKS is reachable");
    verifier
}

/// Copies the `Decision` of a response into `x-decision-*` headers, so tests can read it over HTTP.
async fn expose_decision(mut response: Response) -> Response {
    if let Some(decision) = response.extensions().get::<Decision>().cloned() {
        let headers = response.headers_mut();
        headers.insert("x-decision", decision.outcome().as_str().parse().unwrap());
        headers.insert(
            "x-decision-source",
            decision.provenance().as_str().parse().unwrap(),
        );
        if let Some(age) = decision.age() {
            headers.insert(
                "x-decision-age-ms",
                age.as_millis().to_string().parse().unwrap(),
            );
        }
    }
    response
}

pub fn app(auth: &Auth, runs: Arc<AtomicUsize>) -> Router {
    let pay = {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            "paid"
        }
    };
    let fleet = move || async move {
        runs.fetch_add(1, Ordering::SeqCst);
        "synced"
    };
    async fn me(claims: Claims) -> Json<Value> {
        Json(json!({
            "sub": claims.subject(),
            "org_code": claims.org_code(),
            "permissions": claims.permissions(),
            "machine": claims.is_machine(),
        }))
    }
    // A requirement that depends on the body: refunds over 1 000 need `approve:refunds`, live;
    // smaller ones `create:payments`, from the token.
    let refunds = {
        let (trusted, strict) = (
            auth.token_trusted(CREATE_PAYMENTS),
            auth.strict(APPROVE_REFUNDS),
        );
        move |claims: Claims, Json(body): Json<Value>| async move {
            let check = if body["amount"].as_u64().unwrap_or(0) > 1_000 {
                strict.check(&claims).await
            } else {
                trusted.check(&claims).await
            };
            check.map(|decision| (decision, "refunded"))
        }
    };
    let mut shaped = Router::new();
    for (path, requirement) in [
        ("/audit", AUDIT),
        ("/settle", SETTLE),
        ("/admin", ADMIN),
        ("/beta", BETA),
        ("/acme", ACME),
    ] {
        let ok = || async { "ok" };
        shaped = shaped
            .route(path, get(ok.layer(auth.token_trusted(&requirement))))
            .route(
                &format!("{path}/strict"),
                get(ok.layer(auth.strict(requirement))),
            );
    }
    Router::new()
        .merge(shaped)
        .route("/me", get(me))
        .route("/refunds", post(refunds))
        .route(
            "/reports",
            get((|| async { "reports" }).layer(auth.token_trusted(READ_REPORTS))),
        )
        .route("/payments", post(pay.layer(auth.strict(CREATE_PAYMENTS))))
        .route(
            "/fleet",
            post(fleet.layer(auth.strict(SYNC_FLEET).allow_machines())),
        )
        .layer(axum::middleware::map_response(expose_decision))
        .layer(auth.layer())
        .merge(
            Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/webhooks/kinde", post(auth.webhook_handler())),
        )
}

/// POSTs `form` to the fake's `/oauth2/token`; the `access_token` it answers.
pub async fn token_grant(kinde: &FakeKinde, form: &[(&str, &str)]) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/token", kinde.issuer()))
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
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
    let verifier = warm_verifier(&kinde).await;
    start_with(kinde, verifier).await
}

/// Starts the app with the Account API as live source (5 s time-to-live).
pub async fn start_with(kinde: FakeKinde, verifier: Verifier) -> Harness {
    let live = live_for(&kinde, Via::Account).build();
    start_live(kinde, verifier, live).await
}

/// Starts a fake, a warmed-up verifier and the app with the live check `live(&kinde)` builds.
pub async fn start_via(via: Via, ttl: Duration) -> Harness {
    let kinde = FakeKinde::start().await;
    let verifier = warm_verifier(&kinde).await;
    let live = live_for(&kinde, via).time_to_live(ttl).build();
    start_live(kinde, verifier, live).await
}

pub async fn start_live(kinde: FakeKinde, verifier: Verifier, live: LiveCheck) -> Harness {
    let auth = Auth::new(verifier.clone(), live.clone());
    start_auth(kinde, auth).await
}

/// Starts the app in front of `auth` (built on a verifier for `kinde`).
pub async fn start_auth(kinde: FakeKinde, auth: Auth) -> Harness {
    let (verifier, live) = (auth.verifier().clone(), auth.live_check().clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let (base, server) = serve(app(&auth, runs.clone())).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        kinde,
        verifier,
        auth,
        live,
        runs,
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
    pub decision: Option<String>,
    pub source: Option<String>,
    pub age_ms: Option<u64>,
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

    pub async fn post(&self, path: &str, token: &str) -> Answer {
        let req = self.client.post(format!("{}{path}", self.base));
        self.send(req.header("authorization", format!("Bearer {token}")))
            .await
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/kinde", self.base)
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        send(req).await
    }
}

/// Sends `req` to an app built by [`app`], reading the decision headers.
pub async fn send(req: reqwest::RequestBuilder) -> Answer {
    {
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
            decision: header("x-decision"),
            source: header("x-decision-source"),
            age_ms: header("x-decision-age-ms").and_then(|v| v.parse().ok()),
            body: res.text().await.unwrap(),
        }
    }
}
