//! The shared change log when Redis misbehaves: stopped, restarted empty, frozen, connections
//! killed mid-burst, and trimmed by time. Each test owns its `redis-server`.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime};

use claimcheck::changes::{Action, Change, Target};
use claimcheck::testing::DEFAULT_ORG;
use common::fleet::{Fleet, burst, followers, kill_client, until};

#[tokio::test]
async fn redis_stopped_the_receiver_answers_503_applies_here_and_the_redelivery_lands() {
    let mut fleet = Fleet::start(0).await;
    // Long enough that B is not yet cut off when it is asked right after the outage begins.
    fleet.cut_off = Duration::from_secs(10);
    for _ in 0..3 {
        fleet.add().await;
    }
    let token = fleet.old_token("kp_1", &["create:payments", "read:reports"]);
    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    fleet.redis.stop();

    let event = fleet.kinde.user_updated("kp_1");
    let (a, b, c) = (&fleet.replicas[0], &fleet.replicas[1], &fleet.replicas[2]);
    let refused = fleet_webhook(&event, &a.webhook_url()).await;
    assert_eq!(refused.0, 503);
    assert!(refused.1.is_some(), "Retry-After");
    assert_eq!(
        a.get("/reports", &token).await.status,
        403,
        "A denies at once"
    );
    let stale = b.get("/reports", &token).await;
    assert_eq!(
        (stale.status, stale.source.as_deref()),
        (200, Some("token")),
        "B not yet"
    );

    fleet.redis.restart().unwrap();
    assert_eq!(event.deliver(&a.webhook_url()).await, 200, "redelivered");
    until("B and C apply it", || {
        [b, c]
            .iter()
            .all(|r| r.auth.freshness().user_watermark("kp_1").is_some())
    })
    .await;
    for replica in [b, c] {
        let denied = replica.get("/reports", &token).await;
        assert_eq!(
            (denied.status, denied.source.as_deref()),
            (403, Some("live"))
        );
    }
}

/// Delivers `event` and returns the status and `Retry-After`.
async fn fleet_webhook(event: &claimcheck::testing::Webhook, url: &str) -> (u16, Option<String>) {
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/jwt")
        .body(event.token().sign())
        .send()
        .await
        .unwrap();
    let retry = answer
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (answer.status().as_u16(), retry)
}

