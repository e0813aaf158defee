//! [`Applier`]: the one function every replica runs for every change, its own included.

use std::time::{Duration, SystemTime};

use super::record::{Action, Change, Target};
use crate::clock::{from_unix_ms, unix_ms};
use crate::freshness::Freshness;
use crate::live::LiveCheck;
use crate::recent::Recent;

/// Change ids remembered as applied.
const APPLIED_IDS: u64 = 100_000;

/// What applying one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Its effect was applied here.
    Now,
    /// Applied here before (same id): nothing done again.
    Before,
    /// It concerns another issuer's tokens: ignored.
    Elsewhere,
}

/// Applies changes to one replica's live cache and freshness state.
///
/// Idempotent: watermarks and lock-outs only move forward, invalidations repeat harmlessly, and
/// a change applied before (by id, remembered for the retention window) is not applied again,
/// so a replica reading back its own record does not drop the live entries it refetched since.
/// Monotone: every action only drops live entries, raises watermarks or adds lock-outs, so no
/// record, however forged, can make a replica grant what it would otherwise refuse.
pub(crate) struct Applier {
    issuer: Box<str>,
    live: LiveCheck,
    freshness: Freshness,
    /// How far ahead of our clock a change may take effect, in ms: the verifier's leeway (a
    /// webhook's time is capped at receipt plus the leeway, since Kinde's clock may be ahead).
    max_ahead_ms: i64,
    /// Ids of applied changes, with what each did: a record reusing an id for another effect
    /// (forged, say) is applied, not taken for the first.
    applied: Recent<Box<str>, u64>,
}

impl Applier {
    /// Applies to `live` and `freshness`, for tokens of `issuer` verified with `leeway`; ids
    /// are remembered for `memory` (at least as long as a webhook can be redelivered).
    pub(crate) fn new(
        issuer: &str,
        live: LiveCheck,
        freshness: Freshness,
        leeway: Duration,
        memory: Duration,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            live,
            freshness,
            max_ahead_ms: i64::try_from(leeway.as_millis()).unwrap_or(i64::MAX),
            applied: Recent::new(APPLIED_IDS, memory),
        }
    }

    /// The issuer whose tokens the changes concern.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The freshness state changes are applied to.
    pub(crate) fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// Applies `change` once.
    pub(crate) fn apply(&self, change: &Change) -> Applied {
        if !change.issuer.is_empty() && *change.issuer != *self.issuer {
            return Applied::Elsewhere;
        }
        let fingerprint = change.fingerprint();
        if self.applied.get(&*change.id) == Some(fingerprint) {
            return Applied::Before;
        }
        // Two threads applying one record at once may both apply it: harmless (idempotent).
        self.applied.upsert(change.id.clone(), |_| fingerprint);
        self.apply_effect(change);
        Applied::Now
    }

    /// The effect, with no memory of ids: also what the conservative rule for a gap uses.
    pub(crate) fn apply_effect(&self, change: &Change) {
        // A change takes effect at most the leeway ahead of our clock (Kinde's may run ahead):
        // a record dated in the far future, forged or mistaken, cannot distrust or lock out
        // tokens issued after it arrived (beyond what the leeway lets through anyway).
        let latest = unix_ms(SystemTime::now()).saturating_add(self.max_ahead_ms);
        let at = from_unix_ms(change.at_ms.min(latest));
        let (live, freshness) = (&self.live, &self.freshness);
        match &change.target {
            Target::User(user) => {
                live.invalidate_user(user);
                match change.action {
                    Action::Invalidate => {}
                    Action::Distrust => freshness.mark_user(user, at),
                    Action::LockOut => freshness.lock_out_user(user, at),
                }
            }
            Target::Org(org) => {
                live.invalidate_org(org);
                // An organization is never locked out wholesale: a lock-out names a user.
                if change.action >= Action::Distrust {
                    freshness.mark_org(org, at);
                }
            }
            Target::Everyone => {
                live.invalidate_all();
                if change.action >= Action::Distrust {
                    freshness.mark_all(at);
                }
            }
            Target::Token(jti) => freshness.revoke_token(jti, at),
        }
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::live::KindeAccountApi;

    pub(super) fn applier() -> Applier {
        let live = LiveCheck::builder(KindeAccountApi::new("https://a.kinde.com").unwrap()).build();
        Applier::new(
            "https://a.kinde.com",
            live,
            Freshness::default(),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }

    pub(super) fn claims(sub: &str, iat: i64) -> crate::Claims {
        crate::Claims::fixture(serde_json::json!({"sub": sub, "iat": iat}))
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn each_change_applies_once_and_only_for_its_issuer() {
        let a = applier();
        let at = SystemTime::now();
        let change = Change::new(Target::User("kp_1".into()), Action::Distrust, at);
        assert_eq!(a.apply(&change), Applied::Now);
        assert_eq!(a.apply(&change), Applied::Before);
        let other = Change::new(Target::User("kp_2".into()), Action::Distrust, at)
            .for_issuer("https://b.kinde.com");
        assert_eq!(a.apply(&other), Applied::Elsewhere);
        assert!(a.freshness().user_watermark("kp_2").is_none());
        let mine = Change::new(Target::User("kp_2".into()), Action::Distrust, at)
            .for_issuer("https://a.kinde.com");
        assert_eq!(a.apply(&mine), Applied::Now);
    }

    #[test]
    fn a_lock_out_refuses_and_distrusts() {
        let a = applier();
        let now = crate::clock::unix_ms(SystemTime::now()) / 1000;
        let at = from_unix_ms(now * 1000);
        a.apply(&Change::new(
            Target::User("kp_1".into()),
            Action::LockOut,
            at,
        ));
        assert!(a.freshness().is_locked_out(&claims("kp_1", now - 1)));
        assert!(a.freshness().is_stale(&claims("kp_1", now - 1)));
        assert!(!a.freshness().is_locked_out(&claims("kp_1", now + 1)));
        // Organizations and everyone are distrusted, never locked out wholesale.
        a.apply(&Change::new(Target::Everyone, Action::LockOut, at));
        assert!(!a.freshness().is_locked_out(&claims("kp_2", now - 1)));
        assert!(a.freshness().is_stale(&claims("kp_2", now - 1)));
    }
}

#[cfg(test)]
mod far_future {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn a_record_dated_in_the_far_future_cannot_lock_out_tokens_issued_after_it_arrived() {
        let a = applier();
        let year_3000 = from_unix_ms(32_503_680_000_000);
        a.apply(&Change::new(
            Target::User("kp_1".into()),
            Action::LockOut,
            year_3000,
        ));
        let now = unix_ms(SystemTime::now()) / 1000;
        assert!(a.freshness().is_locked_out(&claims("kp_1", now)));
        let later = now + 31;
        assert!(!a.freshness().is_locked_out(&claims("kp_1", later)));
    }
}
