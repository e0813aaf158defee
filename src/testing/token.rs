//! [`TokenBuilder`]: mint any token the fake Kinde (or an attacker) could produce.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::keys::{Signing, SigningKey, hmac, random_bytes, signing_input};
use super::server::State;

/// Builds a token. Start from [`FakeKinde::user_token`](super::FakeKinde::user_token),
/// [`m2m_token`](super::FakeKinde::m2m_token) or [`id_token`](super::FakeKinde::id_token); every
/// header field and claim can then be changed, removed or added, and the signature chosen.
///
/// ```no_run
/// # async fn demo() {
/// use claimcheck::testing::FakeKinde;
/// let kinde = FakeKinde::start().await;
/// let token = kinde
///     .user_token("kp_1234")
///     .permissions(["read:reports"])
///     .expires_in(-60) // already expired
///     .sign();
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenBuilder {
    state: Arc<State>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    payload_override: Option<Vec<u8>>,
    header_override: Option<Vec<u8>>,
    signing: Signing,
    /// `without_header("kid")` was asked: do not add the signing key's kid.
    no_kid: bool,
    /// `header("alg", …)` or `without_header("alg")` was asked: the header's `alg` is not
    /// taken from the signing key.
    alg_fixed: bool,
}

pub(crate) fn now() -> i64 {
    crate::clock::now_secs() as i64
}

fn jti() -> String {
    let b = random_bytes::<16>();
    let hex: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl TokenBuilder {
    pub(crate) fn new(state: Arc<State>, claims: Value) -> Self {
        let mut base = json!({
            "iss": state.issuer,
            "iat": now(),
            "exp": now() + 3600,
            "jti": jti(),
        });
        let base_map = base.as_object_mut().expect("object");
        if let Value::Object(extra) = claims {
            base_map.extend(extra);
        }
        let header = json!({"alg": "RS256", "typ": "JWT"});
        Self {
            state,
            header: header.as_object().cloned().unwrap_or_default(),
            claims: base_map.clone(),
            payload_override: None,
            header_override: None,
            signing: Signing::Key(None),
            no_kid: false,
            alg_fixed: false,
        }
    }

    /// Sets (or replaces) a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets the `permissions` claim.
    pub fn permissions<I: IntoIterator<Item = S>, S: Into<String>>(self, permissions: I) -> Self {
        let list: Vec<Value> = permissions
            .into_iter()
            .map(|p| Value::String(p.into()))
            .collect();
        self.claim("permissions", list)
    }

    /// Sets `org_code`.
    pub fn org_code(self, org: &str) -> Self {
        self.claim("org_code", org)
    }

    /// Sets `aud` (a JSON value: a string, an array, or anything else for negative tests).
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `exp` to now + `secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.claim("exp", now() + secs)
    }

    /// Sets `iat` to now + `secs`.
    pub fn issued_in(self, secs: i64) -> Self {
        self.claim("iat", now() + secs)
    }

    /// Sets (or replaces) a header field. Setting `alg` keeps it whatever key signs (a
    /// mismatched `alg`, for hostile tests); otherwise `alg` is the signing key's.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self.alg_fixed |= name == "alg";
        self
    }

    /// Removes a header field.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self.no_kid |= name == "kid";
        self.alg_fixed |= name == "alg";
        self
    }

    /// Uses these exact payload bytes instead of the claims (for example a JSON array).
    pub fn raw_payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload_override = Some(payload.into());
        self
    }

    /// Uses these exact header bytes (for example JSON with a duplicate member); the key still
    /// signs as the header fields would say (`kid` and the signing mode are not taken from
    /// these bytes).
    pub fn raw_header(mut self, header: impl Into<Vec<u8>>) -> Self {
        self.header_override = Some(header.into());
        self
    }

    /// Signs with the published key `kid` in that key's algorithm (`RS256`, `ES256`, `ES384`
    /// or `EdDSA`, see [`KeyType`](super::KeyType)) and names it in the header, whose `alg`
    /// becomes the key's unless [`header("alg", …)`](Self::header) set another.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use claimcheck::testing::{FakeKinde, KeyType};
    /// let kinde = FakeKinde::start().await;
    /// let kid = kinde.add_signing_key(KeyType::Es256);
    /// let es256 = kinde.user_token("kp_1").signed_with(&kid).sign();
    /// // The same ES256 signature under a header claiming RS256: a hostile token.
    /// let mismatched = kinde.user_token("kp_1").signed_with(&kid).header("alg", "RS256").sign();
    /// # }
    /// ```
    pub fn signed_with(mut self, kid: &str) -> Self {
        self.signing = Signing::Key(Some(kid.to_owned()));
        self
    }

    /// Signs RS256 with a fresh key Kinde never published, under the current kid: a forgery.
    pub fn forged(mut self) -> Self {
        self.signing = Signing::Forged;
        self
    }

    /// Signs HS256 with `secret` (the header's `alg` becomes `HS256`).
    pub fn hs256(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.signing = Signing::Hmac(&aws_lc_rs::hmac::HMAC_SHA256, secret.into());
        self.header("alg", "HS256")
    }

    /// Signs HS384 with `secret` (the header's `alg` becomes `HS384`).
    pub fn hs384(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.signing = Signing::Hmac(&aws_lc_rs::hmac::HMAC_SHA384, secret.into());
        self.header("alg", "HS384")
    }

    /// No signature: header `alg` set to `alg` (`none`, `None`, …) and an empty third segment.
    pub fn unsigned(mut self, alg: &str) -> Self {
        self.signing = Signing::Unsigned;
        self.header("alg", alg)
    }

    /// The claims as they will be signed.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Produces the compact JWT.
    pub fn sign(self) -> String {
        let payload = self
            .payload_override
            .unwrap_or_else(|| Value::Object(self.claims).to_string().into_bytes());
        let mut header = self.header;
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        let current = &keys[self.state.current_key()];
        let default_kid = match &self.signing {
            Signing::Key(Some(kid)) => kid.as_str(),
            _ => current.kid.as_str(),
        };
        let key = keys
            .iter()
            .find(|k| k.kid == default_kid)
            .unwrap_or(current);
        if !self.no_kid {
            header
                .entry("kid")
                .or_insert_with(|| Value::String(default_kid.to_owned()));
        }
        if matches!(self.signing, Signing::Key(_)) && !self.alg_fixed {
            header.insert("alg".to_owned(), key.key_type.alg().into());
        }
        let header = self
            .header_override
            .unwrap_or_else(|| Value::Object(header).to_string().into_bytes());
        let input = signing_input(&header, &payload);
        let signature = match &self.signing {
            Signing::Key(_) => key.sign(input.as_bytes()),
            Signing::Forged => SigningKey::generate().sign(input.as_bytes()),
            Signing::Hmac(algorithm, secret) => hmac(algorithm, secret, input.as_bytes()),
            Signing::Unsigned => String::new(),
        };
        format!("{input}.{signature}")
    }
}

impl std::fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}
