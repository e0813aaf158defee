//! Kinde webhooks: [`WebhookReceiver`] verifies each delivery and turns it into cache
//! invalidations and freshness watermarks.
//!
//! Kinde POSTs a JWT (`Content-Type: application/jwt`) signed with the same keys as its access
//! tokens, with a `webhook-id` header that stays the same across retries. The receiver:
//!
//! 1. accepts `application/jwt` or `text/plain` bodies of at most 64 KiB (else 415 / 400);
//! 2. verifies the JWT with the issuer's keys through the verifier's key store: the same header
//!    rules as access tokens (RS256, `kid` required, no `alg: none`, no `crit`), but no
//!    `iss`/`aud`/`exp`, which Kinde's webhook JWTs do not carry (bad → 400, keys unavailable →
//!    503 so Kinde retries);
//! 3. checks the payload has the shape of a Kinde event (`type`, `event_id`, an RFC 3339
//!    `timestamp`, an object `data`) and no `aud` (access tokens always carry one, webhooks never:
//!    a signed access token is not a webhook), else 400;
//! 4. refuses (400) an event whose signed `timestamp` is more than 48 h old (Kinde retries for up
//!    to 36 h; [`WebhookReceiver::max_age`]) or more than 5 min in the future, so a captured
//!    delivery cannot be replayed later;
//! 5. publishes its change to the [change log](crate::changes) once per signed `event_id` (a
//!    bounded memory of ids, kept longer than the age window, so a replay under a new or no
//!    `webhook-id` header is a duplicate; the header, at most 256 bytes, is only logged; with a
//!    shared log, the dedupe spans every replica) and answers exactly `200` once the change is
//!    in the log. When a shared log is unreachable, the change is applied on this replica, kept
//!    in an outbox appended as soon as the log answers, and the answer is `503` +
//!    `Retry-After` (Kinde redelivers). The effects:
//!
//! | event | effect |
//! | --- | --- |
//! | `user.updated` | that user's live entries dropped; their tokens issued before the event stop being trusted ([`Auth::mark_changed`](crate::Auth::mark_changed)) |
//! | `user.deleted`, `user.updated` with `is_suspended: true` | as above, and their tokens issued before the event are refused outright, 401 ([`Auth::lock_out_user`](crate::Auth::lock_out_user)) |
//! | `organization.updated`, `organization.deleted` | that organization's live entries dropped |
//! | `role.*`, `permission.*` | every live entry dropped; with [`WebhookReceiver::distrust_all_on_role_changes`], every older token distrusted too |
//! | anything else | acknowledged, ignored |
//!
//! Events may arrive out of order: watermarks only move forward, so a late, older event cannot
//! undo a newer one.
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use claimcheck::{Auth, kinde::KindeConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::kinde(&KindeConfig::from_env()?).await?;
//! // Outside `auth.layer()`: Kinde does not send a bearer token.
//! let app: Router = Router::new().route("/webhooks/kinde", post(auth.webhook_handler()));
//! # Ok(()) }
//! ```

mod event;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};

pub use event::{Effect, WebhookEvent};

use crate::changes::{Action, Change, ChangeLog, Published, Target};
use crate::error::{AuthErrorKind, DEFAULT_RETRY_AFTER};
use crate::jwt::Verifier;
use crate::recent::Recent;

const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `webhook-id` header accepted.
const MAX_WEBHOOK_ID_BYTES: usize = 256;
/// Event ids remembered (each at most 128 bytes).
const SEEN_IDS: u64 = 50_000;
/// Default age window: Kinde retries for up to 36 h.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(48 * 3600);
/// Longest age window.
const LONGEST_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far ahead of ours Kinde's clock may be.
const FUTURE_TOLERANCE: Duration = Duration::from_secs(300);

/// What a delivery did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The event was verified and its effect applied ([`Effect::None`] for ignored types).
    Applied(Effect),
    /// This event (its signed `event_id`) was applied before: nothing done again.
    Duplicate,
}

