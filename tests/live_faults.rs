//! Strict routes when Kinde misbehaves or is hammered: fail closed (503 + Retry-After, handler
//! never runs, nothing cached), coalesce concurrent misses, survive cancelled callers.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, Fault};
use common::{Via, start_via};
use tower::ServiceExt;

const TTL: Duration = Duration::from_millis(300);
/// `live_for` sets an 800 ms deadline; a 503 must come well within deadline + slack.
const DEADLINE: Duration = Duration::from_millis(800);

fn status(code: u16) -> Fault {
    Fault::Status(code, Vec::new())
}

fn status_with(code: u16, name: &str, value: &str) -> Fault {
    Fault::Status(code, vec![(name.to_owned(), value.to_owned())])
}

/// Every fault the issue lists, with the `Retry-After` it must produce when the upstream says.
fn faults(h: &common::Harness) -> Vec<(&'static str, Fault, Option<&'static str>)> {
    vec![
        ("connection dropped", Fault::Down, None),
        (
            "slower than the deadline",
            Fault::Slow(Duration::from_secs(3)),
            None,
        ),
        ("500", status(500), None),
        ("502", status(502), None),
        (
            "503 with Retry-After",
            status_with(503, "retry-after", "3"),
            Some("3"),
        ),
        (
            "429 with RateLimit-Reset",
            status_with(429, "ratelimit-reset", "7"),
            Some("7"),
        ),
        (
            "429 with an absurd reset",
            status_with(429, "ratelimit-reset", "99999999"),
            None,
        ),
        (
            "redirect",
            Fault::Redirect(format!("{}/elsewhere", h.kinde.issuer())),
            None,
        ),
        (
            "wrong content type",
            status_with(200, "content-type", "text/html"),
            None,
        ),
        ("garbage JSON", Fault::Garbage, None),
        ("oversized JSON", Fault::Huge(2 * 1024 * 1024), None),
        ("401 for our credential", status(401), None),
        ("403 for our credential", status(403), None),
        ("404", status(404), None),
        ("accept, then hang", Fault::Hang, None),
        (
            "body dripped byte by byte",
            Fault::Drip(Duration::from_millis(60)),
            None,
        ),
        ("truncated body", Fault::Truncated, None),
        ("10 MB body", Fault::Huge(10 * 1024 * 1024), None),
        ("invalid UTF-8", Fault::InvalidUtf8, None),
        ("JSON nested 100 000 deep", Fault::Nested(100_000), None),
        (
            "redirect loop",
            Fault::Redirect(format!(
                "{}{}",
                h.kinde.issuer(),
                "/account_api/v1/permissions"
            )),
            None,
        ),
        (
            "429, Retry-After an HTTP date",
            status_with(429, "retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
            None,
        ),
        (
            "429, Retry-After negative",
            status_with(429, "retry-after", "-5"),
            None,
        ),
        (
            "429, Retry-After huge",
            status_with(429, "retry-after", "18446744073709551616"),
            None,
        ),
        (
            "429, Retry-After garbage",
            status_with(429, "retry-after", "soon"),
            None,
        ),
        (
            "429, Retry-After twice",
            Fault::Status(
                429,
                vec![
                    ("retry-after".into(), "3".into()),
                    ("retry-after".into(), "9".into()),
                ],
            ),
            Some("3"),
        ),
    ]
}

#[tokio::test]
async fn every_upstream_fault_fails_closed_and_recovers() {
    for via in Via::BOTH {
        let h = start_via(via, TTL).await;
        h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
        let token = h.kinde.user_token("kp_1").sign();
        for (name, fault, retry_after) in faults(&h) {
            if via == Via::Account && name.ends_with("for our credential") {
                // The Account API is called with the caller's token: a 401/403 there refuses
                // that token (401 to its holder; tests/refusals.rs), it is not an outage.
                continue;
            }
            h.live.invalidate_all();
            h.kinde.set_fault(via.endpoint(), fault);
            let started = Instant::now();
            let answer = h.post("/payments", &token).await;
            let took = started.elapsed();
            assert_eq!(answer.status, 503, "{via:?} {name}: {}", answer.body);
            assert!(
                took < DEADLINE + Duration::from_millis(700),
                "{via:?} {name}: {took:?}"
            );
            let expected = retry_after.unwrap_or("5");
            assert_eq!(
                answer.retry_after.as_deref(),
                Some(expected),
                "{via:?} {name}"
            );
            assert_eq!(
                answer.content_type.as_deref(),
                Some("application/problem+json")
            );
            assert_eq!(answer.decision.as_deref(), Some("unavailable"), "{name}");
            assert_eq!(h.runs(), 0, "{via:?} {name}: the handler must not run");

            // Nothing was cached: once Kinde recovers, the next upstream call succeeds. An
            // upstream that said when to come back is not called before then (capped at
            // 200 ms by the test's Backoff).
            h.kinde.clear_fault(via.endpoint());
            if retry_after.is_some() {
                let calls = h.kinde.calls(via.endpoint());
                let paused = h.post("/payments", &token).await;
                assert_eq!(paused.status, 503, "{via:?} {name}: honours the pause");
                assert_eq!(h.kinde.calls(via.endpoint()), calls, "{via:?} {name}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let retried = h.post("/payments", &token).await;
            assert_eq!(retried.status, 200, "{via:?} {name}: {}", retried.body);
            assert_eq!(h.runs(), 1, "{via:?} {name}");
            h.runs.store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_token_endpoint_outage_fails_closed_for_the_management_api() {
    let h = start_via(Via::Management, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    for fault in [Fault::Down, status(500), status_with(400, "x", "y")] {
        h.kinde.set_fault(Endpoint::Token, fault);
        let answer = h.post("/payments", &token).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 0);
    }
    h.kinde.clear_fault(Endpoint::Token);
    // Three failures in a row paused upstream calls (100 ms in tests).
    assert_eq!(h.post("/payments", &token).await.status, 503);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(h.post("/payments", &token).await.status, 200);
    assert_eq!(h.runs(), 1);
}

#[tokio::test]
async fn the_machine_token_is_reused_and_replaced_after_a_401() {
    let h = start_via(Via::Management, Duration::ZERO).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    for _ in 0..5 {
        assert_eq!(h.post("/payments", &token).await.status, 200);
    }
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 5);
    assert_eq!(
        h.kinde.calls(Endpoint::Token),
        1,
        "one billed token request"
    );

    // A revoked machine token is replaced within the request Kinde refused it in.
    h.kinde.revoke_management_tokens();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    assert_eq!(h.post("/payments", &token).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::Token), 2);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 8);
    // Kinde refusing every token: the held one is replaced once, then the request fails
    // closed; a token issued for a request and refused costs no second token request.
    let refuse = claimcheck::testing::Fault::Status(401, vec![]);
    h.kinde.set_fault(Endpoint::ManagementPermissions, refuse);
    assert_eq!(h.post("/payments", &token).await.status, 503);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 10);
    assert_eq!(h.kinde.calls(Endpoint::Token), 3);
    assert_eq!(h.post("/payments", &token).await.status, 503);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 11);
    assert_eq!(h.kinde.calls(Endpoint::Token), 4);
}

#[tokio::test]
async fn concurrent_cold_requests_make_one_upstream_call() {
    for via in Via::BOTH {
        let h = start_via(via, Duration::from_secs(60)).await;
        h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
        // Each request has its own token, as from many tabs of one user.
        let tokens: Vec<String> = (0..200)
            .map(|_| h.kinde.user_token("kp_1").sign())
            .collect();
        // Keep the first call in flight long enough for all 200 to arrive.
        h.kinde
            .set_fault(via.endpoint(), Fault::Slow(Duration::from_millis(300)));
        let answers =
            futures_util::future::join_all(tokens.iter().map(|t| h.post("/payments", t))).await;
        let mut sources = std::collections::BTreeMap::<String, usize>::new();
        for answer in &answers {
            assert_eq!(answer.status, 200, "{via:?}: {}", answer.body);
            *sources
                .entry(answer.source.clone().unwrap_or_default())
                .or_default() += 1;
        }
        assert_eq!(h.kinde.calls(via.endpoint()), 1, "{via:?}: {sources:?}");
        assert_eq!(sources.get("live"), Some(&1), "{via:?}: {sources:?}");
        assert!(
            sources.get("coalesced").is_some_and(|n| *n > 100),
            "{sources:?}"
        );
        if via == Via::Management {
            assert_eq!(h.kinde.calls(Endpoint::Token), 1);
        }
        assert_eq!(h.runs(), 200);
    }
}

#[tokio::test]
async fn a_request_cancelled_mid_fetch_does_not_stall_the_others() {
    let h = start_via(Via::Management, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.set_fault(
        Endpoint::ManagementPermissions,
        Fault::Slow(Duration::from_millis(300)),
    );
    let token = h.kinde.user_token("kp_1").sign();
    let app = common::app(
        &claimcheck::Auth::new(h.verifier.clone(), h.live.clone()),
        h.runs.clone(),
    );
    let request = http::Request::post("/payments")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    // The first caller starts the upstream call, then goes away.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), app.oneshot(request)).await;
    assert!(
        cancelled.is_err(),
        "the first request must still be waiting"
    );

    let started = Instant::now();
    let answer = h.post("/payments", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("coalesced"));
    assert!(started.elapsed() < Duration::from_millis(600));
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 1);
    assert_eq!(h.runs(), 1, "the cancelled request's handler never ran");
}

#[tokio::test]
async fn a_thousand_concurrent_cold_requests_make_one_upstream_call() {
    let h = start_via(Via::Management, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.set_fault(
        Endpoint::ManagementPermissions,
        Fault::Slow(Duration::from_millis(200)),
    );
    let token = h.kinde.user_token("kp_1").sign();
    // In process (1000 sockets would exceed common fd limits); the upstream is real HTTP.
    let app = common::app(&h.auth, h.runs.clone());
    let requests = (0..1000).map(|_| {
        let request = http::Request::post("/payments")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    });
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 1);
    assert_eq!(h.kinde.calls(Endpoint::Token), 1);
    assert_eq!(h.runs(), 1000);
}

#[tokio::test]
async fn a_failing_source_is_not_hammered() {
    // `live_for` pauses after 3 consecutive failures: 100 ms, doubling, at most 200 ms.
    let h = start_via(Via::Management, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    h.kinde
        .set_fault(Endpoint::ManagementPermissions, status(500));
    for _ in 0..10 {
        let answer = h.post("/payments", &token).await;
        assert_eq!(answer.status, 503);
        assert_eq!(
            answer
                .retry_after
                .as_deref()
                .map(|s| s.parse::<u64>().is_ok()),
            Some(true)
        );
    }
    assert_eq!(
        h.kinde.calls(Endpoint::ManagementPermissions),
        3,
        "paused after 3 failures"
    );

    // After the pause a single probe goes out; it fails, the pause doubles.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let probes = futures_util::future::join_all((0..5).map(|_| h.post("/payments", &token))).await;
    assert!(probes.iter().all(|a| a.status == 503));
    assert_eq!(
        h.kinde.calls(Endpoint::ManagementPermissions),
        4,
        "one probe"
    );

    // Recovery is picked up by the next probe, and everything flows again.
    h.kinde.clear_fault(Endpoint::ManagementPermissions);
    tokio::time::sleep(Duration::from_millis(220)).await;
    assert_eq!(h.post("/payments", &token).await.status, 200);
    h.live.invalidate_all();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 6);
    assert_eq!(h.runs(), 2);
}

/// A harness owns a FakeKinde; where the upstream under test is elsewhere, it gets a spare.
async fn spare() -> claimcheck::testing::FakeKinde {
    claimcheck::testing::FakeKinde::start().await
}

#[tokio::test]
async fn connection_refused_fails_closed() {
    // A port nothing listens on: bind one, note it, close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let kinde = claimcheck::testing::FakeKinde::start().await;
    // Tokens of the business at the closed port (its keys are the fake's): a live source
    // answers only for its own issuer's users.
    let verifier = common::fast(claimcheck::Verifier::builder(&closed))
        .audience(kinde.audience())
        .jwks_url(kinde.jwks_url())
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    for live in [
        claimcheck::live::LiveCheck::builder(
            claimcheck::live::KindeAccountApi::new(&closed).unwrap(),
        ),
        claimcheck::live::LiveCheck::builder(
            claimcheck::live::KindeManagementApi::new(&closed, "id", "secret").unwrap(),
        ),
    ] {
        let h = common::start_live(spare().await, verifier.clone(), live.build()).await;
        let token = kinde
            .user_token("kp_1")
            .claim("iss", closed.as_str())
            .sign();
        let started = Instant::now();
        let answer = h.post("/payments", &token).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(answer.retry_after.is_some());
        assert!(started.elapsed() < DEADLINE);
        assert_eq!(h.runs(), 0);
    }

    // The JWKS on a closed port, cold: 503, not 401.
    let verifier = common::verifier_for(&kinde)
        .jwks_url(format!("{closed}/.well-known/jwks.json"))
        .build()
        .unwrap();
    assert!(!verifier.warm_up().await);
    let h = common::start_with(spare().await, verifier).await;
    let answer = h.get("/me", Some(&kinde.user_token("kp_1").sign())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
}

#[tokio::test]
async fn one_machine_token_request_serves_everyone_and_outlives_a_cancelled_caller() {
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let (id, secret) = kinde.register_management_client();
    let api = claimcheck::live::KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("kp_{i}")).collect();
    for user in &users {
        kinde.grant(DEFAULT_ORG, user, "create:payments");
    }
    kinde.set_fault(Endpoint::Token, Fault::Slow(Duration::from_millis(300)));
    // The first caller gives up while the token request is under way: the request goes on.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        api.user_permissions(DEFAULT_ORG, "kp_0"),
    )
    .await;
    assert!(cancelled.is_err());
    let answers =
        futures_util::future::join_all(users.iter().map(|u| api.user_permissions(DEFAULT_ORG, u)))
            .await;
    for answer in answers {
        assert!(answer.unwrap().contains("create:payments"));
    }
    assert_eq!(kinde.calls(Endpoint::Token), 1, "one billed token request");
}
