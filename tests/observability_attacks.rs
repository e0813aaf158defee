//! Attacks on the observability surface — metrics, gRPC rendering of rejections, spans — from
//! outside, as a hostile caller and a careless operator would make them. Everything talks to a
//! FakeKinde on 127.0.0.1; the app is called in process (`oneshot`) on a current-thread
//! runtime, so a thread-local recorder or subscriber sees every record.
//!
//! Four of them found defects, fixed since: caller input in the `requirement` label, a paused
//! gauge one recovering source cleared for all, `application/grpcfoo` taken for gRPC, and a
//! decision recorded on the application's span when ours was filtered out.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::handler::Handler;
use axum::response::IntoResponse as _;
use axum::routing::get;
use bytes::Bytes;
use claimcheck::authz::Rejection;
use claimcheck::decision::Decision;
use claimcheck::live::{Backoff, KindeAccountApi, LiveCheck, PermissionQuery};
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};
use claimcheck::{Auth, Claims, Permission, Requirement};
use common::Via;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower::ServiceExt as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Runs `test` on a fresh current-thread runtime with a Prometheus recorder local to this
/// thread (the app, the fake and every spawned task run here, so every record lands in it).
fn with_prometheus<Fut: Future<Output = ()>>(test: impl FnOnce(PrometheusHandle) -> Fut) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = runtime();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(handle)));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fake, an `Auth` on it (live source `via`) and `common::app` in front of it.
struct App {
    kinde: FakeKinde,
    auth: Auth,
    router: Router,
}

async fn app(via: Via) -> App {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = common::live_for(&kinde, via).build();
    let auth = Auth::new(verifier, live);
    let router = common::app(&auth, Arc::new(AtomicUsize::new(0)));
    App {
        kinde,
        auth,
        router,
    }
}

/// What the app answered, whole.
#[derive(Debug, PartialEq)]
struct Answered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn call(router: &Router, request: Request<Body>) -> Answered {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answered {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A request to `path` (GET, or POST for the strict handlers) with these raw header values.
fn request(path: &str, authorization: Option<&[u8]>, content_type: Option<&[u8]>) -> Request<Body> {
    let method = if matches!(path, "/payments" | "/fleet") {
        "POST"
    } else {
        "GET"
    };
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        builder = builder.header("authorization", HeaderValue::from_bytes(value).unwrap());
    }
    if let Some(value) = content_type {
        builder = builder.header("content-type", HeaderValue::from_bytes(value).unwrap());
    }
    builder.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Reading a Prometheus scrape
// ---------------------------------------------------------------------------------------------

/// One series: its metric name and labels (`quantile` left out: a summary's quantiles are one
/// series for cardinality's sake).
type Series = (String, Vec<(String, String)>);

/// Every `claimcheck_*` series of a scrape, with its value.
fn parse(scrape: &str) -> Vec<(Series, f64)> {
    let mut out = Vec::new();
    for line in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, rest) = series.split_once('{').unwrap_or((series, ""));
        if !name.starts_with("claimcheck_") {
            continue;
        }
        let mut labels = Vec::new();
        let mut chars = rest.trim_end_matches('}').chars().peekable();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.push(chars.next().unwrap_or('\\')),
                    '"' => break,
                    c => value.push(c),
                }
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            if key != "quantile" {
                labels.push((key, value));
            }
        }
        let name = name
            .trim_end_matches("_sum")
            .trim_end_matches("_count")
            .to_owned();
        out.push(((name, labels), value.parse().unwrap_or(f64::NAN)));
    }
    out
}

fn series(scrape: &str) -> BTreeSet<Series> {
    parse(scrape).into_iter().map(|(s, _)| s).collect()
}

