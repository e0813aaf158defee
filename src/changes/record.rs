//! The [`Change`] record and its wire form in a shared log.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::clock::{from_unix_ms, unix_ms};

/// Longest user id, organization code, `jti`, issuer or event id a record may carry.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// Longest encoded record accepted from a shared log.
#[cfg_attr(not(any(feature = "redis", feature = "fuzzing")), allow(dead_code))]
pub(crate) const MAX_RECORD_BYTES: usize = 8 * 1024;

/// Who a change concerns.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One user (in every organization).
    User(String),
    /// Everyone in one organization.
    Org(String),
    /// Everyone.
    Everyone,
    /// One token, by its `jti` claim (only with [`Action::LockOut`]).
    Token(String),
}

/// What a change does. Each action includes the ones before it; none can grant anything.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Drop the live entries concerned: strict routes ask the permissions API again.
    Invalidate,
    /// Also stop trusting the claims of tokens issued up to the change: token-trusted routes
    /// decide them live until they expire.
    Distrust,
    /// Also refuse those tokens outright (401 `invalid_token`) on every route until they
    /// expire: a deleted or suspended user, a revoked token.
    LockOut,
}

/// Where a change came from.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A verified Kinde webhook with this signed `event_id`.
    Webhook(String),
    /// The application (`Auth::mark_changed`, `invalidate_*`, `lock_out_user`, ...).
    App,
    /// A replica found changes may have been lost (the shared log was reset or trimmed past
    /// what it had read) and distrusts every older token.
    Loss,
}

/// One change to what tokens and live answers may be trusted: the unit every replica applies.
///
/// ```
/// use std::time::SystemTime;
/// use claimcheck::changes::{Action, Change, Target};
///
/// let change = Change::new(Target::User("kp_123".into()), Action::Distrust, SystemTime::now());
/// assert_eq!(change.action(), Action::Distrust);
/// ```
#[derive(Clone)]
pub struct Change {
    pub(crate) id: Box<str>,
    /// The key under which a shared log remembers this change was appended (not on the wire).
    pub(crate) dedupe: Option<Box<str>>,
    pub(crate) issuer: Box<str>,
    pub(crate) target: Target,
    pub(crate) action: Action,
    pub(crate) at_ms: i64,
    pub(crate) origin: Origin,
}

impl Change {
    /// A change made by the application, effective at `at` (watermarks and lock-outs concern
    /// tokens issued up to `at`). A [`Target::Token`] is always a lock-out.
    pub fn new(target: Target, action: Action, at: SystemTime) -> Self {
        let action = match target {
            Target::Token(_) => Action::LockOut,
            _ => action,
        };
        Self {
            id: unique_id().into(),
            dedupe: None,
            issuer: "".into(),
            target,
            action,
            at_ms: unix_ms(at),
            origin: Origin::App,
        }
    }

    /// The change a verified webhook asks for: its id derives from the signed `event_id`, so
    /// redeliveries of one event are one change, on every replica.
    pub(crate) fn for_webhook(mut self, event_id: &str) -> Self {
        self.id = format!("webhook:{event_id}").into();
        self.dedupe = Some(self.id.clone());
        self.origin = Origin::Webhook(event_id.to_owned());
        self
    }

