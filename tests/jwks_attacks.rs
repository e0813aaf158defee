//! Hostile callers and a misbehaving JWKS endpoint against the key store's single flight, over
//! real loopback HTTP: floods of unknown kids while the JWKS is slow or hanging, callers that
//! give up mid-fetch, rotation during a fetch, garbage between good key sets.

mod common;

use std::time::{Duration, Instant};

use claimcheck::testing::{Endpoint, FakeKinde, Fault};
use claimcheck::{AuthErrorKind, Verifier};
use common::{start_with, verifier_for};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A verifier with test timings and this cooldown, cold retry and total fetch timeout.
fn verifier(kinde: &FakeKinde, cooldown: u64, cold: u64, timeout: u64) -> Verifier {
    verifier_for(kinde)
        .jwks_refetch_cooldown(ms(cooldown))
        .jwks_cold_retry(ms(cold))
        .jwks_timeouts(ms(timeout), ms(timeout))
        .build()
        .unwrap()
}

/// Verifies `count` tokens, each under a kid never published, all at once; each task's
/// error kind and how long it took.
async fn flood(
    kinde: &FakeKinde,
    verifier: &Verifier,
    count: usize,
) -> Vec<(AuthErrorKind, Duration)> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let token = kinde
                .user_token("kp_1")
                .header("kid", format!("attacker-{i}-{:?}", Instant::now()))
                .sign();
            let verifier = verifier.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let err = verifier.verify(&token).await.expect_err("unknown kid");
                (err.kind(), started.elapsed())
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("no panic"));
    }
    out
}

// Catches: unknown kids each starting their own fetch while one is slow (no coalescing, or a
// cooldown check outside the flight lock), a flood waiting past the fetch, or known kids
// waiting behind the fetch.
#[tokio::test]
async fn a_kid_flood_during_a_slow_fetch_makes_one_fetch_and_everyone_is_answered() {
    let kinde = FakeKinde::start().await;
    // The cooldown counts from a fetch's start: longer than the 300 ms fetch, so the second
    // flood below finds it still running.
    let verifier = verifier(&kinde, 500, 50, 800);
    assert!(verifier.warm_up().await);
    tokio::time::sleep(ms(550)).await; // past the cooldown: the flood may fetch once
    kinde.set_fault(Endpoint::Jwks, Fault::Slow(ms(300)));
    let before = kinde.calls(Endpoint::Jwks);
    let valid = kinde.user_token("kp_ok").sign();
    let (answers, known) = tokio::join!(flood(&kinde, &verifier, 150), async {
        tokio::time::sleep(ms(20)).await;
        let started = Instant::now();
        let ok = verifier.verify(&valid).await.is_ok();
        (ok, started.elapsed())
    });
    assert!(known.0, "a known kid failed during the flood");
    assert!(known.1 < ms(150), "a known kid waited {:?}", known.1);
    for (kind, took) in &answers {
        assert_eq!(*kind, AuthErrorKind::InvalidToken);
        assert!(*took < ms(1000), "an unknown kid waited {took:?}");
    }
    assert_eq!(
        kinde.calls(Endpoint::Jwks) - before,
        1,
        "one fetch per cooldown"
    );
    // Right after: negative cache and cooldown answer at once, without fetching.
    let again = flood(&kinde, &verifier, 50).await;
    assert!(again.iter().all(|(_, took)| *took < ms(150)));
    assert_eq!(kinde.calls(Endpoint::Jwks) - before, 1);
}

// Catches: a cold flood against a hanging JWKS that fetches per request, hangs past the fetch
// deadline, or answers 500/401 instead of 503 + Retry-After; then a flight left stuck so
// that recovery is never picked up.
#[tokio::test]
async fn a_cold_flood_against_a_hanging_jwks_is_503_in_bounded_time_then_recovers() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Hang);
    let verifier = verifier(&kinde, 200, 400, 200);
    let h = start_with(kinde, verifier).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let kid = format!("cold-{i}");
            let token = h.kinde.user_token("kp_1").header("kid", kid).sign();
            let req = h.client.get(format!("{}/me", h.base)).bearer_auth(token);
            tokio::spawn(common::send(req))
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(answer.retry_after.is_some(), "503 without Retry-After");
    }
    // The fetch times out at 200 ms; the deadline is 1.2 s: nobody waited for the hang.
    assert!(started.elapsed() < ms(1000), "took {:?}", started.elapsed());
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 1, "one fetch per cold retry");
    h.kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(ms(450)).await; // past the cold retry
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 2);
}

// Catches: the fetch running in the caller's future (cancelling it with the caller), or a
// cancelled waiter leaving the flight in the map so later callers wait on nothing.
#[tokio::test]
async fn callers_that_give_up_do_not_cancel_the_fetch() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Slow(ms(250)));
    let verifier = verifier(&kinde, 200, 5_000, 800);
    let token = kinde.user_token("kp_1").sign();
    let h = start_with(kinde, verifier.clone()).await;
    let impatient = reqwest::Client::builder().timeout(ms(30)).build().unwrap();
    // Every caller gives up long before the JWKS answers.
    for _ in 0..4 {
        let gave_up = tokio::time::timeout(ms(30), verifier.verify(&token)).await;
        assert!(gave_up.is_err());
    }
    // A request dropped by its client mid-fetch (hyper drops the service future).
    let dropped = impatient
        .get(format!("{}/me", h.base))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(dropped.is_err(), "{:?}", dropped.map(|r| r.status()));
    tokio::time::sleep(ms(300)).await; // the fetch lands meanwhile
    assert_eq!(
        verifier.key_store().key_count(),
        1,
        "the fetch was cancelled"
    );
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    // Cold retry is 5 s: had the flight died, there would be no key and no second fetch.
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 1);
}

