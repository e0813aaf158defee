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

use super::Shared;
use crate::changes::record::{Action, Change, Target};

/// Changes held before the ones that are not lock-outs collapse into one "distrust everyone"
/// record.
const CAPACITY: usize = 10_000;
/// Lock-outs held at most (each is small); beyond that the oldest collapse too, a lock-out
/// then becoming a live decision for those tokens.
const LOCK_OUT_CAPACITY: usize = 100_000;
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

    /// Keeps `change` for the writer. When full, every held change that is not a lock-out
    /// collapses into one record that distrusts every token issued up to the latest of them:
    /// coarser, never weaker for those tokens, and bounded. Lock-outs (which refuse rather than
    /// decide live) are kept, up to a larger bound.
    pub(super) fn push(&self, change: Change) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        // A webhook redelivered during an outage is one change, held once.
        if queue.iter().any(|held| held.id == change.id) {
            return;
        }
        if queue.len() >= CAPACITY {
            let lock_outs = queue.iter().filter(|c| c.action == Action::LockOut).count();
            let keep = if lock_outs >= LOCK_OUT_CAPACITY {
                |_: &Change| false
            } else {
                |c: &Change| c.action == Action::LockOut
            };
            let latest = queue.iter().map(|c| c.at_ms).max().unwrap_or(change.at_ms);
            let issuer = change.issuer.clone();
            queue.retain(keep);
            let at = crate::clock::from_unix_ms(latest.max(change.at_ms));
            let collapsed = Change::new(Target::Everyone, Action::Distrust, at);
            queue.push_front(collapsed.for_issuer(&issuer));
            tracing::warn!(target: "claimcheck::changes", capacity = CAPACITY, kept = queue.len(), "outbox full: held changes collapsed into one that distrusts every older token");
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
    let mut failing = false;
    loop {
        let Some(change) = shared.outbox.front() else {
            shared.outbox.ready.notified().await;
            continue;
        };
        let started = tokio::time::Instant::now();
        let appended = match shared.append(&mut conn, &change).await {
            Ok(_) if !shared.replicated(&mut conn, started).await => {
                Err("too few replicas acknowledged the append".to_owned())
            }
            other => other,
        };
        match appended {
            Ok(_) => {
                shared.outbox.done(&change);
                retry = FIRST_RETRY;
                failing = false;
                if shared.outbox.len() == 0 {
                    tracing::info!(target: "claimcheck::changes", "outbox appended to the change log");
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(target: "claimcheck::changes", %error, held = shared.outbox.len(), "cannot append the outbox to the change log; retrying");
                    failing = true;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}
