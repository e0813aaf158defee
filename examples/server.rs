//! The API you would run against your real Kinde business.
//!
//! ```sh
//! KINDE_ISSUER_URL=https://<your_subdomain>.kinde.com \
//! KINDE_AUDIENCE=<your API audience> \
//! cargo run --example server
//! ```
//!
//! | variable | default |
//! | --- | --- |
//! | `KINDE_ISSUER_URL` (or `KINDE_DOMAIN`), `KINDE_AUDIENCE` | required |
//! | `KINDE_JWKS_URL` | a fixed JWKS URL (default: the discovery document's `jwks_uri`, else `{issuer}/.well-known/jwks.json`) |
//! | `KINDE_MANAGEMENT_CLIENT_ID`, `KINDE_MANAGEMENT_CLIENT_SECRET` | unset: strict routes use the Account API |
//! | `CLAIMCHECK_STRICT_TTL_MS` | `5000` (how long a live answer is reused) |
//! | `CLAIMCHECK_REDIS_URL`, `CLAIMCHECK_REDIS_PREFIX` | unset: changes stay in this process. Set (with `--features redis`): every replica shares them through Redis Streams |
//! | `CLAIMCHECK_PREFLIGHT` | `warn`: startup checks that fail are logged; `strict`: they stop the server (exit 2) |
//! | `CLAIMCHECK_BIND` | `127.0.0.1:3000` |
//! | `RUST_LOG` | `info` |
//!
//! Routes: `GET /health` (public: the process is up), `GET /ready` (public: 200 when this
//! instance can serve, else 503 naming what fails: signing keys, change log; see
//! `claimcheck::readiness`), `GET /whoami` (optional authentication: anonymous callers get
//! `{"sub":null}`, a bad token is still 401), `GET /me` (any valid token), `GET /reports` (token-trusted,
//! needs `read:reports`), `GET /audit` (token-trusted, `read:audit` or `admin:all`), `GET /beta`
//! (token-trusted, the boolean feature flag `beta` on), `POST /payments` (strict, needs
//! `create:payments` according to Kinde's live permissions: the Management API when its
//! credentials are set, else the Account API with the caller's token), `POST /refunds` (strict,
//! `create:payments` and `approve:refunds`), `GET /metrics` (public: Prometheus text, the
//! metrics `claimcheck::metrics` lists; serve it on an internal port in production),
//! `POST /webhooks/kinde` (Kinde webhooks: subscribe `user.updated`,
//! `user.deleted`, `organization.updated`, `organization.deleted`, `role.*`, `permission.*`).
//! When ready it prints `listening on http://HOST:PORT` to stdout.

use std::process::ExitCode;
use std::time::Duration;

use axum::handler::Handler;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use claimcheck::kinde::KindeConfig;
use claimcheck::{Auth, Claims, ConfigError, Permission, Requirement, all_of, any_of};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
/// Auditors, or administrators of everything.
const AUDIT: Requirement = any_of![
    Requirement::permission("read:audit"),
    Requirement::permission("admin:all"),
];
/// The beta is open to whoever has the `beta` flag on.
const BETA: Requirement = Requirement::flag("beta");
/// Refunds move money: both permissions, checked live.
const REFUNDS: Requirement = all_of![
    Requirement::permission("create:payments"),
    Requirement::permission("approve:refunds"),
];

async fn me(claims: Claims) -> Json<Value> {
    Json(json!({
        "sub": claims.subject(),
        "org_code": claims.org_code(),
        "permissions": claims.permissions(),
    }))
}

async fn whoami(claims: Option<Claims>) -> Json<Value> {
    Json(json!({"sub": claims.as_ref().and_then(Claims::subject)}))
}

async fn reports() -> Json<Value> {
    Json(json!({"reports": ["q1", "q2"]}))
}

async fn pay(claims: Claims) -> Json<Value> {
    Json(json!({"paid": true, "by": claims.subject()}))
}

