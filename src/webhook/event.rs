//! Kinde's webhook events: the payload model and what each event type means for the caches.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A verified Kinde webhook event: `{type, event_id, source, timestamp, data}`.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    /// The event type, such as `user.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `event_<32 hex>`.
    #[serde(default)]
    pub event_id: Option<String>,
    /// `admin`, `api` or `user`.
    #[serde(default)]
    pub source: Option<String>,
    /// When Kinde sent the event (RFC 3339, with an offset).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// When the change happened, in newer payloads (RFC 3339).
    #[serde(default)]
    pub event_timestamp: Option<String>,
    /// The event-specific object (`{"user": {...}}`, `{"organization": {...}}`, …).
    #[serde(default)]
    pub data: Value,
}

/// What an event does to live-permission caches and freshness watermarks.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// One user's permissions may have changed (`user.updated`): drop their live entries and
    /// distrust their tokens issued before the event.
    User(String),
    /// A user was deleted (`user.deleted`) or suspended (`user.updated` with
    /// `is_suspended: true`): also refuse their tokens issued before the event outright.
    LockOut(String),
    /// An organization changed (`organization.updated`, `organization.deleted`): drop its live
    /// entries.
    Org(String),
    /// A role or permission definition changed (`role.*`, `permission.*`): anyone's effective
    /// permissions may differ; drop every live entry (and, by policy, distrust every older
    /// token).
    Everyone,
    /// Nothing to do (sign-ins, billing, creations that grant nothing, unknown types).
    None,
}

/// Kinde's documented webhook event types.
const KNOWN_TYPES: [&str; 27] = [
    "access_request.created",
    "customer.agreement_cancelled",
    "customer.agreement_created",
    "customer.invoice_overdue",
    "customer.meter_usage_updated",
    "customer.payment_failed",
    "customer.payment_succeeded",
    "customer.plan_assigned",
    "customer.plan_changed",
    "customer.plan_created",
    "organization.created",
    "organization.deleted",
    "organization.updated",
    "passkey.added",
    "passkey.removed",
    "permission.created",
    "permission.deleted",
    "permission.updated",
    "role.created",
    "role.deleted",
    "role.updated",
    "subscriber.created",
    "user.authenticated",
    "user.authentication_failed",
    "user.created",
    "user.deleted",
    "user.updated",
];

