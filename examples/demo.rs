//! `cargo run --example demo`: a fake Kinde and a protected API in one process, and what the
//! API answers to good and bad tokens. Exits non-zero if any answer is not the expected one.

use std::process::ExitCode;

use axum::handler::Handler;
use axum::routing::get;
use axum::{Json, Router};
use claimcheck::testing::FakeKinde;
use claimcheck::{Auth, Claims, Permission, Verifier};
use serde_json::json;

const READ_REPORTS: Permission = Permission::from_static("read:reports");

#[tokio::main]
async fn main() -> ExitCode {
    let kinde = FakeKinde::start().await;
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .expect("valid settings");
    verifier.warm_up().await;
    let auth = Auth::new(
        verifier.clone(),
        claimcheck::live::LiveCheck::builder(
            claimcheck::live::KindeAccountApi::new(kinde.issuer()).unwrap(),
        )
        .build(),
    );
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { Json(json!({"sub": c.subject()})) }),
        )
        .route(
            "/reports",
            get((|| async { "q1, q2" }).layer(auth.token_trusted(READ_REPORTS))),
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
    if failures == 0 {
        println!("every answer was the expected one");
        ExitCode::SUCCESS
    } else {
        println!("{failures} unexpected answer(s)");
        ExitCode::FAILURE
    }
}
