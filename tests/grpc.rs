//! gRPC over loopback: `examples/grpc.rs`'s tonic server (its `app`, served by tonic, against
//! a FakeKinde) called by its tonic client; the same layers answering plain HTTP; and the
//! example binary itself, configured and not.

mod common;

#[allow(dead_code)]
#[path = "../examples/grpc.rs"]
mod example;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use claimcheck::Auth;
use claimcheck::decision::{Decision, Outcome};
use claimcheck::testing::{DEFAULT_ORG, FakeKinde, Fault};
use common::Via;
use common::example::{Killed, example_binary, first_line};
use example::proto::{self, ListRequest, PayRequest, ReportsClient};
use example::with_token;
use tonic::Code;
use tonic_types::StatusExt as _;
use tower::ServiceExt as _;

/// The example's app against a fresh FakeKinde, served by tonic on 127.0.0.1.
struct Server {
    kinde: FakeKinde,
    auth: Auth,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(via: Via) -> Self {
        let kinde = FakeKinde::start().await;
        let verifier = common::warm_verifier(&kinde).await;
        let auth = Auth::new(verifier, common::live_for(&kinde, via).build());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = example::app(&auth);
        let task = tokio::spawn(example::serve(listener, app, std::future::pending()));
        Self {
            kinde,
            auth,
            addr,
            task,
        }
    }

    async fn client(&self) -> ReportsClient {
        ReportsClient::connect(self.addr).await.unwrap()
    }
}

fn list(token: Option<&str>) -> tonic::Request<ListRequest> {
    with_token(ListRequest {}, token)
}

fn pay(amount: u64, token: &str) -> tonic::Request<PayRequest> {
    with_token(PayRequest { amount }, Some(token))
}

#[tokio::test]
async fn the_token_trusted_method_answers_a_token_with_the_permission() {
    let server = Server::start(Via::Account).await;
    let token = server
        .kinde
        .user_token("kp_reader")
        .permissions(["read:reports"])
        .sign();
    let reply = server
        .client()
        .await
        .list(list(Some(&token)))
        .await
        .unwrap();
    assert_eq!(reply.get_ref().reports, ["q1", "q2"]);
}

