//! Attacked from outside: epoch / gap detection of the Redis change log.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claimcheck::changes::{Action, Change, Target};
use claimcheck::testing::DEFAULT_ORG;
use common::fleet::{Fleet, Replica, followers, kill_client, until};
use redis::aio::MultiplexedConnection;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// kp_1 holds read:reports at Kinde; a token issued `iat` (Unix seconds) that says so.
fn token_at(fleet: &Fleet, iat: i64) -> String {
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .claim("iat", iat)
        .sign()
}

async fn kill_all_followers(admin: &mut MultiplexedConnection) {
    for id in followers(admin).await {
        kill_client(admin, id).await;
    }
}

async fn set_maxclients(admin: &mut MultiplexedConnection, n: usize) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(n)
        .query_async(admin)
        .await
        .unwrap();
}

async fn connected(admin: &mut MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    list.lines().count()
}

/// Cuts B's follower (the newest XREAD connection) off and refuses new connections until
/// `reopen` is called: B is "disconnected" while A keeps its connections.
async fn cut_b(admin: &mut MultiplexedConnection) {
    // A's append connection must exist before the door closes. A follower is blocked in XREAD
    // except for its idle re-check, once per block period: wait for both to be there.
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    let mut before = followers(admin).await;
    while before.len() != 2 {
        assert!(
            std::time::Instant::now() < give_up,
            "two followers: {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
        before = followers(admin).await;
    }
    let n = connected(admin).await;
    set_maxclients(admin, n - 1).await;
    kill_client(admin, *before.last().unwrap()).await;
}

async fn reopen(admin: &mut MultiplexedConnection) {
    set_maxclients(admin, 10_000).await;
}

async fn publish(replica: &Replica, target: Target, action: Action) {
    let published = replica
        .auth
        .change_log()
        .publish(Change::new(target, action, SystemTime::now()))
        .await;
    assert!(published.is_ok(), "{published:?}");
}

/// Makes sure A's append connection exists (it is lazy).
async fn warm_a(fleet: &Fleet) {
    publish(fleet.a(), Target::Org("warm".into()), Action::Invalidate).await;
}

/// ATTACK: XTRIM the stream past a disconnected follower's position. Redis 7.0's XTRIM does
/// not move `max-deleted-entry-id` (only XDEL does), so the "Trimmed" gap is never found and
/// the change A acknowledged is silently lost on B.
#[tokio::test]
async fn xtrim_past_a_disconnected_follower_is_found() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = token_at(&fleet, now_ms() / 1000 - 30);
    assert_eq!(
        b.get("/reports", &token).await.source.as_deref(),
        Some("token")
    );
    warm_a(&fleet).await;
    until("B read warm-up", || b.applied() >= 1).await;

    let mut admin = fleet.admin().await;
    cut_b(&mut admin).await;
    // A: kp_1's permissions changed (acknowledged), then an unrelated change.
    publish(a, Target::User("kp_1".into()), Action::Distrust).await;
    publish(a, Target::Org("marker".into()), Action::Invalidate).await;
    // An operator trims the log to its last entry (XTRIM MAXLEN 1) while B is away.
    let _: i64 = redis::cmd("XTRIM")
        .arg(format!("{}:log", fleet.prefix))
        .arg("MAXLEN")
        .arg(1)
        .query_async(&mut admin)
        .await
        .unwrap();
    reopen_and_expect_the_loss_found(&mut admin, b, &token).await;
}

/// ATTACK: the stream key alone disappears (DEL by an operator, or evicted under an
/// allkeys-* maxmemory policy) while B is away, and is recreated by the next append. Same
/// epoch, `last-generated-id` past B's position, nothing "deleted": no gap is found.
#[tokio::test]
async fn a_deleted_and_recreated_stream_is_found() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = token_at(&fleet, now_ms() / 1000 - 30);
    warm_a(&fleet).await;
    until("B read warm-up", || b.applied() >= 1).await;

    let mut admin = fleet.admin().await;
    cut_b(&mut admin).await;
    publish(a, Target::User("kp_1".into()), Action::Distrust).await;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:log", fleet.prefix))
        .query_async(&mut admin)
        .await
        .unwrap();
    publish(a, Target::Org("marker".into()), Action::Invalidate).await;
    reopen_and_expect_the_loss_found(&mut admin, b, &token).await;
}

/// Waits until the wall clock is past the next whole second; returns that second.
async fn next_second() -> i64 {
    let s = now_ms() / 1000 + 1;
    while now_ms() <= s * 1000 + 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s
}

