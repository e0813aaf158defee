//! Live flights: the [`SingleFlight`](crate::single_flight::SingleFlight) of live lookups, one upstream call per
//! (issuer, user, organization) at a time, shared by every caller that needs it while it runs.
//!
//! - A flight remembers whose token started it. A source acting with the caller's token (Kinde's
//!   Account API) may refuse one token and accept another of the same user, so a refusal reaches
//!   only callers holding that very token: the others look again, with their own. A success
//!   serves everyone: it is the user's permissions, whichever token asked.
//! - A flight notes the invalidation generation it started in; its answer is used, and cached,
//!   only while no later invalidation concerns it (see [`invalidation`](super::invalidation)),
//!   and a flight an invalidation overtook is replaced, not joined.
//! - It is abandoned at the deadline of the caller that started it.
//! - Settling a flight tells the breaker and the refusal memory how the call went (a panicking
//!   source too) and fills the cache, in the single-flight's critical section, so a caller
//!   never misses both the flight and its cached answer.

use std::sync::Arc;

use tokio::time::Instant;

use super::PermissionQuery;
use super::error::{SourceError, Verdict};
use super::state::{Answer, Entry, Found, Inner, Key, Kind, Meta};
use crate::single_flight::{Ended, Locked, Waiter};

/// A caller's place in a live flight.
pub(super) type Ticket = Waiter<Meta, Answer>;

/// Starts a flight for `key` with `query`'s token (replacing any stale one), abandoned at
/// `give_up`. `flights` is the locked map of `inner`.
pub(super) fn start(
    inner: &Arc<Inner>,
    flights: Locked<'_, Key, Meta, Answer>,
    key: &Key,
    query: &PermissionQuery,
    give_up: Instant,
) -> Ticket {
    let generation = inner.generation();
    let meta = Meta {
        generation,
        token: query.access_token().clone(),
    };
    let call = {
        let (inner, query, kind) = (inner.clone(), query.clone(), key.kind());
        async move {
            let source = inner.source();
            let result = match kind {
                Kind::Permissions => source
                    .permissions(&query)
                    .await
                    .map(|set| Found::Permissions(Arc::new(set))),
                Kind::Roles => source
                    .roles(&query)
                    .await
                    .map(|set| Found::Keys(Arc::new(set))),
                Kind::Flags => source
                    .feature_flags(&query)
                    .await
                    .map(|set| Found::Keys(Arc::new(set))),
            };
            if let Err(error) = &result {
                log_failure(error, &query);
            }
            result.map(|found| Entry::new(found, generation))
        }
    };
    let settle = {
        let (inner, key, query) = (inner.clone(), key.clone(), query.clone());
        move |result| settle(&inner, &key, &query, result)
    };
    flights.start(key.clone(), meta, give_up, call, settle)
}

/// Every upstream call ends here, even a panicking one: the breaker always hears of it.
fn settle(
    inner: &Inner,
    key: &Key,
    query: &PermissionQuery,
    result: Result<Answer, Ended>,
) -> Answer {
    let answer = result.unwrap_or_else(|ended| {
        let error = match ended {
            Ended::TimedOut => SourceError::unavailable("timed out"),
            Ended::Aborted => SourceError::unavailable("fetch aborted"),
        };
        log_failure(&error, query);
        Err(error)
    });
    let verdict = match &answer {
        Ok(_) => Verdict::Healthy,
        Err(error) => error.verdict(),
    };
    let kind = key.kind();
    inner.upstream(kind).breaker.record(verdict);
    match &answer {
        Ok(entry) => {
            inner.remember_acceptance(query, kind);
            inner.fill(key, entry);
        }
        Err(error) if error.is_upstream_refusal() => inner.remember_refusal(query, kind),
        Err(_) => {}
    }
    answer
}

fn log_failure(error: &SourceError, query: &PermissionQuery) {
    if error.is_unsupported() {
        tracing::error!(
            target: "claimcheck::live",
            reason = error.reason(),
            "a route needs what its permission source does not provide: answering 500"
        );
    } else if error.is_refused() {
        tracing::debug!(
            target: "claimcheck::live",
            reason = error.reason(),
            user = query.user_id(),
            "live permission lookup refused the caller's token"
        );
    } else {
        tracing::warn!(
            target: "claimcheck::live",
            reason = error.reason(),
            user = query.user_id(),
            "live permission lookup failed"
        );
    }
}
