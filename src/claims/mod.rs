//! [`Claims`]: the verified contents of a Kinde access token, and its axum extractor.
//!
//! Kinde's shapes are understood natively: `permissions` (keys for the org in `org_code`),
//! `roles` as strings or `{id,key,name}` objects, typed `feature_flags` (`{"t":"b","v":true}`),
//! `scp`, `aud` as a string or an array, `gty` for machine-to-machine tokens (which carry no
//! `sub`), and the `x-hasura-*` claim names Kinde's Hasura integration uses instead. Other
//! issuers' tokens (RFC 9068) are read as their issuer's [`Profile`] says: where permissions
//! are, what marks a machine token.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use claimcheck::Claims;
//!
//! async fn me(claims: Claims) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({
//!         "sub": claims.subject(),
//!         "org_code": claims.org_code(),
//!         "permissions": claims.permissions(),
//!     }))
//! }
//! let app: Router = Router::new().route("/me", get(me));
//! ```

mod profile;
mod repr;

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use profile::{MachineToken, PermissionsClaim, Profile};
pub(crate) use repr::Repr;

use crate::error::{AuthError, AuthErrorKind};

/// A role from the token's `roles` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Kinde's role id, when the claim carries objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The role key (for example `admin`).
    pub key: String,
    /// The display name, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A typed feature flag from the token's `feature_flags` claim (`{"t": …, "v": …}`).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureFlag {
    /// `t: "b"`.
    Bool(bool),
    /// `t: "s"`.
    String(String),
    /// `t: "i"`.
    Integer(i64),
    /// Any other type code, kept as sent.
    Other {
        /// The type code.
        t: String,
        /// The value.
        v: serde_json::Value,
    },
}

/// The verified claims of an access token. Cheap to clone (one reference count).
///
/// Inserted into the request extensions by [`JwtAuthLayer`](crate::JwtAuthLayer); extract it in
/// a handler as `claims: Claims`, or `claims: Option<Claims>` on routes that also serve
/// anonymous callers (behind [`JwtAuthLayer::optional`](crate::JwtAuthLayer::optional), which
/// lets requests without credentials through; there `Claims` answers 401 to an anonymous
/// caller). A handler that extracts `Claims` behind no authentication layer answers 500 (a
/// wiring mistake), never an allow.
#[derive(Clone)]
pub struct Claims(Arc<Inner>);

struct Inner {
    repr: Repr,
    token: AccessToken,
    /// The issuer's profile recognised a machine token.
    machine: bool,
    /// The issuer's profile looks its users up live when the token cannot be trusted alone.
    live_lookups: bool,
}

