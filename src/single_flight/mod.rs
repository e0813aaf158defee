//! [`SingleFlight`]: at most one call per key at a time, its answer shared by every caller that
//! needs it while it runs. The one mechanism behind the live permission lookups, the JWKS fetch
//! and the Management API's machine token.
//!
//! - **Cancel-safe**: the call runs in a spawned task, so no waiter's cancellation can stop it;
//!   it is abandoned at the `give_up` instant its starter chose ([`Ended::TimedOut`]).
//! - **Always answered**: a call that panics, or whose task is aborted, still publishes an
//!   answer ([`Ended::Aborted`]), so waiters never hang and the `settle` hook always runs.
//! - **A deadline per waiter**: [`Waiter::wait`] gives up at the waiter's own instant; the call
//!   goes on for the others.
//! - **Settled under the lock**: the flight leaves the map and `settle` runs (to cache its
//!   answer, say) in one critical section, never held across an await, so a caller that looks
//!   for a cached answer and then for a flight under the same lock never misses both.
//! - **Replaceable**: each flight carries the caller's `meta` (an invalidation generation, the
//!   token it asks with). A caller that judges a flight stale starts a new one in its place;
//!   the stale flight, when it ends, answers its own waiters and leaves its successor alone.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// Why a flight ended without its call's own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The starter's `give_up` instant passed first.
    TimedOut,
    /// The call panicked, or its task was aborted (a runtime shutting down).
    Aborted,
}

/// Why a waiter got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// The waiter's deadline passed first.
    Deadline,
    /// The flight vanished without answering (cannot happen while the guard holds; kept so a
    /// waiter never hangs on a bug).
    Lost,
}

/// Calls in flight by key. Cheap to clone; clones share the flights.
pub(crate) struct SingleFlight<K, M, V> {
    shared: Arc<Shared<K, M, V>>,
}

struct Shared<K, M, V> {
    flights: Mutex<HashMap<K, Flight<M, V>>>,
    next_id: AtomicU64,
}

struct Flight<M, V> {
    id: u64,
    meta: M,
    answer: watch::Receiver<Option<V>>,
}

/// The flight map, locked: look, join, or start. Never hold it across an await.
pub(crate) struct Locked<'a, K, M, V> {
    flights: MutexGuard<'a, HashMap<K, Flight<M, V>>>,
    shared: &'a Arc<Shared<K, M, V>>,
}

/// A caller's place in a flight.
pub(crate) struct Waiter<M, V> {
    meta: M,
    started: bool,
    answer: watch::Receiver<Option<V>>,
}

/// What a waiter got.
#[derive(Debug)]
pub(crate) struct Landed<M, V> {
    pub(crate) value: V,
    /// The meta the flight was started with.
    pub(crate) meta: M,
    /// Whether this waiter started the flight.
    pub(crate) started: bool,
}

impl<K, M, V> SingleFlight<K, M, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    M: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                flights: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The flight map, locked.
    pub(crate) fn lock(&self) -> Locked<'_, K, M, V> {
        Locked {
            flights: self.shared.flights(),
            shared: &self.shared,
        }
    }

    /// Flights under way.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shared.flights().len()
    }
}

impl<K, M, V> Shared<K, M, V> {
    fn flights(&self) -> MutexGuard<'_, HashMap<K, Flight<M, V>>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K, M, V> Locked<'_, K, M, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    M: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The meta of the flight under way for `key`, if any.
    pub(crate) fn meta(&self, key: &K) -> Option<&M> {
        self.flights.get(key).map(|flight| &flight.meta)
    }

    /// A place in the flight under way for `key`, if any.
    pub(crate) fn join(&self, key: &K) -> Option<Waiter<M, V>> {
        self.flights.get(key).map(|flight| Waiter {
            meta: flight.meta.clone(),
            started: false,
            answer: flight.answer.clone(),
        })
    }

    /// Starts a flight for `key` (replacing any under way) that runs `call` in its own task,
    /// abandoned at `give_up`. `settle` turns the call's result, or why it ended without one,
    /// into the answer every waiter gets; it runs exactly once, with the flight map locked and
    /// this flight already out of it. Needs a Tokio runtime.
    pub(crate) fn start<C, S>(
        mut self,
        key: K,
        meta: M,
        give_up: Instant,
        call: C,
        settle: S,
    ) -> Waiter<M, V>
    where
        C: Future<Output = V> + Send + 'static,
        S: FnOnce(Result<V, Ended>) -> V + Send + 'static,
    {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = watch::channel(None);
        let flight = Flight {
            id,
            meta: meta.clone(),
            answer: answer.clone(),
        };
        self.flights.insert(key.clone(), flight);
        drop(self.flights);
        let mut landing = Landing {
            shared: self.shared.clone(),
            key,
            id,
            finish: Some((settle, sender)),
        };
        tokio::spawn(async move {
            let result = tokio::time::timeout_at(give_up, call)
                .await
                .map_err(|_| Ended::TimedOut);
            landing.land(result);
        });
        Waiter {
            meta,
            started: true,
            answer,
        }
    }
}

impl<M: Clone, V: Clone> Waiter<M, V> {
    /// The flight's answer, or [`Missed::Deadline`] once `deadline` passes. Cancel-safe.
    pub(crate) async fn wait(mut self, deadline: Instant) -> Result<Landed<M, V>, Missed> {
        let answered = self.answer.wait_for(Option::is_some);
        match tokio::time::timeout_at(deadline, answered).await {
            Err(_) => Err(Missed::Deadline),
            Ok(Err(_)) => Err(Missed::Lost),
            Ok(Ok(answer)) => match answer.clone() {
                Some(value) => Ok(Landed {
                    value,
                    meta: self.meta,
                    started: self.started,
                }),
                None => Err(Missed::Lost),
            },
        }
    }

    /// The meta the flight was started with.
    #[cfg(test)]
    pub(crate) fn meta(&self) -> &M {
        &self.meta
    }
}

/// Ends one flight exactly once: from its task, or from its drop when the call panicked or
/// the task was aborted.
struct Landing<K: Eq + Hash, M, V, S: FnOnce(Result<V, Ended>) -> V> {
    shared: Arc<Shared<K, M, V>>,
    key: K,
    id: u64,
    finish: Option<(S, watch::Sender<Option<V>>)>,
}

impl<K: Eq + Hash, M, V, S: FnOnce(Result<V, Ended>) -> V> Landing<K, M, V, S> {
    fn land(&mut self, result: Result<V, Ended>) {
        let Some((settle, sender)) = self.finish.take() else {
            return;
        };
        let mut flights = self.shared.flights();
        // A successor may have replaced this flight: leave it alone.
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
        let value = settle(result);
        drop(flights);
        sender.send_replace(Some(value));
    }
}

impl<K: Eq + Hash, M, V, S: FnOnce(Result<V, Ended>) -> V> Drop for Landing<K, M, V, S> {
    fn drop(&mut self) {
        // Only still to land when the call panicked or its task was aborted.
        self.land(Err(Ended::Aborted));
    }
}

impl<K, M, V> fmt::Debug for SingleFlight<K, M, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.shared.flights().len())
            .finish()
    }
}

impl<K, M, V> Clone for SingleFlight<K, M, V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}
