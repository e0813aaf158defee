//! `cargo run --example requirements`: role and feature-flag gates going stale at Kinde, and
//! what each kind of route makes of it.
//!
//! A fake Kinde and an API in one process. The user holds the role `admin` and has the flag
//! `beta` on, in their token and at Kinde. Then Kinde changes:
//!
//! 1. the flag is switched off: Kinde sends no webhook for flags, so the strict route sees it
//!    once its time-to-live has passed; the token-trusted route follows the token until it
//!    expires (or a change event for the user marks it stale);
//! 2. the role is removed: the strict route denies as soon as Kinde's `user.updated` webhook
//!    arrives (without it, once its cache's time-to-live has passed), and the token-trusted
//!    route stops trusting the token, which predates the change.
//!
//! Exits non-zero if any answer is not the expected one.

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{get, post};
use claimcheck::live::{KindeAccountApi, LiveCheck};
use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
use claimcheck::{Auth, Requirement, Verifier};
use serde_json::json;

const ADMIN: Requirement = Requirement::role("admin");
const BETA: Requirement = Requirement::flag("beta");
/// The strict routes' cache time-to-live for this example (the crate's default is 5 s).
const STRICT_TTL: Duration = Duration::from_millis(400);
const USER: &str = "kp_0123456789abcdef0123456789abcdef";

#[tokio::main]
async fn main() -> ExitCode {
    let kinde = FakeKinde::start().await;
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .expect("valid settings");
    verifier.warm_up().await;
    let source = KindeAccountApi::new(kinde.issuer()).expect("valid issuer");
    let live = LiveCheck::builder(source).time_to_live(STRICT_TTL).build();
    let auth = Auth::new(verifier, live);
    let ok = || async { "ok" };
    let app = Router::new()
        .route("/admin", get(ok.layer(auth.token_trusted(ADMIN))))
        .route("/admin/strict", get(ok.layer(auth.strict(ADMIN))))
        .route("/beta", get(ok.layer(auth.token_trusted(BETA))))
        .route("/beta/strict", get(ok.layer(auth.strict(BETA))))
        .layer(auth.layer())
        .route("/webhooks/kinde", post(auth.webhook_handler()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    kinde.assign_role(DEFAULT_ORG, USER, "admin");
    kinde.set_feature_flag(DEFAULT_ORG, USER, "beta", json!(true));
    // Signed in a minute ago: the token carries the role and the flag.
    let token = kinde
        .user_token(USER)
        .claim(
            "roles",
            json!([{"id": "role_admin", "key": "admin", "name": "Admin"}]),
        )
        .claim("feature_flags", json!({"beta": {"t": "b", "v": true}}))
        .issued_in(-60)
        .sign();
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let response = request.send().await.expect("API reachable");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (
                status,
                body["requirement"].as_str().unwrap_or("").to_owned(),
            )
        }
    };

    println!(
        "API at {base}; strict time-to-live {} ms\n",
        STRICT_TTL.as_millis()
    );
    println!(
        "{:<52} {:<14} {:>6}  403 names",
        "moment", "route", "status"
    );
    println!("{}", "-".repeat(90));
    let mut failures = 0;
    let mut expect = async |moment: &str, path: &'static str, want: u16| {
        let (status, requirement) = get(path).await;
        let mark = if status == want {
            ""
        } else {
            "   <-- unexpected"
        };
        failures += usize::from(status != want);
        println!("{moment:<52} {path:<14} {status:>6}  {requirement}{mark}");
    };

    expect("before any change", "/admin", 200).await;
    expect("before any change", "/admin/strict", 200).await;
    expect("before any change", "/beta", 200).await;
    expect("before any change", "/beta/strict", 200).await;

    kinde.set_feature_flag(DEFAULT_ORG, USER, "beta", json!(false));
    expect(
        "flag switched off at Kinde (no webhook exists)",
        "/beta",
        200,
    )
    .await;
    tokio::time::sleep(STRICT_TTL + Duration::from_millis(50)).await;
    expect("... one time-to-live later", "/beta/strict", 403).await;
    expect("... token-trusted follows the token", "/beta", 200).await;

    expect("role still held", "/admin/strict", 200).await;
    kinde.remove_role(DEFAULT_ORG, USER, "admin");
    expect(
        "role removed at Kinde, within the TTL",
        "/admin/strict",
        200,
    )
    .await;
    let hook = format!("{base}/webhooks/kinde");
    let delivered = kinde.user_updated(USER).deliver(&hook).await;
    expect("... user.updated webhook delivered", "/admin/strict", 403).await;
    expect(
        "... token-trusted: the token predates the change",
        "/admin",
        403,
    )
    .await;

    println!();
    if delivered != 200 {
        println!("the webhook was not accepted ({delivered})");
        return ExitCode::FAILURE;
    }
    if failures > 0 {
        println!("{failures} unexpected answer(s)");
        return ExitCode::FAILURE;
    }
    println!("every answer was the expected one");
    ExitCode::SUCCESS
}
