//! Several replicas of one app on loopback, sharing one FakeKinde and one test-owned Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use claimcheck::Auth;
use claimcheck::changes::RedisConfig;
use claimcheck::freshness::Freshness;
use claimcheck::testing::{FakeKinde, RedisServer};

use super::{Answer, Via, app, live_for, send, serve, warm_verifier};

/// How long a follower may be cut off in these tests.
pub const CUT_OFF: Duration = Duration::from_millis(400);

pub struct Replica {
    pub auth: Auth,
    pub base: String,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Replica {
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        let req = self.client.get(format!("{}{path}", self.base));
        send(req.header("authorization", format!("Bearer {token}"))).await
    }

    pub async fn post(&self, path: &str, token: &str) -> Answer {
        let req = self.client.post(format!("{}{path}", self.base));
        send(req.header("authorization", format!("Bearer {token}"))).await
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/kinde", self.base)
    }

    /// Records applied from the shared log so far.
    pub fn applied(&self) -> u64 {
        self.auth.change_log().status().applied
    }

    pub fn caught_up(&self) -> bool {
        self.auth.change_log().status().caught_up
    }
}

pub struct Fleet {
    pub kinde: FakeKinde,
    pub redis: RedisServer,
    pub prefix: String,
    pub replicas: Vec<Replica>,
    /// The cut-off bound of replicas added from now on.
    pub cut_off: Duration,
    /// The freshness window (and so the log's retention) of replicas added from now on.
    pub lifetime: Option<Duration>,
    /// The conservative live-call budget of replicas added from now on.
    pub budget: Option<u32>,
    /// Redis replicas that must acknowledge each append, for replicas added from now on.
    pub replica_acks: u32,
    /// How long replicas added from now on wait in a young epoch (0 here: tests start fresh).
    pub new_epoch_grace: Duration,
}

static PREFIXES: AtomicU64 = AtomicU64::new(0);

impl Fleet {
    /// A fake, a test-owned Redis and `n` replicas, each caught up with the log.
    pub async fn start(n: usize) -> Self {
        let kinde = FakeKinde::start().await;
        let redis = RedisServer::start().expect("redis-server on PATH");
        let prefix = format!(
            "claimcheck-test-{}-{}",
            std::process::id(),
            PREFIXES.fetch_add(1, Ordering::Relaxed)
        );
        let mut fleet = Self {
            kinde,
            redis,
            prefix,
            replicas: Vec::new(),
            cut_off: CUT_OFF,
            lifetime: None,
            budget: None,
            replica_acks: 0,
            new_epoch_grace: Duration::ZERO,
        };
        for _ in 0..n {
            fleet.add().await;
        }
        fleet
    }

    pub fn config(&self) -> RedisConfig {
        RedisConfig::new(&self.redis.url())
            .unwrap()
            .prefix(self.prefix.clone())
            .unwrap()
            .cut_off_after(self.cut_off)
            .append_timeout(Duration::from_secs(1))
            .replica_acks(self.replica_acks)
            .new_epoch_grace(self.new_epoch_grace)
    }

    /// A replica that has not necessarily caught up (Redis may be down).
    pub async fn replica(&self) -> Replica {
        let verifier = warm_verifier(&self.kinde).await;
        let mut live = live_for(&self.kinde, Via::Management).time_to_live(Duration::from_secs(60));
        if let Some(budget) = self.budget {
            live = live.conservative_budget(budget);
        }
        let live = live.build();
        let mut auth = Auth::new(verifier, live);
        if let Some(lifetime) = self.lifetime {
            auth = auth.with_freshness(Freshness::new(lifetime, 100_000));
        }
        let config = self
            .config()
            .retention(self.lifetime.unwrap_or(Duration::ZERO));
        let auth = auth.with_redis(config);
        let (base, server) = serve(app(&auth, Arc::new(AtomicUsize::new(0)))).await;
        Replica {
            auth,
            base,
            client: reqwest::Client::new(),
            server,
        }
    }

    /// Adds a replica and waits until it has replayed the log.
    pub async fn add(&mut self) -> &Replica {
        let replica = self.replica().await;
        until("the new replica catches up", || replica.caught_up()).await;
        self.replicas.push(replica);
        self.replicas.last().unwrap()
    }

    pub fn a(&self) -> &Replica {
        &self.replicas[0]
    }
}

/// Waits (polling every millisecond, at most 3 s) until `done`; panics naming `what` otherwise.
pub async fn until(what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

impl Fleet {
    /// A connection for raw commands (the test's, not a replica's).
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        admin_connection(&self.redis.client()).await
    }

    /// The stream's key.
    pub fn stream(&self) -> String {
        format!("{}:log", self.prefix)
    }

    /// Grants `user` `permissions` at the fake Kinde; a token issued 30 s ago that says so.
    pub fn old_token(&self, user: &str, permissions: &[&str]) -> String {
        for permission in permissions {
            self.kinde
                .grant(claimcheck::testing::DEFAULT_ORG, user, permission);
        }
        self.kinde
            .user_token(user)
            .permissions(permissions.iter().copied())
            .issued_in(-30)
            .sign()
    }

    /// Entries in the stream.
    pub async fn xlen(&self) -> usize {
        let mut admin = self.admin().await;
        redis::cmd("XLEN")
            .arg(self.stream())
            .query_async(&mut admin)
            .await
            .unwrap()
    }

    /// The record texts of the stream's entries.
    pub async fn records(&self) -> Vec<String> {
        let mut admin = self.admin().await;
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.stream())
            .arg("-")
            .arg("+")
            .query_async(&mut admin)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .filter_map(|entry| match entry.map.get("c") {
                Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }
}

/// Client ids of the followers' connections (named `claimcheck-follower:<prefix>`), oldest first.
pub async fn followers(admin: &mut redis::aio::MultiplexedConnection) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .unwrap();
    let mut ids: Vec<u64> = list
        .lines()
        .filter(|line| line.contains("name=claimcheck-follower"))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Kills the connection with client id `id`.
pub async fn kill_client(admin: &mut redis::aio::MultiplexedConnection, id: u64) {
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(admin)
        .await
        .unwrap();
}

/// Publishes `n` invalidations of distinct organizations through `log`, each acknowledged.
pub async fn burst(log: &claimcheck::changes::ChangeLog, n: usize) {
    use claimcheck::changes::{Action, Change, Target};
    for i in 0..n {
        let at = std::time::SystemTime::now();
        log.publish(Change::new(
            Target::Org(format!("org_{i}")),
            Action::Invalidate,
            at,
        ))
        .await
        .unwrap();
    }
}

/// A test's own connection to Redis, patient (30 s a reply): a test's pipeline of thousands of
/// scripted appends can outlast the client's default 500 ms on a busy machine.
pub async fn admin_connection(client: &redis::Client) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}
