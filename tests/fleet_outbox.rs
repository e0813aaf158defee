//! Attacked from outside: the outbox while Redis is unreachable, and webhook dedupe across replicas.
#![cfg(feature = "redis")]

mod common;

use std::time::SystemTime;

use claimcheck::testing::DEFAULT_ORG;
use common::fleet::{Fleet, until};

/// ATTACK: Redis unreachable while the app revokes one token and then publishes 10 000 more
/// changes (`invalidate_org`). The outbox (cap 10 000) collapses everything into one
/// "distrust everyone" record: the revocation reaches B only as a distrust, and B's live check
/// (the user still holds the permission) lets the revoked token in.
#[tokio::test]
async fn a_revocation_survives_an_outbox_collapse() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let token = fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .claim("jti", "jti_victim")
        .issued_in(-30)
        .sign();
    assert_eq!(b.get("/reports", &token).await.status, 200);

    fleet.redis.freeze().unwrap();
    a.auth.revoke_token("jti_victim");
    for i in 0..10_000 {
        a.auth.invalidate_org(&format!("org_{i}"));
    }
    assert!(a.auth.change_log().status().outbox <= 10_000);
    a.get("/reports", &token).await.assert_invalid_token();

    fleet.redis.thaw().unwrap();
    until("A's outbox drains", || {
        a.auth.change_log().status().outbox == 0
    })
    .await;
    until("B caught up", || b.caught_up()).await;
    until("B read the tail", || b.applied() >= 2).await;
    let answer = b.get("/reports", &token).await;
    assert_eq!(
        answer.status, 401,
        "a token A revoked (and refuses) is accepted on B after the outbox collapsed (source {:?})",
        answer.source
    );
}

/// HOLDS? One event delivered to two replicas at the same instant, many times: one record each.
#[tokio::test]
async fn concurrent_deliveries_of_one_event_append_one_record() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let mut admin = fleet.admin().await;
    let stream = format!("{}:log", fleet.prefix);
    let n = 40;
    for i in 0..n {
        let event = fleet.kinde.user_updated(&format!("kp_{i}"));
        let body = event.token().sign();
        let (ua, ub) = (a.webhook_url(), b.webhook_url());
        let (x, y) = tokio::join!(
            event.deliver_body(&ua, &body),
            event.deliver_body(&ub, &body)
        );
        assert_eq!((x, y), (200, 200), "event {i}");
    }
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(len, n);
    until("each applies every event", || {
        (0..n).all(|i| {
            let u = format!("kp_{i}");
            a.auth.freshness().user_watermark(&u).is_some()
                && b.auth.freshness().user_watermark(&u).is_some()
        })
    })
    .await;

    // Redelivery after a 503: exactly one record once A's outbox and B's redelivery both land.
    fleet.redis.freeze().unwrap();
    let event = fleet.kinde.user_updated("kp_x");
    assert_eq!(event.deliver(&a.webhook_url()).await, 503);
    fleet.redis.thaw().unwrap();
    assert_eq!(event.deliver(&b.webhook_url()).await, 200);
    until("A's outbox drains", || {
        a.auth.change_log().status().outbox == 0
    })
    .await;
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(len, n + 1);
    let _ = SystemTime::now();
}
