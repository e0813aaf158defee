//! Attacked from outside: is there a window where a replica trusts claims while it has not applied a
//! change another replica acknowledged?
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime};

use claimcheck::changes::{Action, Change, Target};
use claimcheck::testing::DEFAULT_ORG;
use common::fleet::{Fleet, until};

/// ATTACK: Redis restarts empty after an outage long enough for A's follower backoff to grow
/// (~1 s). A replica C started right then replays the empty log, opens its gate and trusts
/// kp_1's old token, though A acknowledged "kp_1 changed" before the outage: the loss record
/// that should cover C only arrives when A's next retry comes round.
#[tokio::test]
async fn a_replica_started_after_an_empty_restart_does_not_trust_lost_changes() {
    let mut fleet = Fleet::start(1).await;
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let token = fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign();
    let a = fleet.a();
    a.auth
        .change_log()
        .publish(Change::new(
            Target::User("kp_1".into()),
            Action::Distrust,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    assert_eq!(
        a.get("/reports", &token).await.source.as_deref(),
        Some("live")
    );

    fleet.redis.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    fleet.redis.restart().unwrap();
    // In production the grace is 3 s; longer than A's longest reconnect pause (1 s) is enough.
    fleet.new_epoch_grace = Duration::from_millis(1_500);
    let c = fleet.replica().await;
    until("C caught up", || c.caught_up()).await;
    let answer = c.get("/reports", &token).await;
    let gaps_a = fleet.a().auth.change_log().status().gaps;
    assert_eq!(
        answer.source.as_deref(),
        Some("live"),
        "C trusts a token whose acknowledged change was lost (A has found {gaps_a} gaps so far)"
    );
}
