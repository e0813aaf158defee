//! [`Discovery`]: the JWKS location read from the issuer's discovery document.
//!
//! The [`Locator`] answers "where is the JWKS now?" right before each fetch, inside the key
//! store's single flight, so the document is read again with every refresh of the key set (one
//! document request, then one JWKS request). The document is the issuer's OpenID Connect
//! discovery document (`/.well-known/openid-configuration` after the issuer), or, when that
//! answers 404, its RFC 8414 authorization server metadata. It is used only when its `issuer`
//! is byte for byte the configured issuer (OpenID Connect Discovery §4.3, RFC 8414 §3.3) and its
//! `jwks_uri` passes the URL rules of every upstream (https, or http to loopback). Requests go
//! through the JWKS client (its timeouts, no redirects) and a 64 KiB cap.

use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::upstream::{self, Endpoint};

/// Largest discovery document accepted (real ones weigh a few KiB).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Whether the JWKS location comes from the issuer's discovery document, set with
/// [`VerifierBuilder::discovery`](super::VerifierBuilder::discovery).
///
/// The document is read at `{issuer}/.well-known/openid-configuration` (any trailing `/` of the
/// issuer removed first), or, when that answers 404, at the RFC 8414 location
/// (`https://host/.well-known/oauth-authorization-server/path` for the issuer
/// `https://host/path`). It is used only when its `issuer` is byte for byte the configured
/// issuer (a trailing `/` counts) and its `jwks_uri` is `https://` (or `http://` to a loopback
/// host). It is read again before every fetch of the key set, so a new `jwks_uri` is followed
/// at the next refresh. A document that cannot be read while a `jwks_uri` read earlier is known
/// leaves that URL in use.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// No document is read: the keys come from the fixed JWKS URL
    /// ([`jwks_url`](super::VerifierBuilder::jwks_url), default
    /// `{issuer}/.well-known/jwks.json`).
    Off,
    /// The document's `jwks_uri` when the document is usable; the fixed JWKS URL when it cannot
    /// be read (and no `jwks_uri` is known yet) or is refused (another `issuer`, a bad
    /// `jwks_uri`: logged at `warn`, naming both issuers). What Kinde gets: its documented
    /// JWKS path unless its document names exactly the configured issuer.
    Preferred,
    /// Only the document's `jwks_uri`: while no usable document was ever read, there are no
    /// keys (requests answer 503); once keys are in, a document that fails or is refused leaves
    /// the last good keys (and their URL) in service.
    Required,
}

/// What reading the discovery document found.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// The document names the configured issuer and an acceptable `jwks_uri`.
    Usable { document: Url, jwks_uri: Url },
    /// No document could be read (connection, status, size, content type, JSON).
    Unreadable { document: Url, reason: String },
    /// The document names another issuer (at most 200 characters of it).
    OtherIssuer { document: Url, issuer: String },
    /// The document was read and is not usable: no `issuer`, no or a bad `jwks_uri`.
    Refused { document: Url, reason: String },
}

impl Found {
    /// The URL of the document this is about.
    pub(crate) fn document(&self) -> &Url {
        match self {
            Self::Usable { document, .. }
            | Self::Unreadable { document, .. }
            | Self::OtherIssuer { document, .. }
            | Self::Refused { document, .. } => document,
        }
    }
}

/// The members of a discovery document we read; any type, so a wrong one is named.
#[derive(Deserialize)]
struct Document {
    issuer: Option<Value>,
    jwks_uri: Option<Value>,
}

/// Where the JWKS is, for one key store.
pub(crate) struct Locator {
    mode: Discovery,
    issuer: String,
    issuer_url: Url,
    /// The fixed JWKS URL: used when discovery is off, and by `Preferred` as its fallback.
    fixed: Url,
    state: Mutex<Located>,
}

#[derive(Default)]
struct Located {
    /// The `jwks_uri` of the last usable document.
    discovered: Option<Url>,
    /// Where the last JWKS fetch went (before any: the fixed URL, unless discovery is required).
    in_use: Option<Url>,
    /// What the last read of the document found.
    last: Option<Found>,
}

