//! Unit tests of [`LiveCheck`] with scripted sources (no HTTP; see `tests/` for Kinde over
//! loopback).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::*;
use crate::claims::Claims;
use crate::decision::Provenance;

fn query(sub: &str, org: &str) -> PermissionQuery {
    query_with(sub, org, "t")
}

/// A query for `sub` in `org` with a token of its own, named by its `jti`.
fn query_with(sub: &str, org: &str, jti: &str) -> PermissionQuery {
    let fields = serde_json::json!({"iss": "https://i", "sub": sub, "org_code": org, "jti": jti});
    PermissionQuery::from_claims(&Claims::fixture(fields)).unwrap()
}

/// Answers `{"v<n>"}` on its n-th call; the first call waits for `release` when gated;
/// calls listed in `fail` error; call number `panic_on` panics; tokens whose `jti`
/// starts with `refused` are refused.
#[derive(Default)]
struct Scripted {
    calls: AtomicUsize,
    gate: Option<Arc<Notify>>,
    fail: Vec<usize>,
    panic_on: Option<usize>,
}

impl PermissionSource for Arc<Scripted> {
    fn permissions<'a>(&'a self, query: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let (1, Some(gate)) = (n, &self.gate) {
                gate.notified().await;
            }
            if query
                .claims()
                .token_id()
                .is_some_and(|jti| jti.starts_with("refused"))
            {
                return Err(SourceError::refused("scripted refusal"));
            }
            assert_ne!(self.panic_on, Some(n), "scripted panic");
            if self.fail.contains(&n) {
                return Err(SourceError::unavailable("scripted failure"));
            }
            Ok([format!("v{n}")].into_iter().collect())
        })
    }
}

fn check(source: &Arc<Scripted>, ttl: Duration) -> LiveCheck {
    LiveCheck::builder(source.clone())
        .time_to_live(ttl)
        .deadline(Duration::from_secs(1))
        .build()
}

/// A source whose first call waits for the returned gate, and a check in front of it.
fn gated() -> (Arc<Scripted>, Arc<Notify>, LiveCheck) {
    let gate = Arc::new(Notify::new());
    let source = Arc::new(Scripted {
        gate: Some(gate.clone()),
        ..Default::default()
    });
    let live = check(&source, Duration::from_secs(60));
    (source, gate, live)
}

/// Starts a lookup of `q` in a task and waits until the source has been called `calls` times.
async fn in_flight(
    live: &LiveCheck,
    source: &Scripted,
    q: &PermissionQuery,
    calls: usize,
) -> tokio::task::JoinHandle<Result<Lookup, SourceError>> {
    let task = tokio::spawn({
        let (live, q) = (live.clone(), q.clone());
        async move { live.lookup(&q).await }
    });
    while source.calls.load(Ordering::SeqCst) < calls {
        tokio::task::yield_now().await;
    }
    task
}

