//! Checks inside handlers (`RequirePermissionLayer::check`) over loopback: `POST /refunds`
//! decides from its body, token-trusted for small amounts and strict (live) for large ones,
//! with the answers and the `Decision` a route layer would give.

mod common;

use std::time::Duration;

use claimcheck::testing::{DEFAULT_ORG, Endpoint, Fault};
use common::{APPROVE_REFUNDS, Answer, CREATE_PAYMENTS, Harness, Via, start_via};
use serde_json::json;

async fn refund(h: &Harness, token: &str, amount: u64) -> Answer {
    let request = h
        .client
        .post(format!("{}/refunds", h.base))
        .header("authorization", format!("Bearer {token}"))
        .json(&json!({ "amount": amount }));
    h.send(request).await
}

#[tokio::test]
async fn a_small_refund_is_decided_from_the_token() {
    let h = start_via(Via::Account, Duration::from_secs(60)).await;
    let holder = h
        .kinde
        .user_token("kp_1")
        .permissions([CREATE_PAYMENTS.as_str()])
        .sign();
    let allowed = refund(&h, &holder, 20).await;
    assert_eq!((allowed.status, allowed.body.as_str()), (200, "refunded"));
    assert_eq!(allowed.decision.as_deref(), Some("allow"));
    assert_eq!(allowed.source.as_deref(), Some("token"));

    let other = h
        .kinde
        .user_token("kp_2")
        .permissions(["read:reports"])
        .sign();
    let denied = refund(&h, &other, 20).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.content_type.as_deref(),
        Some("application/problem+json")
    );
    let challenge = denied.challenge.unwrap_or_default();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(CREATE_PAYMENTS.as_str()), "{challenge}");
    assert_eq!(denied.decision.as_deref(), Some("deny"));
    assert_eq!(
        h.kinde.calls(Endpoint::AccountPermissions),
        0,
        "no live call"
    );
}

#[tokio::test]
async fn a_large_refund_is_decided_live_whatever_the_token_says() {
    for via in Via::BOTH {
        let h = start_via(via, Duration::from_secs(60)).await;
        // The token claims the approval; Kinde says otherwise: denied.
        let claims_it = h
            .kinde
            .user_token("kp_1")
            .permissions([APPROVE_REFUNDS.as_str(), CREATE_PAYMENTS.as_str()])
            .sign();
        let denied = refund(&h, &claims_it, 5_000).await;
        assert_eq!(denied.status, 403, "{via:?}: {}", denied.body);
        assert_eq!(denied.source.as_deref(), Some("live"), "{via:?}");
        // Granted at Kinde, absent from the token: allowed, after the cache's time-to-live
        // or at once for a new user.
        h.kinde.grant(DEFAULT_ORG, "kp_2", APPROVE_REFUNDS.as_str());
        let lacks_it = h.kinde.user_token("kp_2").sign();
        let allowed = refund(&h, &lacks_it, 5_000).await;
        assert_eq!(
            (allowed.status, allowed.body.as_str()),
            (200, "refunded"),
            "{via:?}"
        );
        assert_eq!(allowed.source.as_deref(), Some("live"), "{via:?}");
        let again = refund(&h, &lacks_it, 5_000).await;
        assert_eq!(
            again.source.as_deref(),
            Some("live-cache"),
            "{via:?}: the layer's cache"
        );
    }
}

#[tokio::test]
async fn a_large_refund_fails_closed_when_kinde_cannot_answer() {
    let h = start_via(Via::Management, Duration::from_secs(60)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", APPROVE_REFUNDS.as_str());
    h.kinde
        .set_fault(Endpoint::ManagementPermissions, Fault::Status(500, vec![]));
    let token = h.kinde.user_token("kp_1").sign();
    let answer = refund(&h, &token, 5_000).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.retry_after.is_some());
    assert_eq!(answer.decision.as_deref(), Some("unavailable"));
    // A small refund of a token holding the permission does not need Kinde.
    let holder = h
        .kinde
        .user_token("kp_1")
        .permissions([CREATE_PAYMENTS.as_str()])
        .sign();
    assert_eq!(refund(&h, &holder, 10).await.status, 200);
}

#[tokio::test]
async fn a_small_refund_of_a_stale_token_is_decided_live_as_on_a_route() {
    let h = start_via(Via::Account, Duration::from_secs(60)).await;
    let token = h
        .kinde
        .user_token("kp_1")
        .permissions([CREATE_PAYMENTS.as_str()])
        .issued_in(-5)
        .sign();
    assert_eq!(
        refund(&h, &token, 10).await.source.as_deref(),
        Some("token")
    );
    // Kinde says the user changed (a webhook would say so): the token's claims are not
    // trusted any more, and Kinde no longer grants it.
    h.auth.mark_changed(
        claimcheck::changes::Target::User("kp_1".into()),
        std::time::SystemTime::now(),
    );
    let answer = refund(&h, &token, 10).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
}