#[tokio::test]
async fn no_token_is_unauthenticated_on_both_kinds_of_method() {
    let server = Server::start(Via::Account).await;
    let mut client = server.client().await;
    let listed = client.list(list(None)).await.unwrap_err();
    assert_eq!(listed.code(), Code::Unauthenticated);
    assert_eq!(listed.message(), "Bearer credentials are required");
    let paid = client
        .pay(with_token(PayRequest { amount: 1 }, None))
        .await
        .unwrap_err();
    assert_eq!(paid.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_and_never_echoed() {
    let server = Server::start(Via::Account).await;
    let kinde = &server.kinde;
    let reader = || kinde.user_token("kp_reader").permissions(["read:reports"]);
    let forged = reader().forged().sign();
    let expired = reader().expires_in(-3600).sign();
    let foreign = reader().audience("another-api").sign();
    let mut client = server.client().await;
    for (token, message) in [
        (&forged, "The access token is invalid"),
        (&expired, "The access token expired"),
        (&foreign, "The access token is invalid"),
        (&"not-a-jwt".to_owned(), "The access token is invalid"),
    ] {
        let status = client.list(list(Some(token))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{message}");
        assert_eq!(status.message(), message);
        assert!(!format!("{status:?}").contains(token.as_str()));
    }
    // Two Authorization headers: RFC 6750's invalid_request (HTTP 400), unauthenticated here.
    let mut request = list(Some(&reader().sign()));
    let again = format!("Bearer {}", reader().sign()).parse().unwrap();
    request.metadata_mut().append("authorization", again);
    let status = client.list(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "The Authorization header is malformed");
}

#[tokio::test]
async fn a_missing_permission_is_permission_denied_naming_the_requirement() {
    let server = Server::start(Via::Account).await;
    let token = server
        .kinde
        .user_token("kp_other")
        .permissions(["read:other"])
        .sign();
    let status = server
        .client()
        .await
        .list(list(Some(&token)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "The caller does not meet this route's requirement: read:reports"
    );
    assert!(status.details().is_empty());
}

#[tokio::test]
async fn the_strict_method_follows_kinde_through_either_api() {
    for via in Via::BOTH {
        let server = Server::start(via).await;
        let kinde = &server.kinde;
        kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
        let payer = kinde.user_token("kp_payer").sign();
        // The token claims the permission; Kinde never granted it.
        let stale = kinde
            .user_token("kp_stale")
            .permissions(["create:payments"])
            .sign();
        let mut client = server.client().await;
        let reply = client.pay(pay(20, &payer)).await.unwrap();
        assert_eq!(reply.get_ref().by, "kp_payer", "{via:?}");
        let denied = client.pay(pay(20, &stale)).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{via:?}");
        assert!(denied.message().ends_with(": create:payments"), "{via:?}");
        assert_eq!(kinde.calls(via.endpoint()), 2, "{via:?}");
    }
}

#[tokio::test]
async fn kinde_down_is_unavailable_with_the_retry_delay_it_asked_for() {
    for via in Via::BOTH {
        let server = Server::start(via).await;
        let kinde = &server.kinde;
        kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
        let down = Fault::Status(503, vec![("retry-after".into(), "7".into())]);
        kinde.set_fault(via.endpoint(), down);
        let payer = kinde.user_token("kp_payer").sign();
        let status = server
            .client()
            .await
            .pay(pay(20, &payer))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{via:?}");
        assert_eq!(
            status.message(),
            "An upstream authorization service is unavailable"
        );
        let retry = status.get_details_retry_info().expect("a RetryInfo detail");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)), "{via:?}");
        assert_eq!(kinde.calls(via.endpoint()), 1, "{via:?}");
    }
}

#[tokio::test]
async fn a_check_inside_the_handler_answers_through_tonic_status() {
    let server = Server::start(Via::Management).await;
    let kinde = &server.kinde;
    kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
    let payer = kinde.user_token("kp_payer").sign();
    let mut client = server.client().await;
    let status = client.pay(pay(5_000, &payer)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().ends_with(": approve:payments"));
    kinde.grant(DEFAULT_ORG, "kp_payer", "approve:payments");
    server.auth.invalidate_user("kp_payer");
    let reply = client.pay(pay(5_000, &payer)).await.unwrap();
    assert!(reply.get_ref().paid);
    // Kinde down: the handler's check is unavailable the same way the layer is.
    server.auth.invalidate_user("kp_payer");
    let down = Fault::Status(503, vec![("retry-after".into(), "3".into())]);
    kinde.set_fault(Via::Management.endpoint(), down);
    let status = client.pay(pay(5_000, &payer)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let retry = status.get_details_retry_info().unwrap();
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn plain_http_to_the_same_layers_still_gets_problem_json() {
    let server = Server::start(Via::Account).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let post = |token: Option<&str>| {
        let request = http
            .post(format!("{base}{}", proto::LIST))
            .header("content-type", "application/json")
            .body("{}");
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    let anonymous = post(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    assert!(anonymous.headers().get("grpc-status").is_none());
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["status"], 401);
    let other = server.kinde.user_token("kp_other").sign();
    let denied = post(Some(&other)).await.unwrap();
    assert_eq!(denied.status(), 403);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["requirement"], "read:reports");
    assert_eq!(
        body["detail"],
        "The caller does not meet this route's requirement"
    );
}

#[tokio::test]
async fn a_whole_tonic_server_takes_the_layers_once_its_body_is_axums() {
    let server = Server::start(Via::Account).await;
    let auth = &server.auth;
    // `tonic::body::Body` cannot be built from bytes: map it to axum's inside the layers.
    let layers = tower::ServiceBuilder::new()
        .layer(auth.layer())
        .layer(auth.token_trusted(claimcheck::Permission::from_static("read:reports")))
        .map_response(|r: http::Response<tonic::body::Body>| r.map(Body::new));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = tonic::transport::Server::builder()
        .layer(layers)
        .add_service(example::reports(auth))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let task = tokio::spawn(serve);
    let mut client = ReportsClient::connect(addr).await.unwrap();
    let anonymous = client.list(list(None)).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(anonymous.message(), "Bearer credentials are required");
    let other = server.kinde.user_token("kp_other").sign();
    let denied = client.list(list(Some(&other))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let reader = server
        .kinde
        .user_token("kp_reader")
        .permissions(["read:reports"])
        .sign();
    let reply = client.list(list(Some(&reader))).await.unwrap();
    assert_eq!(reply.get_ref().reports, ["q1", "q2"]);
    task.abort();
}

/// A request to the app as a tonic client sends it (`content-type` given), without a network.
fn request(path: &str, content_type: &str, token: Option<&str>) -> http::Request<Body> {
    let mut request = http::Request::post(path).header("content-type", content_type);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_grpc_rejection_is_trailers_only_and_keeps_its_decision() {
    let server = Server::start(Via::Account).await;
    let app = example::app(&server.auth);
    let other = server.kinde.user_token("kp_other").sign();
    let grpc = app
        .clone()
        .oneshot(request(proto::LIST, "application/grpc", Some(&other)))
        .await
        .unwrap();
    assert_eq!(grpc.status(), 200);
    assert_eq!(grpc.headers()["content-type"], "application/grpc");
    assert_eq!(grpc.headers()["grpc-status"], "7");
    assert!(grpc.headers().get("www-authenticate").is_none());
    let decision = grpc.extensions().get::<Decision>().expect("a decision");
    assert_eq!(decision.outcome(), Outcome::Deny);
    assert_eq!(decision.requirement().to_string(), "read:reports");
    let (_, body) = grpc.into_parts();
    assert!(axum::body::to_bytes(body, 1024).await.unwrap().is_empty());
    // The same request as JSON: the HTTP answer, with the same decision.
    let json = app
        .clone()
        .oneshot(request(proto::LIST, "application/json", Some(&other)))
        .await
        .unwrap();
    assert_eq!(json.status(), 403);
    let decision = json.extensions().get::<Decision>().expect("a decision");
    assert_eq!(decision.outcome(), Outcome::Deny);
    // An unknown method: authenticated first, then tonic's UNIMPLEMENTED.
    let unknown = "/claimcheck.example.Reports/Nope";
    let anonymous = app
        .clone()
        .oneshot(request(unknown, "application/grpc", None))
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["grpc-status"], "16");
    let known = app
        .oneshot(request(unknown, "application/grpc", Some(&other)))
        .await
        .unwrap();
    assert_eq!(known.headers()["grpc-status"], "12");
}

#[tokio::test]
async fn the_example_binary_serves_against_a_configured_kinde() {
    let kinde = FakeKinde::start().await;
    let mut child = Killed(
        Command::new(example_binary("grpc"))
            .env_clear()
            .env("KINDE_ISSUER_URL", kinde.issuer())
            .env("KINDE_AUDIENCE", kinde.audience())
            .env("CLAIMCHECK_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the grpc example is built"),
    );
    let line = first_line(&mut child).await;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let mut client = ReportsClient::connect(addr).await.unwrap();
    let reader = kinde
        .user_token("kp_reader")
        .permissions(["read:reports"])
        .sign();
    assert!(client.list(list(Some(&reader))).await.is_ok());
    let anonymous = client.list(list(None)).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // Strict, through the Account API (no Management credentials configured): Kinde's word.
    kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
    let payer = kinde.user_token("kp_payer").sign();
    assert!(client.pay(pay(20, &payer)).await.unwrap().get_ref().paid);
    let stale = kinde
        .user_token("kp_stale")
        .permissions(["create:payments"])
        .sign();
    let denied = client.pay(pay(20, &stale)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_example_walks_through_every_answer_without_configuration() {
    let output = tokio::task::spawn_blocking(|| {
        Command::new(example_binary("grpc"))
            .env_clear()
            .env("RUST_LOG", "off")
            .output()
            .expect("the grpc example is built")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let checked = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(checked, 7, "{stdout}");
    assert!(stdout.contains("retry in 7s"), "{stdout}");
}