// Catches: a hanging fetch that blocks waiters past the deadline, withdraws the last good
// keys (stale-if-error), or refetches within the cooldown; then no refetch after it.
#[tokio::test]
async fn a_hanging_jwks_keeps_the_last_keys_and_is_retried_after_the_cooldown() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier(&kinde, 300, 50, 150);
    assert!(verifier.warm_up().await);
    let old = kinde.user_token("kp_old").sign();
    tokio::time::sleep(ms(350)).await;
    kinde.set_fault(Endpoint::Jwks, Fault::Hang);
    let started = Instant::now();
    let (unknown, known) = tokio::join!(flood(&kinde, &verifier, 20), async {
        tokio::time::sleep(ms(20)).await;
        verifier.verify(&old).await
    });
    assert!(known.is_ok(), "the last good key stopped serving");
    assert!(
        started.elapsed() < ms(1150 + 300),
        "{:?}",
        started.elapsed()
    );
    assert!(
        unknown
            .iter()
            .all(|(k, _)| *k == AuthErrorKind::InvalidToken)
    );
    assert_eq!(kinde.calls(Endpoint::Jwks), 2);
    // Within the cooldown (counted from the hung fetch's start): no new fetch, answered at once.
    let quick = flood(&kinde, &verifier, 10).await;
    assert!(quick.iter().all(|(_, took)| *took < ms(100)));
    assert_eq!(kinde.calls(Endpoint::Jwks), 2);
    // The issuer comes back with a new key: the next fetch after the cooldown finds it.
    kinde.clear_fault(Endpoint::Jwks);
    kinde.rotate_key();
    tokio::time::sleep(ms(300)).await;
    let new = kinde.user_token("kp_new").sign();
    assert!(verifier.verify(&new).await.is_ok());
    assert!(verifier.verify(&old).await.is_ok());
    assert_eq!(kinde.calls(Endpoint::Jwks), 3);
}

// Catches: a fetch that read the set before a rotation poisoning the new kid for good (the
// negative cache outliving the cooldown, a flight never cleared), or a second fetch for a
// caller that joined the one in flight.
#[tokio::test]
async fn a_rotation_during_a_fetch_is_picked_up() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier(&kinde, 200, 50, 800);
    assert!(verifier.warm_up().await);
    tokio::time::sleep(ms(250)).await;
    // The set is read at once and delivered 200 ms later: the rotation misses this fetch.
    kinde.set_fault(Endpoint::Jwks, Fault::Late(ms(200)));
    let bogus = kinde.user_token("kp_1").header("kid", "bogus").sign();
    let trigger = tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.verify(&bogus).await }
    });
    tokio::time::sleep(ms(50)).await;
    kinde.rotate_key();
    let new = kinde.user_token("kp_1").sign();
    let joined = verifier.verify(&new).await;
    assert!(trigger.await.unwrap().is_err());
    assert_eq!(joined.unwrap_err().kind(), AuthErrorKind::InvalidToken);
    assert_eq!(kinde.calls(Endpoint::Jwks), 2, "the joiner fetched again");
    // After the cooldown (and the 100 ms unknown-kid memory), the new key is fetched.
    kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(ms(250)).await;
    assert!(verifier.verify(&new).await.is_ok());
    assert_eq!(verifier.key_store().key_count(), 2);
    assert_eq!(kinde.calls(Endpoint::Jwks), 3);
}

// Catches: garbage (not JSON, or JSON without one usable key) leaving the store unable to
// recover, or a non-JSON answer withdrawing the last good keys.
#[tokio::test]
async fn garbage_then_good_keys_recovers() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier(&kinde, 200, 50, 800);
    assert!(verifier.warm_up().await);
    let token = kinde.user_token("kp_1").sign();
    let bogus = kinde.user_token("kp_1").header("kid", "bogus").sign();
    tokio::time::sleep(ms(250)).await;
    kinde.set_fault(Endpoint::Jwks, Fault::Garbage);
    assert!(verifier.verify(&bogus).await.is_err()); // a failed fetch
    assert!(
        verifier.verify(&token).await.is_ok(),
        "garbage withdrew keys"
    );
    assert_eq!(verifier.key_store().key_count(), 1);
    // A well-formed set without one usable key is the issuer's word: published as is.
    let junk = r#"{"keys":[{"kty":"RSA","kid":"junk","n":"AQAB","e":"AQAB"}]}"#;
    kinde.set_fault(Endpoint::Jwks, Fault::Body(junk.into()));
    tokio::time::sleep(ms(250)).await;
    assert!(verifier.verify(&bogus).await.is_err());
    assert_eq!(verifier.key_store().key_count(), 0);
    let fresh = kinde.user_token("kp_2").sign();
    let refused = verifier.verify(&fresh).await.unwrap_err();
    assert_eq!(refused.kind(), AuthErrorKind::InvalidToken);
    // Good keys again: the first request after the cooldown brings them back.
    kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(ms(250)).await;
    assert!(verifier.verify(&fresh).await.is_ok());
    assert_eq!(kinde.calls(Endpoint::Jwks), 4);
}
