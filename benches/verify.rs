//! What claimcheck costs per request, as ratios within one run (`scripts/bench-summary` prints
//! them). Every group drives an axum `Router` in process with `tower::ServiceExt::oneshot` and
//! a prebuilt request, on one current-thread runtime, against a FakeKinde on loopback:
//!
//! - `bare`: the same request through a router without middleware (the floor);
//! - `verify_raw`: `jsonwebtoken::decode` RS256 with a prebuilt key (the crypto limit);
//! - `token_trusted_first_seen`: the verified-token cache is off, so every request verifies;
//! - `token_trusted_repeat`: the same token again (verified-token cache hit);
//! - `verify_raw_es256` / `token_trusted_first_seen_es256` and `verify_raw_eddsa` /
//!   `token_trusted_first_seen_eddsa`: the raw decode and the first sight of an ES256 (P-256)
//!   and an EdDSA (Ed25519) token, the verifier allowing RS256, ES256 and EdDSA;
//! - `token_trusted_repeat_watermarked`: the same, with 10 000 user watermarks held;
//! - `strict_hit`: a strict route, live permissions cached;
//! - `strict_miss`: a strict route whose live cache is off: one Management API call per request;
//! - `loopback_get`: that Management API call alone, with reqwest (the floor of `strict_miss`);
//! - `peer`: the route behind tower-oauth2-resource-server 0.12 (static JWKS, aws-lc-rs).
//!
//! The setup also checks that 1000 concurrent cold strict requests of one user make exactly one
//! upstream call.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

mod common;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::{get, post};
use claimcheck::jwt::Algorithm;
use claimcheck::live::{KindeManagementApi, LiveCheck};
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, KeyType};
use claimcheck::{Auth, Permission, Verifier};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_oauth2_resource_server::server::OAuth2ResourceServer;
use tower_oauth2_resource_server::tenant::TenantConfiguration;

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");

