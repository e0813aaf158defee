//! Second adversarial pass: replica_acks and the outbox.
#![cfg(feature = "redis")]

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::Duration;

use claimcheck::testing::RedisServer;
use common::fleet::Fleet;

async fn wait_online(fleet: &Fleet) {
    let mut primary = common::fleet::admin_connection(&fleet.redis.client()).await;
    let start = std::time::Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut primary)
            .await
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// ATTACK: with replica_acks(1), a webhook answered 503 because the Redis replica did not
/// acknowledge is re-appended by the outbox writer without WAIT (the dedupe key makes it a
/// "duplicate", which counts as done), and its redelivery is answered 200 as a Duplicate
/// without WAIT either. The event is acknowledged to Kinde while no Redis replica holds it.
#[tokio::test]
async fn replica_acks_hold_for_the_outbox_and_for_redeliveries() {
    let mut fleet = Fleet::start(0).await;
    let replica = RedisServer::start_replica_of(&fleet.redis).unwrap();
    wait_online(&fleet).await;
    fleet.replica_acks = 1;
    fleet.add().await;
    fleet.add().await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);

    // Acknowledged by the replica: its offset is current before the freeze.
    let change = claimcheck::changes::Change::new(
        claimcheck::changes::Target::Org("warm".into()),
        claimcheck::changes::Action::Invalidate,
        std::time::SystemTime::now(),
    );
    assert!(a.auth.change_log().publish(change).await.is_ok());
    replica.freeze().unwrap();
    let event = fleet.kinde.user_updated("kp_2");
    assert_eq!(
        event.deliver(&a.webhook_url()).await,
        503,
        "not durable: 503"
    );
    // The replica is still frozen: nothing is durable yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outbox = a.auth.change_log().status().outbox;
    let redelivered = event.deliver(&b.webhook_url()).await;

    // Does the Redis replica hold it? Its acknowledged offset against the primary's.
    let mut conn = common::fleet::admin_connection(&fleet.redis.client()).await;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |line: &str, name: &str| -> i64 {
        line.split([',', ':'])
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let master = info
        .lines()
        .find(|l| l.starts_with("master_repl_offset:"))
        .map(|l| l.trim().split_once(':').unwrap().1.parse::<i64>().unwrap())
        .unwrap();
    let acked = info
        .lines()
        .find(|l| l.starts_with("slave0:"))
        .map(|l| field(l, "offset="))
        .unwrap();
    let on_replica = acked >= master;
    assert!(
        redelivered != 200 || on_replica,
        "redelivery answered {redelivered} (A's outbox: {outbox} held) while the Redis replica \
         has acknowledged offset {acked} of {master}: the event is acknowledged without replica_acks"
    );
    eprintln!("redelivered={redelivered} on_replica={on_replica} outbox={outbox}");
    assert!(
        outbox >= 1,
        "A's outbox let go of a change no replica acknowledged"
    );
}

/// Outbox: redeliveries during an outage are enqueued again and again (same id): duplicates
/// fill the 10 000 capacity and collapse every held change into "distrust everyone".
#[tokio::test]
async fn redeliveries_during_an_outage_do_not_pile_up_in_the_outbox() {
    let mut fleet = Fleet::start(1).await;
    fleet.redis.stop();
    let a = fleet.a();
    let event = fleet.kinde.user_updated("kp_2");
    for _ in 0..5 {
        assert_eq!(event.deliver(&a.webhook_url()).await, 503);
    }
    let outbox = a.auth.change_log().status().outbox;
    assert_eq!(outbox, 1, "one event, {outbox} copies held in the outbox");
}
