//! The outbox: changes applied here that the shared log has not acknowledged yet, and the
//! background writer that appends them as soon as Redis answers.
//!
//! Order does not matter (applying is commutative: maxima and invalidations), so the writer
//! appends oldest first and retries the same record until it is in. Appending twice is
//! harmless: a record keeps its id, and replicas apply an id once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use super::{DEDUPE_FOR, Shared, script};
use crate::changes::record::{Action, Change, Target};

/// Changes held at most; beyond that they collapse into one "distrust everyone" record.
const CAPACITY: usize = 10_000;
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

pub(super) struct Outbox {
    queue: Mutex<VecDeque<Change>>,
    ready: Notify,
}

impl Outbox {
    pub(super) fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        }
    }

    /// Keeps `change` for the writer. When full, everything held collapses into one record
    /// that distrusts every token issued up to the latest of them: coarser, never weaker for
    /// trust (a lock-out becomes a live decision), and bounded.
    pub(super) fn push(&self, change: Change) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= CAPACITY {
            let latest = queue.iter().map(|c| c.at_ms).max().unwrap_or(change.at_ms);
            let issuer = change.issuer.clone();
            queue.clear();
            let collapsed = Change::new(
                Target::Everyone,
                Action::Distrust,
                crate::freshness::from_unix_ms(latest.max(change.at_ms)),
            );
            queue.push_back(collapsed.for_issuer(&issuer));
            tracing::warn!(target: "claimcheck::changes", capacity = CAPACITY, "outbox full: held changes collapsed into one that distrusts every older token");
        }
        queue.push_back(change);
        drop(queue);
        self.ready.notify_one();
    }

    pub(super) fn len(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn front(&self) -> Option<Change> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .front()
            .cloned()
    }

    /// Removes the front record if it is still `change` (a collapse may have replaced it).
    fn done(&self, change: &Change) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.front().is_some_and(|front| front.id == change.id) {
            queue.pop_front();
        }
    }
}

/// The writer: appends held changes until the outbox is empty, backing off while Redis does
/// not answer; sleeps until the next change arrives.
pub(super) async fn drain(shared: Arc<Shared>, mut conn: ConnectionManager) {
    let mut retry = FIRST_RETRY;
    loop {
        let Some(change) = shared.outbox.front() else {
            shared.outbox.ready.notified().await;
            continue;
        };
        let append = script::append(
            &mut conn,
            &shared.keys,
            &change,
            shared.config.retention,
            DEDUPE_FOR,
        );
        match tokio::time::timeout(shared.config.append_timeout, append).await {
            Ok(Ok(_)) => {
                shared.outbox.done(&change);
                retry = FIRST_RETRY;
                if shared.outbox.len() == 0 {
                    tracing::info!(target: "claimcheck::changes", "outbox appended to the change log");
                }
            }
            _ => {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}
