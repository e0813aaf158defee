//! Authorization costs, as ratios within one run: the bare router is the floor, a raw
//! `jsonwebtoken::decode` RS256 the crypto limit, the token-trusted route the baseline of a
//! strict route's cache hit. The setup also checks that 1000 concurrent cold strict requests of
//! one user make exactly one upstream call.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::{get, post};
use claimcheck::live::{KindeManagementApi, LiveCheck};
use claimcheck::testing::FakeKinde;
use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use claimcheck::{Auth, Permission, Verifier};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{DecodingKey, Validation};
use tower::ServiceExt;

const READ_REPORTS: Permission = Permission::from_static("read:reports");
const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");

fn request(token: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/reports");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
}

fn payment(token: &str) -> Request<Body> {
    Request::post("/payments")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kinde = rt.block_on(FakeKinde::start());
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    assert!(rt.block_on(verifier.warm_up()));
    let (id, secret) = kinde.register_management_client();
    let source = KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();
    let live = LiveCheck::builder(source)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let auth = Auth::new(verifier, live.clone());
    kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let handler = || async { "q1, q2" };
    let bare: Router = Router::new().route("/reports", get(handler));
    let protected: Router = Router::new()
        .route(
            "/reports",
            get(handler.layer(auth.token_trusted(READ_REPORTS))),
        )
        .route(
            "/payments",
            post(handler.layer(auth.strict(CREATE_PAYMENTS))),
        )
        .layer(auth.layer());
    let token = kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();

    // The same request (token header included) through a router without claimcheck: what
    // building, routing and answering the request costs without authorization.
    c.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async {
            let res = bare.clone().oneshot(request(Some(&token))).await.unwrap();
            assert_eq!(res.status(), 200);
        })
    });

    let jwk = kinde.current_jwk();
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[kinde.audience()]);
    validation.set_issuer(&[kinde.issuer()]);
    c.bench_function("verify_raw", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation).unwrap()
        })
    });

    c.bench_function("token_trusted_repeat", |b| {
        b.to_async(&rt).iter(|| async {
            let res = protected
                .clone()
                .oneshot(request(Some(&token)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        })
    });

    // Freshness watermarks exist (10 000 other users changed): the check becomes two lookups.
    let changed = std::time::SystemTime::now();
    for i in 0..10_000 {
        auth.freshness()
            .mark_user(&format!("kp_other_{i}"), changed);
    }
    c.bench_function("token_trusted_repeat_watermarked", |b| {
        b.to_async(&rt).iter(|| async {
            let res = protected
                .clone()
                .oneshot(request(Some(&token)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        })
    });

    // 1000 concurrent cold requests of one user (each with its own token): one upstream call.
    let tokens: Vec<String> = (0..1000).map(|_| kinde.user_token("kp_1").sign()).collect();
    rt.block_on(async {
        let burst = tokens.iter().map(|t| protected.clone().oneshot(payment(t)));
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

    c.bench_function("strict_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let res = protected.clone().oneshot(payment(&token)).await.unwrap();
            assert_eq!(res.status(), 200);
        })
    });

    // Every request verifies in full: the verified-token cache is off for this router.
    let uncached = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .token_cache_capacity(0)
        .build()
        .unwrap();
    assert!(rt.block_on(uncached.warm_up()));
    let uncached = Auth::new(uncached, live.clone());
    let first_seen: Router = Router::new()
        .route(
            "/reports",
            get(handler.layer(uncached.token_trusted(READ_REPORTS))),
        )
        .layer(uncached.layer());
    c.bench_function("token_trusted_first_seen", |b| {
        b.to_async(&rt).iter(|| async {
            let res = first_seen
                .clone()
                .oneshot(request(Some(&token)))
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        })
    });
}

criterion_group!(verify, benches);
criterion_main!(verify);