/// Why a delivery was refused. Nothing was applied.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// The content type is neither `application/jwt` nor `text/plain` (415).
    UnsupportedMediaType,
    /// Not a valid Kinde webhook: oversized, not a JWT, bad signature, unknown key, not an
    /// event, outside the age window, or a `webhook-id` header over 256 bytes (400).
    Invalid(&'static str),
    /// The issuer's keys cannot be fetched now (503: Kinde will retry).
    Unavailable,
    /// The shared change log did not take the change (503: Kinde will retry). The change was
    /// applied on this replica and waits in the outbox.
    LogUnavailable,
}

/// Receives Kinde webhooks: verifies them with a [`Verifier`] and publishes their changes to a
/// [`ChangeLog`]. Cheap to clone; clones share the memory of ids.
#[derive(Clone)]
pub struct WebhookReceiver {
    verifier: Verifier,
    log: ChangeLog,
    seen: Arc<Recent<Box<str>, ()>>,
    max_age: Duration,
    distrust_all: bool,
}

/// The future of the handler [`WebhookReceiver::into_handler`] returns.
pub type WebhookFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

impl WebhookReceiver {
    /// A receiver verifying deliveries with `verifier` (the issuer's keys) and publishing
    /// their changes to `log`. [`Auth::webhook_receiver`](crate::Auth::webhook_receiver) builds
    /// one from an `Auth`'s parts.
    pub fn new(verifier: Verifier, log: ChangeLog) -> Self {
        Self {
            verifier,
            log,
            seen: remembered_for(DEFAULT_MAX_AGE),
            max_age: DEFAULT_MAX_AGE,
            distrust_all: false,
        }
    }

