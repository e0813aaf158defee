//! `cargo run --example demo`: a fake Kinde and a protected API in one process.
//!
//! 1. What the API answers to good and bad tokens.
//! 2. The consistency model, measured: a permission is revoked at Kinde while the user's token
//!    still carries it. (a) The token-trusted route keeps allowing until the token expires;
//!    (b) the strict route denies once its cache's time-to-live has passed; (c) after Kinde's
//!    `user.updated` webhook both deny on the next request; (d) after the webhook a fresh grant
//!    is honoured at once on the strict route.
//!
//! Exits non-zero if any answer is not the expected one or a measured window breaks its bound.

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
        .layer(auth.layer())
        .route("/webhooks/kinde", post(auth.webhook_handler()));
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

/// One measured stale window.
struct Row {
    scenario: &'static str,
    route: &'static str,
    measured: String,
    bound: String,
    ok: bool,
}

/// Sends `method path` with `token`; the status, or 0 if the API did not answer.
async fn status(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: &str,
) -> u16 {
    let url = format!("{base}{path}");
    let req = if method == "POST" {
        client.post(url)
    } else {
        client.get(url)
    };
    let sent = req.bearer_auth(token).send().await;
    sent.map_or(0, |r| r.status().as_u16())
}

/// A user holding both permissions live and in an hour-long token issued a minute ago, with
/// both routes' answers cached.
async fn warmed_up(kinde: &FakeKinde, client: &reqwest::Client, base: &str, user: &str) -> String {
    for permission in ["read:reports", "create:payments"] {
        kinde.grant(DEFAULT_ORG, user, permission);
    }
    let token = kinde
        .user_token(user)
        .permissions(["read:reports", "create:payments"])
        .issued_in(-60)
        .sign();
    assert_eq!(status(client, base, "GET", "/reports", &token).await, 200);
    assert_eq!(status(client, base, "POST", "/payments", &token).await, 200);
    token
}

fn revoke_all(kinde: &FakeKinde, user: &str) {
    for permission in ["read:reports", "create:payments"] {
        kinde.revoke(DEFAULT_ORG, user, permission);
    }
}

/// Measures how long each kind of route honours a revoked permission, with and without the
/// webhook, and prints the table. Returns the number of windows that broke their bound.
async fn stale_windows(kinde: &FakeKinde, client: &reqwest::Client, base: &str) -> usize {
    let mut rows = Vec::new();
    let ttl_ms = STRICT_TTL.as_millis();

    // (a) and (b): no webhook.
    let user = "kp_no_webhook";
    let token = warmed_up(kinde, client, base, user).await;
    let lifetime = 3600 - 60;
    revoke_all(kinde, user);
    let revoked = Instant::now();
    let (mut strict_denied, mut trusted_denied) = (None, None);
    while revoked.elapsed() < WATCH {
        if strict_denied.is_none() && status(client, base, "POST", "/payments", &token).await == 403
        {
            strict_denied = Some(revoked.elapsed());
        }
        if trusted_denied.is_none() && status(client, base, "GET", "/reports", &token).await != 200
        {
            trusted_denied = Some(revoked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rows.push(Row {
        scenario: "(a) revoked, no webhook",
        route: "token-trusted GET /reports",
        measured: match trusted_denied {
            None => format!("allowed for all {} ms watched", WATCH.as_millis()),
            Some(at) => format!("denied after {} ms", at.as_millis()),
        },
        bound: format!("until the token expires ({lifetime} s)"),
        ok: trusted_denied.is_none(),
    });
    rows.push(Row {
        scenario: "(b) revoked, no webhook",
        route: "strict POST /payments",
        measured: strict_denied.map_or("never denied".into(), |w| {
            format!("denied after {} ms", w.as_millis())
        }),
        bound: format!("the TTL ({ttl_ms} ms, +250 ms polling)"),
        ok: strict_denied.is_some_and(|w| w <= STRICT_TTL + Duration::from_millis(250)),
    });

    // (c): the same revocation, then Kinde's user.updated webhook.
    let user = "kp_with_webhook";
    let token = warmed_up(kinde, client, base, user).await;
    revoke_all(kinde, user);
    let revoked = Instant::now();
    let hook = format!("{base}/webhooks/kinde");
    let delivered = kinde.user_updated(user).deliver(&hook).await;
    let after_hook = revoked.elapsed();
    for (route, method, path) in [
        ("token-trusted GET /reports", "GET", "/reports"),
        ("strict POST /payments", "POST", "/payments"),
    ] {
        let next = status(client, base, method, path, &token).await;
        let window = revoked.elapsed();
        rows.push(Row {
            scenario: "(c) revoked, then user.updated",
            route,
            measured: format!(
                "next request {next}, {} ms after the revocation (webhook {delivered} after {} ms)",
                window.as_millis(),
                after_hook.as_millis()
            ),
            bound: "the next request after the webhook".into(),
            ok: delivered == 200 && next == 403,
        });
    }

    // (d): a grant, then the webhook: honoured at once on the strict route.
    let user = "kp_new_grant";
    let token = kinde.user_token(user).issued_in(-60).sign();
    let before = status(client, base, "POST", "/payments", &token).await;
    kinde.grant(DEFAULT_ORG, user, "create:payments");
    let granted = Instant::now();
    let delivered = kinde.user_updated(user).deliver(&hook).await;
    let next = status(client, base, "POST", "/payments", &token).await;
    rows.push(Row {
        scenario: "(d) granted, then user.updated",
        route: "strict POST /payments",
        measured: format!(
            "{before} before; next request {next}, {} ms after the grant",
            granted.elapsed().as_millis()
        ),
        bound: "the next request after the webhook".into(),
        ok: before == 403 && delivered == 200 && next == 200,
    });

    println!("stale windows of a permission revoked at Kinde while the token still carries it");
    println!("(strict time-to-live {ttl_ms} ms; token lifetime 1 h, issued 1 min before)");
    println!("{}", "-".repeat(150));
    println!(
        "{:<32} {:<28} {:<38} measured",
        "scenario", "route", "bound"
    );
    for row in &rows {
        let mark = if row.ok { "" } else { "  <-- BREAKS ITS BOUND" };
        println!(
            "{:<32} {:<28} {:<38} {}{mark}",
            row.scenario, row.route, row.bound, row.measured
        );
    }
    rows.iter().filter(|row| !row.ok).count()
}
