//! Instruction counts of the first sight of a token against a raw signature check, for
//! budgets that must not flap on a shared machine (`scripts/instructions` runs this under
//! callgrind and prints the ratio). Run on its own it only does the work:
//!
//! - `first_seen`: `Verifier::verify` with the verified-token cache off, the key known (strict
//!   I-JSON, header rules, RS256 signature, claims), `ITERATIONS` times;
//! - `raw_decode`: `jsonwebtoken::decode` RS256 with a prebuilt key and validation on the same
//!   token, `ITERATIONS` times (the crypto limit);
//! - `cache_hit`: `Verifier::verify` of a token verified before (the verified-token cache hit
//!   every repeated request takes), `ITERATIONS` times: reported, not budgeted.
//!
//! - `repeat_in_process` / `repeat_redis` (feature `redis`): a repeated token through the whole
//!   stack (`auth.layer()` + a token-trusted route + a no-op handler), with the in-process
//!   change log and with the Redis Streams log followed in the background: the request path
//!   must not touch Redis, so the two must cost the same.
//!
//! All are polled with a no-op waker: no runtime in the count.
#![allow(missing_docs)]

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use claimcheck::Verifier;
use claimcheck::testing::FakeKinde;
use jsonwebtoken::{DecodingKey, Validation};

const ITERATIONS: usize = 200;

/// `verifier.verify(token)`, polled once: the key is known, so it never waits.
#[inline(always)]
fn verify_now(verifier: &Verifier, token: &str, cx: &mut Context<'_>) {
    match pin!(verifier.verify(black_box(token))).poll(cx) {
        Poll::Ready(claims) => {
            black_box(claims.expect("a valid token"));
        }
        Poll::Pending => panic!("the key is known: verification never waits"),
    }
}

#[inline(never)]
fn first_seen(verifier: &Verifier, token: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..ITERATIONS {
        verify_now(verifier, token, &mut cx);
    }
}

#[inline(never)]
fn cache_hit(cached: &Verifier, token: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..ITERATIONS {
        verify_now(cached, black_box(token), &mut cx);
    }
}

#[inline(never)]
fn raw_decode(key: &DecodingKey, validation: &Validation, token: &str) {
    for _ in 0..ITERATIONS {
        let decoded = jsonwebtoken::decode::<serde_json::Value>(black_box(token), key, validation);
        black_box(decoded.expect("a valid token"));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument (a criterion filter) means "not me".
    if std::env::args().skip(1).any(|arg| arg != "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kinde = rt.block_on(FakeKinde::start());
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .token_cache_max_bytes(0)
        .build()
        .unwrap();
    assert!(rt.block_on(verifier.warm_up()));
    let token = kinde
        .user_token("kp_0195ac80a14e8d71f42b98e75d3c61ad")
        .permissions(["read:reports", "create:payments"])
        .sign();

    let (key, validation) = common::raw_decoder(&kinde);

    first_seen(&verifier, &token);
    raw_decode(&key, &validation, &token);

    let cached = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    assert!(rt.block_on(cached.warm_up()));
    rt.block_on(cached.verify(&token)).unwrap();
    cache_hit(&cached, &token);

    #[cfg(feature = "redis")]
    repeat::run(&rt, &kinde, &token);
}

#[cfg(feature = "redis")]
mod repeat {
    use std::convert::Infallible;
    use std::future::Future;
    use std::hint::black_box;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use axum::body::Body;
    use claimcheck::changes::RedisConfig;
    use claimcheck::live::{KindeAccountApi, LiveCheck};
    use claimcheck::testing::{FakeKinde, RedisServer};
    use claimcheck::{Auth, Permission, Verifier};
    use http::{Request, Response};
    use tower::{Layer, Service};

    use super::ITERATIONS;

    const READ_REPORTS: Permission = Permission::from_static("read:reports");

    type Handler = tower::util::ServiceFn<
        fn(Request<Body>) -> std::future::Ready<Result<Response<Body>, Infallible>>,
    >;

    fn handler(_: Request<Body>) -> std::future::Ready<Result<Response<Body>, Infallible>> {
        std::future::ready(Ok(Response::new(Body::empty())))
    }

    fn stack(
        auth: &Auth,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> {
        let route = auth.token_trusted(READ_REPORTS);
        let handler: Handler = tower::service_fn(handler as fn(_) -> _);
        auth.layer().layer(route.layer(handler))
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

    /// Each request answered at once (the token is cached, the claims trusted).
    #[inline(always)]
    fn drive<S>(service: &mut S, requests: Vec<Request<Body>>)
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    {
        let mut cx = Context::from_waker(Waker::noop());
        for request in requests {
            match pin!(service.call(black_box(request))).poll(&mut cx) {
                Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
                _ => panic!("a repeated, trusted token is answered at once"),
            }
        }
    }

    #[inline(never)]
    fn repeat_in_process<S>(service: &mut S, requests: Vec<Request<Body>>)
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    {
        // Distinct bodies, so the linker cannot fold the two into one symbol.
        black_box("in-process");
        drive(service, requests);
    }

    #[inline(never)]
    fn repeat_redis<S>(service: &mut S, requests: Vec<Request<Body>>)
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    {
        black_box("redis");
        drive(service, requests);
    }

    fn auth(rt: &tokio::runtime::Runtime, kinde: &FakeKinde) -> Auth {
        let verifier = Verifier::builder(kinde.issuer())
            .audience(kinde.audience())
            .build()
            .unwrap();
        assert!(rt.block_on(verifier.warm_up()));
        let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap()).build();
        Auth::new(verifier, live)
    }

    pub(super) fn run(rt: &tokio::runtime::Runtime, kinde: &FakeKinde, token: &str) {
        let local = auth(rt, kinde);
        let redis = RedisServer::start().expect("redis-server on PATH");
        let config = RedisConfig::new(&redis.url()).unwrap();
        let shared = auth(rt, kinde);
        let shared = {
            let _runtime = rt.enter();
            shared.with_redis(config)
        };
        rt.block_on(async {
            while !shared.change_log().status().caught_up {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        let (mut local, mut shared) = (stack(&local), stack(&shared));
        // Warm both verified-token caches, then count.
        drive(&mut local, requests(token));
        drive(&mut shared, requests(token));
        repeat_in_process(&mut local, requests(token));
        repeat_redis(&mut shared, requests(token));
    }
}