    /// The conservative answer to a loss: every older token distrusted, every live entry
    /// dropped. `key` names the loss (issuer included), so replicas that find the same one
    /// append one record; the record's own id is unique, so no record written in advance can
    /// pass for it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn loss(key: &str, at: SystemTime) -> Self {
        Self {
            dedupe: Some(format!("loss:{key}").into()),
            origin: Origin::Loss,
            ..Self::new(Target::Everyone, Action::Distrust, at)
        }
    }

    /// What the change does, for telling two records with one id apart.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.issuer, &self.target, self.action, self.at_ms).hash(&mut hasher);
        hasher.finish()
    }

    /// Stamps the issuer whose tokens this change concerns.
    pub(crate) fn for_issuer(mut self, issuer: &str) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Who it concerns.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What it does.
    pub fn action(&self) -> Action {
        self.action
    }

    /// When it took effect.
    pub fn at(&self) -> SystemTime {
        from_unix_ms(self.at_ms)
    }

    /// Where it came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The issuer whose tokens it concerns (`""`: this replica's).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key under which a shared log remembers this change was appended, so that two
    /// replicas receiving one webhook append it once.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn dedupe_key(&self) -> Option<&str> {
        self.dedupe.as_deref()
    }

    /// The wire form: compact JSON.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn encode(&self) -> String {
        let (who, key) = match &self.target {
            Target::User(id) => ("user", id.as_str()),
            Target::Org(code) => ("org", code.as_str()),
            Target::Everyone => ("all", ""),
            Target::Token(jti) => ("jti", jti.as_str()),
        };
        let (from, event) = match &self.origin {
            Origin::Webhook(event) => ("webhook", event.as_str()),
            Origin::App => ("app", ""),
            Origin::Loss => ("loss", ""),
        };
        let what = match self.action {
            Action::Invalidate => "invalidate",
            Action::Distrust => "distrust",
            Action::LockOut => "lockout",
        };
        let wire = Wire {
            v: 1,
            id: Cow::Borrowed(&self.id),
            iss: Cow::Borrowed(&self.issuer),
            who: Cow::Borrowed(who),
            key: Cow::Borrowed(key),
            what: Cow::Borrowed(what),
            at: self.at_ms,
            from: Cow::Borrowed(from),
            event: Cow::Borrowed(event),
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a record from a shared log. Anything malformed, oversized or of an unknown version
    /// is refused (the caller skips it and counts it): a record can never grant, but a
    /// malformed one must not be guessed at either.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn decode(text: &str) -> Result<Self, &'static str> {
        if text.len() > MAX_RECORD_BYTES {
            return Err("record too large");
        }
        let wire: Wire<'_> = serde_json::from_str(text).map_err(|_| "record is not valid")?;
        if wire.v != 1 {
            return Err("unknown record version");
        }
        let fields = [&wire.id, &wire.iss, &wire.key, &wire.event];
        if fields.iter().any(|f| f.len() > MAX_FIELD_BYTES) || wire.id.is_empty() {
            return Err("record field out of bounds");
        }
        let key = || {
            (!wire.key.is_empty())
                .then(|| wire.key.clone().into_owned())
                .ok_or("record names nobody")
        };
        let target = match &*wire.who {
            "user" => Target::User(key()?),
            "org" => Target::Org(key()?),
            "all" => Target::Everyone,
            "jti" => Target::Token(key()?),
            _ => return Err("unknown record target"),
        };
        let action = match &*wire.what {
            "invalidate" => Action::Invalidate,
            "distrust" => Action::Distrust,
            "lockout" => Action::LockOut,
            _ => return Err("unknown record action"),
        };
        let origin = match &*wire.from {
            "webhook" => Origin::Webhook(wire.event.clone().into_owned()),
            "app" => Origin::App,
            "loss" => Origin::Loss,
            _ => return Err("unknown record origin"),
        };
        Ok(Self {
            dedupe: None,
            id: wire.id.as_ref().into(),
            issuer: wire.iss.as_ref().into(),
            target,
            action,
            at_ms: wire.at,
            origin,
        })
    }
}

/// Two changes are equal when their wire forms are (the dedupe key is local).
impl PartialEq for Change {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.id,
            &self.issuer,
            &self.target,
            self.action,
            self.at_ms,
            &self.origin,
        ) == (
            &other.id,
            &other.issuer,
            &other.target,
            other.action,
            other.at_ms,
            &other.origin,
        )
    }
}

impl Eq for Change {}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Change")
            .field("target", &self.target)
            .field("action", &self.action)
            .field("at_ms", &self.at_ms)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    v: u8,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    iss: Cow<'a, str>,
    #[serde(borrow)]
    who: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    what: Cow<'a, str>,
    at: i64,
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow, default)]
    event: Cow<'a, str>,
}

/// 128 random-enough bits as hex: unique per change (not secret).
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(count);
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_i64(unix_ms(SystemTime::now()));
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_wire() {
        let at = SystemTime::now();
        for change in [
            Change::new(Target::User("kp_1".into()), Action::Distrust, at),
            Change::new(Target::Org("org_1".into()), Action::Invalidate, at),
            Change::new(Target::Everyone, Action::Distrust, at).for_webhook("event_1"),
            Change::new(Target::Token("jti \" 1".into()), Action::Invalidate, at),
            Change::loss("epoch_1", at).for_issuer("https://a.kinde.com"),
        ] {
            assert_eq!(Change::decode(&change.encode()).unwrap(), change);
        }
    }

    #[test]
    fn a_token_target_is_always_a_lock_out() {
        let c = Change::new(
            Target::Token("j".into()),
            Action::Invalidate,
            SystemTime::now(),
        );
        assert_eq!(c.action(), Action::LockOut);
    }

    #[test]
    fn malformed_records_are_refused() {
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        for bad in [
            "".to_owned(),
            "[]".to_owned(),
            r#"{"v":2,"id":"a","who":"all","what":"distrust","at":1,"from":"app"}"#.to_owned(),
            r#"{"v":1,"id":"a","who":"user","what":"distrust","at":1,"from":"app"}"#.to_owned(),
            r#"{"v":1,"id":"a","who":"all","what":"grant","at":1,"from":"app"}"#.to_owned(),
            r#"{"v":1,"id":"","who":"all","what":"distrust","at":1,"from":"app"}"#.to_owned(),
            format!(
                r#"{{"v":1,"id":"a","who":"user","key":"{long}","what":"distrust","at":1,"from":"app"}}"#
            ),
            "x".repeat(MAX_RECORD_BYTES + 1),
        ] {
            assert!(Change::decode(&bad).is_err(), "{bad:.80}");
        }
    }

    #[test]
    fn ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| unique_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
