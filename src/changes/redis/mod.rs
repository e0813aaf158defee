//! The Redis Streams change log (feature `redis`).
//!
//! - **Append**: one Lua script per record: `XADD` trimmed by time (`MINID ~`, keeping at least
//!   the retention, by default the longest token lifetime plus an hour) and capped at a million
//!   entries, numbered in its epoch (created if there is none), and for webhook events a dedupe
//!   key written in the same atomic step once the `XADD` succeeded, so two replicas receiving
//!   one event append it once and an event is remembered only once appended.
//! - **Follow**: a background task on its own (named) connection replays the retained window
//!   at start, about a megabyte per call, then `XREAD BLOCK`s from its last id; it reconnects
//!   with backoff and resumes from that id, and re-checks its position whenever it is idle.
//! - **Gaps**: on every (re)connect and idle period it compares the log's epoch, numbering and
//!   the presence of the last entry it read with what it read. A different epoch (Redis
//!   restarted empty), a log gone back in time (an older snapshot, a failover), or entries
//!   missing that were appended within the retention mean changes may be lost: it drops every
//!   live entry and distrusts every token issued before now, logs at `warn` and counts it; for
//!   a reset it also appends a loss record so replicas started later distrust those tokens too
//!   (a first deployment has no such record, so its existing tokens stay trusted). A replica
//!   that starts in a young epoch waits [`RedisConfig::new_epoch_grace`] for such records.
//! - **Cut off**: a watchdog closes the trust gate (token-trusted routes decide live) when the
//!   follower has heard nothing for longer than [`RedisConfig::cut_off_after`]; it opens again
//!   once the follower has caught up.
//! - **Outbox**: a change that could not be appended is applied here and kept in memory, then
//!   appended by a background writer as soon as Redis answers (with `WAIT` when
//!   [`RedisConfig::replica_acks`] asks for it).

mod follower;
mod outbox;
mod script;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::task::AbortHandle;

use super::apply::{Applied, Applier};
use super::record::Change;
use super::{LogStatus, PublishError, Published};
use crate::error::ConfigError;
use outbox::Outbox;
use script::Keys;

const SETTING: &str = "CLAIMCHECK_REDIS_URL";
const DEFAULT_PREFIX: &str = "claimcheck";
/// Kinde's default token lifetime plus an hour.
const DEFAULT_RETENTION: Duration = Duration::from_secs(25 * 3600);
const DEFAULT_CUT_OFF: Duration = Duration::from_secs(5);
const DEFAULT_APPEND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a webhook's event id is remembered in Redis: past the longest age window a
/// receiver accepts (30 days, `WebhookReceiver::max_age`), so no delivery it accepts can be
/// appended twice. One small key per event.
const DEDUPE_FOR: Duration = Duration::from_secs(31 * 24 * 3600);

/// Where the shared change log lives, and how it is followed. Build with [`RedisConfig::new`];
/// give it to [`Auth::with_redis`](crate::Auth::with_redis).
///
/// ```
/// use std::time::Duration;
/// use claimcheck::changes::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379/")?
///     .prefix("billing-api")?
///     .cut_off_after(Duration::from_secs(3));
/// # Ok::<(), claimcheck::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    client: redis::Client,
    prefix: String,
    retention: Duration,
    cut_off_after: Duration,
    append_timeout: Duration,
    replica_acks: u32,
    new_epoch_grace: Option<Duration>,
}

