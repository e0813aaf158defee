//! [`MachineTokens`]: the Management API's machine-to-machine token, fetched by client
//! credentials, held until shortly before it expires and fetched single-flight.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::SourceError;
use crate::single_flight::{Ended, Missed, SingleFlight};
use crate::upstream::{self, Endpoint};

/// A machine token is replaced this long before it expires (or at half its life if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// After a failed token request, how long a held token past its refresh point (but unexpired)
/// serves without asking Kinde again.
const TOKEN_RETRY: Duration = Duration::from_secs(5);

/// The longest a token request may take (its HTTP timeout is 2 s).
const TOKEN_DEADLINE: Duration = Duration::from_secs(3);

/// The longest lifetime a token answer is believed: beyond any real machine token, and it
/// keeps the `Instant` arithmetic in range whatever `expires_in` says (a huge one panicked).
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// The one machine-token request under way, if any.
type TokenFetches = SingleFlight<(), (), Result<String, SourceError>>;

/// The machine token of one M2M application: requested from `{issuer}/oauth2/token` for the
/// audience `{issuer}/api`, reused until a minute before it expires (Kinde bills every
/// request), one request at a time in its own task.
pub(super) struct MachineTokens {
    client: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: String,
    audience: String,
    token: Mutex<Option<MachineToken>>,
    fetches: TokenFetches,
    /// When the last token request failed, if the one after it has not succeeded.
    failed_at: Mutex<Option<Instant>>,
}

/// A machine token to send, and whether it was just issued for this call (a fresh token Kinde
/// refuses is not worth replacing at once: the next one would be refused too).
pub(super) struct Bearer {
    pub(super) value: String,
    pub(super) fresh: bool,
}

impl Bearer {
    fn held(value: String) -> Self {
        Self {
            value,
            fresh: false,
        }
    }
}

struct MachineToken {
    value: String,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl MachineTokens {
    /// Tokens for `client_id` from the business at `base` (issuer `issuer`).
    pub(super) fn new(
        client: reqwest::Client,
        base: &Url,
        issuer: &str,
        client_id: String,
        client_secret: String,
    ) -> Self {
        Self {
            client,
            token_url: upstream::join(base, &["oauth2", "token"]),
            client_id,
            client_secret,
            audience: format!("{}/api", upstream::issuer_base(issuer)),
            token: Mutex::new(None),
            fetches: TokenFetches::new(),
            failed_at: Mutex::new(None),
        }
    }

    pub(super) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A machine token: the held one while it is fresh, or a new one from the one request
    /// under way (started now if none is). Past its refresh point but unexpired, the held
    /// token serves at once while the new one is requested in the background (not again for
    /// [`TOKEN_RETRY`] after a failed request): only a caller with no usable token waits, so a
    /// slow or hanging token endpoint never delays lookups while a token is still good.
    pub(super) async fn bearer(self: &Arc<Self>) -> Result<Bearer, SourceError> {
        if let Some(value) = self.held(|t| Instant::now() < t.refresh_at) {
            return Ok(Bearer::held(value));
        }
        let usable = self.held(|t| Instant::now() < t.expires_at);
        // Kinde failed a moment ago: the unexpired token serves without asking again.
        if let Some(value) = usable.as_ref().filter(|_| self.retry_paused()) {
            return Ok(Bearer::held(value.clone()));
        }
        let waiter = {
            let flights = self.fetches.lock();
            // Looked at again under the lock: a request may have just landed.
            if let Some(value) = self.held(|t| Instant::now() < t.refresh_at) {
                return Ok(Bearer::held(value));
            }
            match flights.join(&()) {
                Some(waiter) => waiter,
                None => {
                    let (call, settle) = (self.clone(), self.clone());
                    let call = async move { call.request().await };
                    let settle = move |result: Result<_, Ended>| settle.settle(result);
                    flights.start((), (), Instant::now() + TOKEN_DEADLINE, call, settle)
                }
            }
        };
        // The request runs in its own task whether anyone waits for it or not.
        if let Some(value) = usable {
            return Ok(Bearer::held(value));
        }
        match waiter.wait(Instant::now() + TOKEN_DEADLINE).await {
            Ok(landed) => landed.value.map(|value| Bearer { value, fresh: true }),
            Err(Missed::Deadline | Missed::Lost) => {
                Err(SourceError::unavailable("machine token request timed out"))
            }
        }
    }

    /// One token request; the token is held before the request's flight lands, so no caller
    /// misses both.
    async fn request(&self) -> Result<String, SourceError> {
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *self.slot() = Some(token);
        Ok(value)
    }

    /// How a token request ended, for everyone: a failure (an error answer, a timeout, a
    /// panic) pauses further requests for [`TOKEN_RETRY`] while an unexpired token is held.
    fn settle(
        &self,
        result: Result<Result<String, SourceError>, Ended>,
    ) -> Result<String, SourceError> {
        let outcome = result.unwrap_or_else(|ended| {
            let reason = match ended {
                Ended::TimedOut => "machine token request timed out",
                Ended::Aborted => "machine token request aborted",
            };
            Err(SourceError::unavailable(reason))
        });
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
            outcome.is_err().then(Instant::now);
        outcome
    }

    /// Whether a token request failed less than [`TOKEN_RETRY`] ago.
    fn retry_paused(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < TOKEN_RETRY)
    }

    /// The held token's value, if `usable` says it may serve.
    fn held(&self, usable: impl Fn(&MachineToken) -> bool) -> Option<String> {
        self.slot()
            .as_ref()
            .filter(|t| usable(t))
            .map(|t| t.value.clone())
    }

    /// Forgets the held token if it is still `value` (Kinde rejected it).
    pub(super) fn drop_token(&self, value: &str) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|t| t.value == value) {
            *slot = None;
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MachineToken>> {
        self.token.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn fetch_token(&self) -> Result<MachineToken, SourceError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("audience", &self.audience)
            .finish();
        let request = self
            .client
            .post(self.token_url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        let response: TokenResponse =
            upstream::json(Endpoint::Token, request, upstream::API_MAX_BODY_BYTES)
                .await
                .map_err(|failure| {
                    if matches!(failure.status, Some(400 | 401 | 403)) {
                        tracing::error!(
                            target: "claimcheck::live",
                            client_id = %self.client_id,
                            reason = %failure.reason,
                            "Kinde refused the management client credentials"
                        );
                    }
                    SourceError::from(failure)
                })?;
        if response.access_token.is_empty() {
            return Err(SourceError::unavailable("empty machine token"));
        }
        let lifetime = Duration::from_secs(response.expires_in).min(MAX_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let now = Instant::now();
        tracing::debug!(target: "claimcheck::live", expires_in = response.expires_in, "machine token fetched");
        Ok(MachineToken {
            value: response.access_token,
            refresh_at: now + (lifetime - margin),
            expires_at: now + lifetime,
        })
    }
}

impl fmt::Debug for MachineTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineTokens")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}
