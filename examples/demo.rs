//! `cargo run --example demo`: a fake Kinde and a protected API in one process.
//!
//! 1. What the API answers to good and bad tokens.
//! 2. The point of strict routes: a permission is revoked at Kinde while the user's token still
//!    carries it. The token-trusted route keeps allowing until the token expires; the strict
//!    route denies once its cache's time-to-live has passed. The demo measures both windows.
//!
//! Exits non-zero if any answer is not the expected one.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::handler::Handler;
use axum::routing::{get, post};
use axum::{Json, Router};
use claimcheck::live::{KindeManagementApi, LiveCheck};
use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
use claimcheck::{Auth, Claims, Permission, Verifier};
use serde_json::json;

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
/// The strict route's cache time-to-live for this demo (the crate's default is 5 s).
const STRICT_TTL: Duration = Duration::from_millis(1500);
/// How long the demo watches the token-trusted route after the revocation.
const WATCH: Duration = Duration::from_millis(2500);

#[tokio::main]
async fn main() -> ExitCode {
    let kinde = FakeKinde::start().await;
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .expect("valid settings");
    verifier.warm_up().await;
    let (client_id, secret) = kinde.register_management_client();
    let source = KindeManagementApi::new(kinde.issuer(), client_id, secret).expect("valid issuer");
    let live = LiveCheck::builder(source).time_to_live(STRICT_TTL).build();
    let auth = Auth::new(verifier.clone(), live);
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { Json(json!({"sub": c.subject()})) }),
        )
        .route(
            "/reports",
            get((|| async { "q1, q2" }).layer(auth.token_trusted(READ_REPORTS))),
        )
        .route(
            "/payments",
            post((|| async { "paid" }).layer(auth.strict(CREATE_PAYMENTS))),
        )
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!("fake Kinde at {}, API at {base}\n", kinde.issuer());
    let user = || kinde.user_token("kp_0123456789abcdef0123456789abcdef");
    let cases: Vec<(&str, &str, Option<String>, u16)> = vec![
        (
            "valid token, has read:reports",
            "/reports",
            Some(user().permissions(["read:reports"]).sign()),
            200,
        ),
        ("valid token, any route", "/me", Some(user().sign()), 200),
        (
            "valid token, lacks read:reports",
            "/reports",
            Some(user().permissions(["read:other"]).sign()),
            403,
        ),
        (
            "expired token",
            "/me",
            Some(user().expires_in(-3600).sign()),
            401,
        ),
        (
            "token for another API (audience)",
            "/me",
            Some(user().audience(json!(["another-api"])).sign()),
            401,
        ),
        (
            "forged signature",
            "/reports",
            Some(user().permissions(["read:reports"]).forged().sign()),
            401,
        ),
        (
            "alg: none",
            "/me",
            Some(user().unsigned("none").sign()),
            401,
        ),
        (
            "ID token instead of access token",
            "/me",
            Some(kinde.id_token("kp_1").sign()),
            401,
        ),
        ("no token", "/me", None, 401),
    ];

    let client = reqwest::Client::new();
    let mut failures = 0;
    println!("{:<36} {:<9} {:>6}  answer", "request", "route", "status");
    println!("{}", "-".repeat(100));
    for (label, path, token, expected) in cases {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(token) = &token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("API reachable");
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.unwrap_or_default();
        let answer = challenge.unwrap_or(body);
        let mark = if status == expected {
            ""
        } else {
            "  <-- UNEXPECTED"
        };
        failures += usize::from(status != expected);
        println!("{label:<36} {path:<9} {status:>6}  {answer}{mark}");
    }
    println!();
    failures += stale_windows(&kinde, &client, &base).await;
    println!();
    if failures == 0 {
        println!("every answer was the expected one");
        ExitCode::SUCCESS
    } else {
        println!("{failures} unexpected answer(s)");
        ExitCode::FAILURE
    }
}

/// Grants, then revokes at the fake Kinde, and measures how long each kind of route keeps
/// allowing the revoked permission. Returns the number of unexpected answers.
async fn stale_windows(kinde: &FakeKinde, client: &reqwest::Client, base: &str) -> usize {
    let user = "kp_stale_window_demo";
    for permission in ["read:reports", "create:payments"] {
        kinde.grant(DEFAULT_ORG, user, permission);
    }
    let builder = kinde
        .user_token(user)
        .permissions(["read:reports", "create:payments"]);
    let lifetime = builder.claims()["exp"].as_i64().unwrap_or(0)
        - builder.claims()["iat"].as_i64().unwrap_or(0);
    let token = builder.sign();
    let status = |method: &str, path: &str| {
        let url = format!("{base}{path}");
        let req = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        let req = req.bearer_auth(&token);
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    println!("stale windows: grant, then revoke at Kinde while the token still says yes");
    println!("(strict time-to-live {} ms)", STRICT_TTL.as_millis());
    println!("{}", "-".repeat(100));
    let mut failures = 0;
    let before = (
        status("GET", "/reports").await,
        status("POST", "/payments").await,
    );
    println!(
        "before the revocation: GET /reports {}, POST /payments {}",
        before.0, before.1
    );
    failures += usize::from(before != (200, 200));

    for permission in ["read:reports", "create:payments"] {
        kinde.revoke(DEFAULT_ORG, user, permission);
    }
    let revoked = Instant::now();
    let mut strict_window = None;
    let mut trusted_denied = None;
    while revoked.elapsed() < WATCH {
        if strict_window.is_none() && status("POST", "/payments").await == 403 {
            strict_window = Some(revoked.elapsed());
        }
        if trusted_denied.is_none() && status("GET", "/reports").await != 200 {
            trusted_denied = Some(revoked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    match strict_window {
        Some(window) => println!(
            "strict        POST /payments: allowed for {} ms after the revocation, then 403",
            window.as_millis()
        ),
        None => println!("strict        POST /payments: never denied  <-- UNEXPECTED"),
    }
    failures +=
        usize::from(strict_window.is_none_or(|w| w > STRICT_TTL + Duration::from_millis(500)));
    match trusted_denied {
        None => println!(
            "token-trusted GET /reports:   still allowed after {} ms of watching; stale until the \
             token expires ({lifetime} s)",
            WATCH.as_millis()
        ),
        Some(at) => println!(
            "token-trusted GET /reports:   denied after {} ms  <-- UNEXPECTED",
            at.as_millis()
        ),
    }
    failures += usize::from(trusted_denied.is_some());
    failures
}