impl Locator {
    pub(crate) fn new(mode: Discovery, issuer: String, issuer_url: Url, fixed: Url) -> Self {
        let in_use = (mode != Discovery::Required).then(|| fixed.clone());
        Self {
            mode,
            issuer,
            issuer_url,
            fixed,
            state: Mutex::new(Located {
                in_use,
                ..Located::default()
            }),
        }
    }

    /// The configured issuer the keys are for.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn mode(&self) -> Discovery {
        self.mode
    }

    /// The JWKS URL in use: that of the last fetch (or the one the next fetch will use).
    pub(crate) fn jwks_url(&self) -> Option<Url> {
        self.lock().in_use.clone()
    }

    /// Where the keys come from, for messages: the JWKS URL, or while none is known, the
    /// document that should name it.
    pub(crate) fn describe(&self) -> String {
        let state = self.lock();
        if let Some(url) = &state.in_use {
            return url.to_string();
        }
        let document = match &state.last {
            Some(found) => found.document().clone(),
            None => upstream::openid_configuration_url(&self.issuer_url),
        };
        format!("the jwks_uri of {document}")
    }

    /// What the discovery document says: the last read of a fetch when discovery is on,
    /// otherwise (or before any fetch) read now.
    pub(crate) async fn document(&self, client: &reqwest::Client) -> Found {
        if self.mode != Discovery::Off
            && let Some(found) = self.lock().last.clone()
        {
            return found;
        }
        read(client, &self.issuer, &self.issuer_url).await
    }

    /// The URL to fetch the JWKS from now, reading the discovery document first unless
    /// discovery is off; `None` when none may be fetched. Every failure is logged here, once.
    pub(crate) async fn locate(&self, client: &reqwest::Client) -> Option<Url> {
        if self.mode == Discovery::Off {
            return Some(self.fixed.clone());
        }
        let found = read(client, &self.issuer, &self.issuer_url).await;
        let fallback = (self.mode == Discovery::Preferred).then(|| self.fixed.clone());
        let mut state = self.lock();
        let url = match &found {
            Found::Usable { jwks_uri, .. } => {
                state.discovered = Some(jwks_uri.clone());
                Some(jwks_uri.clone())
            }
            Found::Unreadable { document, reason } => {
                // Perhaps passing: the URL the issuer named last stays in use.
                let url = state.discovered.clone().or(fallback);
                let action = action(url.as_ref());
                tracing::warn!(%document, ?reason, "discovery document unreadable: {action}");
                url
            }
            Found::OtherIssuer { document, issuer } => {
                state.discovered = None;
                let action = action(fallback.as_ref());
                tracing::warn!(
                    %document,
                    configured = ?self.issuer,
                    named = ?issuer,
                    "the discovery document names another issuer than the configured one, so it \
                     is not used (OpenID Connect Discovery 4.3): {action}"
                );
                fallback
            }
            Found::Refused { document, reason } => {
                state.discovered = None;
                let action = action(fallback.as_ref());
                tracing::warn!(%document, ?reason, "discovery document refused: {action}");
                fallback
            }
        };
        if let Some(url) = &url {
            state.in_use = Some(url.clone());
        }
        state.last = Some(found);
        url
    }

    fn lock(&self) -> MutexGuard<'_, Located> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a key fetch does after a discovery failure, for its log line.
fn action(url: Option<&Url>) -> String {
    match url {
        Some(url) => format!("keys fetched from {url}"),
        None => "no keys fetched (discovery is required); the last good keys stay".to_owned(),
    }
}