#[tokio::test]
async fn a_reset_redis_is_found_by_its_epoch_and_older_tokens_are_distrusted_everywhere() {
    let mut fleet = Fleet::start(2).await;
    let token = fleet.old_token("kp_1", &["create:payments", "read:reports"]);
    fleet
        .a()
        .auth
        .change_log()
        .publish(Change::new(
            Target::User("kp_9".into()),
            Action::Distrust,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    until("B reads it", || fleet.replicas[1].applied() >= 1).await;

    // Redis restarts empty and is written again at once: ids alone look continuous.
    fleet.redis.restart().unwrap();
    let mut conn = fleet.admin().await;
    let stream = format!("{}:log", fleet.prefix);
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("c")
        .arg("not a record")
        .query_async(&mut conn)
        .await
        .unwrap();

    for replica in &fleet.replicas {
        until("the reset is found", || {
            replica.auth.change_log().status().gaps == 1
        })
        .await;
        until("it catches up again", || replica.caught_up()).await;
        let answer = replica.get("/reports", &token).await;
        assert_eq!(
            (answer.status, answer.source.as_deref()),
            (200, Some("live"))
        );
    }
    // A replica started after the loss replays it: older tokens are not trusted there either.
    let newer = fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(2)
        .sign();
    let late = fleet.add().await;
    let answer = late.get("/reports", &token).await;
    assert_eq!(answer.source.as_deref(), Some("live"));
    assert_eq!(
        late.get("/reports", &newer).await.source.as_deref(),
        Some("token")
    );
    assert_eq!(
        late.auth.change_log().status().skipped,
        1,
        "the stray entry"
    );
}

#[tokio::test]
async fn a_follower_whose_connection_is_killed_mid_burst_applies_every_change() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let mut admin = fleet.admin().await;
    let at = SystemTime::now();
    for i in 0..1_000 {
        let change = Change::new(Target::User(format!("kp_{i}")), Action::Distrust, at);
        a.auth.change_log().publish(change).await.unwrap();
        if i % 250 == 100 {
            // Kill every blocking reader: B's follower (and A's).
            for id in followers(&mut admin).await {
                kill_client(&mut admin, id).await;
            }
        }
    }
    until("B applies all 1 000", || b.applied() == 1_000).await;
    assert_eq!(b.auth.change_log().status().gaps, 0, "a cut loses nothing");
    let freshness = b.auth.freshness();
    assert!((0..1_000).all(|i| freshness.user_watermark(&format!("kp_{i}")).is_some()));
}

#[tokio::test]
async fn a_follower_cut_off_past_its_bound_decides_live_and_the_outbox_delivers_later() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = fleet.old_token("kp_1", &["create:payments", "read:reports"]);
    assert_eq!(
        b.get("/reports", &token).await.source.as_deref(),
        Some("token")
    );

    // A partition that drops packets: connections stay open, nothing answers.
    fleet.redis.freeze().unwrap();
    let event = fleet.kinde.user_updated("kp_1");
    assert_eq!(event.deliver(&a.webhook_url()).await, 503);
    until("B notices the silence", || !b.caught_up()).await;
    let cut_off = b.get("/reports", &token).await;
    assert_eq!(
        (cut_off.status, cut_off.source.as_deref()),
        (200, Some("live"))
    );
    assert!(
        b.auth.freshness().user_watermark("kp_1").is_none(),
        "not received yet"
    );

    fleet.redis.thaw().unwrap();
    until("A's outbox reaches B", || {
        b.auth.freshness().user_watermark("kp_1").is_some()
    })
    .await;
    until("B catches up", || b.caught_up()).await;
    // B can read the record before A has the reply to its append: A's outbox empties then.
    until("A's outbox empties", || {
        a.auth.change_log().status().outbox == 0
    })
    .await;
    let other = fleet
        .kinde
        .user_token("kp_2")
        .permissions(["read:reports"])
        .issued_in(-5)
        .sign();
    assert_eq!(
        b.get("/reports", &other).await.source.as_deref(),
        Some("token")
    );
    assert_eq!(
        b.get("/reports", &token).await.source.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn the_log_stays_trimmed_to_its_retention_under_a_burst() {
    let mut fleet = Fleet::start(0).await;
    fleet.lifetime = Some(Duration::from_millis(200));
    fleet.add().await;
    let log = fleet.a().auth.change_log().clone();
    burst(&log, 2_000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    burst(&log, 500).await;
    let len = fleet.xlen().await;
    // `MINID ~` trims whole nodes (100 entries): the 2 000 older entries are gone.
    assert!(len <= 700, "{len} entries kept");
}

#[tokio::test]
async fn with_replica_acks_a_change_is_acknowledged_only_once_a_redis_replica_holds_it() {
    let mut fleet = Fleet::start(0).await;
    let replica = claimcheck::testing::RedisServer::start_replica_of(&fleet.redis).unwrap();
    let mut primary = fleet.admin().await;
    until_async(async || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut primary)
            .await
            .unwrap();
        info.contains("connected_slaves:1") && info.contains("state=online")
    })
    .await;
    fleet.replica_acks = 1;
    fleet.add().await;
    let a = fleet.a();
    let change = || {
        Change::new(
            Target::User("kp_1".into()),
            Action::Distrust,
            SystemTime::now(),
        )
    };
    assert!(a.auth.change_log().publish(change()).await.is_ok());

    // The replica stops acknowledging: the append is not durable enough to say 200.
    replica.freeze().unwrap();
    let event = fleet.kinde.user_updated("kp_2");
    assert_eq!(event.deliver(&a.webhook_url()).await, 503);
    assert!(
        a.auth.freshness().user_watermark("kp_2").is_some(),
        "applied here anyway"
    );
    replica.thaw().unwrap();
    assert_eq!(
        event.deliver(&a.webhook_url()).await,
        200,
        "redelivered once it acknowledges"
    );
}

/// Polls `done` every few milliseconds, at most 3 s.
async fn until_async(mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(3), "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
