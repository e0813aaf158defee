//! One caller's bad token is never everyone's outage: tokens Kinde's Account API refuses are
//! that caller's 401, are not counted as Kinde failing, are not handed to other callers, are
//! answered from memory, and cannot drive Kinde's application-wide rate limit.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault, RateLimit};
use common::{Harness, Via, live_for, start_live};

/// A harness on the Account API with this time-to-live and refusal memory.
async fn account(ttl: Duration, memory: Duration) -> Harness {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = live_for(&kinde, Via::Account)
        .time_to_live(ttl)
        .refusal_memory(memory)
        .build();
    start_live(kinde, verifier, live).await
}

/// Asserts a 401 refusal that the live source caused.
fn assert_refused(answer: &common::Answer, what: &str) {
    answer.assert_invalid_token();
    assert_eq!(answer.decision.as_deref(), Some("refused"), "{what}");
}

#[tokio::test]
async fn a_token_kinde_refuses_is_its_holders_401_answered_from_memory() {
    let h = account(Duration::from_secs(60), Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_victim", "create:payments");
    h.kinde.grant(DEFAULT_ORG, "kp_other", "create:payments");
    let victim = h.kinde.user_token("kp_victim").sign();
    let signed_out = h.kinde.user_token("kp_other").sign();
    h.kinde.sign_out(&signed_out);
    let no_org = h
        .kinde
        .user_token("kp_nobody")
        .without_claim("org_code")
        .sign();

    for (what, token) in [("signed out", &signed_out), ("no org_code", &no_org)] {
        let before = h.kinde.calls(Endpoint::AccountPermissions);
        for _ in 0..10 {
            assert_refused(&h.post("/payments", token).await, what);
        }
        let asked = h.kinde.calls(Endpoint::AccountPermissions) - before;
        assert_eq!(asked, 1, "{what}: one upstream call, then from memory");
    }
    assert_eq!(h.runs(), 0);
    let answer = h.post("/payments", &victim).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The refused token's user is not locked out: a fresh token of theirs is asked about.
    let fresh = h.kinde.user_token("kp_other").sign();
    assert_eq!(h.post("/payments", &fresh).await.status, 200);
}

#[tokio::test]
async fn a_token_past_its_exp_is_never_forwarded() {
    let h = account(Duration::from_secs(60), Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    // Inside the verifier's 30 s leeway, so it authenticates; Kinde has no leeway.
    let late = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .expires_in(-5)
        .sign();
    let answer = h.post("/payments", &late).await;
    answer.assert_invalid_token();
    assert_eq!(answer.json()["detail"], "The access token expired");
    assert_eq!(answer.decision.as_deref(), Some("refused"));
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
    assert_eq!(h.get("/reports", Some(&late)).await.status, 200, "leeway");
    // Once a fresh token filled the user's cache, the late one is served from it.
    let fresh = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.post("/payments", &fresh).await.status, 200);
    assert_eq!(h.post("/payments", &late).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 1);
}

#[tokio::test]
async fn a_refusal_in_flight_reaches_only_the_refused_token() {
    let h = account(Duration::from_secs(60), Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let signed_out = h.kinde.user_token("kp_1").sign();
    h.kinde.sign_out(&signed_out);
    let good = h.kinde.user_token("kp_1").sign();
    h.kinde.set_fault(
        Endpoint::AccountPermissions,
        Fault::Slow(Duration::from_millis(200)),
    );
    let refused = h.post("/payments", &signed_out);
    let accepted = async {
        // Joins the signed-out token's call, which is in flight.
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.post("/payments", &good).await
    };
    let (refused, accepted) = tokio::join!(refused, accepted);
    assert_refused(&refused, "signed out");
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(
        accepted.source.as_deref(),
        Some("live"),
        "asked with its own token"
    );
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 2);
}

/// Attackers hammer a strict route with tokens Kinde refuses, from four connections, while a
/// victim keeps paying, for `run_for`. Asserts the attackers only ever got 401 or 503 and sent
/// over 200 requests; returns the victim's statuses in order.
async fn attack(h: &Harness, attackers: &[String], victim: &str, run_for: Duration) -> Vec<u16> {
    let stop = Instant::now() + run_for;
    let sent = Arc::new(AtomicUsize::new(0));
    let attacker = |offset: usize| {
        let sent = sent.clone();
        async move {
            let mut statuses = Vec::new();
            let mut i = offset;
            while Instant::now() < stop {
                let token = &attackers[i % attackers.len()];
                statuses.push(h.post("/payments", token).await.status);
                sent.fetch_add(1, Ordering::Relaxed);
                i += 5;
            }
            statuses
        }
    };
    let victim_loop = async {
        let mut statuses = Vec::new();
        while Instant::now() < stop {
            statuses.push(h.post("/payments", victim).await.status);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        statuses
    };
    let (victim_statuses, a, b, c, d) = tokio::join!(
        victim_loop,
        attacker(0),
        attacker(1),
        attacker(2),
        attacker(3)
    );
    for status in a.iter().chain(&b).chain(&c).chain(&d) {
        assert!(matches!(status, 401 | 503), "attacker got {status}");
    }
    assert!(sent.load(Ordering::Relaxed) > 200, "the attack was real");
    victim_statuses
}

#[tokio::test]
async fn attackers_cannot_drive_kindes_rate_limit_into_everyones_outage() {
    const TTL: Duration = Duration::from_millis(100);
    const RUN: Duration = Duration::from_millis(1200);
    let limit = RateLimit {
        calls: 15,
        window: Duration::from_millis(400),
    };
    // Control: without the refusal memory the same attack does take strict routes down.
    let h = account(TTL, Duration::ZERO).await;
    let (attackers, victim) = cast(&h.kinde);
    h.kinde.set_rate_limit(Some(limit));
    let victim_statuses = attack(&h, &attackers, &victim, RUN).await;
    assert!(
        h.kinde.rate_limited() > 0,
        "control: Kinde throttled the app"
    );
    assert!(
        victim_statuses.contains(&503),
        "control: the victim suffered: {victim_statuses:?}"
    );

    let h = account(TTL, Duration::from_secs(30)).await;
    let (attackers, victim) = cast(&h.kinde);
    h.kinde.set_rate_limit(Some(limit));
    let victim_statuses = attack(&h, &attackers, &victim, RUN).await;
    assert!(victim_statuses.len() > 20, "{victim_statuses:?}");
    assert!(
        victim_statuses.iter().all(|s| *s == 200),
        "the victim is served throughout: {victim_statuses:?}"
    );
    assert_eq!(h.kinde.rate_limited(), 0, "Kinde never throttled the app");
}

/// Two attacking users with a stockpile of ten refused tokens each (signed out, or without an
/// organization) gathered over the last ten minutes, one token past its `exp`; and a victim
/// holding `create:payments`.
fn cast(kinde: &FakeKinde) -> (Vec<String>, String) {
    kinde.grant(DEFAULT_ORG, "kp_victim", "create:payments");
    kinde.grant(DEFAULT_ORG, "kp_mallory", "create:payments");
    let mut attackers = Vec::new();
    for i in 0..10 {
        let issued = -60 * (i + 1);
        let signed_out = kinde
            .user_token("kp_mallory")
            .claim("jti", format!("m{i}"))
            .issued_in(issued)
            .sign();
        kinde.sign_out(&signed_out);
        attackers.push(signed_out);
        let no_org = kinde
            .user_token("kp_trudy")
            .claim("jti", format!("t{i}"))
            .issued_in(issued)
            .without_claim("org_code");
        attackers.push(no_org.sign());
    }
    attackers.push(kinde.user_token("kp_trudy").expires_in(-10).sign());
    (attackers, kinde.user_token("kp_victim").sign())
}

#[tokio::test]
async fn a_few_dead_tokens_of_a_user_cannot_lock_that_user_out() {
    let h = account(Duration::from_millis(100), Duration::from_secs(30)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_victim", "create:payments");
    // The victim's current session, in use before the attack.
    let session = h.kinde.login("kp_victim").access_token;
    assert_eq!(h.post("/payments", &session).await.status, 200);
    // Three of the victim's old tokens, stolen and since signed out, each tried once (while
    // the victim's answer is cached, any of the victim's tokens is served from it: the
    // attacker waits for it to expire).
    tokio::time::sleep(Duration::from_millis(150)).await;
    for i in 0..3 {
        let stolen = h
            .kinde
            .user_token("kp_victim")
            .claim("jti", format!("stolen-{i}"))
            .issued_in(-600)
            .sign();
        h.kinde.sign_out(&stolen);
        assert_refused(&h.post("/payments", &stolen).await, "stolen");
    }
    // A fourth old token is refused from memory without asking: a stockpile is not spent.
    let asked = h.kinde.calls(Endpoint::AccountPermissions);
    let another = h.kinde.user_token("kp_victim").issued_in(-900).sign();
    h.kinde.sign_out(&another);
    assert_refused(&h.post("/payments", &another).await, "stockpiled");
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), asked, "capped");
    // The victim is not locked out: the session Kinde accepted lately (its cached answer has
    // expired by now) and a new sign-in both reach Kinde and are served.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let answer = h.post("/payments", &session).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
    let fresh = h.kinde.user_token("kp_victim").issued_in(1).sign();
    h.live.invalidate_user("kp_victim");
    let answer = h.post("/payments", &fresh).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
}

#[tokio::test]
async fn a_short_kinde_incident_refusing_everyone_is_forgotten_within_a_second() {
    let h = account(Duration::from_secs(60), Duration::from_secs(30)).await;
    let mut tokens = Vec::new();
    for i in 0..5 {
        let user = format!("kp_{i}");
        h.kinde.grant(DEFAULT_ORG, &user, "create:payments");
        tokens.push(h.kinde.login(&user).access_token);
    }
    // Kinde answers 403 to everyone for a moment: not these callers' fault, but it looks so.
    h.kinde
        .set_fault(Endpoint::AccountPermissions, Fault::Status(403, vec![]));
    for token in &tokens {
        assert_refused(&h.post("/payments", token).await, "incident");
    }
    h.kinde.clear_fault(Endpoint::AccountPermissions);
    // A refusal is remembered for 250 ms the first time: after that, the same tokens (a
    // refresh at Kinde hands back the same token) work again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for token in &tokens {
        let answer = h.post("/payments", token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}
