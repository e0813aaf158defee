//! Attacked from outside: trust gate vs status, task leaks, misconfiguration, two issuers on one prefix.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, SystemTime};

use claimcheck::Auth;
use claimcheck::changes::{Action, Change, RedisConfig, Target};
use claimcheck::freshness::Freshness;
use claimcheck::kinde::KindeConfig;
use claimcheck::testing::{DEFAULT_ORG, FakeKinde, RedisServer};
use common::fleet::{Fleet, until};
use common::{Via, live_for, warm_verifier};

async fn redis_clients(redis: &RedisServer) -> Vec<String> {
    let mut admin = common::fleet::admin_connection(&redis.client()).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    // Everything but this admin connection (the one running CLIENT LIST).
    list.lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .map(str::to_owned)
        .collect()
}

async fn bare_auth(kinde: &FakeKinde, config: RedisConfig) -> Auth {
    let verifier = warm_verifier(kinde).await;
    let live = live_for(kinde, Via::Management).build();
    Auth::new(verifier, live).with_redis(config)
}

/// HOLDS? Dropping every clone ends the follower, the watchdog, the writer and their
/// connections; `shutdown` ends the follower and closes the gate for good.
#[tokio::test]
async fn no_task_or_connection_outlives_the_auth() {
    let kinde = FakeKinde::start().await;
    let redis = RedisServer::start().unwrap();
    let config = RedisConfig::new(&redis.url())
        .unwrap()
        .prefix("leak")
        .unwrap()
        .new_epoch_grace(Duration::ZERO)
        .cut_off_after(Duration::from_millis(200));
    let auth = bare_auth(&kinde, config.clone()).await;
    until("caught up", || auth.change_log().status().caught_up).await;
    auth.change_log()
        .publish(Change::new(
            Target::Everyone,
            Action::Invalidate,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    let layer = auth.layer();
    let receiver = auth.webhook_receiver();
    assert_eq!(
        redis_clients(&redis).await.len(),
        2,
        "follower + append connection"
    );
    drop(auth);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alive = redis_clients(&redis).await;
    assert!(
        alive.iter().any(|l| l.contains("name=claimcheck-follower")),
        "the layer and receiver keep the follower alive: {alive:#?}"
    );
    drop((layer, receiver));
    let start = std::time::Instant::now();
    loop {
        let left = redis_clients(&redis).await;
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still connected: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // shutdown: the follower's connection goes, the gate closes and stays closed.
    let auth = bare_auth(&kinde, config).await;
    until("caught up", || auth.change_log().status().caught_up).await;
    auth.change_log().shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!auth.freshness().is_trusting());
    assert!(!auth.change_log().status().caught_up);
    let left = redis_clients(&redis).await;
    assert!(
        left.iter().all(|l| !l.contains("name=claimcheck-follower")),
        "{left:#?}"
    );
    // A change published after shutdown is applied here only: nothing would append it.
    auth.invalidate_all();
    assert_eq!(
        auth.change_log().status().outbox,
        0,
        "nothing waits for a writer that is gone"
    );
}

/// COSMETIC: `LogStatus::caught_up` says token-trusted routes trust claims only when it is
/// true; right after the connection is lost it is false while the route still trusts claims
/// (until the cut-off bound).
#[tokio::test]
async fn status_caught_up_matches_the_trust_gate() {
    let mut fleet = Fleet::start(0).await;
    fleet.cut_off = Duration::from_secs(10);
    fleet.add().await;
    fleet.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let token = fleet
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign();
    fleet.redis.stop();
    let a = fleet.a();
    // Within the bound (10 s here) the route still trusts claims, and the status says so.
    for _ in 0..5 {
        let caught_up = a.caught_up();
        let answer = a.get("/reports", &token).await;
        assert_eq!(
            caught_up,
            answer.source.as_deref() == Some("token"),
            "status and gate agree"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// MISCONFIGURATION: no error message or Debug output carries the Redis password.
#[tokio::test]
async fn bad_redis_urls_never_leak_the_password() {
    let base = |url: &'static str, prefix: Option<&'static str>| {
        move |name: &str| match name {
            "KINDE_ISSUER_URL" => Some("https://a.kinde.com".to_owned()),
            "KINDE_AUDIENCE" => Some("api".to_owned()),
            "CLAIMCHECK_REDIS_URL" => Some(url.to_owned()),
            "CLAIMCHECK_REDIS_PREFIX" => prefix.map(str::to_owned),
            _ => None,
        }
    };
    for url in [
        "redis://:s3cret@host:99999/",
        "redis://user:s3cret@host/notadb",
        "http://user:s3cret@host/",
        "redis://user:s3cret@[::1/",
        "rediss://user:s3cret@host/",
        "s3cret",
        "redis://user:s3cret@host:6379/0?protocol=9",
    ] {
        match KindeConfig::from_lookup(base(url, None)) {
            Err(e) => {
                let text = format!("{e} {e:?}");
                assert!(!text.contains("s3cret"), "{url}: {text}");
            }
            Ok(config) => {
                let text = format!("{config:?}");
                assert!(!text.contains("s3cret"), "{url}: {text}");
                eprintln!("accepted: {url}");
            }
        }
    }
    for prefix in [" app", "app ", "a b", "app\n"] {
        // from_lookup trims: " app" and "app " and "app\n" become "app"; "a b" is refused.
        let r = KindeConfig::from_lookup(base("redis://127.0.0.1:1/", Some(prefix)));
        eprintln!("prefix {prefix:?}: {:?}", r.as_ref().err());
    }
    let config = RedisConfig::new("redis://user:s3cret@127.0.0.1:1/").unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
}

/// CARELESS OPERATOR: `with_freshness` after `with_redis` silently replaces the Redis log with
/// the in-process one (the follower is dropped): the fleet no longer shares anything.
#[tokio::test]
async fn builder_order_does_not_silently_drop_the_shared_log() {
    let kinde = FakeKinde::start().await;
    let redis = RedisServer::start().unwrap();
    let config = RedisConfig::new(&redis.url()).unwrap();
    let verifier = warm_verifier(&kinde).await;
    let live = live_for(&kinde, Via::Management).build();
    let auth = Auth::new(verifier, live)
        .with_redis(config)
        .with_freshness(Freshness::new(Duration::from_secs(3600), 1000));
    assert_eq!(
        auth.change_log().status().kind,
        "redis",
        "with_redis(..).with_freshness(..) silently runs on the in-process log"
    );
}

/// MISCONFIGURATION: two apps (issuers) on one prefix. Both find one reset; the loss record's
/// dedupe key (`seen:loss:reset:<epoch>`) has no issuer in it, so only one app gets a loss
/// record: the other's replicas started later trust tokens issued before the loss.
#[tokio::test]
async fn two_issuers_on_one_prefix_each_get_their_loss_record() {
    let mut fleet = Fleet::start(1).await;
    let kinde2 = FakeKinde::start().await;
    let other = bare_auth(&kinde2, fleet.config()).await;
    until("app 2 caught up", || other.change_log().status().caught_up).await;
    for log in [fleet.a().auth.change_log(), other.change_log()] {
        log.publish(Change::new(
            Target::Org("x".into()),
            Action::Invalidate,
            SystemTime::now(),
        ))
        .await
        .unwrap();
    }
    fleet.redis.restart().unwrap();
    until("app 1 finds the reset", || {
        fleet.a().auth.change_log().status().gaps == 1
    })
    .await;
    until("app 2 finds the reset", || {
        other.change_log().status().gaps == 1
    })
    .await;
    until("both caught up", || {
        fleet.a().caught_up() && other.change_log().status().caught_up
    })
    .await;
    let mut admin = fleet.admin().await;
    let has = |losses: &[String], iss: &str| {
        losses
            .iter()
            .any(|c| c.contains(&format!("\"iss\":\"{iss}\"")))
    };
    let give_up = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{}:log", fleet.prefix))
            .arg("-")
            .arg("+")
            .query_async(&mut admin)
            .await
            .unwrap();
        let losses: Vec<String> = reply
            .ids
            .iter()
            .filter_map(|e| match e.map.get("c") {
                Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .filter(|c| c.contains("\"from\":\"loss\""))
            .collect();
        if has(&losses, fleet.kinde.issuer()) && has(&losses, kinde2.issuer()) {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "loss records: {losses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fleet.replicas.clear();
}
