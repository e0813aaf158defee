//! Several replicas sharing one change log on a real (test-owned) Redis: a webhook received by
//! one replica takes effect on all of them. Outages, resets and cut-offs: `fleet_outages.rs`.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use claimcheck::changes::{Action, Change, Target};
use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use common::fleet::{Fleet, until};
use serde_json::json;

/// kp_1 holds both permissions at Kinde; an old token that says so.
fn grant_kp_1(fleet: &Fleet) -> String {
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    fleet
        .kinde
        .user_token("kp_1")
        .permissions(["create:payments", "read:reports"])
        .issued_in(-30)
        .sign()
}

fn bystander(fleet: &Fleet) -> String {
    fleet.kinde.grant(DEFAULT_ORG, "kp_2", "read:reports");
    fleet
        .kinde
        .user_token("kp_2")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign()
}

#[tokio::test]
async fn a_webhook_to_one_replica_takes_effect_on_every_replica() {
    let fleet = Fleet::start(3).await;
    let (a, b, c) = (&fleet.replicas[0], &fleet.replicas[1], &fleet.replicas[2]);
    let token = grant_kp_1(&fleet);
    let other = bystander(&fleet);
    for replica in [b, c] {
        assert_eq!(replica.post("/payments", &token).await.status, 200);
        let trusted = replica.get("/reports", &token).await;
        assert_eq!(
            (trusted.status, trusted.source.as_deref()),
            (200, Some("token"))
        );
    }

    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    assert_eq!(
        fleet
            .kinde
            .user_updated("kp_1")
            .deliver(&a.webhook_url())
            .await,
        200
    );
    until("B and C apply it", || b.applied() >= 1 && c.applied() >= 1).await;

    for replica in [a, b, c] {
        let trusted = replica.get("/reports", &token).await;
        assert_eq!(
            (trusted.status, trusted.source.as_deref()),
            (403, Some("live"))
        );
        assert_eq!(replica.post("/payments", &token).await.status, 403);
        let bystander = replica.get("/reports", &other).await;
        assert_eq!(
            (bystander.status, bystander.source.as_deref()),
            (200, Some("token")),
            "a bystander is unaffected"
        );
    }

    // A fresh grant, announced to A, is honoured on B's strict route at once.
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    assert_eq!(
        fleet
            .kinde
            .user_updated("kp_1")
            .deliver(&a.webhook_url())
            .await,
        200
    );
    until("B applies the grant's webhook", || b.applied() >= 2).await;
    assert_eq!(b.post("/payments", &token).await.status, 200);
}

#[tokio::test]
async fn a_replica_started_after_the_webhook_denies_the_old_token_at_once() {
    let mut fleet = Fleet::start(1).await;
    let token = grant_kp_1(&fleet);
    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "create:payments");
    let url = fleet.a().webhook_url();
    assert_eq!(fleet.kinde.user_updated("kp_1").deliver(&url).await, 200);

    let late = fleet.add().await;
    let first = late.get("/reports", &token).await;
    assert_eq!((first.status, first.source.as_deref()), (403, Some("live")));
    assert_eq!(late.post("/payments", &token).await.status, 403);
}

#[tokio::test]
async fn one_event_delivered_to_two_replicas_invalidates_once() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = grant_kp_1(&fleet);
    assert_eq!(b.post("/payments", &token).await.status, 200);
    let event = fleet.kinde.user_updated("kp_1");

    assert_eq!(event.deliver(&a.webhook_url()).await, 200);
    until("B applies it", || b.applied() >= 1).await;
    fleet.kinde.reset_calls();
    assert_eq!(
        b.post("/payments", &token).await.source.as_deref(),
        Some("live")
    );

    // Kinde (or a retry through the load balancer) delivers the same event to B.
    assert_eq!(event.deliver(&b.webhook_url()).await, 200);
    assert_eq!(event.deliver(&a.webhook_url()).await, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        b.post("/payments", &token).await.source.as_deref(),
        Some("live-cache")
    );
    assert_eq!(fleet.kinde.calls(Endpoint::ManagementPermissions), 1);
    assert_eq!(b.applied(), 1, "one record in the log");
}

