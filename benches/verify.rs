//! Token verification costs, as ratios within one run: the bare router is the floor, a raw
//! `jsonwebtoken::decode` RS256 the crypto limit.
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::get;
use claimcheck::live::{KindeAccountApi, LiveCheck};
use claimcheck::testing::FakeKinde;
use claimcheck::{Auth, Permission, Verifier};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{DecodingKey, Validation};
use tower::ServiceExt;

const READ_REPORTS: Permission = Permission::from_static("read:reports");

fn request(token: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/reports");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::empty()).unwrap()
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
    let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap()).build();
    let auth = Auth::new(verifier, live.clone());
    let handler = || async { "q1, q2" };
    let bare: Router = Router::new().route("/reports", get(handler));
    let protected: Router = Router::new()
        .route(
            "/reports",
            get(handler.layer(auth.token_trusted(READ_REPORTS))),
        )
        .layer(auth.layer());
    let token = kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();

    c.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.clone().oneshot(request(None)).await.unwrap() })
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