    /// Refuses (400) events whose signed `timestamp` is older than `max_age` (default 48 h;
    /// Kinde retries a delivery for up to 36 h; at most 30 days). Event ids are remembered for longer than this,
    /// so no event can be applied twice.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age.min(LONGEST_MAX_AGE);
        self.seen = remembered_for(self.max_age);
        self
    }

    /// On `role.*` and `permission.*` events, also distrust every token issued before the
    /// event (a global watermark), not only the live cache. Closes the window on token-trusted
    /// routes too, at the price of live calls for every user until their older tokens expire.
    pub fn distrust_all_on_role_changes(mut self, yes: bool) -> Self {
        self.distrust_all = yes;
        self
    }

    /// Verifies one delivery and applies it. Counted in `claimcheck_webhooks_total`.
    pub async fn receive(&self, headers: &HeaderMap, body: &[u8]) -> Result<Receipt, WebhookError> {
        let mut event = "unknown";
        let receipt = self.receive_event(headers, body, &mut event).await;
        let result = match &receipt {
            Ok(Receipt::Applied(Effect::None)) => "ignored",
            Ok(Receipt::Applied(_)) => "applied",
            Ok(Receipt::Duplicate) => "duplicate",
            Err(error) => error.metric_label(),
        };
        crate::metrics::webhook(event, result);
        receipt
    }

    /// [`receive`](Self::receive), naming the event's type in `event` once it is read.
    async fn receive_event(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        event_type: &mut &'static str,
    ) -> Result<Receipt, WebhookError> {
        if !acceptable_type(headers) {
            return Err(WebhookError::UnsupportedMediaType);
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::Invalid("body too large"));
        }
        let hint = webhook_id(headers)?;
        let token = std::str::from_utf8(body)
            .map_err(|_| WebhookError::Invalid("body is not text"))?
            .trim();
        let payload = self
            .verifier
            .verify_signature(token, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e.kind() {
                AuthErrorKind::Unavailable => WebhookError::Unavailable,
                _ => WebhookError::Invalid("not a JWT signed by the issuer"),
            })?;
        let event = WebhookEvent::from_payload(&payload).map_err(WebhookError::Invalid)?;
        *event_type = event.metric_label();
        let received = SystemTime::now();
        self.check_age(&event, received)?;
        let event_id = event.event_id.as_deref().unwrap_or_default();
        if self.seen.contains(event_id) {
            tracing::debug!(target: "claimcheck::webhook", kind = %event.kind, event_id, hint, "duplicate event");
            return Ok(Receipt::Duplicate);
        }
        let effect = event.effect();
        // Kinde's clock may be ahead of ours by as much as we tolerate on tokens.
        let latest = received.checked_add(self.verifier.leeway());
        let at = event.occurred_at(latest.unwrap_or(received));
        let (target, action) = match &effect {
            Effect::User(user) => (Target::User(user.clone()), Action::Distrust),
            Effect::LockOut(user) => (Target::User(user.clone()), Action::LockOut),
            Effect::Org(org) => (Target::Org(org.clone()), Action::Invalidate),
            Effect::Everyone if self.distrust_all => (Target::Everyone, Action::Distrust),
            Effect::Everyone => (Target::Everyone, Action::Invalidate),
            Effect::None => {
                self.seen.insert_new(event_id.into(), ());
                return Ok(Receipt::Applied(effect));
            }
        };
        let change = Change::new(target, action, at).for_webhook(event_id);
        // An id is remembered only once its change is in the log: a delivery answered 503 is
        // applied again when redelivered (harmless), never lost.
        let published = self
            .log
            .publish(change)
            .await
            .map_err(|_| WebhookError::LogUnavailable)?;
        self.seen.insert_new(event_id.into(), ());
        if published == Published::Duplicate {
            tracing::debug!(target: "claimcheck::webhook", kind = %event.kind, event_id, hint, "duplicate event");
            return Ok(Receipt::Duplicate);
        }
        tracing::info!(
            target: "claimcheck::webhook",
            kind = %event.kind,
            event_id,
            hint,
            effect = ?effect,
            "webhook applied"
        );
        Ok(Receipt::Applied(effect))
    }

    /// Refuses events sent longer ago than the window, or too far in the future.
    fn check_age(&self, event: &WebhookEvent, received: SystemTime) -> Result<(), WebhookError> {
        let sent = event
            .sent_at()
            .ok_or(WebhookError::Invalid("timestamp missing"))?;
        if received
            .duration_since(sent)
            .is_ok_and(|age| age > self.max_age)
        {
            return Err(WebhookError::Invalid("event older than the age window"));
        }
        if sent
            .duration_since(received)
            .is_ok_and(|ahead| ahead > FUTURE_TOLERANCE)
        {
            return Err(WebhookError::Invalid("event timestamp in the future"));
        }
        Ok(())
    }

    /// Answers one delivery: exactly `200` once applied (or a duplicate), `400`/`415` with a
    /// problem body when refused, `503` + `Retry-After` when the keys are unavailable.
    pub async fn respond(&self, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
        match self.receive(headers, body).await {
            Ok(_) => Response::new(Body::empty()),
            Err(error) => {
                tracing::warn!(target: "claimcheck::webhook", ?error, "webhook refused");
                error.into_response()
            }
        }
    }

    /// An axum handler: `post(receiver.into_handler())`. It checks the content type and the
    /// declared length before reading the body, and reads at most 64 KiB of it: an oversized
    /// or mislabelled delivery is refused without being buffered.
    pub fn into_handler(
        self,
    ) -> impl Fn(Request<Body>) -> WebhookFuture + Clone + Send + Sync + 'static {
        move |request: Request<Body>| {
            let receiver = self.clone();
            Box::pin(async move {
                let (parts, body) = request.into_parts();
                match read_body(&parts.headers, body).await {
                    Ok(body) => receiver.respond(&parts.headers, &body).await,
                    Err(error) => {
                        tracing::warn!(target: "claimcheck::webhook", ?error, "webhook refused");
                        crate::metrics::webhook("unknown", error.metric_label());
                        error.into_response()
                    }
                }
            })
        }
    }
}

