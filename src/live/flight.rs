//! Flights: one upstream call per (issuer, user, organization) at a time, shared by every
//! caller that needs it while it runs.
//!
//! - A miss joins the flight already fetching for its key and token, or starts one: a spawned
//!   task that calls the source once and publishes the answer on a `watch` channel, so no
//!   caller's cancellation can stop it. It is abandoned at the deadline of the caller that
//!   started it.
//! - A flight remembers whose token started it. A source acting with the caller's token (Kinde's
//!   Account API) may refuse one token and accept another of the same user, so a refusal reaches
//!   only callers holding that very token: the others look again, with their own. A success
//!   serves everyone: it is the user's permissions, whichever token asked.
//! - A flight notes the invalidation generation it started in; its answer is used, and cached,
//!   only while no later invalidation concerns it (see [`invalidation`](super::invalidation)).
//! - Finishing a flight removes it from the map and fills the cache in one critical section of
//!   the map's mutex (never held across an await), so a caller never misses both.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;

use super::PermissionQuery;
use super::check::{Entry, Inner, Key};
use super::error::{SourceError, Verdict};
use crate::claims::AccessToken;

pub(super) type Flights = HashMap<Key, Flight>;

/// An upstream call under way.
pub(super) struct Flight {
    id: u64,
    generation: u64,
    token: AccessToken,
    answer: watch::Receiver<Option<Answer>>,
}

/// The published answer of a flight.
#[derive(Clone)]
pub(super) struct Answer {
    pub(super) result: Result<Entry, SourceError>,
}

/// A caller's place in a flight.
pub(super) struct Ticket {
    pub(super) answer: watch::Receiver<Option<Answer>>,
    /// Whether this caller started the flight.
    pub(super) started: bool,
    /// The token the flight asks with.
    pub(super) token: AccessToken,
}

impl Flight {
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn join(&self) -> Ticket {
        Ticket {
            answer: self.answer.clone(),
            started: false,
            token: self.token.clone(),
        }
    }
}

/// Starts a flight for `key` with `query`'s token (replacing any stale one in `flights`),
/// abandoned at `give_up`. `flights` is the locked map of `inner`.
pub(super) fn start(
    inner: &Arc<Inner>,
    mut flights: MutexGuard<'_, Flights>,
    key: &Key,
    query: &PermissionQuery,
    give_up: Instant,
) -> Ticket {
    let id = inner.next_flight_id();
    let generation = inner.generation();
    let token = query.access_token().clone();
    let (sender, answer) = watch::channel(None);
    let flight = Flight {
        id,
        generation,
        token: token.clone(),
        answer: answer.clone(),
    };
    flights.insert(key.clone(), flight);
    drop(flights);
    let completion = Completion {
        inner: inner.clone(),
        key: key.clone(),
        id,
        generation,
        query: query.clone(),
        sender: Some(sender),
    };
    tokio::spawn(fill(completion, give_up));
    Ticket {
        answer,
        started: true,
        token,
    }
}

/// The upstream call of one flight, made in its own task.
async fn fill(mut completion: Completion, give_up: Instant) {
    let inner = completion.inner.clone();
    let call = inner.source().permissions(&completion.query);
    let result = match tokio::time::timeout_at(give_up, call).await {
        Ok(Ok(set)) => Ok(Entry::new(set, completion.generation)),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(SourceError::unavailable("timed out")),
    };
    if let Err(error) = &result {
        if error.is_refused() {
            tracing::debug!(
                target: "claimcheck::live",
                reason = error.reason(),
                user = completion.query.user_id(),
                "live permission lookup refused the caller's token"
            );
        } else {
            tracing::warn!(
                target: "claimcheck::live",
                reason = error.reason(),
                user = completion.query.user_id(),
                "live permission lookup failed"
            );
        }
    }
    completion.finish(result);
}

/// Publishes a flight's answer exactly once, even if the task panics or is dropped.
struct Completion {
    inner: Arc<Inner>,
    key: Key,
    id: u64,
    generation: u64,
    query: PermissionQuery,
    sender: Option<watch::Sender<Option<Answer>>>,
}

impl Completion {
    fn finish(&mut self, result: Result<Entry, SourceError>) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        // Every upstream call ends here, even a panicking one: the breaker always hears of it.
        let verdict = match &result {
            Ok(_) => Verdict::Healthy,
            Err(error) => error.verdict(),
        };
        self.inner.breaker().record(verdict);
        match &result {
            Ok(_) => self.inner.remember_acceptance(&self.query),
            Err(error) if error.is_upstream_refusal() => self.inner.remember_refusal(&self.query),
            Err(_) => {}
        }
        let mut flights = self.inner.flights();
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
        if let Ok(entry) = &result {
            self.inner.fill(&self.key, entry);
        }
        drop(flights);
        sender.send_replace(Some(Answer { result }));
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(Err(SourceError::unavailable("fetch aborted")));
    }
}
