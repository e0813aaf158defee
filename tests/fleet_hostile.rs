//! Attacked from outside: someone with write access to the Redis stream.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claimcheck::changes::{Action, Change, Target};
use claimcheck::testing::DEFAULT_ORG;
use common::fleet::{Fleet, burst, until};
use redis::aio::MultiplexedConnection;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn xadd(admin: &mut MultiplexedConnection, stream: &str, id: &str, fields: &[(&str, &[u8])]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream).arg(id);
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    let _: redis::Value = cmd.query_async(admin).await.unwrap();
}

/// HOLDS? Garbage of every shape: skipped and counted, no panic, the follower goes on, and
/// nothing grants.
#[tokio::test]
async fn garbage_entries_are_skipped_and_the_follower_goes_on() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let issuer = fleet.kinde.issuer().to_owned();
    let stream = format!("{}:log", fleet.prefix);
    let mut admin = fleet.admin().await;
    let big = "x".repeat(100_000);
    let far = 32_503_680_000_000i64; // year 3000
    let bad: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00not utf8".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        br#"{"v":1,"id":"g","who":"all","what":"grant","at":1,"from":"app"}"#.to_vec(),
        br#"{"v":1,"id":"g","who":"user","key":"kp_1","what":"unlock","at":1,"from":"app"}"#.to_vec(),
        br#"{"v":1,"id":"g","who":"all","what":"distrust","at":1e30,"from":"app"}"#.to_vec(),
        br#"{"v":1,"id":"g","who":"all","what":"distrust","at":-1,"from":"app","extra":{"deep":[[[[[[]]]]]]}}"#.to_vec(),
        format!(r#"{{"v":1,"id":"g","who":"user","key":"{big}","what":"lockout","at":1,"from":"app"}}"#).into_bytes(),
        "[".repeat(100_000).into_bytes(),
    ];
    for c in &bad {
        xadd(&mut admin, &stream, "*", &[("c", c)]).await;
    }
    // No `c` at all, and an extra field only.
    xadd(&mut admin, &stream, "*", &[("x", b"1")]).await;
    // Another issuer's lock-out of kp_1, and a huge at (year 3000) for kp_9 on ours.
    let other = format!(
        r#"{{"v":1,"id":"o1","iss":"https://evil.example","who":"user","key":"kp_1","what":"lockout","at":{far},"from":"app"}}"#
    );
    xadd(&mut admin, &stream, "*", &[("c", other.as_bytes())]).await;
    let future = format!(
        r#"{{"v":1,"id":"f1","iss":"{issuer}","who":"user","key":"kp_9","what":"lockout","at":{far},"from":"app"}}"#
    );
    xadd(&mut admin, &stream, "*", &[("c", future.as_bytes())]).await;

    // The follower goes on: a real change from A still arrives.
    a.auth
        .change_log()
        .publish(Change::new(
            Target::User("kp_2".into()),
            Action::Distrust,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    until("B applies A's change", || {
        b.auth.freshness().user_watermark("kp_2").is_some()
    })
    .await;
    let status = b.auth.change_log().status();
    // All but the `"extra"` one (unknown fields are ignored: a harmless distrust at -1 ms),
    // plus the entry without `c`.
    assert_eq!(status.skipped, bad.len() as u64, "{status:?}");
    assert!(b.caught_up());

    // Another issuer's lock-out does nothing here.
    let token = fleet.old_token("kp_1", &["read:reports"]);
    let answer = b.get("/reports", &token).await;
    assert_eq!(
        (answer.status, answer.source.as_deref()),
        (200, Some("token"))
    );

    // A record dated year 3000 takes effect at now + the leeway (unit test
    // `changes::apply::far_future`): the verifier refuses tokens issued further ahead anyway.
}

/// HOLDS? 20 000 entries at once: replayed in batches by a new replica, memory fine.
#[tokio::test]
async fn a_flood_of_records_is_replayed() {
    let fleet = Fleet::start(1).await;
    let stream = format!("{}:log", fleet.prefix);
    let issuer = fleet.kinde.issuer().to_owned();
    let mut admin = fleet.admin().await;
    for chunk in 0..4 {
        let mut pipe = redis::pipe();
        for i in chunk * 5_000..(chunk + 1) * 5_000 {
            let c = format!(
                r#"{{"v":1,"id":"flood{i}","iss":"{issuer}","who":"org","key":"org_{i}","what":"invalidate","at":1,"from":"app"}}"#
            );
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("c")
                .arg(c)
                .ignore();
        }
        let _: () = pipe.query_async(&mut admin).await.unwrap();
    }
    let a = fleet.a();
    let start = std::time::Instant::now();
    let mut closed = 0;
    while a.applied() < 20_000 {
        assert!(
            start.elapsed() < Duration::from_secs(9),
            "A applied {} in 9 s",
            a.applied()
        );
        if !a.auth.freshness().is_trusting() {
            closed += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "A applied 20 000 in {:?}; gate seen closed {closed} times",
        start.elapsed()
    );
    let start = std::time::Instant::now();
    let late = fleet.replica().await;
    while !late.caught_up() {
        assert!(
            start.elapsed() < Duration::from_secs(9),
            "late replica applied {} in 9 s",
            late.applied()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("late replica replayed in {:?}", start.elapsed());
    assert_eq!(late.applied(), 20_000);
}

/// ATTACK: one entry with the largest possible id wedges the log: every later XADD fails
/// ("stream has exhausted the last possible ID"). The append script has already done its
/// `SET NX` dedupe for a webhook, and Redis does not roll a script back: the event is marked
/// "appended" though it never was. The outbox writer then gets `nil` (a "duplicate") and
/// drops it; a redelivery to another replica answers 200 without applying anything there.
#[tokio::test]
async fn a_wedged_log_does_not_turn_a_webhook_into_a_silent_200() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let token = fleet.old_token("kp_1", &["read:reports"]);
    let stream = format!("{}:log", fleet.prefix);
    let mut admin = fleet.admin().await;
    xadd(
        &mut admin,
        &stream,
        "18446744073709551615-18446744073709551615",
        &[("c", b"wedge")],
    )
    .await;
    until("B skipped it", || b.auth.change_log().status().skipped == 1).await;

    fleet.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    let event = fleet.kinde.user_updated("kp_1");
    // The append starts the stream over (the wedge's id is past now + retention), so A can
    // append; either way the event may not be marked seen without being in the log.
    let first = event.deliver(&a.webhook_url()).await;
    assert!(first == 200 || first == 503, "{first}");
    // Kinde redelivers to B.
    let second = event.deliver(&b.webhook_url()).await;
    // B finds the stream started over at its next idle check (at most a block period).
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    let mut answer = b.get("/reports", &token).await;
    while answer.source.as_deref() != Some("live") && std::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = b.get("/reports", &token).await;
    }
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        second != 200 || answer.source.as_deref() == Some("live"),
        "B answered {second} to the redelivery, but never applied it (source {:?}); stream holds {len} entries",
        answer.source
    );
}

/// ATTACK: one entry with an id in the far future (a hostile writer, or a Redis whose clock
/// once jumped ahead) disables trimming: every later id shares that millisecond, and `MINID ~`
/// by "now - retention" never reaches them. The log grows without bound.
#[tokio::test]
async fn a_future_id_does_not_disable_trimming() {
    let mut fleet = Fleet::start(0).await;
    fleet.lifetime = Some(Duration::from_millis(200));
    fleet.add().await;
    let stream = format!("{}:log", fleet.prefix);
    let mut admin = fleet.admin().await;
    xadd(&mut admin, &stream, "99999999999999-0", &[("c", b"future")]).await;
    let log = fleet.a().auth.change_log().clone();
    burst(&log, 2_000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    burst(&log, 500).await;
    let len: usize = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut admin)
        .await
        .unwrap();
    // fleet_outages' trimming test keeps <= 700 under the same bursts.
    assert!(
        len <= 700,
        "{len} entries kept: trimming disabled by one future id"
    );
    let _ = now_s();
}
