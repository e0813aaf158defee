//! Webhooks and sessions of the fake Kinde: signed event deliveries like Kinde's, and user
//! sessions whose refresh hands back the same access token until `refresh_claims` is called.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::keys::random_bytes;
use super::server::State;
use super::token::TokenBuilder;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 with microseconds, as Kinde writes `timestamp`.
fn rfc3339(at: SystemTime) -> String {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let micros = i128::try_from(nanos / 1_000 * 1_000).unwrap_or(0);
    OffsetDateTime::from_unix_timestamp_nanos(micros)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// One webhook event, ready to be signed and delivered. Its `webhook-id` stays the same for
/// every delivery of this value, as Kinde keeps it across retries.
#[derive(Clone)]
pub struct Webhook {
    state: Arc<State>,
    payload: Map<String, Value>,
    webhook_id: String,
}

impl Webhook {
    pub(crate) fn new(state: Arc<State>, kind: &str, data: Value) -> Self {
        let payload = json!({
            "data": data,
            "event_id": format!("event_{}", hex(&random_bytes::<16>())),
            "source": "admin",
            "timestamp": rfc3339(SystemTime::now()),
            "type": kind,
        });
        Self {
            state,
            payload: payload.as_object().cloned().unwrap_or_default(),
            webhook_id: format!("msg_{}", hex(&random_bytes::<12>())),
        }
    }

    /// Sets `timestamp` (when the change happened).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.payload.insert("timestamp".into(), rfc3339(at).into());
        self
    }

    /// The same event under another `webhook-id` header (a replay by someone who captured it).
    pub fn with_webhook_id(mut self, webhook_id: impl Into<String>) -> Self {
        self.webhook_id = webhook_id.into();
        self
    }

    /// The signed `event_id`.
    pub fn event_id(&self) -> &str {
        self.payload
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `webhook-id` header of every delivery of this event.
    pub fn webhook_id(&self) -> &str {
        &self.webhook_id
    }

    /// The payload (`{type, event_id, source, timestamp, data}`).
    pub fn payload(&self) -> Value {
        Value::Object(self.payload.clone())
    }

    /// The JWT to deliver, as a [`TokenBuilder`] to sign normally or tamper with (`forged()`,
    /// `unsigned("none")`, …). No `iss`, `aud`, `exp` or `iat`: Kinde's webhook JWTs have none.
    pub fn token(&self) -> TokenBuilder {
        let payload = Value::Object(self.payload.clone()).to_string();
        TokenBuilder::new(self.state.clone(), json!({})).raw_payload(payload)
    }

    /// POSTs the signed event to `url` as Kinde does (`Content-Type: application/jwt`,
    /// `webhook-id`); returns the status, or 0 when the request failed.
    pub async fn deliver(&self, url: &str) -> u16 {
        self.deliver_body(url, &self.token().sign()).await
    }

    /// POSTs `body` with this event's headers (to deliver a tampered JWT).
    pub async fn deliver_body(&self, url: &str, body: &str) -> u16 {
        let sent = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/jwt")
            .header("webhook-id", &self.webhook_id)
            .body(body.to_owned())
            .send()
            .await;
        sent.map_or(0, |r| r.status().as_u16())
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("payload", &self.payload)
            .field("webhook_id", &self.webhook_id)
            .finish_non_exhaustive()
    }
}

/// A signed-in user of the fake: an access token and the refresh token that renews it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token (permissions, roles and feature flags: the user's when it was minted).
    pub access_token: String,
    /// For `grant_type=refresh_token` at `/oauth2/token`.
    pub refresh_token: String,
}

/// What the fake remembers of a session: whose it is, its current access token and the user's
/// claims version when that token was minted.
pub(crate) struct SessionRecord {
    pub(crate) user: String,
    pub(crate) org: String,
    pub(crate) access_token: String,
    pub(crate) version: u64,
}

/// A user access token for `user` in `org` whose `permissions`, `roles` and `feature_flags`
/// are the current grants, roles and flags.
pub(crate) fn mint_for(state: &Arc<State>, user: &str, org: &str) -> String {
    TokenBuilder::new(
        state.clone(),
        json!({
            "sub": user,
            "aud": [state.audience],
            "azp": "dee7f3c57b3c47e8b96edde2c7ecab7d",
            "org_code": org,
            "permissions": state.directory.held(org, user),
            "roles": super::roles::roles_claim(state, org, user),
            "feature_flags": super::roles::flags_claim(state, org, user),
            "scp": ["openid", "profile", "email", "offline"],
        }),
    )
    .sign()
}

/// Signs `user` in: a session whose access token reflects the current grants.
pub(crate) fn login(state: &Arc<State>, user: &str, org: &str) -> Session {
    let access_token = mint_for(state, user, org);
    let refresh_token = hex(&random_bytes::<24>());
    let record = SessionRecord {
        user: user.to_owned(),
        org: org.to_owned(),
        access_token: access_token.clone(),
        version: state.directory.refreshes(user),
    };
    state.directory.start_session(&refresh_token, record);
    Session {
        access_token,
        refresh_token,
    }
}

/// The access token a refresh hands out: the same one, unless `refresh_claims` was called for
/// the user since it was minted (Kinde caches claims).
pub(crate) fn refresh(state: &Arc<State>, refresh_token: &str) -> Option<String> {
    state.directory.renew_session(refresh_token, |record| {
        let version = state.directory.refreshes(&record.user);
        if version != record.version {
            record.access_token = mint_for(state, &record.user, &record.org);
            record.version = version;
        }
        record.access_token.clone()
    })
}
