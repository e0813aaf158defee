//! The upstream load the conservative rules cause: 1 000 active users on a replica cut off from
//! the change log, with and without the live-call budget, while a strict route keeps working.
//! Run with `--nocapture` to see the numbers.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use common::fleet::{Fleet, until};
use futures_util::StreamExt;

const USERS: usize = 1_000;

struct Load {
    upstream: usize,
    allowed: usize,
    unavailable: usize,
    strict_ok: usize,
    elapsed: Duration,
}

/// Every user asks `/reports` twice on a cut-off replica while one user pays on it.
async fn cut_off_load(budget: u32) -> Load {
    let mut fleet = Fleet::start(0).await;
    fleet.budget = Some(budget);
    fleet.add().await;
    let tokens: Vec<String> = (0..USERS)
        .map(|i| {
            let user = format!("kp_{i}");
            fleet.kinde.grant(DEFAULT_ORG, &user, "read:reports");
            fleet
                .kinde
                .user_token(&user)
                .permissions(["read:reports"])
                .issued_in(-30)
                .sign()
        })
        .collect();
    fleet
        .kinde
        .grant(DEFAULT_ORG, "kp_payer", "create:payments");
    let payer = fleet.kinde.user_token("kp_payer").sign();
    let b = fleet.a();
    fleet.redis.freeze().unwrap();
    until("the replica notices it is cut off", || !b.caught_up()).await;
    fleet.kinde.reset_calls();

    let start = Instant::now();
    let requests = tokens
        .iter()
        .chain(tokens.iter())
        .map(|token| b.get("/reports", token));
    let answers: Vec<_> = futures_util::stream::iter(requests)
        .buffer_unordered(32)
        .collect()
        .await;
    let mut strict_ok = 0;
    for _ in 0..20 {
        if b.post("/payments", &payer).await.status == 200 {
            strict_ok += 1;
        }
    }
    let elapsed = start.elapsed();
    let upstream = fleet.kinde.calls(Endpoint::ManagementPermissions);
    fleet.redis.thaw().unwrap();
    Load {
        upstream,
        allowed: answers.iter().filter(|a| a.status == 200).count(),
        unavailable: answers
            .iter()
            .filter(|a| a.status == 503 && a.retry_after.is_some())
            .count(),
        strict_ok,
        elapsed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conservative_rules_spend_a_bounded_budget_and_strict_routes_come_first() {
    let budget = 50;
    let load = cut_off_load(budget).await;
    eprintln!(
        "budget {budget}/s, {USERS} users x 2 requests in {:?}: {} upstream calls, {} allowed, {} answered 503, strict {}/20",
        load.elapsed, load.upstream, load.allowed, load.unavailable, load.strict_ok
    );
    let bound = f64::from(budget) * (1.0 + load.elapsed.as_secs_f64()) + 20.0;
    assert!(
        (load.upstream as f64) <= bound,
        "{} calls > {bound}",
        load.upstream
    );
    assert_eq!(
        load.allowed + load.unavailable,
        2 * USERS,
        "every answer 200 or 503 + Retry-After"
    );
    assert_eq!(
        load.strict_ok, 20,
        "strict routes are never refused by the budget"
    );

    let unbounded = cut_off_load(1_000_000).await;
    eprintln!(
        "no budget: {} upstream calls for {USERS} users in {:?} (one per user: the cache and the single-flight)",
        unbounded.upstream, unbounded.elapsed
    );
    assert!(unbounded.upstream <= USERS + 20);
    assert_eq!(unbounded.allowed, 2 * USERS);
}
