//! A careless operator's settings: absurd durations are refused at build time where the
//! builder can say so, capped where it cannot, and never panic later, on a request or a
//! webhook.

mod common;

use std::time::Duration;

use claimcheck::freshness::Freshness;
use claimcheck::live::{Backoff, KindeAccountApi, LiveCheck};
use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde, Fault};
use claimcheck::{Auth, ConfigError};
use common::verifier_for;

const MAX: Duration = Duration::MAX;

#[tokio::test]
async fn absurd_durations_never_panic_a_request_or_a_webhook() {
    let kinde = FakeKinde::start().await;
    // Refused by the fallible builder, with the setting named.
    let leeway = verifier_for(&kinde).leeway(MAX).build().unwrap_err();
    assert!(
        matches!(
            leeway,
            ConfigError::Invalid {
                setting: "leeway",
                ..
            }
        ),
        "{leeway}"
    );
    let interval = verifier_for(&kinde).jwks_refresh_interval(MAX).build();
    assert!(interval.is_err());

    // Capped by the infallible ones: everything below still answers.
    let verifier = verifier_for(&kinde)
        .leeway(Duration::from_secs(3600))
        .token_cache_max_ttl(MAX)
        .max_token_age(MAX)
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap())
        .time_to_live(MAX)
        .deadline(MAX)
        .refusal_memory(MAX)
        .max_capacity(u64::MAX)
        .backoff(Backoff {
            after_failures: 0,
            first_pause: MAX,
            max_pause: MAX,
        })
        .build();
    let auth =
        Auth::new(verifier.clone(), live.clone()).with_freshness(Freshness::new(MAX, u64::MAX));
    let h = common::start_live(kinde, verifier, live).await;
    let receiver = auth.webhook_receiver().max_age(MAX);

    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let token = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.post("/payments", &token).await.status, 200);
    let event = h.kinde.user_updated("kp_1");
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/jwt".parse().unwrap());
    let receipt = receiver
        .receive(&headers, event.token().sign().as_bytes())
        .await;
    assert!(receipt.is_ok(), "{receipt:?}");
    auth.mark_changed(
        claimcheck::changes::Target::Everyone,
        std::time::SystemTime::now(),
    );

    // A failing source pauses for the capped time, not forever and not by overflowing.
    h.live.invalidate_all();
    h.kinde
        .set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
    let answer = h.post("/payments", &token).await;
    assert_eq!(answer.status, 503);
    let paused = h.post("/payments", &token).await;
    assert_eq!(paused.status, 503);
    let retry: u64 = paused.retry_after.unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
}