impl RedisConfig {
    /// A log on the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `redis+unix:///path`; TLS (`rediss://`) is not built in: use a TLS-terminating proxy or a
    /// private network).
    /// Nothing is connected yet: an unreachable Redis is not an error here (replicas fail safe,
    /// see the module docs); a malformed URL is, naming `CLAIMCHECK_REDIS_URL`.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        if url.trim_start().starts_with("rediss://") {
            return Err(ConfigError::invalid(
                SETTING,
                "TLS (rediss://) is not built in: use redis:// through a TLS proxy or a private network",
            ));
        }
        // The parser's message may quote the URL, password included: say what to write instead.
        let client = redis::Client::open(url.trim()).map_err(|_| {
            ConfigError::invalid(SETTING, "not a Redis URL (expected redis://host:port/db)")
        })?;
        Ok(Self {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
            retention: DEFAULT_RETENTION,
            cut_off_after: DEFAULT_CUT_OFF,
            append_timeout: DEFAULT_APPEND_TIMEOUT,
            replica_acks: 0,
            new_epoch_grace: None,
        })
    }

    /// Puts every key under `prefix` (default `claimcheck`): one prefix per application whose
    /// replicas share a log. 1 to 128 bytes, no whitespace.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        let prefix = prefix.into();
        if prefix.is_empty() || prefix.len() > 128 || prefix.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "CLAIMCHECK_REDIS_PREFIX",
                "must be 1 to 128 bytes without whitespace",
            ));
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// How long records are kept (default 25 h). Raised to the freshness window (the longest
    /// token lifetime) when shorter: the log is the state a new replica replays.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long a follower may hear nothing from Redis before token-trusted routes decide live
    /// (default 5 s; at least 100 ms). The follower reads at least four times per period.
    pub fn cut_off_after(mut self, bound: Duration) -> Self {
        self.cut_off_after = bound.max(Duration::from_millis(100));
        self
    }

    /// How long publishing waits for Redis before the change goes to the outbox (default 2 s).
    pub fn append_timeout(mut self, timeout: Duration) -> Self {
        self.append_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// With a replicated Redis, acknowledges a published change only once `replicas` replicas
    /// hold it (`WAIT`, within the append timeout); otherwise it is answered as unavailable
    /// (503 to a webhook, which Kinde redelivers) and kept in the outbox. Default 0: acknowledged
    /// once the primary has it, so a failover within the replication lag (usually under a
    /// second) can lose it; see the README's "Running several replicas".
    pub fn replica_acks(mut self, replicas: u32) -> Self {
        self.replica_acks = replicas;
        self
    }

    /// How long a replica that starts in a log whose epoch has just begun (Redis restarted
    /// empty, or a first deployment) waits before trusting claims (default: three block
    /// periods plus a second, 4 s with the default bound): replicas that were running when the
    /// previous log vanished give up a silent connection (a block period plus the longer of a
    /// block period and half a second), pause (at most one), reconnect and record the loss
    /// within that, and this replica must read it first.
    /// Token-trusted routes decide live meanwhile.
    pub fn new_epoch_grace(mut self, grace: Duration) -> Self {
        self.new_epoch_grace = Some(grace);
        self
    }

    fn grace(&self) -> Duration {
        self.new_epoch_grace
            .unwrap_or_else(|| self.block() * 3 + Duration::from_secs(1))
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The retention actually used with freshness kept for `lifetime`.
    pub(crate) fn with_min_retention(mut self, lifetime: Duration) -> Self {
        self.retention = self.retention.max(lifetime);
        self
    }

    /// How long one blocking read waits: a quarter of the cut-off bound, at most a second. A
    /// silent connection is given up after two (at least 0.5 s past one), and reconnections
    /// pause at most one.
    fn block(&self) -> Duration {
        (self.cut_off_after / 4).min(Duration::from_secs(1))
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only where it points.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisConfig")
            .field("addr", &info.addr().to_string())
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("cut_off_after", &self.cut_off_after)
            .finish_non_exhaustive()
    }
}

/// What the follower, the watchdog and the writer share.
struct Shared {
    config: RedisConfig,
    keys: Keys,
    applier: Arc<Applier>,
    outbox: Outbox,
    /// When the follower last heard from Redis (ms since `started`).
    last_contact_ms: AtomicU64,
    started: Instant,
    /// Until when (ms since `started`) the trust gate stays closed whatever the follower reads.
    held_until_ms: AtomicU64,
    stopped: AtomicBool,
    gaps: AtomicU64,
    applied: AtomicU64,
    skipped: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_contact_ms.store(self.now_ms(), Ordering::Release);
    }

    /// Appends `change` within the append timeout: the entry id, `None` for a duplicate, or
    /// why it failed. The one way anything is appended (publish, outbox, loss records).
    async fn append(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        change: &Change,
    ) -> Result<Option<String>, String> {
        let append = script::append(conn, &self.keys, change, self.config.retention, DEDUPE_FOR);
        match tokio::time::timeout(self.config.append_timeout, append).await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    /// Whether enough Redis replicas hold everything written so far (always, when none are
    /// asked), within what is left of the append timeout since `started`. A write of our own
    /// first (a counter under the prefix), so that `WAIT`, which covers this connection's
    /// writes, also covers an entry another replica appended (a duplicate).
    async fn replicated(
        &self,
        conn: &mut ConnectionManager,
        started: tokio::time::Instant,
    ) -> bool {
        let wanted = self.config.replica_acks;
        if wanted == 0 {
            return true;
        }
        let left = self.config.append_timeout.saturating_sub(started.elapsed());
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(&self.keys.acks).ignore();
        pipe.cmd("WAIT")
            .arg(wanted)
            .arg(u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1));
        let wait = pipe.query_async::<(u32,)>(conn);
        let budget = left + Duration::from_millis(100);
        matches!(tokio::time::timeout(budget, wait).await, Ok(Ok((acks,))) if acks >= wanted)
    }

    /// Keeps the trust gate closed for `hold` from now.
    fn hold_gate_for(&self, hold: Duration) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX));
        self.held_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    fn gate_held(&self) -> bool {
        self.now_ms() < self.held_until_ms.load(Ordering::Acquire)
    }

    fn silent_for(&self) -> Duration {
        let last = self.last_contact_ms.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// The running log: the append connection and the background tasks it owns.
pub(crate) struct RedisLog {
    shared: Arc<Shared>,
    conn: ConnectionManager,
    tasks: Vec<AbortHandle>,
}

impl RedisLog {
    /// Starts following (the trust gate stays closed until the first replay succeeds).
    pub(crate) fn start(applier: Arc<Applier>, config: RedisConfig) -> Self {
        applier.freshness().set_trusting(false);
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.append_timeout))
            .set_response_timeout(Some(config.append_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(config.client.clone(), manager)
            .expect("a connection manager without push sender is valid");
        let shared = Arc::new(Shared {
            keys: Keys::new(&config.prefix),
            config,
            applier,
            outbox: Outbox::new(),
            last_contact_ms: AtomicU64::new(0),
            started: Instant::now(),
            held_until_ms: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            gaps: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        let tasks = vec![
            tokio::spawn(follower::follow(shared.clone())).abort_handle(),
            tokio::spawn(follower::watch(shared.clone())).abort_handle(),
            tokio::spawn(outbox::drain(shared.clone(), conn.clone())).abort_handle(),
        ];
        Self {
            shared,
            conn,
            tasks,
        }
    }

    /// Appends `change` (then applies it here), or applies it here and keeps it in the outbox.
    pub(crate) async fn publish(&self, change: Change) -> Result<Published, PublishError> {
        let shared = &self.shared;
        let mut conn = self.conn.clone();
        let started = tokio::time::Instant::now();
        match shared.append(&mut conn, &change).await {
            Ok(_) if !shared.replicated(&mut conn, started).await => {
                Err(self.keep(change, "too few replicas acknowledged the append"))
            }
            Ok(Some(_)) => {
                shared.applier.apply(&change);
                Ok(Published::Appended)
            }
            // Another replica appended it: our follower applies it from the log.
            Ok(None) => Ok(Published::Duplicate),
            Err(error) => Err(self.keep(change, &error)),
        }
    }

    fn keep(&self, change: Change, why: &str) -> PublishError {
        tracing::warn!(target: "claimcheck::changes", error = why, "change log unreachable: change applied here, kept in the outbox");
        if self.shared.applier.apply(&change) == Applied::Before {
            tracing::debug!(target: "claimcheck::changes", "change was applied here before");
        }
        self.enqueue(change);
        PublishError::Unavailable {
            retry_after: Duration::from_secs(5),
        }
    }

    /// Keeps `change` (already applied here) for the writer to append; after
    /// [`shutdown`](Self::shutdown) nothing appends any more, so it is only applied here.
    pub(crate) fn enqueue(&self, change: Change) {
        if self.shared.stopped.load(Ordering::Acquire) {
            tracing::warn!(target: "claimcheck::changes", "change log shut down: change applied on this replica only");
            return;
        }
        self.shared.outbox.push(change);
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    pub(crate) fn status(&self) -> LogStatus {
        let s = &self.shared;
        LogStatus {
            kind: "redis",
            // What token-trusted routes go by: the trust gate.
            caught_up: s.applier.freshness().is_trusting(),
            gaps: s.gaps.load(Ordering::Relaxed),
            applied: s.applied.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            outbox: s.outbox.len(),
            cut_off_after: Some(s.config.cut_off_after),
        }
    }

    /// Ends the background tasks; token-trusted routes decide live from now on.
    pub(crate) fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.applier.freshness().set_trusting(false);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