/// The caller's raw access token, as verified. Its `Debug` and `Display` print `[redacted]`;
/// read it with [`AccessToken::expose`] only to pass it on (Kinde's Account API, say).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub(crate) fn new(token: Arc<str>) -> Self {
        Self(token)
    }

    /// The token itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Claims {
    /// Builds claims from a verified payload `repr` (whose JSON text is `payload`) and the
    /// whole `token` it came from (which [`Claims::get`] and [`Claims::as_json`] decode again:
    /// the payload is not kept twice), read the issuer's `profile` way. Err: a claim the
    /// profile reads is mistyped.
    pub(crate) fn verified(
        repr: Repr,
        payload: &str,
        token: AccessToken,
        profile: &Profile,
    ) -> Result<Self, &'static str> {
        let mut repr = repr.normalised();
        let reading = profile.read(&mut repr, payload)?;
        Ok(Self(Arc::new(Inner {
            repr,
            token,
            machine: reading.machine,
            live_lookups: reading.live_lookups,
        })))
    }

    /// [`Claims::verified`] with Kinde's profile, for a payload known to be claims.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn from_parts(repr: Repr, payload: &str, token: AccessToken) -> Self {
        Self::verified(repr, payload, token, &Profile::kinde())
            .expect("Kinde's profile reads nothing it cannot")
    }

    /// Claims for the JSON `payload`, as if verified, carried by a token shaped like a JWT but
    /// never verifiable: for tests (the crate's, and users' through
    /// [`testing::claims`](crate::testing::claims)). `None` unless `payload` is claims.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn unverified(payload: &str) -> Option<Self> {
        let repr: Repr = serde_json::from_str(payload).ok()?;
        let token = format!("e30.{}.dW5zaWduZWQ", URL_SAFE_NO_PAD.encode(payload));
        Some(Self::from_parts(
            repr,
            payload,
            AccessToken::new(Arc::from(token)),
        ))
    }

    /// The crate's unit-test fixture: unverified claims with `iss` "i" and a far `exp`, plus
    /// `fields` (which may override them).
    #[cfg(test)]
    pub(crate) fn fixture(fields: serde_json::Value) -> Self {
        let mut payload = serde_json::json!({"iss": "i", "exp": 9_999_999_999_i64});
        if let (Some(base), serde_json::Value::Object(extra)) = (payload.as_object_mut(), fields) {
            base.extend(extra);
        }
        Self::unverified(&payload.to_string()).expect("fixture fields are claims")
    }

    /// Bytes these claims hold on the heap, the token included (an estimate within a few
    /// percent of what the allocator hands out; see [`Repr::heap_bytes`]).
    pub(crate) fn heap_bytes(&self) -> usize {
        let inner = &self.0;
        let pointers = 2 * std::mem::size_of::<usize>();
        repr::string_bytes(std::mem::size_of::<Inner>() + pointers)
            + inner.repr.heap_bytes()
            + repr::string_bytes(inner.token.0.len() + pointers)
    }

    fn repr(&self) -> &Repr {
        &self.0.repr
    }

    /// `sub`: the user id (`kp_…`). `None` for Kinde's machine-to-machine tokens (RFC 9068
    /// issuers put the client id there).
    pub fn subject(&self) -> Option<&str> {
        self.repr().sub.as_deref()
    }

    /// `iss`: the issuer that signed the token.
    pub fn issuer(&self) -> &str {
        &self.repr().iss
    }

    /// `org_code` (or `x-hasura-org-code`): the organization the permissions apply to.
    pub fn org_code(&self) -> Option<&str> {
        self.repr().org_code.as_deref()
    }

    /// The user's permissions, from the claim the issuer's [`Profile`] names: `permissions`
    /// (or `x-hasura-permissions`) for Kinde, `scope` for [`Profile::rfc9068`]. `None` when the
    /// claim is absent, which Kinde allows (workflows can strip it); `Some(&[])` when it is
    /// empty.
    pub fn permissions(&self) -> Option<&[String]> {
        self.repr().permissions.as_deref()
    }

    /// Whether [`permissions`](Self::permissions) contains `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions()
            .is_some_and(|p| p.iter().any(|have| have == permission))
    }

    /// `roles` (or `x-hasura-roles`), strings and `{id,key,name}` objects alike. Empty when absent.
    pub fn roles(&self) -> &[Role] {
        self.repr().roles.as_deref().unwrap_or_default()
    }

    /// Whether the token carries a `roles` claim at all (Kinde adds it only when asked to).
    pub(crate) fn has_roles_claim(&self) -> bool {
        self.repr().roles.is_some()
    }

    /// Whether the token carries a `feature_flags` claim at all.
    pub(crate) fn has_feature_flags_claim(&self) -> bool {
        self.repr().feature_flags.is_some()
    }

    /// One typed feature flag by key.
    pub fn feature_flag(&self, key: &str) -> Option<FeatureFlag> {
        let raw = self.repr().feature_flags.as_ref()?.get(key)?;
        Some(raw.typed())
    }

    /// The keys of every feature flag in the token.
    pub fn feature_flag_keys(&self) -> impl Iterator<Item = &str> {
        self.repr()
            .feature_flags
            .iter()
            .flat_map(|flags| flags.keys().map(String::as_str))
    }

    /// The granted OAuth scopes: the space-separated `scope` (RFC 9068) when present, else `scp`.
    pub fn scopes(&self) -> &[String] {
        &self.repr().scp
    }

    /// `aud`, normalised to a list.
    pub fn audiences(&self) -> &[String] {
        &self.repr().aud
    }

    /// `azp`: the client id of the application that obtained the token.
    pub fn authorized_party(&self) -> Option<&str> {
        self.repr().azp.as_deref()
    }

    /// `jti`.
    pub fn token_id(&self) -> Option<&str> {
        self.repr().jti.as_deref()
    }

    /// `iat`, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<i64> {
        self.repr().iat
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.repr().exp
    }

    /// `gty`: the grant types (`["client_credentials"]` for M2M tokens).
    pub fn grant_types(&self) -> &[String] {
        &self.repr().gty
    }

    /// `client_id`: the OAuth client the token was issued to (RFC 9068).
    pub fn client_id(&self) -> Option<&str> {
        self.repr().client_id.as_deref()
    }

    /// Whether this is a machine-to-machine (client credentials) token, as the issuer's
    /// [`Profile`] recognises one (Kinde: `gty` contains `client_credentials`).
    pub fn is_machine(&self) -> bool {
        self.0.machine
    }

    /// Whether this user may be looked up live when the token cannot be trusted alone (the
    /// issuer's [`Profile::live_lookups`]).
    pub(crate) fn looks_up_live(&self) -> bool {
        self.0.live_lookups
    }

    /// Any claim, deserialized on demand from the verified payload (`email`, custom claims, …).
    /// `None` when absent or not of type `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let mut all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.as_json()).ok()?;
        serde_json::from_value(all.remove(name)?).ok()
    }

    /// The verified payload as JSON text, decoded from the token on each call (so that cached
    /// claims do not hold it twice).
    pub fn as_json(&self) -> String {
        let payload = self.0.token.expose().split('.').nth(1).unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_else(|| "{}".to_owned())
    }

    /// The access token these claims were verified from, for calls made on the caller's behalf.
    pub fn access_token(&self) -> &AccessToken {
        &self.0.token
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("sub", &self.subject())
            .field("iss", &self.issuer())
            .field("org_code", &self.org_code())
            .field("permissions", &self.permissions())
            .field("gty", &self.grant_types())
            .field("exp", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// Left in the request extensions by an [optional](crate::JwtAuthLayer::optional)
/// authentication layer that let a request without credentials through: what needs `Claims`
/// downstream then answers 401 with a bare `Bearer` challenge, not 500.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        if parts.extensions.get::<Anonymous>().is_some() {
            return Err(AuthErrorKind::MissingCredentials.into());
        }
        tracing::error!(
            "Claims extracted on a route without JwtAuthLayer: add `.layer(auth.layer())`"
        );
        Err(AuthError::new(AuthErrorKind::Misconfigured))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}

#[cfg(test)]
mod tests;
