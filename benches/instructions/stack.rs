//! Whole request paths for instruction counts: a service stack driven with a no-op waker over
//! prebuilt requests, each answered at once (no runtime, no socket in the count).
//!
//! Every stack is an axum `Router` with one route, `GET /reports`, answered by a no-op handler:
//! the same app with and without claimcheck, as users run it.
//!
//! - `bare`: the router and handler alone, with the same requests (the floor);
//! - `token_trusted_repeat`: `auth.layer()` on the router + a token-trusted route layer, token
//!   seen before;
//! - `strict_hit`: `auth.layer()` + a strict route layer, live answer cached;
//! - `watermarked_repeat`: a token-trusted route for a user with a watermark newer than the
//!   token, so it is decided from the cached live answer;
//! - `token_trusted_repeat_redis` (feature `redis`): as `token_trusted_repeat`, with the Redis
//!   change log followed in the background: the request path must not touch Redis;
//! - `bare_service_fn`, `token_trusted_repeat_service_fn`: without the router (the handler a
//!   `tower::service_fn`, the layers straight around it), the floor before 0.3: reported so
//!   that claimcheck's own cost can be read against either floor.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::get;
use claimcheck::live::{KindeAccountApi, LiveCheck};
use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
use claimcheck::{Auth, Permission, Verifier};
use http::{Request, Response};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

use super::ITERATIONS;

const READ_REPORTS: Permission = Permission::from_static("read:reports");

type Stack = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

fn handler() -> Stack {
    BoxCloneSyncService::new(tower::service_fn(|_: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
    }))
}

/// The no-op handler: an empty 200.
fn noop() -> std::future::Ready<()> {
    std::future::ready(())
}

/// `router` as `axum::serve` runs it: with its state given, so each route is a service built
/// once, not per request.
fn served(router: Router) -> Stack {
    BoxCloneSyncService::new(router.with_state(()))
}

fn bare_router() -> Stack {
    served(Router::new().route("/reports", get(noop)))
}

fn token_trusted(auth: &Auth) -> Stack {
    let route = get(noop.layer(auth.token_trusted(READ_REPORTS)));
    served(Router::new().route("/reports", route).layer(auth.layer()))
}

fn strict(auth: &Auth) -> Stack {
    let route = get(noop.layer(auth.strict(READ_REPORTS)));
    served(Router::new().route("/reports", route).layer(auth.layer()))
}

/// `token_trusted` without the router.
fn token_trusted_service_fn(auth: &Auth) -> Stack {
    let route = auth.token_trusted(READ_REPORTS).layer(handler());
    BoxCloneSyncService::new(auth.layer().layer(route))
}

fn requests(token: &str) -> Vec<Request<Body>> {
    (0..ITERATIONS)
        .map(|_| {
            Request::get("/reports")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        })
        .collect()
}

/// Each request answered at once, and allowed.
#[inline(always)]
fn drive(service: &mut Stack, requests: Vec<Request<Body>>) {
    let mut cx = Context::from_waker(Waker::noop());
    for request in requests {
        match pin!(service.call(black_box(request))).poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
            _ => panic!("a repeated request is answered at once"),
        }
    }
}

// Distinct bodies (the black_box of a name), so the linker cannot fold them into one symbol.
#[inline(never)]
fn bare(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("bare");
    drive(service, requests);
}

#[inline(never)]
fn bare_service_fn(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("bare_service_fn");
    drive(service, requests);
}

#[inline(never)]
fn token_trusted_repeat_service_fn(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("token_trusted_repeat_service_fn");
    drive(service, requests);
}

#[inline(never)]
fn token_trusted_repeat(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("token_trusted_repeat");
    drive(service, requests);
}

/// [`token_trusted_repeat`] with a Prometheus recorder installed (on this thread).
#[inline(never)]
fn token_trusted_repeat_recorded(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("token_trusted_repeat_recorded");
    drive(service, requests);
}

/// [`token_trusted_repeat`] behind a verifier of two issuers, the token's the second: its
/// own issuer's cache misses, the other's hits.
#[inline(never)]
fn token_trusted_repeat_second_issuer(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("token_trusted_repeat_second_issuer");
    drive(service, requests);
}

