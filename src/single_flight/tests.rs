//! Unit tests of [`SingleFlight`]: coalescing, a cancelled starter, a panicking call, deadlines
//! (the waiter's and the flight's), a flight replaced after an invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

type Flights = SingleFlight<&'static str, u64, Result<u32, Ended>>;

/// A settle hook that passes the result through and counts its runs.
fn counted(
    runs: &Arc<AtomicUsize>,
) -> impl FnOnce(Result<Result<u32, Ended>, Ended>) -> Result<u32, Ended> + Send + 'static {
    let runs = runs.clone();
    move |result| {
        runs.fetch_add(1, Ordering::SeqCst);
        result.and_then(|inner| inner)
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Starts a flight for `key` whose call waits for `gate` and then answers `value`.
fn gated(
    flights: &Flights,
    key: &'static str,
    meta: u64,
    gate: &Arc<Notify>,
    value: u32,
    runs: &Arc<AtomicUsize>,
) -> Waiter<u64, Result<u32, Ended>> {
    let gate = gate.clone();
    let call = async move {
        gate.notified().await;
        Ok(value)
    };
    flights.lock().start(key, meta, far(), call, counted(runs))
}

#[tokio::test]
async fn callers_share_one_call() {
    let flights = Flights::new();
    let (gate, runs) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let first = gated(&flights, "k", 0, &gate, 7, &runs);
    let others: Vec<_> = (0..10)
        .map(|_| flights.lock().join(&"k").unwrap())
        .collect();
    assert_eq!(flights.len(), 1);
    gate.notify_one();
    let landed = first.wait(far()).await.unwrap();
    assert_eq!((landed.value, landed.started), (Ok(7), true));
    for waiter in others {
        let landed = waiter.wait(far()).await.unwrap();
        assert_eq!((landed.value, landed.started), (Ok(7), false));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(flights.len(), 0, "a landed flight leaves the map");
}

#[tokio::test]
async fn a_cancelled_starter_does_not_cancel_the_call() {
    let flights = Flights::new();
    let (gate, runs) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let starter = gated(&flights, "k", 0, &gate, 7, &runs);
    let joined = flights.lock().join(&"k").unwrap();
    // The starter gives up (its request was dropped) before the call ends.
    let waiting = tokio::spawn(starter.wait(far()));
    tokio::task::yield_now().await;
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    gate.notify_one();
    assert_eq!(joined.wait(far()).await.unwrap().value, Ok(7));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panicking_call_still_answers_and_settles() {
    let flights = Flights::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let call = async {
        if Instant::now() > far() {
            return Ok(0);
        }
        panic!("scripted panic");
    };
    let waiter = flights.lock().start("k", 0, far(), call, counted(&runs));
    let landed = waiter.wait(far()).await.unwrap();
    assert_eq!(landed.value, Err(Ended::Aborted));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "settle ran once");
    assert_eq!(flights.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn each_waiter_gives_up_at_its_own_deadline_while_the_call_goes_on() {
    let flights = Flights::new();
    let (gate, runs) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let starter = gated(&flights, "k", 0, &gate, 7, &runs);
    let patient = flights.lock().join(&"k").unwrap();
    let hasty = starter
        .wait(Instant::now() + Duration::from_millis(100))
        .await;
    assert!(matches!(hasty, Err(Missed::Deadline)));
    assert_eq!(flights.len(), 1, "the call is still under way");
    gate.notify_one();
    let landed = patient.wait(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(landed.unwrap().value, Ok(7));
}

#[tokio::test(start_paused = true)]
async fn a_call_is_abandoned_at_its_give_up_instant() {
    let flights = Flights::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let give_up = Instant::now() + Duration::from_millis(200);
    let call = std::future::pending();
    let waiter = flights.lock().start("k", 0, give_up, call, counted(&runs));
    let landed = waiter.wait(far()).await.unwrap();
    assert_eq!(landed.value, Err(Ended::TimedOut));
    assert!(Instant::now() >= give_up);
    assert_eq!((runs.load(Ordering::SeqCst), flights.len()), (1, 0));
}

#[tokio::test]
async fn a_flight_replaced_after_an_invalidation_answers_only_its_own_waiters() {
    let flights = Flights::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let (old_gate, new_gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let old = gated(&flights, "k", 1, &old_gate, 1, &runs);
    // An invalidation made generation 1 stale: the caller judges by the meta and replaces.
    let stale = flights
        .lock()
        .meta(&"k")
        .is_some_and(|generation| *generation < 2);
    assert!(stale);
    let new = gated(&flights, "k", 2, &new_gate, 2, &runs);
    let joined = flights.lock().join(&"k").unwrap();
    assert_eq!(*joined.meta(), 2, "late callers join the new flight");
    // The old flight lands first and must not take its successor out of the map.
    old_gate.notify_one();
    let landed = old.wait(far()).await.unwrap();
    assert_eq!((landed.value, landed.meta), (Ok(1), 1));
    assert_eq!(flights.len(), 1);
    assert_eq!(*flights.lock().meta(&"k").unwrap(), 2);
    new_gate.notify_one();
    assert_eq!(new.wait(far()).await.unwrap().value, Ok(2));
    assert_eq!(joined.wait(far()).await.unwrap().value, Ok(2));
    assert_eq!((runs.load(Ordering::SeqCst), flights.len()), (2, 0));
}

#[tokio::test]
async fn settle_runs_with_the_map_locked() {
    let flights = Flights::new();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (observer, record) = (flights.clone(), seen.clone());
    let settle = move |result: Result<Result<u32, Ended>, Ended>| {
        // The map is locked: a try-lock from here fails, so no caller can look between the
        // flight leaving and what settle stores.
        let locked = observer.shared.flights.try_lock().is_err();
        *record.lock().unwrap() = Some(locked);
        result.and_then(|inner| inner)
    };
    let waiter = flights.lock().start("k", 0, far(), async { Ok(3) }, settle);
    assert_eq!(waiter.wait(far()).await.unwrap().value, Ok(3));
    assert_eq!(*seen.lock().unwrap(), Some(true));
    assert_eq!(flights.len(), 0);
}

// Catches: a settle hook that panics (with the map locked) leaving its waiters hanging, the
// key stuck in the map, or the poisoned lock failing every later flight.
#[tokio::test]
async fn a_panicking_settle_still_answers_and_frees_the_key() {
    let flights = Flights::new();
    let settle = |_: Result<Result<u32, Ended>, Ended>| -> Result<u32, Ended> {
        panic!("scripted settle panic")
    };
    let gate = Arc::new(Notify::new());
    let call = {
        let gate = gate.clone();
        async move {
            gate.notified().await;
            Ok(1)
        }
    };
    let started = flights.lock().start("k", 0, far(), call, settle);
    let joined = flights.lock().join(&"k").unwrap();
    gate.notify_one();
    assert_eq!(started.wait(far()).await.unwrap_err(), Missed::Lost);
    assert_eq!(joined.wait(far()).await.unwrap_err(), Missed::Lost);
    assert_eq!(flights.len(), 0);
    let runs = Arc::new(AtomicUsize::new(0));
    let next = flights
        .lock()
        .start("k", 1, far(), async { Ok(2) }, counted(&runs));
    assert_eq!(next.wait(far()).await.unwrap().value, Ok(2));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
