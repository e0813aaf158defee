//! The Management API's machine token under attack, over real loopback HTTP: a failing token
//! endpoint, short-lived and absurd token lifetimes, concurrent callers around a 401, and
//! callers that give up while the token request is under way.

mod common;

use std::time::Duration;

use claimcheck::live::KindeManagementApi;
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};
use common::{Via, token_grant};
use futures_util::future::join_all;
use serde_json::json;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fake with `kp_0`..`kp_9` holding `create:payments`, and a Management API client for it.
async fn setup() -> (FakeKinde, KindeManagementApi, (String, String)) {
    let kinde = FakeKinde::start().await;
    let (id, secret) = kinde.register_management_client();
    let api = KindeManagementApi::new(kinde.issuer(), id.clone(), secret.clone()).unwrap();
    for i in 0..10 {
        kinde.grant(DEFAULT_ORG, &format!("kp_{i}"), "create:payments");
    }
    (kinde, api, (id, secret))
}

/// Ten concurrent lookups, one per user; how many succeeded.
async fn burst(api: &KindeManagementApi) -> usize {
    let users: Vec<String> = (0..10).map(|i| format!("kp_{i}")).collect();
    let answers = join_all(users.iter().map(|u| api.user_permissions(DEFAULT_ORG, u))).await;
    answers.into_iter().filter(Result::is_ok).count()
}

/// A new real management token from the fake (any fault on the token endpoint is cleared),
/// and the token endpoint's answer handing it out with `expires_in`.
async fn token_answer(kinde: &FakeKinde, client: &(String, String), expires_in: u64) -> Fault {
    kinde.clear_fault(Endpoint::Token);
    let audience = format!("{}/api", kinde.issuer());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.0.as_str()),
        ("client_secret", client.1.as_str()),
        ("audience", audience.as_str()),
    ];
    let token = token_grant(kinde, &form).await;
    let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "bearer"});
    Fault::Body(body.to_string())
}

// Catches: a failed token request cached for good, or concurrent callers each asking for a
// token while the endpoint fails (no coalescing of failures), or none asking after it heals.
#[tokio::test]
async fn a_token_endpoint_500_fails_closed_once_then_works() {
    let (kinde, api, _) = setup().await;
    kinde.set_fault(Endpoint::Token, Fault::Status(500, vec![]));
    assert_eq!(burst(&api).await, 0);
    assert_eq!(kinde.calls(Endpoint::Token), 1, "one shared token request");
    assert_eq!(kinde.calls(Endpoint::ManagementPermissions), 0);
    kinde.clear_fault(Endpoint::Token);
    assert_eq!(burst(&api).await, 10);
    assert_eq!(burst(&api).await, 10);
    assert_eq!(kinde.calls(Endpoint::Token), 2);
}

// Catches: concurrent callers each requesting a token when the held one is due (no single
// flight), the unexpired old token not used while Kinde fails, or an expired one used.
#[tokio::test]
async fn a_short_lived_token_is_replaced_once_and_never_used_expired() {
    let (kinde, api, client) = setup().await;
    // One second of life: replaced after 500 ms, expired after 1 s.
    kinde.set_fault(Endpoint::Token, token_answer(&kinde, &client, 1).await);
    kinde.reset_calls();
    assert_eq!(burst(&api).await, 10);
    assert_eq!(kinde.calls(Endpoint::Token), 1);
    tokio::time::sleep(ms(600)).await;
    // Due for replacement, Kinde failing: one request in the background, and the old token
    // still serves.
    kinde.set_fault(Endpoint::Token, Fault::Status(500, vec![]));
    assert_eq!(burst(&api).await, 10);
    settled(&kinde, Endpoint::Token, 2).await;
    // Asked again at once: the old token serves without another request (Kinde failed a
    // moment ago), so a failing token endpoint is not asked on every lookup.
    assert_eq!(burst(&api).await, 10);
    assert_eq!(kinde.calls(Endpoint::Token), 2);
    // Expired, Kinde still failing: fail closed, one request per burst.
    tokio::time::sleep(ms(450)).await;
    assert_eq!(burst(&api).await, 0);
    assert_eq!(kinde.calls(Endpoint::Token), 3);
    assert_eq!(kinde.calls(Endpoint::ManagementPermissions), 30);
    // Zero seconds of life: every burst asks again, but only once.
    kinde.set_fault(Endpoint::Token, token_answer(&kinde, &client, 0).await);
    kinde.reset_calls();
    for round in 1..=3 {
        assert_eq!(burst(&api).await, 10);
        assert_eq!(kinde.calls(Endpoint::Token), round);
    }
}

