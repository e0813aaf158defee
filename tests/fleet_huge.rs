//! Attacked from outside: huge entries in the stream (a hostile writer, or a buggy tool sharing the key).
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant, SystemTime};

use claimcheck::changes::{Action, Change, Target};
use common::fleet::Fleet;

fn vm_hwm_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// ATTACK: 96 entries of 4 MiB each (384 MiB; `HUGE_ENTRIES=256` for 1 GiB). Once, a replay
/// read whole batches of them under the follower's response timeout (block + cut-off = 500 ms
/// here), never finished, reconnected and read the same batch forever. The replay now reads
/// about a megabyte per call, and records over 8 KiB are cut server-side.
#[tokio::test]
async fn huge_entries_are_skipped_with_bounded_memory() {
    let fleet = Fleet::start(2).await;
    let (a, b) = (&fleet.replicas[0], &fleet.replicas[1]);
    let stream = format!("{}:log", fleet.prefix);
    let mut admin = fleet.admin().await;
    let blob = vec![b'x'; 4 << 20];
    let before = vm_hwm_mb();
    let n: usize = std::env::var("HUGE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    for _ in 0..n {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("c")
            .arg(&blob)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    a.auth
        .change_log()
        .publish(Change::new(
            Target::User("kp_2".into()),
            Action::Distrust,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    let start = Instant::now();
    while b.auth.freshness().user_watermark("kp_2").is_none() {
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = b.auth.change_log().status();
    let peak = vm_hwm_mb();
    eprintln!(
        "after {:?}: {status:?}; peak RSS {before} -> {peak} MiB (two replicas in this process)",
        start.elapsed()
    );
    assert!(
        b.auth.freshness().user_watermark("kp_2").is_some(),
        "B never got past the huge entries: {status:?}"
    );
    assert_eq!(status.skipped, n as u64);
    assert!(
        peak - before < 300,
        "peak RSS grew by {} MiB",
        peak - before
    );

    // A replica started now replays them in one XRANGE batch.
    let before = vm_hwm_mb();
    let late = fleet.replica().await;
    let start = Instant::now();
    while !late.caught_up() && start.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = late.auth.change_log().status();
    let peak = vm_hwm_mb();
    eprintln!(
        "late replica after {:?}: {status:?}; peak RSS {before} -> {peak} MiB",
        start.elapsed()
    );
    assert!(
        late.caught_up(),
        "the late replica never caught up: {status:?}"
    );
    assert!(
        peak - before < 300,
        "replay peak RSS grew by {} MiB",
        peak - before
    );
}