#[tokio::test]
async fn a_fill_invalidated_in_flight_is_not_served_or_cached() {
    let (source, gate, live) = gated();
    let q = query("kp_1", "org_1");
    let waiting = in_flight(&live, &source, &q, 1).await;
    live.invalidate_user("kp_1");
    gate.notify_one();
    let lookup = waiting.await.unwrap().unwrap();
    assert!(lookup.permissions.contains("v2"), "{lookup:?}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    let cached = live.cached(&q).unwrap();
    assert!(cached.permissions.contains("v2"));
}

#[tokio::test]
async fn invalidation_is_scoped() {
    let source = Arc::new(Scripted::default());
    let live = check(&source, Duration::from_secs(60));
    let (a, b, c) = (
        query("kp_a", "org_1"),
        query("kp_b", "org_1"),
        query("kp_c", "org_2"),
    );
    for q in [&a, &b, &c] {
        live.lookup(q).await.unwrap();
    }
    live.invalidate_user("kp_a");
    assert!(live.cached(&a).is_none());
    assert!(live.cached(&b).is_some() && live.cached(&c).is_some());
    live.invalidate_org("org_1");
    assert!(live.cached(&b).is_none());
    assert!(live.cached(&c).is_some());
    live.invalidate_all();
    assert!(live.cached(&c).is_none());
}

#[tokio::test]
async fn errors_are_never_cached() {
    let source = Arc::new(Scripted {
        fail: vec![1],
        ..Default::default()
    });
    let live = check(&source, Duration::from_secs(60));
    let q = query("kp_1", "org_1");
    assert!(live.lookup(&q).await.is_err());
    assert!(live.cached(&q).is_none());
    let lookup = live.lookup(&q).await.unwrap();
    assert_eq!(lookup.provenance, Provenance::Live);
    assert_eq!(
        live.lookup(&q).await.unwrap().provenance,
        Provenance::LiveCache
    );
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_the_ttl() {
    let source = Arc::new(Scripted::default());
    let live = check(&source, Duration::from_millis(500));
    let q = query("kp_1", "org_1");
    live.lookup(&q).await.unwrap();
    tokio::time::advance(Duration::from_millis(499)).await;
    assert!(live.cached(&q).is_some());
    tokio::time::advance(Duration::from_millis(2)).await;
    assert!(live.cached(&q).is_none());
    assert!(live.lookup(&q).await.unwrap().permissions.contains("v2"));
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity() {
    let source = Arc::new(Scripted::default());
    let live = LiveCheck::builder(source.clone())
        .time_to_live(Duration::from_secs(60))
        .max_capacity(50)
        .build();
    for i in 0..1_000 {
        live.lookup(&query(&format!("kp_{i}"), "org_1"))
            .await
            .unwrap();
    }
    let held = live.entry_count();
    assert!(held <= 50, "{held}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 1_000);
}

#[tokio::test]
async fn a_zero_ttl_disables_the_cache() {
    let source = Arc::new(Scripted::default());
    let live = check(&source, Duration::ZERO);
    let q = query("kp_1", "org_1");
    live.lookup(&q).await.unwrap();
    live.lookup(&q).await.unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_source_is_an_error_not_a_hang() {
    let source = Arc::new(Scripted {
        panic_on: Some(1),
        ..Default::default()
    });
    let live = check(&source, Duration::from_secs(60));
    let q = query("kp_1", "org_1");
    let error = live.lookup(&q).await.unwrap_err();
    assert_eq!(error.reason(), "fetch aborted");
    assert!(live.lookup(&q).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn each_caller_gives_up_at_its_deadline() {
    let gate = Arc::new(Notify::new());
    let source = Arc::new(Scripted {
        gate: Some(gate),
        ..Default::default()
    });
    let live = check(&source, Duration::from_secs(60));
    let error = live.lookup(&query("kp_1", "org_1")).await.unwrap_err();
    assert_eq!(error.reason(), "deadline passed");
}

#[tokio::test]
async fn a_refused_token_is_remembered_and_its_refusal_is_not_shared() {
    let (source, gate, live) = gated();
    let refused = query_with("kp_1", "org_1", "refused-1");
    let accepted = query_with("kp_1", "org_1", "good");
    // Same user, two tokens, one flight: the refusal of the first token reaches only its
    // holder; the second caller asks again with its own token.
    let first = in_flight(&live, &source, &refused, 1).await;
    let second = in_flight(&live, &source, &accepted, 1).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        1,
        "the second caller joined"
    );
    gate.notify_one();
    assert!(first.await.unwrap().unwrap_err().is_refused());
    let lookup = second.await.unwrap().unwrap();
    assert_eq!(
        lookup.provenance,
        Provenance::Live,
        "asked again, with its own token"
    );
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);

    // The refused token is answered from memory, even though the user's answer is cached.
    let calls = source.calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert!(live.lookup(&refused).await.unwrap_err().is_refused());
        assert!(matches!(live.peek(&refused), Some(Err(_))));
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), calls);
    assert!(live.cached(&accepted).is_some());
}

#[tokio::test]
async fn a_user_whose_tokens_keep_being_refused_stops_reaching_the_source() {
    let source = Arc::new(Scripted::default());
    let live = check(&source, Duration::from_secs(60));
    for i in 0..crate::live::refusal::MAX_REFUSED_PER_USER {
        let q = query_with("kp_bad", "org_1", &format!("refused-{i}"));
        assert!(live.lookup(&q).await.unwrap_err().is_refused());
    }
    let calls = source.calls.load(Ordering::SeqCst);
    assert_eq!(calls, crate::live::refusal::MAX_REFUSED_PER_USER as usize);
    for i in 0..20 {
        let q = query_with("kp_bad", "org_1", &format!("refused-more-{i}"));
        assert!(live.lookup(&q).await.unwrap_err().is_refused());
    }
    let fresh = query_with("kp_bad", "org_1", "good-but-unlucky");
    assert!(live.lookup(&fresh).await.unwrap_err().is_refused());
    assert_eq!(source.calls.load(Ordering::SeqCst), calls, "no more calls");
    // Other users are untouched.
    assert!(
        live.lookup(&query_with("kp_ok", "org_1", "good"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn refusals_never_pause_the_source() {
    let source = Arc::new(Scripted::default());
    let live = LiveCheck::builder(source.clone())
        .backoff(Backoff {
            after_failures: 2,
            first_pause: Duration::from_secs(60),
            max_pause: Duration::from_secs(60),
        })
        .refusal_memory(Duration::ZERO)
        .build();
    for i in 0..20 {
        let q = query_with(&format!("kp_{i}"), "org_1", "refused");
        assert!(live.lookup(&q).await.unwrap_err().is_refused());
    }
    let lookup = live.lookup(&query_with("kp_victim", "org_1", "good")).await;
    assert_eq!(lookup.unwrap().provenance, Provenance::Live);
    assert_eq!(
        source.calls.load(Ordering::SeqCst),
        21,
        "memory off: every refusal asked"
    );
}

#[tokio::test]
async fn a_flight_overtaken_by_an_invalidation_is_replaced_not_joined() {
    let (source, gate, live) = gated();
    let q = query("kp_1", "org_1");
    let early = in_flight(&live, &source, &q, 1).await;
    live.invalidate_org("org_1");
    // Arrives after the invalidation: starts its own call instead of waiting for the old one.
    let late = live.lookup(&q).await.unwrap();
    assert!(late.permissions.contains("v2"), "{late:?}");
    assert_eq!(late.provenance, Provenance::Live);
    gate.notify_one();
    let early = early.await.unwrap().unwrap();
    assert!(early.permissions.contains("v2"), "{early:?}");
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}
