//! Invalidation by generation: forgetting a user's, an organization's or everyone's live
//! answers in O(1), without touching the cache.
//!
//! Every invalidation takes the next number of one counter and records it for its scope (a
//! user, an organization, or everyone). Every upstream call notes the counter when it starts; its
//! answer, in flight or cached, is usable only while no invalidation of its user, organization
//! or everyone carries a later number. So `invalidate_user` is one counter increment and one
//! small map write, whatever the size of the cache; stale entries are simply never served and
//! age out with their time-to-live.
//!
//! The per-scope numbers are kept in bounded maps. A number may be forgotten only once nothing
//! it could invalidate can still be served: each lives for the cache's time-to-live plus the
//! deadline (the longest an answer can be in flight) plus a margin. If a map overflows and must
//! drop a number early, the drop counts as an invalidation of everyone (conservative: one more
//! upstream call per user, never a stale answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::recent::Recent;

type Marks = Recent<Box<str>, u64>;

/// The generation counter and the last invalidation of each scope.
pub(super) struct Invalidations {
    counters: Arc<Counters>,
    users: Marks,
    orgs: Marks,
}

struct Counters {
    /// Number of the latest invalidation (0: none yet).
    latest: AtomicU64,
    /// Number of the latest invalidation of everyone.
    everyone: AtomicU64,
}

impl Counters {
    fn next(&self) -> u64 {
        self.latest.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn invalidate_everyone(&self) {
        let number = self.next();
        self.everyone.fetch_max(number, Ordering::AcqRel);
    }
}

impl Invalidations {
    /// Numbers kept for `horizon` (time-to-live + deadline + margin), at most `capacity` per
    /// kind of scope.
    pub(super) fn new(horizon: Duration, capacity: u64) -> Self {
        let counters = Arc::new(Counters {
            latest: AtomicU64::new(0),
            everyone: AtomicU64::new(0),
        });
        let marks = || {
            let counters = counters.clone();
            // Forgotten before its time: forget everyone's answers instead.
            Recent::with_overflow(capacity, horizon, move |_| counters.invalidate_everyone())
        };
        Self {
            users: marks(),
            orgs: marks(),
            counters,
        }
    }

    /// The generation an upstream call starting now belongs to.
    pub(super) fn current(&self) -> u64 {
        self.counters.latest.load(Ordering::Acquire)
    }

    pub(super) fn invalidate_user(&self, user: &str) {
        Self::mark(&self.users, user, self.counters.next());
    }

    pub(super) fn invalidate_org(&self, org: &str) {
        Self::mark(&self.orgs, org, self.counters.next());
    }

    pub(super) fn invalidate_everyone(&self) {
        self.counters.invalidate_everyone();
    }

    fn mark(marks: &Marks, scope: &str, number: u64) {
        marks.upsert(scope.into(), |old| {
            old.map_or(number, |old| (*old).max(number))
        });
    }

    /// Whether an answer for `user` in `org`, fetched by a call of generation `generation`, is
    /// still usable: no later invalidation concerns it.
    pub(super) fn is_current(&self, user: &str, org: Option<&str>, generation: u64) -> bool {
        if self.counters.everyone.load(Ordering::Acquire) > generation {
            return false;
        }
        let later = |marks: &Marks, scope: Option<&str>| {
            scope
                .and_then(|scope| marks.get(scope))
                .is_some_and(|number| number > generation)
        };
        !later(&self.users, Some(user)) && !later(&self.orgs, org)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_current_until_an_invalidation_that_concerns_it() {
        let marks = Invalidations::new(Duration::from_secs(60), 100);
        let before = marks.current();
        assert!(marks.is_current("kp_1", Some("org_1"), before));
        marks.invalidate_user("kp_2");
        assert!(
            marks.is_current("kp_1", Some("org_1"), before),
            "other user"
        );
        marks.invalidate_user("kp_1");
        assert!(!marks.is_current("kp_1", Some("org_1"), before));
        assert!(!marks.is_current("kp_1", None, before));
        let after = marks.current();
        assert!(
            marks.is_current("kp_1", Some("org_1"), after),
            "fetched after"
        );

        marks.invalidate_org("org_1");
        assert!(!marks.is_current("kp_1", Some("org_1"), after));
        assert!(marks.is_current("kp_1", Some("org_2"), after));
        assert!(marks.is_current("kp_1", None, after));

        let later = marks.current();
        marks.invalidate_everyone();
        assert!(!marks.is_current("kp_9", None, later));
        assert!(marks.is_current("kp_9", None, marks.current()));
    }

    #[test]
    fn a_mark_forgotten_early_invalidates_everyone() {
        let marks = Invalidations::new(Duration::from_secs(60), 10);
        let before = marks.current();
        for i in 0..1_000 {
            marks.invalidate_user(&format!("kp_{i}"));
        }
        assert!(marks.users.len() <= 10);
        // Whichever user's mark was dropped, no answer fetched before is served.
        for i in 0..1_000 {
            assert!(
                !marks.is_current(&format!("kp_{i}"), None, before),
                "kp_{i}"
            );
        }
        assert!(!marks.is_current("kp_never_marked", None, before));
    }

    #[test]
    fn marks_expire_after_the_horizon() {
        let marks = Invalidations::new(Duration::from_millis(50), 10);
        let before = marks.current();
        marks.invalidate_user("kp_1");
        assert!(!marks.is_current("kp_1", None, before));
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            marks.is_current("kp_1", None, before),
            "forgotten after the horizon"
        );
    }
}
