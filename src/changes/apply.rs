//! [`Applier`]: the one function every replica runs for every change, its own included.

use std::time::Duration;

use super::record::{Action, Change, Target};
use crate::freshness::{Freshness, from_unix_ms};
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
    applied: Recent<Box<str>, ()>,
}

impl Applier {
    /// Applies to `live` and `freshness`, for tokens of `issuer`; ids are remembered for
    /// `memory` (at least as long as a webhook can be redelivered).
    pub(crate) fn new(
        issuer: &str,
        live: LiveCheck,
        freshness: Freshness,
        memory: Duration,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            live,
            freshness,
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
        if !self.applied.insert_new(change.id.clone(), ()) {
            return Applied::Before;
        }
        self.apply_effect(change);
        Applied::Now
    }

    /// The effect, with no memory of ids: also what the conservative rule for a gap uses.
    pub(crate) fn apply_effect(&self, change: &Change) {
        let at = from_unix_ms(change.at_ms);
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
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::live::KindeAccountApi;

    fn applier() -> Applier {
        let live = LiveCheck::builder(KindeAccountApi::new("https://a.kinde.com").unwrap()).build();
        Applier::new(
            "https://a.kinde.com",
            live,
            Freshness::default(),
            Duration::from_secs(60),
        )
    }

    fn claims(sub: &str, iat: i64) -> crate::Claims {
        let json = format!(r#"{{"iss":"i","exp":9999999999,"sub":"{sub}","iat":{iat}}}"#);
        crate::Claims::unverified(&json).unwrap()
    }

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
        let now = crate::freshness::unix_ms(SystemTime::now()) / 1000;
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
mod compat {
    /// 0.2's `freshness::Change` still names the targets of `Auth::mark_changed`.
    #[test]
    #[allow(deprecated)]
    fn the_old_name_still_works() {
        let old: crate::freshness::Change = crate::freshness::Change::User("kp_1".into());
        assert_eq!(old, super::Target::User("kp_1".into()));
    }
}