/// Reads the issuer's discovery document: OpenID Connect's, or RFC 8414's when that is 404.
async fn read(client: &reqwest::Client, issuer: &str, issuer_url: &Url) -> Found {
    let oidc = upstream::openid_configuration_url(issuer_url);
    let (document, answer) = match fetch(client, &oidc).await {
        Err(failure) if failure.status == Some(404) => {
            let metadata = upstream::authorization_server_metadata_url(issuer_url);
            let answer = fetch(client, &metadata).await.map_err(|failure| {
                let reason = failure.reason;
                upstream::Failure::new(format!("{reason} (and status 404 at {oidc})"))
            });
            (metadata, answer)
        }
        answer => (oidc, answer),
    };
    match answer {
        Ok(body) => judge(issuer, document, body),
        Err(failure) => Found::Unreadable {
            document,
            reason: failure.reason,
        },
    }
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Document, upstream::Failure> {
    let request = client.get(url.clone());
    upstream::json(Endpoint::Discovery, request, MAX_DOCUMENT_BYTES).await
}

/// Whether `body`, read at `document`, is usable for `issuer`.
fn judge(issuer: &str, document: Url, body: Document) -> Found {
    let refused = |reason: &str| Found::Refused {
        document: document.clone(),
        reason: reason.to_owned(),
    };
    match body.issuer {
        Some(Value::String(named)) if named == issuer => {}
        Some(Value::String(named)) => {
            return Found::OtherIssuer {
                document,
                issuer: named.chars().take(200).collect(),
            };
        }
        Some(_) => return refused("its `issuer` is not a string"),
        None => return refused("it has no `issuer`"),
    }
    let jwks_uri = match body.jwks_uri {
        Some(Value::String(uri)) => uri,
        Some(_) => return refused("its `jwks_uri` is not a string"),
        None => return refused("it has no `jwks_uri`"),
    };
    match upstream::check_url("jwks_uri", &jwks_uri) {
        Ok(jwks_uri) => Found::Usable { document, jwks_uri },
        Err(error) => refused(&error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn judged(body: Value) -> Found {
        let document = Url::parse("https://h/.well-known/openid-configuration").unwrap();
        judge(
            "https://h/",
            document,
            serde_json::from_value(body).unwrap(),
        )
    }

    #[test]
    fn only_the_exact_issuer_and_a_checked_jwks_uri_are_usable() {
        let usable = judged(json!({"issuer": "https://h/", "jwks_uri": "https://k/keys"}));
        assert!(
            matches!(&usable, Found::Usable { jwks_uri, .. } if jwks_uri.as_str() == "https://k/keys")
        );
        for other in ["https://h", "https://H/", "https://h/ ", "https://h//"] {
            let found = judged(json!({"issuer": other, "jwks_uri": "https://h/keys"}));
            assert!(
                matches!(&found, Found::OtherIssuer { issuer, .. } if issuer == other),
                "{other}"
            );
        }
        let long = "x".repeat(10_000);
        let found = judged(json!({"issuer": long, "jwks_uri": "https://h/keys"}));
        assert!(matches!(&found, Found::OtherIssuer { issuer, .. } if issuer.len() == 200));
        for refused in [
            json!({"jwks_uri": "https://h/keys"}),
            json!({"issuer": ["https://h/"], "jwks_uri": "https://h/keys"}),
            json!({"issuer": "https://h/"}),
            json!({"issuer": "https://h/", "jwks_uri": 7}),
            json!({"issuer": "https://h/", "jwks_uri": "http://h/keys"}),
            json!({"issuer": "https://h/", "jwks_uri": "/keys"}),
            json!({"issuer": "https://h/", "jwks_uri": "file:///etc/passwd"}),
            json!({"issuer": "https://h/", "jwks_uri": "https://"}),
        ] {
            assert!(
                matches!(judged(refused.clone()), Found::Refused { .. }),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_locator_starts_on_the_fixed_url_unless_discovery_is_required() {
        let issuer = Url::parse("https://h/t").unwrap();
        let fixed = Url::parse("https://h/t/.well-known/jwks.json").unwrap();
        let locator =
            |mode| Locator::new(mode, "https://h/t".into(), issuer.clone(), fixed.clone());
        for mode in [Discovery::Off, Discovery::Preferred] {
            assert_eq!(locator(mode).jwks_url().as_ref(), Some(&fixed));
        }
        let required = locator(Discovery::Required);
        assert_eq!(required.jwks_url(), None);
        assert_eq!(
            required.describe(),
            "the jwks_uri of https://h/t/.well-known/openid-configuration"
        );
    }
}
