//! Redis crashes and rewinds for the change-log tests: a persistent redis-server, a raw append, a TCP proxy (fleet_crash_*.rs).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use claimcheck::testing::DEFAULT_ORG;
use redis::aio::MultiplexedConnection;

use crate::common::fleet::Fleet;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The exact APPEND script the crate runs (read from its source), so a "raw" append here is
/// what another replica (or its outbox writer) would do.
pub fn append_script() -> redis::Script {
    let src = include_str!("../../src/changes/redis/script.rs");
    let head = "const APPEND: &str = r\"";
    let start = src.find(head).unwrap() + head.len();
    let end = start + src[start..].find("\";").unwrap();
    redis::Script::new(&src[start..end])
}

static IDS: AtomicU64 = AtomicU64::new(0);

/// A valid, harmless record (invalidate an org nobody is in).
pub fn record(tag: &str) -> String {
    let id = format!(
        "adv2-{}-{}-{}",
        std::process::id(),
        IDS.fetch_add(1, Ordering::Relaxed),
        now_ms()
    );
    format!(
        r#"{{"v":1,"id":"{id}","who":"org","key":"{tag}","what":"invalidate","at":{},"from":"app"}}"#,
        now_ms()
    )
}

/// Appends `record` as a replica would, with `retention_ms`.
pub async fn raw_append(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    record: &str,
    retention_ms: u64,
) -> Option<String> {
    let stream = format!("{prefix}:log");
    append_script()
        .key(&stream)
        .key(format!("{prefix}:epoch"))
        .key(&stream)
        .arg(record)
        .arg(retention_ms)
        .arg(60)
        .arg(format!("adv2-epoch-{}", now_ms()))
        .arg("0")
        .arg(1_000_000)
        .invoke_async(conn)
        .await
        .unwrap()
}

pub async fn admin(url: &str) -> MultiplexedConnection {
    crate::common::fleet::admin_connection(&redis::Client::open(url).unwrap()).await
}

/// kp_1 holds read:reports at Kinde; a token issued `iat` (Unix seconds) that says so.
pub fn token_at(fleet: &Fleet, user: &str, iat: i64) -> String {
    fleet.kinde.grant(DEFAULT_ORG, user, "read:reports");
    fleet
        .kinde
        .user_token(user)
        .permissions(["read:reports"])
        .claim("iat", iat)
        .sign()
}

/// A redis-server with persistence in its own directory, on a given port.
pub struct Persistent {
    pub port: u16,
    pub dir: PathBuf,
    pub aof: bool,
    child: Option<Child>,
}

static DIRS: AtomicU64 = AtomicU64::new(0);

impl Persistent {
    pub fn start(port: u16, aof: bool) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "adv2-redis-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut me = Self {
            port,
            dir,
            aof,
            child: None,
        };
        me.spawn();
        me
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", self.dir.to_str().unwrap()])
            .args(["--save", ""])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < give_up, "redis did not start");
            if let Ok(mut c) = redis::Client::open(self.url())
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(100))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM: a clean shutdown (AOF fsynced).
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGKILL: a crash (whatever was not persisted is lost).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Persistent {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replaces the fleet's Redis by a persistent one on the same port.
pub fn persistent_fleet_redis(fleet: &mut Fleet, aof: bool) -> Persistent {
    let port = fleet.redis.port();
    fleet.redis.stop();
    Persistent::start(port, aof)
}

pub fn gaps(r: &crate::common::fleet::Replica) -> u64 {
    r.auth.change_log().status().gaps
}
