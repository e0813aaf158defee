//! Second adversarial pass: numbered entries, false and missed gaps.
#![cfg(feature = "redis")]

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::{Duration, SystemTime};

use claimcheck::changes::{Action, Change, Target};
use common::fleet::{Fleet, Replica, until};
use crash::*;

async fn publish(replica: &Replica, target: Target, action: Action) {
    let published = replica
        .auth
        .change_log()
        .publish(Change::new(target, action, SystemTime::now()))
        .await;
    assert!(published.is_ok(), "{published:?}");
}

async fn publish_retrying(replica: &Replica, target: Target) {
    for _ in 0..100 {
        let change = Change::new(target.clone(), Action::Invalidate, SystemTime::now());
        if replica.auth.change_log().publish(change).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never published");
}

/// SHOULD HOLD: Redis with AOF restarted cleanly (nothing lost): no gap anywhere.
#[tokio::test]
async fn clean_restart_with_aof_counts_no_gap() {
    let mut fleet = Fleet::start(0).await;
    let mut redis = persistent_fleet_redis(&mut fleet, true);
    fleet.add().await;
    fleet.add().await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let burst = (0..20).map(|i| async move {
        publish(a, Target::Org(format!("a{i}")), Action::Invalidate).await;
        publish(b, Target::Org(format!("b{i}")), Action::Invalidate).await;
    });
    futures_util::future::join_all(burst).await;
    until("both read the burst", || {
        a.applied() >= 20 && b.applied() >= 20
    })
    .await;

    redis.shutdown();
    redis.spawn();
    let before = b.applied();
    publish_retrying(a, Target::Org("marker".into())).await;
    until("B reads past the restart", || b.applied() > before).await;
    // A few idle re-checks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.add().await;
    for (i, r) in fleet.replicas.iter().enumerate() {
        assert_eq!(
            gaps(r),
            0,
            "replica {i} counted a gap after a lossless restart"
        );
        assert!(r.caught_up(), "replica {i}");
    }
}

/// ATTACK (miss): Redis crashes and comes back from its last snapshot (RDB, or AOF everysec
/// losing its last second): same epoch, fewer entries. If any append lands before the
/// followers reconnect (another replica's publish, an outbox drain), `last-generated-id` is
/// past their position again and the epoch is unchanged: the rewind is never counted, no loss
/// record is written, and a replica started afterwards trusts a token whose acknowledged change
/// was lost.
#[tokio::test]
async fn a_rewound_log_hidden_by_one_append_is_found() {
    let mut fleet = Fleet::start(0).await;
    let mut redis = persistent_fleet_redis(&mut fleet, false);
    fleet.add().await;
    fleet.add().await;
    let token = token_at(&fleet, "kp_1", now_ms() / 1000 - 30);
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    publish(a, Target::Org("warm".into()), Action::Invalidate).await;
    until("B read warm-up", || b.applied() >= 1).await;
    let mut conn = admin(&redis.url()).await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();

    // Acknowledged after the snapshot, read by every running replica.
    publish(a, Target::User("kp_1".into()), Action::Distrust).await;
    until("B applied kp_1's change", || b.applied() >= 2).await;
    assert_eq!(
        b.get("/reports", &token).await.source.as_deref(),
        Some("live")
    );

    redis.crash();
    // Long enough for the followers' reconnect pause to reach 1 s.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    redis.spawn();
    // Another writer's ordinary append lands first.
    let mut conn = admin(&redis.url()).await;
    raw_append(
        &mut conn,
        &fleet.prefix,
        &record("first-after-restart"),
        90_000_000,
    )
    .await;
    until("B reconnected", || b.applied() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (ga, gb) = (gaps(a), gaps(b));
    let c = fleet.replica().await;
    until("C caught up", || c.caught_up()).await;
    let answer = c.get("/reports", &token).await;
    assert!(
        ga + gb >= 1 || answer.source.as_deref() == Some("live"),
        "the log lost an acknowledged entry every replica had read (numbered past the new \
         head), yet gaps A={ga} B={gb}, and C trusts kp_1's older token (source {:?})",
        answer.source
    );
}

/// ATTACK (false positive): a replica replays a log whose oldest entries are past the
/// retention (an idle log: MINID trims only on append). An ordinary append during the replay
/// trims them ahead of the reader; the numbers jump and the replica applies the conservative
/// rule, though nothing within the retention was lost.
#[tokio::test]
async fn trimming_old_entries_during_a_replay_is_not_a_gap() {
    let mut fleet = Fleet::start(0).await;
    fleet.lifetime = Some(Duration::from_millis(400));
    fleet.add().await;
    let mut conn = admin(&fleet.redis.url()).await;
    // 20 000 entries, appended with a long retention so nothing is trimmed yet.
    let script = append_script();
    let stream = format!("{}:log", fleet.prefix);
    for _ in 0..4 {
        let mut pipe = redis::pipe();
        for _ in 0..5_000 {
            pipe.invoke_script(
                script
                    .key(&stream)
                    .key(format!("{}:epoch", fleet.prefix))
                    .key(&stream)
                    .arg(record("old"))
                    .arg(90_000_000u64)
                    .arg(60)
                    .arg("e")
                    .arg("0")
                    .arg(1_000_000),
            );
        }
        // Loads the script first.
        let _: redis::Value = script
            .key(&stream)
            .key(format!("{}:epoch", fleet.prefix))
            .key(&stream)
            .arg(record("old"))
            .arg(90_000_000u64)
            .arg(60)
            .arg("e")
            .arg("0")
            .arg(1_000_000)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        let _: redis::Value = pipe.query_async(&mut conn).await.unwrap();
    }
    // Every entry is now older than the retention (400 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = fleet.replica().await;
    let mut trimmed_mid_replay = false;
    for _ in 0..2_000 {
        let applied = c.applied();
        if c.caught_up() {
            break;
        }
        if applied > 200 {
            // An ordinary append with the real retention: trims every old node.
            raw_append(&mut conn, &fleet.prefix, &record("new"), 400).await;
            trimmed_mid_replay = true;
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    until("C caught up", || c.caught_up()).await;
    assert!(
        trimmed_mid_replay,
        "C replayed too fast to test (applied {})",
        c.applied()
    );
    assert_eq!(
        gaps(&c),
        0,
        "entries older than the retention, trimmed by an ordinary append during C's replay, \
         counted as a loss on C (applied {})",
        c.applied()
    );
}

/// SHOULD HOLD: concurrent publishers on three replicas, follower connections killed mid-burst,
/// an older writer's entries without `n`, and a replica started mid-burst: no gap anywhere.
#[tokio::test]
async fn a_busy_normal_fleet_counts_no_gap() {
    let mut fleet = Fleet::start(3).await;
    let mut conn = admin(&fleet.redis.url()).await;
    let stream = format!("{}:log", fleet.prefix);
    let late = fleet.replica();
    let burst = async {
        let each = fleet
            .replicas
            .iter()
            .enumerate()
            .map(|(r, replica)| async move {
                for i in 0..60 {
                    let target = Target::Org(format!("r{r}-{i}"));
                    let change = Change::new(target, Action::Invalidate, SystemTime::now());
                    let _ = replica.auth.change_log().publish(change).await;
                }
            });
        futures_util::future::join_all(each).await;
    };
    let chaos = async {
        let mut conn = conn.clone();
        for round in 0..6 {
            tokio::time::sleep(Duration::from_millis(15)).await;
            // An older writer (no `n`).
            let _: String = redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("c")
                .arg(record("old-writer"))
                .query_async(&mut conn)
                .await
                .unwrap();
            if round % 2 == 0 {
                let list: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                for id in list
                    .lines()
                    .filter(|l| l.contains("cmd=xread"))
                    .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
                {
                    let _: redis::Value = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(id)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
            }
        }
    };
    let ((), (), late) = tokio::join!(burst, chaos, late);
    fleet.replicas.push(late);
    let total: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    for r in &fleet.replicas {
        until("caught up", || r.caught_up()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, r) in fleet.replicas.iter().enumerate() {
        let s = r.auth.change_log().status();
        assert_eq!(s.gaps, 0, "replica {i}: {s:?} ({total} entries)");
    }
}