#[inline(never)]
fn strict_hit(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("strict_hit");
    drive(service, requests);
}

#[inline(never)]
fn watermarked_repeat(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("watermarked_repeat");
    drive(service, requests);
}

#[cfg(feature = "redis")]
#[inline(never)]
fn token_trusted_repeat_redis(service: &mut Stack, requests: Vec<Request<Body>>) {
    black_box("token_trusted_repeat_redis");
    drive(service, requests);
}

fn new_auth(rt: &tokio::runtime::Runtime, kinde: &FakeKinde) -> Auth {
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    auth_of(rt, kinde, verifier)
}

/// An `Auth` whose verifier's first issuer is another one, `kinde` the second.
fn second_issuer_auth(rt: &tokio::runtime::Runtime, kinde: &FakeKinde) -> Auth {
    let own = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    let verifier = Verifier::builder("https://other.example.com/")
        .audience(kinde.audience())
        .jwks_url(kinde.jwks_url())
        .other_issuer(own)
        .build()
        .unwrap();
    auth_of(rt, kinde, verifier)
}

fn auth_of(rt: &tokio::runtime::Runtime, kinde: &FakeKinde, verifier: Verifier) -> Auth {
    assert!(rt.block_on(verifier.warm_up()));
    let source = KindeAccountApi::new(kinde.issuer()).unwrap();
    let live = LiveCheck::builder(source)
        .time_to_live(Duration::from_secs(3600))
        .build();
    Auth::new(verifier, live)
}

/// The first request through `service` (a verification, a live call), on the runtime.
fn warm(rt: &tokio::runtime::Runtime, service: &Stack, token: &str) {
    let request = requests(token).pop().unwrap();
    let response = rt.block_on(service.clone().oneshot(request)).unwrap();
    assert_eq!(response.status(), 200);
}

pub(super) fn run(rt: &tokio::runtime::Runtime, kinde: &FakeKinde, user: &str, token: &str) {
    kinde.grant(DEFAULT_ORG, user, READ_REPORTS.as_str());
    let (mut base, mut base_fn) = (bare_router(), handler());
    let auth = new_auth(rt, kinde);
    let (mut trusted, mut strict) = (token_trusted(&auth), strict(&auth));
    let mut trusted_fn = token_trusted_service_fn(&auth);
    let marked = new_auth(rt, kinde);
    marked.freshness().mark_user(user, SystemTime::now());
    let mut watermarked = token_trusted(&marked);
    let mut second = token_trusted(&second_issuer_auth(rt, kinde));
    for service in [&trusted, &strict, &watermarked, &trusted_fn, &second] {
        warm(rt, service, token);
    }
    drive(&mut base, requests(token));
    drive(&mut base_fn, requests(token));
    bare(&mut base, requests(token));
    token_trusted_repeat(&mut trusted, requests(token));
    token_trusted_repeat_second_issuer(&mut second, requests(token));
    strict_hit(&mut strict, requests(token));
    watermarked_repeat(&mut watermarked, requests(token));
    bare_service_fn(&mut base_fn, requests(token));
    token_trusted_repeat_service_fn(&mut trusted_fn, requests(token));
    // The same stack again, recording into Prometheus's recorder (its series made by the
    // first request, as they are in a running server).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        drive(&mut trusted, requests(token));
        token_trusted_repeat_recorded(&mut trusted, requests(token));
    });
    let recorded = recorder.handle().render();
    assert!(
        recorded.contains("claimcheck_decisions_total"),
        "{recorded}"
    );

    #[cfg(feature = "redis")]
    {
        let redis = claimcheck::testing::RedisServer::start().expect("redis-server on PATH");
        let config = claimcheck::changes::RedisConfig::new(&redis.url())
            .unwrap()
            .new_epoch_grace(Duration::ZERO);
        let shared = new_auth(rt, kinde);
        let shared = {
            let _runtime = rt.enter();
            shared.with_redis(config)
        };
        rt.block_on(async {
            while !shared.change_log().status().caught_up {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let mut fleet = token_trusted(&shared);
        warm(rt, &fleet, token);
        token_trusted_repeat_redis(&mut fleet, requests(token));
    }
}