impl WebhookError {
    /// The `result` label of the webhook metric.
    fn metric_label(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Invalid(_) => "invalid",
            Self::Unavailable => "unavailable",
            Self::LogUnavailable => "log_unavailable",
        }
    }

    fn into_response(self) -> Response<Body> {
        let (status, detail, retry) = match self {
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected an application/jwt body",
                None,
            ),
            Self::Invalid(reason) => (StatusCode::BAD_REQUEST, reason, None),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the issuer's keys are unavailable",
                Some(DEFAULT_RETRY_AFTER),
            ),
            Self::LogUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the change log is unavailable",
                Some(DEFAULT_RETRY_AFTER),
            ),
        };
        crate::error::problem(status, detail, serde_json::Map::new(), retry)
    }
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedMediaType => f.write_str("webhook body is not application/jwt"),
            Self::Invalid(reason) => write!(f, "invalid webhook: {reason}"),
            Self::Unavailable => f.write_str("issuer keys unavailable"),
            Self::LogUnavailable => f.write_str("change log unavailable"),
        }
    }
}

impl std::error::Error for WebhookError {}

/// The body of a delivery, refused before reading when its type or declared length is wrong,
/// and while reading as soon as it passes 64 KiB.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, WebhookError> {
    if !acceptable_type(headers) {
        return Err(WebhookError::UnsupportedMediaType);
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(WebhookError::Invalid("body too large"));
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| WebhookError::Invalid("body too large or cut short"))
}

/// A memory of event ids that outlives the age window (and the clock skew at its far end); when
/// full, the least recently seen id goes first, so every new event is remembered.
fn remembered_for(max_age: Duration) -> Arc<Recent<Box<str>, ()>> {
    Arc::new(Recent::new(SEEN_IDS, max_age + 2 * FUTURE_TOLERANCE))
}

/// The `webhook-id` header, for logs only (it is not signed): `""` when absent or not text,
/// refused when longer than 256 bytes.
fn webhook_id(headers: &HeaderMap) -> Result<&str, WebhookError> {
    let Some(value) = headers.get("webhook-id") else {
        return Ok("");
    };
    if value.len() > MAX_WEBHOOK_ID_BYTES {
        return Err(WebhookError::Invalid("webhook-id header too long"));
    }
    Ok(value.to_str().unwrap_or(""))
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("max_age", &self.max_age)
            .field("distrust_all_on_role_changes", &self.distrust_all)
            .finish_non_exhaustive()
    }
}

/// `application/jwt` (Kinde today) or `text/plain` (some proxies), with any parameters.
fn acceptable_type(headers: &HeaderMap) -> bool {
    crate::upstream::media_type(headers).is_some_and(|essence| {
        essence.eq_ignore_ascii_case("application/jwt")
            || essence.eq_ignore_ascii_case("text/plain")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{KindeAccountApi, LiveCheck};

    fn receiver() -> WebhookReceiver {
        let verifier = crate::Verifier::builder("https://a.kinde.com")
            .audience("api")
            .build()
            .unwrap();
        let live = LiveCheck::builder(KindeAccountApi::new("https://a.kinde.com").unwrap()).build();
        crate::Auth::new(verifier, live).webhook_receiver()
    }

    #[test]
    fn event_ids_outlive_the_age_window() {
        for max_age in [DEFAULT_MAX_AGE, Duration::from_secs(3600), Duration::MAX] {
            let receiver = receiver().max_age(max_age);
            let remembered = receiver.seen.time_to_live().unwrap();
            assert!(
                remembered > receiver.max_age + FUTURE_TOLERANCE,
                "{max_age:?}"
            );
        }
    }

    #[test]
    fn concurrent_deliveries_of_one_event_apply_once() {
        let seen = remembered_for(DEFAULT_MAX_AGE);
        let applied = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..500 {
                        if seen.insert_new(format!("event_{i}").into(), ()) {
                            applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(applied.into_inner(), 500);
    }
}
