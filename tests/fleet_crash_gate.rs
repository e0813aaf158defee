//! Second adversarial pass: the trust gate and the young-epoch grace.
#![cfg(feature = "redis")]

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use claimcheck::Auth;
use claimcheck::changes::{Action, Change, RedisConfig, Target};
use claimcheck::testing::RedisServer;
use common::fleet::{Fleet, until};
use common::{Via, app, live_for, serve, warm_verifier};
use crash::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to a Redis port that can be switched to another one; connections made before a
/// switch then hang silently (a dead host behind a service address), new ones go to the new
/// target.
struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    generation: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let generation = Arc::new(AtomicU64::new(0));
        let (t, g) = (target.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let mine = g.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", t.load(Ordering::SeqCst))).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, g.clone(), mine));
                tokio::spawn(pump(sr, cw, g.clone(), mine));
            }
        });
        Self {
            port,
            target,
            generation,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn switch_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    generation: Arc<AtomicU64>,
    mine: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if generation.load(Ordering::SeqCst) != mine {
            // Silently drop everything from now on, keeping the sockets open.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

struct R {
    auth: Auth,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for R {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl R {
    fn caught_up(&self) -> bool {
        self.auth.change_log().status().caught_up
    }
    async fn get(&self, path: &str, token: &str) -> common::Answer {
        let req = reqwest::Client::new().get(format!("{}{path}", self.base));
        common::send(req.header("authorization", format!("Bearer {token}"))).await
    }
}

async fn replica_with(fleet: &Fleet, config: RedisConfig) -> R {
    let verifier = warm_verifier(&fleet.kinde).await;
    let live = live_for(&fleet.kinde, Via::Management)
        .time_to_live(Duration::from_secs(60))
        .build();
    let auth = Auth::new(verifier, live).with_redis(config);
    let (base, server) = serve(app(&auth, Arc::new(AtomicUsize::new(0)))).await;
    R { auth, base, server }
}

/// ATTACK: the Redis host dies silently (no RST) and an empty Redis takes its address. A's
/// follower sits in a hung XREAD until its response timeout; a replica C started meanwhile
/// must not trust, after its grace, a token whose change A acknowledged before. (Found when
/// the grace was a fixed 3 s and the timeout block + cut-off = 6 s; both now follow the bound.)
#[tokio::test]
async fn a_silently_replaced_redis_is_not_trusted_before_running_replicas_report_it() {
    let fleet = Fleet::start(0).await;
    let proxy = Proxy::start(fleet.redis.port()).await;
    // The default grace for this bound (three block periods of 100 ms, plus a second).
    let config = || {
        RedisConfig::new(&proxy.url())
            .unwrap()
            .prefix(fleet.prefix.clone())
            .unwrap()
            .cut_off_after(Duration::from_millis(400))
    };
    let token = token_at(&fleet, "kp_1", now_ms() / 1000 - 30);
    // A started long ago: its epoch's grace is over (0 here to keep the test short).
    let a = replica_with(&fleet, config().new_epoch_grace(Duration::ZERO)).await;
    until("A caught up", || a.caught_up()).await;
    a.auth
        .change_log()
        .publish(Change::new(
            Target::User("kp_1".into()),
            Action::Distrust,
            SystemTime::now(),
        ))
        .await
        .unwrap();

    let fresh = RedisServer::start().unwrap();
    proxy.switch_to(fresh.port());
    let c = replica_with(&fleet, config()).await;
    let started = std::time::Instant::now();
    while !c.caught_up() {
        assert!(started.elapsed() < Duration::from_secs(8));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = c.get("/reports", &token).await;
    assert_eq!(
        answer.source.as_deref(),
        Some("live"),
        "C opened its gate after {:?} and trusts kp_1's old token; A has found {} gaps",
        started.elapsed(),
        a.auth.change_log().status().gaps
    );
}