/// Waits (at most 1 s) until `endpoint` has been called `n` times, for requests made in the
/// background; asserts it then.
async fn settled(kinde: &FakeKinde, endpoint: Endpoint, n: usize) {
    for _ in 0..100 {
        if kinde.calls(endpoint) >= n {
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    tokio::time::sleep(ms(50)).await;
    assert_eq!(kinde.calls(endpoint), n, "{endpoint:?}");
}

// Catches: lookups waiting for a token request while an unexpired token is held. With the
// token endpoint hanging, each waited up to the request's deadline (3 s), longer than a live
// lookup's own (2 s by default): 503s although a usable token was held, and a timed-out
// request did not pause the next one, so every lookup waited again.
#[tokio::test]
async fn a_hanging_token_endpoint_does_not_delay_lookups_while_the_token_is_good() {
    let (kinde, api, client) = setup().await;
    kinde.set_fault(Endpoint::Token, token_answer(&kinde, &client, 1).await);
    assert_eq!(burst(&api).await, 10);
    tokio::time::sleep(ms(600)).await; // past the refresh point (500 ms), not expired (1 s)
    kinde.set_fault(Endpoint::Token, Fault::Slow(ms(5_000)));
    kinde.reset_calls();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(burst(&api).await, 10);
        assert!(started.elapsed() < ms(300), "{:?}", started.elapsed());
    }
    assert_eq!(
        kinde.calls(Endpoint::Token),
        1,
        "one request, in the background"
    );
    assert_eq!(kinde.calls(Endpoint::ManagementPermissions), 30);
}

// Catches: `expires_in` added to an Instant unchecked: a huge lifetime from the token endpoint
// panics the token task (and kills a `panic = "abort"` server) instead of being used.
#[tokio::test]
async fn an_absurd_token_lifetime_does_not_panic() {
    let (kinde, api, client) = setup().await;
    for expires_in in [u64::MAX, u64::MAX / 2, 1 << 62] {
        // The token held from the last round, if any, is refused: a new one is fetched.
        kinde.revoke_management_tokens();
        let granted = token_answer(&kinde, &client, expires_in).await;
        kinde.set_fault(Endpoint::Token, granted);
        let _ = api.user_permissions(DEFAULT_ORG, "kp_0").await;
        let answer = api.user_permissions(DEFAULT_ORG, "kp_0").await;
        assert!(answer.is_ok(), "expires_in {expires_in}: {answer:?}");
    }
}

// Catches: a 401 from one caller dropping a token another caller fetched since (the held
// token compared by value), which would cost a billed token request per 401.
#[tokio::test]
async fn a_late_401_does_not_drop_the_token_fetched_since() {
    let (kinde, api, client) = setup().await;
    kinde.set_fault(Endpoint::Token, token_answer(&kinde, &client, 1).await);
    assert!(api.user_permissions(DEFAULT_ORG, "kp_0").await.is_ok()); // holds T1
    kinde.revoke_management_tokens(); // T1 is refused from now on
    kinde.set_fault(Endpoint::Token, token_answer(&kinde, &client, 3600).await); // T2
    kinde.set_fault(Endpoint::ManagementPermissions, Fault::Slow(ms(400)));
    kinde.reset_calls();
    tokio::time::sleep(ms(300)).await;
    // A asks with T1 (before its refresh point); Kinde refuses it 400 ms later.
    let late = tokio::spawn({
        let api = api.clone();
        async move { api.user_permissions(DEFAULT_ORG, "kp_1").await }
    });
    tokio::time::sleep(ms(300)).await;
    // Past T1's refresh point: B fetches T2 while A's request is still under way.
    let b = api.user_permissions(DEFAULT_ORG, "kp_2").await;
    assert!(b.is_ok(), "{b:?}");
    // A's 401 (T1 was revoked) is retried with T2, which it must not drop.
    assert!(late.await.unwrap().is_ok(), "retried with T2");
    kinde.clear_fault(Endpoint::ManagementPermissions);
    assert!(api.user_permissions(DEFAULT_ORG, "kp_3").await.is_ok());
    assert_eq!(kinde.calls(Endpoint::Token), 1, "A's 401 dropped T2");
}

// Catches: concurrent 401s each dropping and refetching (several billed requests), the
// dropped token still being used, or a lookup failing although a new token was one request
// away.
#[tokio::test]
async fn concurrent_401s_cost_one_new_token() {
    let (kinde, api, _) = setup().await;
    assert_eq!(burst(&api).await, 10);
    kinde.revoke_management_tokens();
    // Each lookup refused asks once more, with the one new token.
    assert_eq!(burst(&api).await, 10);
    assert_eq!(burst(&api).await, 10);
    assert_eq!(kinde.calls(Endpoint::Token), 2);
    // Three bursts of ten, and the ten refused calls once more.
    assert_eq!(kinde.calls(Endpoint::ManagementPermissions), 40);
}

// Catches: the token request running inside the live flight (abandoned at the starting
// caller's deadline, or cancelled with a dropped request), so that every later request pays
// for another billed token request.
#[tokio::test]
async fn a_live_deadline_shorter_than_the_token_request_does_not_cancel_it() {
    let kinde = FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = common::live_for(&kinde, Via::Management)
        .deadline(ms(100))
        .time_to_live(Duration::ZERO)
        .build();
    let h = common::start_live(kinde, verifier, live).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    h.kinde.set_fault(Endpoint::Token, Fault::Slow(ms(300)));
    let token = h.kinde.user_token("kp_1").sign();
    // One request dropped by its client, one answered 503 at the live deadline.
    let impatient = reqwest::Client::builder().timeout(ms(30)).build().unwrap();
    let url = format!("{}/payments", h.base);
    assert!(
        impatient
            .post(&url)
            .bearer_auth(&token)
            .send()
            .await
            .is_err()
    );
    let answer = h.post("/payments", &token).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.retry_after.is_some());
    tokio::time::sleep(ms(300)).await; // the token request lands meanwhile
    h.kinde.clear_fault(Endpoint::Token);
    for _ in 0..3 {
        assert_eq!(h.post("/payments", &token).await.status, 200);
    }
    assert_eq!(
        h.kinde.calls(Endpoint::Token),
        1,
        "the token request was dropped"
    );
    assert_eq!(h.runs(), 3);
}