/// The summed value of the series of `name` with all of `labels`.
fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse(scrape)
        .into_iter()
        .filter(|((n, l), _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Kinde's documented webhook types (the `event` label's known values).
const KNOWN_EVENTS: &[&str] = &[
    "access_request.created",
    "api.created",
    "api.deleted",
    "api.updated",
    "application.created",
    "application.deleted",
    "application.updated",
    "connection.created",
    "connection.deleted",
    "connection.updated",
    "customer.agreement_cancelled",
    "customer.invoice_overdue",
    "customer.meter_usage_updated",
    "customer.payment_failed",
    "customer.payment_succeeded",
    "customer.plan_assigned",
    "customer.plan_changed",
    "customer.plan_created",
    "organization.created",
    "organization.deleted",
    "organization.updated",
    "passkey.added",
    "passkey.removed",
    "permission.created",
    "permission.deleted",
    "permission.updated",
    "role.created",
    "role.deleted",
    "role.updated",
    "subscriber.created",
    "user.authenticated",
    "user.authentication_failed",
    "user.created",
    "user.deleted",
    "user.updated",
];

/// The label values `src/metrics.rs` documents, plus `requirements` (the app's own).
fn allowed(label: &str, value: &str, requirements: &[String]) -> bool {
    let fixed: &[&str] = match label {
        "outcome" => &["allow", "deny", "unavailable", "refused"],
        "provenance" => &["token", "live-cache", "live", "coalesced"],
        "requirement" => return requirements.iter().any(|r| r == value),
        // A configured issuer: here a FakeKinde's, `http://127.0.0.1:<port>` and nothing more
        // (a value a token chose, a path or a query, would not pass).
        "issuer" => {
            return value
                .strip_prefix("http://127.0.0.1:")
                .is_some_and(|port| port.parse::<u16>().is_ok());
        }
        "reason" => &[
            "missing_credentials",
            "invalid_request",
            "invalid_token",
            "expired_token",
            "locked_out",
            "unavailable",
        ],
        "claim" => &["iss", "aud", "kid", "alg"],
        "kind" => &["permissions", "roles", "feature_flags"],
        "result" => &[
            "hit",
            "miss",
            "coalesced",
            "applied",
            "ignored",
            "duplicate",
            "invalid",
            "unsupported_media_type",
            "unavailable",
            "log_unavailable",
        ],
        "endpoint" => &[
            "jwks",
            "discovery",
            "token",
            "account_permissions",
            "account_roles",
            "account_feature_flags",
            "management_permissions",
            "management_roles",
            "management_refresh_claims",
        ],
        "status" => &["2xx", "3xx", "4xx", "5xx", "error"],
        "event" => return value == "other" || value == "unknown" || KNOWN_EVENTS.contains(&value),
        _ => &[],
    };
    fixed.contains(&value)
}

/// The requirements `common::app` routes.
fn app_requirements() -> Vec<String> {
    [
        common::AUDIT,
        common::SETTLE,
        common::ADMIN,
        common::BETA,
        common::ACME,
        common::READ_REPORTS.into(),
        common::CREATE_PAYMENTS.into(),
        common::SYNC_FLEET.into(),
        common::APPROVE_REFUNDS.into(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Every label of every series is one the documentation allows.
fn assert_bounded_labels(scrape: &str, requirements: &[String]) {
    for ((name, labels), _) in parse(scrape) {
        for (label, value) in labels {
            assert!(
                allowed(&label, &value, requirements),
                "{name}{{{label}=\"{value}\"}}: not a documented label value\n{scrape}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cardinality: hostile callers
// ---------------------------------------------------------------------------------------------

/// Authorization header values a hostile caller could send, distinct for each `i`.
fn hostile_credentials(kinde: &FakeKinde, i: usize) -> Vec<Vec<u8>> {
    let user = format!("kp_hostile_{i}");
    let token = |builder: claimcheck::testing::TokenBuilder| bearer(&builder.sign());
    vec![
        // Signed by the issuer's key, but claims the caller picked.
        token(
            kinde
                .user_token(&user)
                .claim("iss", format!("https://evil-{i}.example")),
        ),
        token(
            kinde
                .user_token(&user)
                .audience(format!("https://aud-{i}.example")),
        ),
        token(kinde.user_token(&user).expires_in(-3600)),
        token(
            kinde
                .user_token(&user)
                .org_code(&format!("org_hostile_{i}")),
        ),
        // Keys, algorithms and signatures the issuer never had.
        token(
            kinde
                .user_token(&user)
                .header("kid", format!("kid-hostile-{i}")),
        ),
        token(kinde.user_token(&user).unsigned(&format!("ALG{i}"))),
        token(kinde.user_token(&user).unsigned("none")),
        token(kinde.user_token(&user).hs256(format!("secret-{i}"))),
        token(kinde.user_token(&user).forged()),
        token(kinde.user_token(&user).header("typ", format!("typ-{i}"))),
        // Not JWTs at all.
        bearer(&format!("{i}.{i}.{i}")),
        bearer(&format!("hostile-{i}-{}", "x".repeat(20_000 + i))),
        format!("Basic hostile{i}").into_bytes(),
        format!("Bearer  two-spaces-{i}").into_bytes(),
        b"Bearer".to_vec(),
        [b"Bearer tok\xff\xfe".as_slice(), i.to_string().as_bytes()].concat(),
    ]
}

/// Content types a hostile caller could send, distinct for each `i`.
fn hostile_content_types(i: usize) -> Vec<Option<Vec<u8>>> {
    vec![
        None,
        Some(b"application/grpc".to_vec()),
        Some(format!("APPLICATION/GRPC+proto{i}").into_bytes()),
        Some(b"application/grpc-web-text".to_vec()),
        Some(format!("application/grpcX{i}").into_bytes()),
        Some(format!("text/hostile-{i}").into_bytes()),
        Some(format!("application/grpc; {}", "p".repeat(8_000 + i)).into_bytes()),
        Some([b"application/grpc\xff".as_slice(), i.to_string().as_bytes()].concat()),
    ]
}

const PATHS: [&str; 6] = [
    "/reports",
    "/payments",
    "/audit/strict",
    "/acme",
    "/admin/strict",
    "/me",
];

/// Sends every hostile credential of round `i`, over every content type, to the app.
async fn hostile_round(app: &App, i: usize) {
    let types = hostile_content_types(i);
    for (n, credential) in hostile_credentials(&app.kinde, i).iter().enumerate() {
        for (m, content_type) in types.iter().enumerate() {
            let path = PATHS[(n + m + i) % PATHS.len()];
            let req = request(path, Some(credential), content_type.as_deref());
            let answered = call(&app.router, req).await;
            // Never a 500 (`/me` may well answer 200: some of these are validly signed).
            assert!(
                !answered.status.is_server_error()
                    || answered.status == StatusCode::SERVICE_UNAVAILABLE,
                "{path} {n} {m}: {answered:?}"
            );
            if answered.headers.contains_key("grpc-status") {
                assert_eq!(answered.status, StatusCode::OK, "{path} {n} {m}");
            }
        }
    }
}

#[test]
fn hostile_tokens_and_content_types_grow_no_series() {
    with_prometheus(|handle| async move {
        let app = app(Via::Account).await;
        // One round makes every series these requests can make.
        hostile_round(&app, 0).await;
        let before = series(&handle.render());
        for reason in ["missing_credentials", "invalid_token", "expired_token"] {
            assert!(
                value(
                    &handle.render(),
                    "claimcheck_authn_rejections_total",
                    &[("reason", reason)]
                ) >= 1.0,
                "{reason}"
            );
        }
        for i in 1..=12 {
            hostile_round(&app, i).await;
        }
        let scrape = handle.render();
        let after = series(&scrape);
        // Validly signed tokens (a hostile `org_code`) meet the routes' requirements in more
        // ways as rounds go: decision series may appear, within the fixed 16 per requirement.
        let new: Vec<_> = after
            .difference(&before)
            .filter(|(name, _)| name != "claimcheck_decisions_total")
            .collect();
        assert!(new.is_empty(), "new series: {new:?}\n{scrape}");
        let decisions = after
            .iter()
            .filter(|(name, _)| name == "claimcheck_decisions_total")
            .count();
        assert!(decisions <= 16 * app_requirements().len(), "{scrape}");
        // And what the rounds counted is what was sent: they were counted, not dropped.
        let rejected = value(&scrape, "claimcheck_authn_rejections_total", &[]);
        assert!(rejected >= 13.0 * 16.0 * 8.0 * 0.9, "{scrape}");
        for claim in ["iss", "aud", "kid", "alg"] {
            let counted = value(
                &scrape,
                "claimcheck_token_mismatches_total",
                &[("claim", claim)],
            );
            assert!(counted >= 13.0, "{claim}: {counted}\n{scrape}");
        }
        assert_bounded_labels(&scrape, &app_requirements());
        for secret in [
            "kp_hostile",
            "org_hostile",
            "evil-",
            "aud-",
            "kid-hostile",
            "ALG",
        ] {
            assert!(!scrape.contains(secret), "{secret} in\n{scrape}");
        }
    });
}

/// Webhook deliveries to `common::app`'s `/webhooks/kinde`, built for round `i`: signed events
/// of types nobody documented, unsigned or forged ones, wrong media types, oversized bodies.
async fn hostile_webhooks(app: &App, i: usize) {
    let deliver = |content_type: &str, id: Option<String>, body: Vec<u8>| {
        let mut builder = Request::builder()
            .method("POST")
            .uri("/webhooks/kinde")
            .header("content-type", content_type);
        if let Some(id) = id {
            builder = builder.header("webhook-id", id);
        }
        call(&app.router, builder.body(Body::from(body)).unwrap())
    };
    let data = json!({"user": {"id": format!("kp_hook_{i}")}, "organization": {"code": format!("org_hook_{i}")}});
    let signed = app
        .kinde
        .webhook(&format!("hostile.type-{i}"), data.clone());
    let id = Some(signed.webhook_id().to_owned());
    let jwt = signed.token().sign().into_bytes();
    let known = app.kinde.webhook("user.updated", data.clone());
    let known_jwt = known.token().sign().into_bytes();
    let forged = app
        .kinde
        .webhook(&format!("user.updated{i}"), data)
        .token()
        .forged()
        .sign()
        .into_bytes();
    let answers = [
        deliver("application/jwt", id.clone(), jwt.clone()),
        // The same event again: a duplicate.
        deliver("application/jwt", id.clone(), jwt.clone()),
        deliver(
            "application/jwt",
            Some(known.webhook_id().to_owned()),
            known_jwt,
        ),
        deliver("application/jwt", id.clone(), forged),
        deliver(
            "application/jwt",
            id.clone(),
            format!("garbage-{i}").into_bytes(),
        ),
        deliver("application/jwt", None, jwt.clone()),
        deliver(&format!("text/hostile-{i}"), id.clone(), jwt.clone()),
        deliver("application/jwt", id.clone(), vec![b'a'; 70_000 + i]),
        deliver("application/jwt", id, vec![0xff, 0xfe, i as u8]),
    ];
    for answer in answers {
        let answered = answer.await;
        assert!(
            [200, 400, 413, 415].contains(&answered.status.as_u16()),
            "{answered:?}"
        );
    }
}

#[test]
fn hostile_webhooks_grow_no_series() {
    with_prometheus(|handle| async move {
        let app = app(Via::Account).await;
        hostile_webhooks(&app, 0).await;
        let before = series(&handle.render());
        for i in 1..=15 {
            hostile_webhooks(&app, i).await;
        }
        let scrape = handle.render();
        let new: Vec<_> = series(&scrape).difference(&before).cloned().collect();
        assert!(new.is_empty(), "new series: {new:?}\n{scrape}");
        let other = value(&scrape, "claimcheck_webhooks_total", &[("event", "other")]);
        assert!(other >= 16.0, "{scrape}");
        let unknown = value(
            &scrape,
            "claimcheck_webhooks_total",
            &[("event", "unknown")],
        );
        assert!(unknown >= 16.0 * 4.0, "{scrape}");
        assert_bounded_labels(&scrape, &app_requirements());
        for secret in ["kp_hook", "org_hook", "hostile", "event_", "msg_"] {
            assert!(!scrape.contains(secret), "{secret} in\n{scrape}");
        }
    });
}

/// The Management API's paths carry user ids, and its token endpoint a client id: the upstream
/// metrics name the endpoint, never the URL.
#[test]
fn management_api_paths_with_user_ids_stay_out_of_labels() {
    with_prometheus(|handle| async move {
        let app = app(Via::Management).await;
        let mut users = Vec::new();
        for i in 0..6 {
            let user = format!("kp_mgmt_secret_{i}");
            app.kinde.grant(DEFAULT_ORG, &user, "create:payments");
            let token = app
                .kinde
                .user_token(&user)
                .permissions(["create:payments"])
                .sign();
            for path in ["/payments", "/admin/strict", "/beta/strict"] {
                let answered = call(&app.router, request(path, Some(&bearer(&token)), None)).await;
                assert!(
                    [200, 403].contains(&answered.status.as_u16()),
                    "{path} {answered:?}"
                );
            }
            users.push((user, token));
        }
        // An upstream that fails with a URL in its error: still only a status class.
        app.kinde.set_fault(
            Endpoint::ManagementPermissions,
            Fault::Redirect(format!(
                "{}/users/kp_mgmt_secret_redirect",
                app.kinde.issuer()
            )),
        );
        let token = app.kinde.user_token("kp_mgmt_secret_x").sign();
        let answered = call(
            &app.router,
            request("/payments", Some(&bearer(&token)), None),
        )
        .await;
        assert_eq!(answered.status, StatusCode::SERVICE_UNAVAILABLE);

        let scrape = handle.render();
        let calls = value(
            &scrape,
            "claimcheck_upstream_requests_total",
            &[("endpoint", "management_permissions")],
        );
        assert!(calls >= 7.0, "{scrape}");
        assert!(
            value(
                &scrape,
                "claimcheck_upstream_requests_total",
                &[("status", "3xx")]
            ) >= 1.0,
            "{scrape}"
        );
        assert_bounded_labels(&scrape, &app_requirements());
        assert!(!scrape.contains("kp_mgmt"), "{scrape}");
        assert!(!scrape.contains(DEFAULT_ORG), "{scrape}");
        // The issuer is only the key gauge's label (a configured value), never in a URL.
        let issuer = app.kinde.issuer();
        for line in scrape.lines().filter(|line| line.contains(issuer)) {
            let gauge = format!("claimcheck_jwks_keys{{issuer=\"{issuer}\"}} ");
            assert!(line.starts_with(&gauge), "{line}");
        }
        assert!(!scrape.contains("/api/v1"), "{scrape}");
        for (_, token) in &users {
            assert!(!scrape.contains(&token[token.len() - 20..]), "{scrape}");
        }
    });
}

/// `authz` documents `check` for "requirements that depend on the request itself (its body,
/// its path)", and `Requirement::try_org` / `try_role` / `try_flag` / `Permission::new` take
/// "run-time input". The decision counter is labelled with the requirement's `Display`, so an
/// app checking the organization its path names puts whatever a caller writes in the path into
/// a label: one new series (16 keys built, too) per distinct value.
#[test]
fn path_scoped_requirements_do_not_grow_decision_series() {
    with_prometheus(|handle| async move {
        let kinde = FakeKinde::start().await;
        let verifier = common::warm_verifier(&kinde).await;
        let auth = Auth::new(verifier, common::live_for(&kinde, Via::Account).build());
        let scoped = {
            let auth = auth.clone();
            move |Path(org): Path<String>, claims: Claims| {
                let auth = auth.clone();
                async move {
                    let Ok(requirement) = Requirement::try_org(org) else {
                        return Err(StatusCode::BAD_REQUEST.into_response());
                    };
                    auth.token_trusted(requirement)
                        .check(&claims)
                        .await
                        .map(|decision: Decision| (decision, "reports"))
                        .map_err(Rejection::into_response)
                }
            }
        };
        let router = Router::new()
            .route("/orgs/{org}/reports", get(scoped))
            .layer(auth.layer());
        let token = kinde.user_token("kp_scoped").sign();
        let base = series(&handle.render()).len();
        for i in 0..40 {
            let req = request(
                &format!("/orgs/org_chosen_by_caller_{i}/reports"),
                Some(&bearer(&token)),
                None,
            );
            assert_eq!(call(&router, req).await.status, StatusCode::FORBIDDEN);
        }
        let scrape = handle.render();
        assert!(
            !scrape.contains("org_chosen_by_caller"),
            "caller input in labels:\n{scrape}"
        );
        assert!(series(&scrape).len() <= base + 16, "{scrape}");
    });
}

// ---------------------------------------------------------------------------------------------
// gRPC rendering
// ---------------------------------------------------------------------------------------------

/// `grpc-message` is printable ASCII (percent-encoded), and tonic reads the same status back.
fn assert_grpc_rejection(answered: &Answered, what: &str) {
    assert_eq!(answered.status, StatusCode::OK, "{what}: {answered:?}");
    assert_eq!(
        answered.headers["content-type"], "application/grpc",
        "{what}"
    );
    assert!(answered.body.is_empty(), "{what}");
    assert!(answered.headers.get("www-authenticate").is_none(), "{what}");
    let code: i32 = answered.headers["grpc-status"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!([7, 13, 14, 16].contains(&code), "{what}: {code}");
    let message = answered.headers["grpc-message"].as_bytes();
    assert!(
        message.iter().all(|b| (0x20..=0x7e).contains(b)),
        "{what}: {message:?}"
    );
    let status = tonic::Status::from_header_map(&answered.headers).unwrap();
    assert_eq!(i32::from(status.code()), code, "{what}");
}

/// `answered` without what differs between two identical requests to a strict route (the
/// second is answered from the live cache, a millisecond older).
fn without_timing(mut answered: Answered) -> Answered {
    answered.headers.remove("x-decision-source");
    answered.headers.remove("x-decision-age-ms");
    answered
}

/// Hostile content types on rejections: gRPC ones get a well-formed trailers-only answer, the
/// rest the HTTP answer byte for byte as a request without a content type gets it; never a 500.
#[test]
fn content_type_tricks_never_break_a_rejection() {
    runtime().block_on(async {
        let app = app(Via::Account).await;
        let nobody = app.kinde.user_token("kp_ct_nobody").sign();
        let expired = app.kinde.user_token("kp_ct").expires_in(-600).sign();
        let credentials: Vec<Option<Vec<u8>>> = vec![
            None,
            Some(bearer("not-a-jwt")),
            Some(bearer(&expired)),
            Some(bearer(&nobody)),
            Some(b"Basic abc".to_vec()),
        ];
        let grpc: Vec<Vec<u8>> = vec![
            b"application/grpc".to_vec(),
            b"application/grpc+proto".to_vec(),
            b"APPLICATION/GRPC+JSON".to_vec(),
            b"Application/Grpc-Web".to_vec(),
            b"application/grpc-web-text+proto".to_vec(),
            b"application/grpc;charset=utf-8".to_vec(),
            [b"application/grpc+".as_slice(), &[b'x'; 60_000]].concat(),
            b"application/grpc+\xff\xfe".to_vec(),
        ];
        let http: Vec<Vec<u8>> = vec![
            b"application/json".to_vec(),
            b"application/gr".to_vec(),
            b"text/grpc".to_vec(),
            b"grpc".to_vec(),
            b"".to_vec(),
            b"application/json; x=application/grpc".to_vec(),
            // Not gRPC: only `+codec`, parameters or `-web` may follow `application/grpc`.
            b"application/grpc\xff\xfe".to_vec(),
            [b"text/plain;".as_slice(), &[b'x'; 60_000]].concat(),
            b"\xffapplication/grpc".to_vec(),
        ];
        for path in ["/reports", "/audit", "/admin/strict", "/payments"] {
            for credential in &credentials {
                let plain = call(&app.router, request(path, credential.as_deref(), None)).await;
                assert!(plain.status.is_client_error(), "{path}: {plain:?}");
                for content_type in &grpc {
                    let what = format!("{path} {:?}", String::from_utf8_lossy(content_type));
                    let req = request(path, credential.as_deref(), Some(content_type));
                    assert_grpc_rejection(&call(&app.router, req).await, &what);
                }
                for content_type in &http {
                    let req = request(path, credential.as_deref(), Some(content_type));
                    let answered = call(&app.router, req).await;
                    assert_eq!(
                        without_timing(answered),
                        without_timing(
                            call(&app.router, request(path, credential.as_deref(), None)).await
                        ),
                        "{path} {content_type:?}"
                    );
                }
            }
        }
        // Two content types: the first one decides, and nothing breaks either way.
        for (first, second, grpc) in [
            ("application/json", "application/grpc", false),
            ("application/grpc", "application/json", true),
        ] {
            let req = Request::get("/reports")
                .header("content-type", first)
                .header("content-type", second)
                .body(Body::empty())
                .unwrap();
            let answered = call(&app.router, req).await;
            if grpc {
                assert_grpc_rejection(&answered, "two content types");
            } else {
                assert_eq!(answered.status, StatusCode::UNAUTHORIZED);
            }
        }
    });
}

/// A gRPC call that is allowed reaches the handler untouched: the same answer as over HTTP,
/// no `grpc-status` added by the layers.
#[test]
fn allowed_grpc_calls_are_untouched() {
    runtime().block_on(async {
        let app = app(Via::Account).await;
        let reader = app
            .kinde
            .user_token("kp_grpc_ok")
            .permissions(["read:reports", "read:audit"])
            .org_code("org_acme")
            .sign();
        for path in ["/reports", "/audit", "/acme"] {
            let plain = call(&app.router, request(path, Some(&bearer(&reader)), None)).await;
            assert_eq!(plain.status, StatusCode::OK, "{path}");
            let grpc = call(
                &app.router,
                request(path, Some(&bearer(&reader)), Some(b"application/grpc")),
            )
            .await;
            assert_eq!(grpc, plain, "{path}");
            assert!(grpc.headers.get("grpc-status").is_none());
        }
    });
}

/// `application/grpcfoo` is not a gRPC content type (the protocol allows `application/grpc`
/// then nothing, `+format`, or gRPC-Web's `-web…`; `;` parameters in practice): a REST
/// client that sends it must get its 401, not a 200 with an empty body.
#[test]
fn lookalike_content_types_are_answered_over_http() {
    runtime().block_on(async {
        let app = app(Via::Account).await;
        for content_type in [
            "application/grpcfoo",
            "application/grpc2",
            "application/grpcx+proto",
        ] {
            let req = request("/reports", None, Some(content_type.as_bytes()));
            let answered = call(&app.router, req).await;
            assert_eq!(
                answered.status,
                StatusCode::UNAUTHORIZED,
                "{content_type}: {answered:?}"
            );
        }
    });
}

/// What could end up in `grpc-message` (a requirement's text) cannot carry line breaks,
/// `%`, or non-ASCII: run-time keys are refused; the composite texts round-trip through tonic.
#[test]
fn grpc_message_cannot_be_injected_through_requirements() {
    for hostile in [
        "read:x\r\ngrpc-status: 0",
        "read%0A",
        "caf\u{e9}",
        "a b",
        "",
        &"x".repeat(129),
    ] {
        assert!(Permission::new(hostile).is_err(), "{hostile:?}");
        assert!(Requirement::try_role(hostile).is_err(), "{hostile:?}");
        assert!(Requirement::try_org(hostile).is_err(), "{hostile:?}");
        assert!(Requirement::try_flag(hostile).is_err(), "{hostile:?}");
    }
    runtime().block_on(async {
        let app = app(Via::Account).await;
        let nobody = app.kinde.user_token("kp_grpc_msg").sign();
        for (path, requirement) in [
            ("/audit", common::AUDIT.to_string()),
            ("/settle", common::SETTLE.to_string()),
            ("/acme", common::ACME.to_string()),
        ] {
            let req = request(path, Some(&bearer(&nobody)), Some(b"application/grpc"));
            let answered = call(&app.router, req).await;
            assert_grpc_rejection(&answered, path);
            let status = tonic::Status::from_header_map(&answered.headers).unwrap();
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            assert!(
                status.message().ends_with(&format!(": {requirement}")),
                "{}",
                status.message()
            );
        }
    });
}

/// Unavailable over gRPC (strict route, upstream failing; issuer keys gone): `UNAVAILABLE`,
/// never `INTERNAL`, and the HTTP answer keeps its 503 + `Retry-After`.
#[test]
fn unavailable_rejections_over_grpc_are_unavailable() {
    runtime().block_on(async {
        let app = app(Via::Account).await;
        app.kinde
            .set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
        let token = app.kinde.user_token("kp_grpc_down").sign();
        let grpc = call(
            &app.router,
            request(
                "/payments",
                Some(&bearer(&token)),
                Some(b"application/grpc"),
            ),
        )
        .await;
        assert_grpc_rejection(&grpc, "strict, upstream down");
        assert_eq!(grpc.headers["grpc-status"], "14");
        let http = call(
            &app.router,
            request("/payments", Some(&bearer(&token)), None),
        )
        .await;
        assert_eq!(http.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(http.headers.contains_key("retry-after"));
    });
}

// ---------------------------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------------------------

/// Every span and event, whatever its level or target, with every field as text; and which
/// spans are still open.
#[derive(Clone, Default)]
struct Everything {
    texts: Arc<Mutex<Vec<String>>>,
    open: Arc<Mutex<BTreeMap<u64, &'static str>>>,
    opened: Arc<Mutex<Vec<&'static str>>>,
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Everything {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let mut text = format!("span {} {}", metadata.target(), metadata.name());
        attrs.record(&mut Text(&mut text));
        self.texts.lock().unwrap().push(text);
        self.open
            .lock()
            .unwrap()
            .insert(id.into_u64(), metadata.name());
        self.opened.lock().unwrap().push(metadata.name());
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut text = format!("record {}", id.into_u64());
        values.record(&mut Text(&mut text));
        self.texts.lock().unwrap().push(text);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if metadata.target().starts_with("claimcheck::testing") {
            return; // the fake's own log, not the library's
        }
        let mut text = format!("event {}", metadata.target());
        event.record(&mut Text(&mut text));
        self.texts.lock().unwrap().push(text);
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        self.open.lock().unwrap().remove(&id.into_u64());
    }
}

impl Everything {
    fn open_claimcheck_spans(&self) -> Vec<&'static str> {
        let open = self.open.lock().unwrap();
        open.values()
            .filter(|name| name.starts_with("claimcheck."))
            .copied()
            .collect()
    }
}

/// No span or event field carries a token or its Authorization header, whatever the token:
/// valid, malformed, mis-issued, forged, huge, with a key the issuer never had.
#[test]
fn no_token_in_any_span_or_event() {
    let everything = Everything::default();
    let subscriber = tracing_subscriber::registry().with(everything.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    runtime().block_on(async {
        let app = app(Via::Account).await;
        app.kinde
            .grant(DEFAULT_ORG, "kp_span_valid", "create:payments");
        let valid = app
            .kinde
            .user_token("kp_span_valid")
            .permissions(["read:reports", "create:payments"])
            .sign();
        let mut sent: Vec<Vec<u8>> = vec![bearer(&valid)];
        sent.extend(hostile_credentials(&app.kinde, 7));
        for credential in &sent {
            for path in ["/reports", "/payments", "/audit/strict"] {
                for content_type in [None, Some(b"application/grpc".as_slice())] {
                    let req = request(path, Some(credential), content_type);
                    let answered = call(&app.router, req).await;
                    assert_ne!(answered.status, StatusCode::INTERNAL_SERVER_ERROR);
                }
            }
        }
        let texts = everything.texts.lock().unwrap().join("\n");
        assert!(texts.contains("claimcheck.authenticate"), "{texts}");
        assert!(texts.contains("claimcheck.authorize"), "{texts}");
        assert!(texts.contains("invalid_token"), "{texts}");
        for credential in &sent {
            let header = String::from_utf8_lossy(credential);
            let token = header
                .trim_start_matches("Bearer ")
                .trim_start_matches("Basic ");
            assert!(!texts.contains(header.as_ref()), "{header:.60} logged");
            // Any long segment of it: the signature, the payload, the header.
            for segment in token.split('.').filter(|s| s.len() >= 24) {
                assert!(
                    !texts.contains(&segment[..24]),
                    "a segment of {token:.60} is logged:\n{texts:.3000}"
                );
            }
        }
        assert!(!texts.contains("Bearer "), "{texts:.3000}");
    });
}

/// A client that hangs up while a strict decision waits for its live lookup: the request's
/// future is dropped, and every claimcheck span closes with it (none lingers in the upstream
/// call's task).
#[test]
fn spans_close_when_the_caller_hangs_up_mid_lookup() {
    let everything = Everything::default();
    let subscriber = tracing_subscriber::registry().with(everything.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    runtime().block_on(async {
        let app = app(Via::Account).await;
        app.kinde
            .set_fault(Endpoint::AccountPermissions, Fault::Hang);
        let token = app.kinde.user_token("kp_hangup").sign();
        // Through the route layer, and through a handler's own check.
        for (path, body) in [
            ("/payments", None),
            ("/refunds", Some(r#"{"amount":5000}"#)),
        ] {
            let mut req = request(path, Some(&bearer(&token)), None);
            if let Some(body) = body {
                *req.method_mut() = http::Method::POST;
                req.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                *req.body_mut() = Body::from(body);
            }
            let pending = app.router.clone().oneshot(req);
            let waited = tokio::time::timeout(Duration::from_millis(100), pending).await;
            assert!(waited.is_err(), "{path}: answered while the upstream hangs");
            // Dropped: the caller is gone.
            let opened = everything.opened.lock().unwrap().clone();
            assert!(opened.contains(&"claimcheck.authorize"), "{opened:?}");
            let open = everything.open_claimcheck_spans();
            assert!(
                open.is_empty(),
                "{path}: still open after hang-up: {open:?}"
            );
        }
        assert_eq!(app.kinde.calls(Endpoint::AccountPermissions), 1);
    });
}

/// With `claimcheck::authz` at `warn` (its debug span off), an `unavailable` decision still
/// warns, and records its fields on whatever span is current: the application's own request
/// span, if it declared a field of the same name.
#[test]
fn a_filtered_authorize_span_leaves_the_apps_span_alone() {
    use tracing_subscriber::filter::{LevelFilter, Targets};

    let everything = Everything::default();
    let filter = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("claimcheck::authz", LevelFilter::WARN);
    let subscriber = tracing_subscriber::registry().with(everything.clone().with_filter(filter));
    let _guard = tracing::subscriber::set_default(subscriber);
    runtime().block_on(async {
        let app = app(Via::Account).await;
        app.kinde
            .set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
        let token = app.kinde.user_token("kp_app_span").sign();
        let request_span = tracing::info_span!(
            target: "app",
            "request",
            decision = tracing::field::Empty,
            subject = tracing::field::Empty,
        );
        let answered = {
            let _entered = request_span.enter();
            let pending =
                app.router
                    .clone()
                    .oneshot(request("/payments", Some(&bearer(&token)), None));
            // Entered across the await, as `Instrument` would on every poll.
            pending.await.unwrap()
        };
        assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
        let records: Vec<String> = everything
            .texts
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.starts_with("record"))
            .cloned()
            .collect();
        let app_span = format!("record {} ", request_span.id().unwrap().into_u64());
        assert!(
            records
                .iter()
                .all(|r| !r.starts_with(&app_span) || !r.contains("kp_app_span")),
            "the app's span got claimcheck's fields: {records:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Operator mistakes
// ---------------------------------------------------------------------------------------------

/// The recorder is installed after the `Auth` and its layers were built (decision keys are
/// made at layer build): every counter still moves.
#[test]
fn a_recorder_installed_after_the_layers_still_counts() {
    let runtime = runtime();
    let app = runtime.block_on(app(Via::Account));
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            claimcheck::metrics::describe();
            let reader = app
                .kinde
                .user_token("kp_late")
                .permissions(["read:reports"])
                .sign();
            app.kinde.grant(DEFAULT_ORG, "kp_late", "create:payments");
            let nobody = app.kinde.user_token("kp_late_nobody").sign();
            for (path, token, status) in [
                ("/reports", Some(reader.as_str()), 200),
                ("/reports", Some(nobody.as_str()), 403),
                ("/reports", None, 401),
                ("/payments", Some(reader.as_str()), 200),
            ] {
                let credential = token.map(bearer);
                let answered = call(&app.router, request(path, credential.as_deref(), None)).await;
                assert_eq!(answered.status.as_u16(), status, "{path}");
            }
        });
    });
    let scrape = handle.render();
    let decisions = |outcome, provenance, requirement| {
        let labels = [
            ("outcome", outcome),
            ("provenance", provenance),
            ("requirement", requirement),
        ];
        value(&scrape, "claimcheck_decisions_total", &labels)
    };
    assert_eq!(decisions("allow", "token", "read:reports"), 1.0, "{scrape}");
    assert_eq!(decisions("deny", "token", "read:reports"), 1.0, "{scrape}");
    assert_eq!(
        decisions("allow", "live", "create:payments"),
        1.0,
        "{scrape}"
    );
    let missing = [("reason", "missing_credentials")];
    assert_eq!(
        value(&scrape, "claimcheck_authn_rejections_total", &missing),
        1.0
    );
    let miss = [("kind", "permissions"), ("result", "miss")];
    assert_eq!(value(&scrape, "claimcheck_live_lookups_total", &miss), 1.0);
    // Records made before the recorder existed are gone, not replayed: the warm-up's JWKS
    // fetch is not in this scrape.
    assert_eq!(
        value(
            &scrape,
            "claimcheck_upstream_requests_total",
            &[("endpoint", "jwks")]
        ),
        0.0,
        "{scrape}"
    );
}

/// `describe()` with no recorder is a no-op; called twice (two libraries, a restart of a
/// component) it does not duplicate help text or break the exposition.
#[test]
fn describe_without_a_recorder_and_twice_is_harmless() {
    claimcheck::metrics::describe();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        claimcheck::metrics::describe();
        claimcheck::metrics::describe();
        runtime().block_on(async {
            let app = app(Via::Account).await;
            let answered = call(&app.router, request("/reports", None, None)).await;
            assert_eq!(answered.status, StatusCode::UNAUTHORIZED);
        });
    });
    let scrape = handle.render();
    for name in [
        "claimcheck_authn_rejections_total",
        "claimcheck_upstream_requests_total",
        "claimcheck_jwks_keys",
    ] {
        let help = format!("# HELP {name} ");
        assert_eq!(scrape.matches(&help).count(), 1, "{name}\n{scrape}");
        let kind = format!("# TYPE {name} ");
        assert_eq!(scrape.matches(&kind).count(), 1, "{name}\n{scrape}");
    }
    assert!(scrape.contains(
        "# HELP claimcheck_authn_rejections_total Requests the authentication layer refused"
    ));
}

/// A global recorder installed once the app runs, on a multi-threaded runtime: the decision
/// counter of a layer built before it moves, from whichever worker decides.
#[test]
fn a_global_recorder_installed_late_counts_from_every_worker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let probe = Requirement::permission("global:probe");
    let (app, router, token) = runtime.block_on(async {
        let app = app(Via::Account).await;
        let router = Router::new()
            .route(
                "/probe",
                get((|| async { "ok" }).layer(app.auth.token_trusted(probe.clone()))),
            )
            .layer(app.auth.layer());
        let token = app
            .kinde
            .user_token("kp_global")
            .permissions(["global:probe"])
            .sign();
        (app, router, token)
    });
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only global recorder of this binary");
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (router, token) = (router.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                call(&router, request("/probe", Some(&bearer(&token)), None))
                    .await
                    .status
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
    });
    let scrape = handle.render();
    let labels = [("outcome", "allow"), ("requirement", "global:probe")];
    assert_eq!(
        value(&scrape, "claimcheck_decisions_total", &labels),
        20.0,
        "{scrape}"
    );
    drop(app);
}

/// Two `LiveCheck`s in one process (two `Auth`s: two Kinde businesses, or a Management and an
/// Account source): both pause, one recovers. `claimcheck_live_source_paused{kind}` is one
/// series they both `set`, so the recovery writes 0 while the other's strict routes answer
/// 503 — the alert on it clears during an outage.
#[test]
fn the_paused_gauge_stays_up_while_any_source_is_paused() {
    with_prometheus(|handle| async move {
        let pause = Duration::from_millis(30);
        let mut parts = Vec::new();
        for user in ["kp_first", "kp_second"] {
            let kinde = FakeKinde::start().await;
            let verifier = common::warm_verifier(&kinde).await;
            let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap())
                .time_to_live(Duration::ZERO)
                .backoff(Backoff {
                    after_failures: 1,
                    first_pause: pause,
                    max_pause: pause,
                })
                .build();
            let token = kinde.login(user).access_token;
            let claims = verifier.verify(&token).await.unwrap();
            let query = PermissionQuery::from_claims(&claims).unwrap();
            kinde.set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
            assert!(live.lookup(&query).await.is_err());
            parts.push((kinde, live, query));
        }
        let paused = || {
            value(
                &handle.render(),
                "claimcheck_live_source_paused",
                &[("kind", "permissions")],
            )
        };
        assert!(paused() >= 1.0);
        // The second recovers; the first fails its probe and is paused again.
        parts[1].0.clear_fault(Endpoint::AccountPermissions);
        tokio::time::sleep(pause * 2).await;
        let (first, second) = (&parts[0], &parts[1]);
        assert!(first.1.lookup(&first.2).await.is_err());
        assert!(second.1.lookup(&second.2).await.is_ok());
        // The first is paused: it does not even ask.
        let asked = first.0.calls(Endpoint::AccountPermissions);
        assert!(first.1.lookup(&first.2).await.is_err());
        assert_eq!(first.0.calls(Endpoint::AccountPermissions), asked);
        assert!(
            paused() >= 1.0,
            "a source is paused, the gauge says {}",
            paused()
        );
    });
}