/// ATTACK: the same kind of reset twice under one epoch (the stream key lost twice: eviction,
/// an RDB rollback, an operator's DEL). The loss record's id is `loss:reset:<old epoch>`, and
/// the follower applies it through the id-deduplicating `apply`, so the second loss is
/// counted in `gaps` but distrusts nothing.
#[tokio::test]
async fn a_second_reset_under_one_epoch_distrusts_older_tokens() {
    let fleet = Fleet::start(2).await;
    let b = &fleet.replicas[1];
    warm_a(&fleet).await;
    until("B read warm-up", || b.applied() >= 1).await;
    let mut admin = fleet.admin().await;
    let stream = format!("{}:log", fleet.prefix);
    let lose_stream = |admin: &mut MultiplexedConnection| {
        let stream = stream.clone();
        let mut admin = admin.clone();
        async move {
            let _: i64 = redis::cmd("DEL")
                .arg(&stream)
                .query_async(&mut admin)
                .await
                .unwrap();
            kill_all_followers(&mut admin).await;
        }
    };

    // B finds the loss itself, or applies the loss record another replica wrote first.
    let seen = || {
        let status = b.auth.change_log().status();
        status.gaps + status.applied
    };
    let before = seen();
    lose_stream(&mut admin).await;
    until("B finds loss #1", || seen() > before).await;
    until("B caught up", || b.caught_up()).await;
    // A token issued strictly after loss #1 (whole seconds), before loss #2.
    let iat = next_second().await;
    let token = token_at(&fleet, iat);
    assert_eq!(
        b.get("/reports", &token).await.source.as_deref(),
        Some("token"),
        "fresh after loss #1"
    );

    let before = seen();
    lose_stream(&mut admin).await;
    until("B finds loss #2", || seen() > before).await;
    until("B caught up", || b.caught_up()).await;
    let answer = b.get("/reports", &token).await;
    assert_eq!(
        answer.source.as_deref(),
        Some("live"),
        "loss #2 was counted but a token issued before it is still trusted on B"
    );
}

/// ATTACK (hostile writer): pre-empt the loss record's predictable id with a harmless record.
/// The epoch id is readable in Redis; `loss:reset:<epoch>` is then "applied before" on every
/// replica, and the next reset of that epoch distrusts nothing anywhere.
#[tokio::test]
async fn a_forged_record_cannot_disarm_the_reset_rule() {
    let fleet = Fleet::start(2).await;
    let b = &fleet.replicas[1];
    let token = token_at(&fleet, now_ms() / 1000 - 30);
    warm_a(&fleet).await;
    until("B read warm-up", || b.applied() >= 1).await;
    let mut admin = fleet.admin().await;
    let epoch: String = redis::cmd("HGET")
        .arg(format!("{}:epoch", fleet.prefix))
        .arg("id")
        .query_async(&mut admin)
        .await
        .unwrap();
    let record = format!(
        r#"{{"v":1,"id":"loss:reset:{epoch}","who":"org","key":"nobody","what":"invalidate","at":0,"from":"app"}}"#
    );
    let _: String = redis::cmd("XADD")
        .arg(format!("{}:log", fleet.prefix))
        .arg("*")
        .arg("c")
        .arg(&record)
        .query_async(&mut admin)
        .await
        .unwrap();
    until("B applies the forged record", || b.applied() >= 2).await;

    // Now the epoch is reset (key deleted: what a Redis restart from an old RDB or a cleanup
    // script does), and the followers reconnect.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:epoch", fleet.prefix))
        .query_async(&mut admin)
        .await
        .unwrap();
    kill_all_followers(&mut admin).await;
    until("B finds the reset", || {
        b.auth.change_log().status().gaps == 1
    })
    .await;
    until("B caught up", || b.caught_up()).await;
    let answer = b.get("/reports", &token).await;
    assert_eq!(
        answer.source.as_deref(),
        Some("live"),
        "the reset was found but older tokens are still trusted"
    );
}

/// HOLDS? Replicas finding one reset append one loss record (two now and then under heavy load:
/// harmless, a loss record's effect is idempotent; never none, never one per replica and more).
#[tokio::test]
async fn two_replicas_finding_one_reset_append_one_loss_record() {
    let mut fleet = Fleet::start(3).await;
    warm_a(&fleet).await;
    for r in &fleet.replicas {
        until("read warm-up", || r.applied() >= 1).await;
    }
    fleet.redis.restart().unwrap();
    for r in &fleet.replicas {
        until("reset found", || r.auth.change_log().status().gaps >= 1).await;
        until("caught up", || r.caught_up()).await;
    }
    // A loss record whose append timed out under load waits in an outbox: poll for it.
    let count = |records: Vec<String>| {
        records
            .iter()
            .filter(|c| c.contains("\"from\":\"loss\""))
            .count()
    };
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    while count(fleet.records().await) == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "no loss record appended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let entries = fleet.records().await;
    let losses = count(entries.clone());
    assert!(
        (1..=2).contains(&losses),
        "{losses} loss records in {} entries",
        entries.len()
    );
}

/// Lets B reconnect, waits until it has read past the marker and caught up, and checks that it
/// noticed the loss of kp_1's acknowledged change: counted as a gap, or the old token decided
/// live (a loss record applied).
async fn reopen_and_expect_the_loss_found(
    admin: &mut MultiplexedConnection,
    b: &Replica,
    token: &str,
) {
    reopen(admin).await;
    let applied = b.applied();
    until("B reconnects and reads the marker", || {
        b.applied() > applied
    })
    .await;
    until("B caught up", || b.caught_up()).await;

    let status = b.auth.change_log().status();
    let answer = b.get("/reports", token).await;
    assert!(
        status.gaps >= 1 || answer.source.as_deref() == Some("live"),
        "B lost kp_1's acknowledged change without noticing: gaps={}, source={:?}",
        status.gaps,
        answer.source
    );
}