fn request(method: &str, path: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// Measures `router` answering `method path` with `token`, asserting a 200.
fn bench_route(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    router: &Router,
    route: (&str, &str, &str),
) {
    let (method, path, token) = route;
    c.bench_function(name, |b| {
        b.to_async(rt).iter(|| async {
            let res = router
                .clone()
                .oneshot(request(method, path, token))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        })
    });
}

fn handler() -> impl Handler<((),), ()> {
    || async { "q1, q2" }
}

/// A router with a token-trusted `GET /reports` and a strict `POST /payments`.
fn protected(auth: &Auth) -> Router {
    Router::new()
        .route(
            "/reports",
            get(handler().layer(auth.token_trusted(READ_REPORTS))),
        )
        .route(
            "/payments",
            post(handler().layer(auth.strict(CREATE_PAYMENTS))),
        )
        .layer(auth.layer())
}

fn verifier(rt: &Runtime, kinde: &FakeKinde, cache: bool) -> Verifier {
    let mut builder = Verifier::builder(kinde.issuer()).audience(kinde.audience());
    if !cache {
        builder = builder.token_cache_max_bytes(0);
    }
    let verifier = builder.build().unwrap();
    assert!(rt.block_on(verifier.warm_up()));
    verifier
}

fn live(kinde: &FakeKinde, ttl: Duration) -> (LiveCheck, KindeManagementApi) {
    let (id, secret) = kinde.register_management_client();
    let source = KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();
    let check = LiveCheck::builder(source.clone()).time_to_live(ttl).build();
    (check, source)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kinde = rt.block_on(FakeKinde::start());
    kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();
    let hour = Duration::from_secs(3600);
    let auth = Auth::new(verifier(&rt, &kinde, true), live(&kinde, hour).0);
    let app = protected(&auth);

    let bare: Router = Router::new().route("/reports", get(handler()));
    bench_route(c, &rt, "bare", &bare, ("GET", "/reports", &token));

    let (key, validation) = common::raw_decoder(&kinde);
    c.bench_function("verify_raw", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation).unwrap()
        })
    });

    let uncached = Auth::new(verifier(&rt, &kinde, false), live(&kinde, hour).0);
    let first_seen = protected(&uncached);
    let reports = ("GET", "/reports", token.as_str());
    bench_route(c, &rt, "token_trusted_first_seen", &first_seen, reports);
    bench_route(c, &rt, "token_trusted_repeat", &app, reports);
    other_algorithms(c, &rt, &kinde);

    // 10 000 other users changed: the freshness check becomes one cache lookup.
    let watermarked = Auth::new(verifier(&rt, &kinde, true), live(&kinde, hour).0);
    for i in 0..10_000 {
        let user = format!("kp_other_{i}");
        watermarked.freshness().mark_user(&user, SystemTime::now());
    }
    let watermarked_app = protected(&watermarked);
    bench_route(
        c,
        &rt,
        "token_trusted_repeat_watermarked",
        &watermarked_app,
        reports,
    );

    // 1000 concurrent cold requests of one user (each with its own token): one upstream call.
    let tokens: Vec<String> = (0..1000).map(|_| kinde.user_token("kp_1").sign()).collect();
    kinde.reset_calls();
    rt.block_on(async {
        let burst = tokens
            .iter()
            .map(|t| app.clone().oneshot(request("POST", "/payments", t)));
        for res in futures_util::future::join_all(burst).await {
            assert_eq!(res.unwrap().status(), 200);
        }
    });
    let upstream = kinde.calls(Endpoint::ManagementPermissions);
    assert_eq!(
        upstream, 1,
        "1000 cold strict requests made {upstream} upstream calls"
    );
    println!("strict, 1000 concurrent cold requests of one user: {upstream} upstream call");
    let payments = ("POST", "/payments", token.as_str());
    bench_route(c, &rt, "strict_hit", &app, payments);

    let (no_cache, source) = live(&kinde, Duration::ZERO);
    let missing = protected(&Auth::new(verifier(&rt, &kinde, true), no_cache));
    bench_route(c, &rt, "strict_miss", &missing, payments);
    c.bench_function("loopback_get", |b| {
        b.to_async(&rt).iter(|| async {
            let set = source.user_permissions(DEFAULT_ORG, "kp_1").await.unwrap();
            assert!(set.contains("create:payments"));
        })
    });

    let jwks = serde_json::json!({ "keys": [kinde.current_jwk()] }).to_string();
    let tenant = TenantConfiguration::static_builder(jwks)
        .identifier(kinde.issuer())
        .audiences(&[kinde.audience()])
        .build()
        .unwrap();
    let server = rt.block_on(<OAuth2ResourceServer>::builder().add_tenant(tenant).build());
    let peer: Router = Router::new()
        .route("/reports", get(handler()))
        .layer(server.unwrap().into_layer());
    bench_route(c, &rt, "peer", &peer, reports);
}

/// First sight of ES256 and EdDSA tokens, each against its raw `jsonwebtoken::decode`.
fn other_algorithms(c: &mut Criterion, rt: &Runtime, kinde: &FakeKinde) {
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
        .token_cache_max_bytes(0)
        .build()
        .unwrap();
    let kids = [
        (
            "es256",
            kinde.add_signing_key(KeyType::Es256),
            jsonwebtoken::Algorithm::ES256,
        ),
        (
            "eddsa",
            kinde.add_signing_key(KeyType::EdDsa),
            jsonwebtoken::Algorithm::EdDSA,
        ),
    ];
    assert!(rt.block_on(verifier.warm_up()));
    let uncached = protected(&Auth::new(
        verifier,
        live(kinde, Duration::from_secs(3600)).0,
    ));
    for (name, kid, alg) in kids {
        let token = kinde
            .user_token("kp_1")
            .permissions(["read:reports"])
            .signed_with(&kid)
            .sign();
        let (key, validation) = common::raw_decoder_of(kinde, &kid, alg);
        c.bench_function(&format!("verify_raw_{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                    .unwrap()
            })
        });
        let route = ("GET", "/reports", token.as_str());
        let group = format!("token_trusted_first_seen_{name}");
        bench_route(c, rt, &group, &uncached, route);
    }
}

criterion_group!(verify, benches);
criterion_main!(verify);
