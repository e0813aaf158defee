//! Optional authentication (`Auth::optional_layer`, `JwtAuthLayer::optional`) over loopback:
//! no credentials pass as anonymous, bad credentials are still refused, and whatever needs a
//! caller behind it answers an anonymous request 401 with a bare `Bearer` challenge.

mod common;

use std::convert::Infallible;

use axum::body::Body;
use axum::handler::Handler;
use axum::routing::{get, post};
use axum::{Json, Router};
use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
use claimcheck::{Auth, Claims, JwtAuthLayer, Permission};
use common::{Via, live_for, serve, warm_verifier};
use http::{Request, Response};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");

async fn whoami(claims: Option<Claims>) -> Json<Value> {
    Json(json!({"sub": claims.as_ref().and_then(Claims::subject)}))
}

async fn me(claims: Claims) -> String {
    claims.subject().unwrap_or_default().to_owned()
}

/// Every kind of route, all behind the optional layer.
async fn start() -> (FakeKinde, String, reqwest::Client) {
    let kinde = FakeKinde::start().await;
    let verifier = warm_verifier(&kinde).await;
    let auth = Auth::new(verifier, live_for(&kinde, Via::Account).build());
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/me", get(me))
        .route("/reports", get(me.layer(auth.token_trusted(READ_REPORTS))))
        .route("/payments", post(me.layer(auth.strict(CREATE_PAYMENTS))))
        .layer(auth.optional_layer());
    let (base, _server) = serve(router).await;
    (kinde, base, reqwest::Client::new())
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: String,
}

async fn send(
    client: &reqwest::Client,
    method: &str,
    url: String,
    authorization: &[&str],
) -> Answer {
    let mut request = client.request(method.parse().unwrap(), url);
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: response.status().as_u16(),
        challenge,
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn anonymous_passes_a_good_token_is_read_a_bad_one_is_refused() {
    let (kinde, base, client) = start().await;
    let url = format!("{base}/whoami");
    let anonymous = send(&client, "GET", url.clone(), &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.as_str()),
        (200, r#"{"sub":null}"#)
    );
    // Another scheme carries no bearer credentials: anonymous too.
    let basic = send(&client, "GET", url.clone(), &["Basic dXNlcjpwYXNz"]).await;
    assert_eq!(
        (basic.status, basic.body.as_str()),
        (200, r#"{"sub":null}"#)
    );

    let good = format!("Bearer {}", kinde.user_token("kp_1").sign());
    let signed_in = send(&client, "GET", url.clone(), &[&good]).await;
    assert_eq!(
        (signed_in.status, signed_in.body.as_str()),
        (200, r#"{"sub":"kp_1"}"#)
    );

    // Bad credentials are never downgraded to anonymous.
    let expired = format!(
        "Bearer {}",
        kinde.user_token("kp_1").expires_in(-3_600).sign()
    );
    let forged = format!(
        "Bearer {}",
        kinde.user_token("kp_1").sign().replace('.', ".x")
    );
    for bad in ["Bearer not-a-jwt", expired.as_str(), forged.as_str()] {
        let answer = send(&client, "GET", url.clone(), &[bad]).await;
        assert_eq!(answer.status, 401, "{bad}: {}", answer.body);
        let challenge = answer.challenge.unwrap_or_default();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    for malformed in [
        &["Bearer"][..],
        &["Bearer a b"],
        &[good.as_str(), good.as_str()],
    ] {
        let answer = send(&client, "GET", url.clone(), malformed).await;
        assert_eq!(answer.status, 400, "{malformed:?}: {}", answer.body);
    }
}

#[tokio::test]
async fn what_needs_a_caller_answers_anonymous_401_with_a_bare_challenge() {
    let (kinde, base, client) = start().await;
    kinde.grant(DEFAULT_ORG, "kp_1", CREATE_PAYMENTS.as_str());
    for (method, path) in [("GET", "/me"), ("GET", "/reports"), ("POST", "/payments")] {
        let anonymous = send(&client, method, format!("{base}{path}"), &[]).await;
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.body);
        assert_eq!(anonymous.challenge.as_deref(), Some("Bearer"), "{path}");
        assert!(
            !anonymous.body.contains("misconfigured"),
            "{}",
            anonymous.body
        );
    }
    // The same routes with a token that holds what they need.
    let token = kinde
        .user_token("kp_1")
        .permissions([READ_REPORTS.as_str()])
        .sign();
    let good = format!("Bearer {token}");
    for (method, path) in [("GET", "/me"), ("GET", "/reports"), ("POST", "/payments")] {
        let answer = send(&client, method, format!("{base}{path}"), &[&good]).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "kp_1"),
            "{path}"
        );
    }
}

async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let sub = req
        .extensions()
        .get::<Claims>()
        .and_then(|c| c.subject().map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned());
    Ok(Response::new(Body::from(sub)))
}

#[tokio::test]
async fn claims_planted_from_outside_do_not_pass_for_an_anonymous_caller() {
    let kinde = FakeKinde::start().await;
    let verifier = warm_verifier(&kinde).await;
    // Claims genuinely verified for someone else, planted by an earlier layer or a bug.
    let planted = verifier
        .verify(&kinde.user_token("kp_admin").sign())
        .await
        .unwrap();
    let svc = JwtAuthLayer::new(verifier)
        .optional()
        .layer(service_fn(echo));
    let mut request = Request::new(Body::empty());
    request.extensions_mut().insert(planted);
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(&body[..], b"anonymous");
}
