//! What an invalidation costs, and what it costs everyone else (issue 10, finding 4). One run,
//! ratios within it (`scripts/bench-summary` prints them). A `LiveCheck` in front of a source
//! that answers at once holds 100 000 cached (user, organization) entries:
//!
//! - `invalidate_user_100k`: `invalidate_user` of a cached user;
//! - `miss_quiet`: a lookup that misses (a user never seen), nothing else running;
//! - `miss_beside_a_busy_core`: the same while another thread spins (this machine has two
//!   cores: the baseline for the next group);
//! - `miss_during_invalidations`: the same while another thread invalidates users in a loop.
//!
//! An invalidation used to scan the whole cache while holding the lock every miss takes, so a
//! miss waited for whole scans (6.3 ms each at 10 000 entries).
#![allow(missing_docs)] // criterion's macros generate undocumented public functions

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use claimcheck::PermissionSet;
use claimcheck::live::{LiveCheck, PermissionQuery, PermissionSource, SourceFuture};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;

const CACHED: usize = 100_000;

/// Answers every query at once with no permissions.
struct Instant;

impl PermissionSource for Instant {
    fn permissions<'a>(&'a self, _: &'a PermissionQuery) -> SourceFuture<'a> {
        Box::pin(async { Ok(PermissionSet::new()) })
    }
}

fn query(user: usize) -> PermissionQuery {
    let claims = claimcheck::testing::claims(json!({
        "iss": "https://example.kinde.com",
        "exp": 4_000_000_000u64,
        "sub": format!("kp_{user:032x}"),
        "org_code": "org_0195ac80a14",
    }))
    .expect("claims");
    PermissionQuery::from_claims(&claims).expect("a user")
}

fn invalidation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = LiveCheck::builder(Instant)
        .time_to_live(std::time::Duration::from_secs(3600))
        .max_capacity(4 * CACHED as u64)
        .build();
    rt.block_on(async {
        for user in 0..CACHED {
            live.lookup(&query(user)).await.unwrap();
        }
    });
    assert!(live.cached(&query(0)).is_some());
    let users: Arc<Vec<String>> = Arc::new((0..CACHED).map(|u| format!("kp_{u:032x}")).collect());

    let next = AtomicUsize::new(0);
    c.bench_function("invalidate_user_100k", |b| {
        b.iter(|| {
            let user = &users[next.fetch_add(1, Ordering::Relaxed) % CACHED];
            live.invalidate_user(black_box(user));
        })
    });

    let fresh = AtomicUsize::new(CACHED);
    let miss = |b: &mut criterion::Bencher<'_>| {
        b.iter_batched(
            || query(fresh.fetch_add(1, Ordering::Relaxed)),
            |q| rt.block_on(live.lookup(&q)).unwrap(),
            BatchSize::SmallInput,
        )
    };
    c.bench_function("miss_quiet", miss);

    let busy = beside(|i| {
        black_box(i.wrapping_mul(31));
    });
    c.bench_function("miss_beside_a_busy_core", miss);
    busy.finish();

    let invalidating = beside({
        let (live, users) = (live.clone(), users.clone());
        move |i| live.invalidate_user(&users[(i * 7) % CACHED])
    });
    c.bench_function("miss_during_invalidations", miss);
    let invalidations = invalidating.finish();
    eprintln!("background invalidations while measuring: {invalidations}");
}

/// A thread calling `work(0)`, `work(1)`, ... until finished.
struct Beside {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

fn beside(work: impl Fn(usize) + Send + 'static) -> Beside {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                work(i);
                i += 1;
            }
            i
        }
    });
    Beside { stop, thread }
}

impl Beside {
    /// Stops the thread; how many calls it made.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

criterion_group!(benches, invalidation);
criterion_main!(benches);
