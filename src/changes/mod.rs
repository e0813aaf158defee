//! The change log: one path for every change to what may be trusted, on every replica.
//!
//! Every state change that makes claimcheck stricter is a [`Change`] record: who it concerns
//! ([`Target`]: a user, an organization, everyone, one token), what it does ([`Action`]: drop
//! live entries, distrust older tokens, lock them out), when, and where it came from
//! ([`Origin`]). Nothing applies a change directly: the webhook receiver,
//! [`Auth::mark_changed`](crate::Auth::mark_changed), the `invalidate_*` and lock-out calls all
//! publish to a [`ChangeLog`], and every replica applies every record, its own included, through
//! one idempotent function (watermarks and lock-outs only move forward, invalidations repeat
//! harmlessly, a record already applied is not applied again).
//!
//! Two logs:
//! - **in-process** (the default): publishing applies at once; nothing leaves the process. Right
//!   for one replica, and what [`Auth::new`](crate::Auth::new) builds.
//! - **Redis Streams** (cargo feature `redis`, `RedisConfig`): every replica appends to one
//!   stream and follows it, so a webhook received by one replica reaches all of them in
//!   milliseconds; see the README's "Running several replicas" for the guarantees.
//!
//! A record can never grant. The worst a forged or replayed record can do is make a replica
//! stricter: more live calls, or a user refused until their tokens expire.
//!
//! ```
//! use std::time::SystemTime;
//! use claimcheck::changes::{Action, Change, Target};
//! # async fn run(auth: claimcheck::Auth) -> Result<(), claimcheck::changes::PublishError> {
//! // Applied here at once, and acknowledged once every replica can read it.
//! auth.change_log()
//!     .publish(Change::new(Target::User("kp_123".into()), Action::LockOut, SystemTime::now()))
//!     .await?;
//! # Ok(()) }
//! ```

mod apply;
mod record;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use apply::{Applied, Applier};
pub use record::{Action, Change, Origin, Target};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisConfig;

use crate::freshness::Freshness;

/// How long a replica remembers the ids of the changes it applied: longer than Kinde retries a
/// webhook (36 h).
pub(crate) const APPLIED_MEMORY: Duration = Duration::from_secs(49 * 3600);

/// Where changes go and come from. Cheap to clone; clones share one log (and, with Redis, one
/// background follower, which ends when the last clone is dropped or on
/// [`shutdown`](Self::shutdown)).
#[derive(Clone)]
pub struct ChangeLog {
    inner: Arc<Inner>,
}

struct Inner {
    applier: Arc<Applier>,
    backend: Backend,
}

enum Backend {
    Local,
    #[cfg(feature = "redis")]
    Redis(redis::RedisLog),
}

/// What publishing a change did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Applied here and in the log: every replica applies it.
    Appended,
    /// This change (one webhook event, say) was in the log already: nothing done again.
    Duplicate,
}

/// Why a change could not be put in the shared log. It was applied on this replica anyway and
/// is kept in an outbox, appended as soon as the log answers again.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The shared log did not answer in time.
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { .. } => {
                f.write_str("the change log is unreachable; the change waits in the outbox")
            }
        }
    }
}

impl std::error::Error for PublishError {}

/// What a replica knows about its change log, for readiness checks and dashboards.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStatus {
    /// `"in-process"` or `"redis"`.
    pub kind: &'static str,
    /// Whether this replica has replayed the log and is in contact with it: token-trusted
    /// routes trust claims only then.
    pub caught_up: bool,
    /// Times a loss was found (the log reset or trimmed past what was read) and every older
    /// token distrusted.
    pub gaps: u64,
    /// Records read from the shared log and applied here.
    pub applied: u64,
    /// Records read from the shared log and skipped as malformed.
    pub skipped: u64,
    /// Changes applied here but not yet in the shared log.
    pub outbox: usize,
    /// How long a follower may be out of contact before token-trusted routes decide live.
    pub cut_off_after: Option<Duration>,
}

impl ChangeLog {
    /// The in-process log: changes are applied here, at once, and go nowhere else.
    pub(crate) fn local(applier: Applier) -> Self {
        Self {
            inner: Arc::new(Inner {
                applier: Arc::new(applier),
                backend: Backend::Local,
            }),
        }
    }

    /// The Redis Streams log; starts its follower (needs a Tokio runtime).
    #[cfg(feature = "redis")]
    pub(crate) fn redis(applier: Applier, config: RedisConfig) -> Self {
        // The log is the state a new replica replays: it must cover every token lifetime.
        let config = config.with_min_retention(applier.freshness().max_token_lifetime());
        let applier = Arc::new(applier);
        let backend = Backend::Redis(redis::RedisLog::start(applier.clone(), config));
        Self {
            inner: Arc::new(Inner { applier, backend }),
        }
    }

    /// The same kind of log (and, for Redis, the same configuration), applying to `applier`:
    /// the old follower, if any, ends when the last clone of `self` is dropped.
    pub(crate) fn rebind(&self, applier: Applier) -> Self {
        match &self.inner.backend {
            Backend::Local => Self::local(applier),
            #[cfg(feature = "redis")]
            Backend::Redis(log) => Self::redis(applier, log.config().clone()),
        }
    }

    /// The freshness state this log's changes are applied to.
    pub(crate) fn freshness(&self) -> &Freshness {
        self.inner.applier.freshness()
    }

    /// The issuer whose tokens this log's changes concern.
    pub fn issuer(&self) -> &str {
        self.inner.applier.issuer()
    }

    /// Applies `change` here and puts it in the log; returns once every replica can read it.
    /// On error the change is applied here and waits in the outbox.
    pub async fn publish(&self, change: Change) -> Result<Published, PublishError> {
        let change = self.stamp(change);
        match &self.inner.backend {
            Backend::Local => Ok(match self.inner.applier.apply(&change) {
                Applied::Before => Published::Duplicate,
                Applied::Now | Applied::Elsewhere => Published::Appended,
            }),
            #[cfg(feature = "redis")]
            Backend::Redis(log) => log.publish(change).await,
        }
    }

    /// Applies `change` here at once and appends it in the background (for synchronous
    /// callers such as [`Auth::mark_changed`](crate::Auth::mark_changed)).
    pub fn publish_later(&self, change: Change) {
        let change = self.stamp(change);
        self.inner.applier.apply(&change);
        match &self.inner.backend {
            Backend::Local => {}
            #[cfg(feature = "redis")]
            Backend::Redis(log) => log.enqueue(change),
        }
    }

    /// What this replica knows about its log.
    pub fn status(&self) -> LogStatus {
        match &self.inner.backend {
            Backend::Local => LogStatus {
                kind: "in-process",
                caught_up: true,
                gaps: 0,
                applied: 0,
                skipped: 0,
                outbox: 0,
                cut_off_after: None,
            },
            #[cfg(feature = "redis")]
            Backend::Redis(log) => log.status(),
        }
    }

    /// Stops following the shared log (no-op in process). Token-trusted routes then decide
    /// live, as for a replica cut off from the log: call it when the server shuts down.
    pub fn shutdown(&self) {
        match &self.inner.backend {
            Backend::Local => {}
            #[cfg(feature = "redis")]
            Backend::Redis(log) => log.shutdown(),
        }
    }

    fn stamp(&self, change: Change) -> Change {
        if change.issuer.is_empty() {
            change.for_issuer(self.issuer())
        } else {
            change
        }
    }
}

impl fmt::Debug for ChangeLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeLog")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