impl WebhookEvent {
    /// The event's type as a metric label: one of Kinde's documented types, else `other`
    /// (the label set stays bounded whatever a signer sends).
    pub(crate) fn metric_label(&self) -> &'static str {
        KNOWN_TYPES
            .iter()
            .find(|known| **known == self.kind)
            .copied()
            .unwrap_or("other")
    }

    /// The effect of this event. An event that should name a user or organization but does not
    /// is treated as [`Effect::Everyone`]: when in doubt, forget more.
    pub fn effect(&self) -> Effect {
        let id = |object: &str, field: &str| {
            self.data
                .get(object)
                .and_then(|o| o.get(field))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match self.kind.as_str() {
            "user.deleted" => id("user", "id").map_or(Effect::Everyone, Effect::LockOut),
            "user.updated" => {
                let suspended = self
                    .data
                    .get("user")
                    .and_then(|user| user.get("is_suspended"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                match id("user", "id") {
                    Some(user) if suspended => Effect::LockOut(user),
                    Some(user) => Effect::User(user),
                    None => Effect::Everyone,
                }
            }
            "organization.updated" | "organization.deleted" => {
                id("organization", "code").map_or(Effect::Everyone, Effect::Org)
            }
            kind if kind.starts_with("role.") || kind.starts_with("permission.") => {
                Effect::Everyone
            }
            _ => Effect::None,
        }
    }

    /// When the change happened: `event_timestamp`, else `timestamp`, else `latest`; never
    /// later than `latest`. Pass the receipt time plus the clock skew tolerated on tokens (the
    /// verifier's leeway): Kinde's clock may run ahead of ours by that much, and a token issued
    /// just before the change then carries an `iat` in our future, which the watermark must
    /// still cover. A timestamp further ahead is capped, so it cannot distrust tokens issued
    /// long after the event.
    pub fn occurred_at(&self, latest: SystemTime) -> SystemTime {
        [&self.event_timestamp, &self.timestamp]
            .into_iter()
            .flatten()
            .find_map(|text| parse_rfc3339(text))
            .map_or(latest, |at| at.min(latest))
    }

    /// When Kinde sent the event: `timestamp`, if it is RFC 3339.
    pub fn sent_at(&self) -> Option<SystemTime> {
        self.timestamp.as_deref().and_then(parse_rfc3339)
    }

    /// Parses a verified webhook payload, refusing anything that does not have the shape of a
    /// Kinde event: a JSON object with a `type`, an `event_id` of 1 to 128 characters, an
    /// RFC 3339 `timestamp`, an object `data`, and no `aud` (access tokens always carry one, so
    /// a signed access token is never taken for a webhook).
    pub fn from_payload(payload: &str) -> Result<Self, &'static str> {
        let value: Value = serde_json::from_str(payload).map_err(|_| "not JSON")?;
        if value.get("aud").is_some() {
            return Err("carries aud: an access token, not a webhook");
        }
        if !value.get("data").is_some_and(Value::is_object) {
            return Err("data is not an object");
        }
        let event: Self = serde_json::from_value(value).map_err(|_| "not a Kinde event")?;
        match event.event_id.as_deref() {
            Some(id) if !id.is_empty() && id.len() <= MAX_EVENT_ID_BYTES => {}
            _ => return Err("event_id missing or over 128 bytes"),
        }
        if event.sent_at().is_none() {
            return Err("timestamp missing or not RFC 3339");
        }
        Ok(event)
    }
}

/// Longest `event_id` accepted (Kinde's are `event_` and 32 hex digits).
const MAX_EVENT_ID_BYTES: usize = 128;

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let nanos = at.unix_timestamp_nanos();
    let magnitude = Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).ok()?);
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> WebhookEvent {
        serde_json::from_value(json!({
            "type": kind,
            "event_id": "event_018f331a3178f7fef284b95fe6770384",
            "source": "admin",
            "timestamp": "2024-05-01T17:41:45.592145+10:00",
            "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn every_documented_event_type_maps_to_an_effect() {
        let user = json!({"user": {"id": "kp_1"}});
        let org = json!({"organization": {"code": "org_1"}});
        let cases = [
            ("user.updated", user.clone(), Effect::User("kp_1".into())),
            ("user.deleted", user.clone(), Effect::LockOut("kp_1".into())),
            (
                "user.updated",
                json!({"user": {"id": "kp_1", "is_suspended": true}}),
                Effect::LockOut("kp_1".into()),
            ),
            (
                "user.updated",
                json!({"user": {"id": "kp_1", "is_suspended": false}}),
                Effect::User("kp_1".into()),
            ),
            (
                "user.updated",
                json!({"user": {"id": "kp_1", "is_suspended": "yes"}}),
                Effect::User("kp_1".into()),
            ),
            (
                "organization.updated",
                org.clone(),
                Effect::Org("org_1".into()),
            ),
            (
                "organization.deleted",
                org.clone(),
                Effect::Org("org_1".into()),
            ),
            (
                "role.created",
                json!({"role": {"id": "r"}}),
                Effect::Everyone,
            ),
            (
                "role.updated",
                json!({"role": {"id": "r"}}),
                Effect::Everyone,
            ),
            (
                "role.deleted",
                json!({"role": {"id": "r"}}),
                Effect::Everyone,
            ),
            ("permission.created", json!({}), Effect::Everyone),
            ("permission.updated", json!({}), Effect::Everyone),
            ("permission.deleted", json!({}), Effect::Everyone),
            ("user.updated", json!({"user": {}}), Effect::Everyone),
            ("user.created", user.clone(), Effect::None),
            ("user.authenticated", user.clone(), Effect::None),
            ("user.authentication_failed", user, Effect::None),
            ("organization.created", org, Effect::None),
            ("subscriber.created", json!({}), Effect::None),
            ("access_request.created", json!({}), Effect::None),
            ("passkey.added", json!({}), Effect::None),
            ("customer.plan_changed", json!({}), Effect::None),
            ("something.new", json!(null), Effect::None),
        ];
        for (kind, data, effect) in cases {
            assert_eq!(event(kind, data).effect(), effect, "{kind}");
        }
    }

    #[test]
    fn only_the_shape_of_a_kinde_event_is_accepted() {
        let good = json!({
            "type": "user.updated",
            "event_id": "event_018f331a3178f7fef284b95fe6770384",
            "source": "admin",
            "timestamp": "2024-05-01T17:41:45.592145+10:00",
            "data": {"user": {"id": "kp_1"}},
        });
        assert!(WebhookEvent::from_payload(&good.to_string()).is_ok());
        let without = |field: &str| {
            let mut event = good.clone();
            event.as_object_mut().unwrap().remove(field);
            event.to_string()
        };
        let with = |field: &str, value: Value| {
            let mut event = good.clone();
            event[field] = value;
            event.to_string()
        };
        for (what, payload) in [
            ("no type", without("type")),
            ("no event_id", without("event_id")),
            ("no timestamp", without("timestamp")),
            ("no data", without("data")),
            ("empty event_id", with("event_id", json!(""))),
            ("long event_id", with("event_id", json!("e".repeat(129)))),
            ("numeric event_id", with("event_id", json!(5))),
            (
                "timestamp not RFC 3339",
                with("timestamp", json!("yesterday")),
            ),
            ("data not an object", with("data", json!([1]))),
            ("an access token's aud", with("aud", json!(["api"]))),
            ("aud null", with("aud", Value::Null)),
            ("not an object", "[1,2]".into()),
        ] {
            assert!(WebhookEvent::from_payload(&payload).is_err(), "{what}");
        }
        // Kinde may add members: they are not a reason to refuse.
        assert!(WebhookEvent::from_payload(&with("new_member", json!(1))).is_ok());
    }

    #[test]
    fn occurrence_time_comes_from_the_payload_and_never_from_the_future() {
        let received = SystemTime::now();
        let e = event("user.updated", json!({}));
        let at = e.occurred_at(received);
        let expected = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_714_549_305_592_145_000);
        assert_eq!(at, expected);

        let mut newer = e.clone();
        newer.event_timestamp = Some("2024-05-01T07:41:46Z".into());
        assert_eq!(
            newer.occurred_at(received),
            expected + Duration::from_nanos(407_855_000)
        );

        let mut future = e.clone();
        future.timestamp = Some("2999-01-01T00:00:00Z".into());
        assert_eq!(future.occurred_at(received), received);
        let mut garbage = e;
        garbage.timestamp = Some("yesterday".into());
        assert_eq!(garbage.occurred_at(received), received);
    }
}