async fn ready(axum::extract::State(auth): axum::extract::State<Auth>) -> impl IntoResponse {
    auth.readiness()
}

async fn audit() -> Json<Value> {
    Json(json!({"audit": ["login", "payment"]}))
}

async fn beta() -> Json<Value> {
    Json(json!({"beta": true}))
}

async fn refund(claims: Claims) -> Json<Value> {
    Json(json!({"refunded": true, "by": claims.subject()}))
}

/// Prometheus's text format, as the recorder renders it.
async fn metrics(
    axum::extract::State(prometheus): axum::extract::State<PrometheusHandle>,
) -> impl IntoResponse {
    let content_type = [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, prometheus.render())
}

fn app(auth: &Auth, prometheus: PrometheusHandle) -> Router {
    Router::new()
        .route("/me", get(me))
        .route(
            "/reports",
            get(reports.layer(auth.token_trusted(READ_REPORTS))),
        )
        .route("/audit", get(audit.layer(auth.token_trusted(AUDIT))))
        .route("/beta", get(beta.layer(auth.token_trusted(BETA))))
        .route("/payments", post(pay.layer(auth.strict(CREATE_PAYMENTS))))
        .route("/refunds", post(refund.layer(auth.strict(REFUNDS))))
        .layer(auth.layer())
        .merge(
            Router::new()
                .route("/whoami", get(whoami))
                .layer(auth.optional_layer()),
        )
        .merge(
            Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/ready", get(ready))
                .with_state(auth.clone())
                .route("/metrics", get(metrics).with_state(prometheus))
                // Kinde sends no bearer token: outside the authentication layer.
                .route("/webhooks/kinde", post(auth.webhook_handler())),
        )
        // Traces never show the Authorization header.
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
}

/// The verifier and the live check, from the environment.
async fn setup() -> Result<Auth, ConfigError> {
    let config = KindeConfig::from_env()?;
    let ttl_ms = match std::env::var("CLAIMCHECK_STRICT_TTL_MS") {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::Invalid {
                setting: "CLAIMCHECK_STRICT_TTL_MS",
                reason: "must be a whole number of milliseconds".into(),
            })?,
        Err(_) => 5000,
    };
    let live = config
        .live_check()?
        .time_to_live(Duration::from_millis(ttl_ms))
        .build();
    let verifier = config.verifier().build()?;
    let source = match config.management_client_id() {
        Some(_) => "Management API",
        None => "Account API",
    };
    tracing::info!(source, ttl_ms, "strict routes use live permissions");
    let auth = Auth::new(verifier, live);
    // Fetches the keys, reads the discovery document, tries the Management credentials:
    // each failure is a warning, or (CLAIMCHECK_PREFLIGHT=strict) a refusal to start.
    auth.preflight().await.enforce(config.preflight())?;
    #[cfg(feature = "redis")]
    let auth = match config.redis_config() {
        Some(redis) => {
            tracing::info!(
                prefix = redis.key_prefix(),
                "changes shared through Redis Streams"
            );
            auth.with_redis(redis.clone())
        }
        None => auth,
    };
    Ok(auth)
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        let features = if cfg!(feature = "redis") {
            "redis"
        } else {
            "none"
        };
        println!(
            "server example, claimcheck {}, features: {features}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Before anything is recorded: the startup checks' requests are counted too.
    let prometheus = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cannot install the metrics recorder: {error}");
            return ExitCode::from(1);
        }
    };
    claimcheck::metrics::describe();
    let auth = match setup().await {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let bind = std::env::var("CLAIMCHECK_BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {bind}: {error}");
            return ExitCode::from(1);
        }
    };
    let addr = listener.local_addr().expect("bound address");
    println!("listening on http://{addr}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = axum::serve(listener, app(&auth, prometheus))
        .with_graceful_shutdown(shutdown)
        .await;
    auth.change_log().shutdown();
    if let Err(error) = served {
        eprintln!("server error: {error}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