#[tokio::test]
async fn a_suspended_user_is_locked_out_on_every_replica() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = grant_kp_1(&fleet);
    let suspended = fleet.kinde.webhook(
        "user.updated",
        json!({"user": {"id": "kp_1", "is_suspended": true, "organizations": []}}),
    );
    assert_eq!(suspended.deliver(&a.webhook_url()).await, 200);
    until("B applies it", || b.applied() >= 1).await;

    // Kinde still grants the permissions live: only the lock-out stops the old token.
    for path in ["/reports", "/me"] {
        b.get(path, &token).await.assert_invalid_token();
    }
    b.post("/payments", &token).await.assert_invalid_token();

    // Un-suspended later: a token issued after the event works.
    let fresh = fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(2)
        .sign();
    assert_eq!(b.get("/reports", &fresh).await.status, 200);
}

#[tokio::test]
async fn lock_outs_and_revocations_made_in_code_travel_too() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = grant_kp_1(&fleet);
    let other = fleet
        .kinde
        .user_token("kp_3")
        .claim("jti", "jti-to-revoke")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(b.get("/reports", &other).await.status, 200);

    a.auth.revoke_token("jti-to-revoke");
    let at = std::time::SystemTime::now();
    let lock_out = Change::new(Target::User("kp_1".into()), Action::LockOut, at);
    a.auth.change_log().publish(lock_out).await.unwrap();
    until("B applies both", || b.applied() >= 2).await;
    b.get("/reports", &other).await.assert_invalid_token();
    b.get("/reports", &token).await.assert_invalid_token();
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_not_an_error_and_claims_wait_for_the_replay() {
    let mut fleet = Fleet::start(0).await;
    let token = grant_kp_1(&fleet);
    fleet.redis.stop();
    let replica = fleet.replica().await;
    let before = replica.get("/reports", &token).await;
    assert_eq!(
        (before.status, before.source.as_deref()),
        (200, Some("live"))
    );
    assert!(!replica.caught_up());

    fleet.redis.restart().unwrap();
    until("the replica replays the log", || replica.caught_up()).await;
    let after = replica.get("/reports", &token).await;
    assert_eq!(
        (after.status, after.source.as_deref()),
        (200, Some("token"))
    );
}

#[tokio::test]
async fn the_follower_ends_with_the_last_user_of_the_log() {
    let mut fleet = Fleet::start(1).await;
    let mut conn = fleet.admin().await;
    async fn followers(conn: &mut redis::aio::MultiplexedConnection) -> usize {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(conn)
            .await
            .unwrap();
        list.lines()
            .filter(|l| l.contains("name=claimcheck-follower"))
            .count()
    }
    assert_eq!(followers(&mut conn).await, 1);
    fleet.replicas.clear();
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    while followers(&mut conn).await > 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the follower outlived its replica"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_first_deployment_trusts_existing_tokens() {
    let mut fleet = Fleet::start(1).await;
    let token = grant_kp_1(&fleet);
    let second = fleet.add().await;
    let answer = second.get("/reports", &token).await;
    assert_eq!(
        (answer.status, answer.source.as_deref()),
        (200, Some("token"))
    );
    assert_eq!(second.auth.change_log().status().gaps, 0);
}

#[tokio::test]
async fn a_longer_freshness_set_after_redis_keeps_the_shared_log() {
    let fleet = Fleet::start(1).await;
    let verifier = common::warm_verifier(&fleet.kinde).await;
    let live = common::live_for(&fleet.kinde, common::Via::Account).build();
    let auth = claimcheck::Auth::new(verifier, live)
        .with_redis(fleet.config())
        .with_freshness(claimcheck::freshness::Freshness::new(
            Duration::from_secs(48 * 3600),
            1_000,
        ));
    assert_eq!(auth.change_log().status().kind, "redis");
    let at = std::time::SystemTime::now();
    let change = Change::new(Target::User("kp_7".into()), Action::Distrust, at);
    fleet.a().auth.change_log().publish(change).await.unwrap();
    until("the rebound follower applies it", || {
        auth.freshness().user_watermark("kp_7").is_some()
    })
    .await;
}
