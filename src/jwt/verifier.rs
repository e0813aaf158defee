//! [`Verifier`]: turns a bearer token into [`Claims`], or refuses it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::algorithm::Algorithm;
use super::cache::{TokenCache, Verified};
use super::diagnose::Diagnosis;
use super::ijson;
use super::keys::{KeyError, KeyStore};
use super::verifying_key::VerifyingKey;
use crate::claims::{AccessToken, Claims, Profile, Repr};
use crate::clock::now_secs;
use crate::error::{AuthError, AuthErrorKind};

/// Verifies access tokens: signature, header and claims. Cheap to clone.
///
/// Built with [`Verifier::builder`]; see [`VerifierBuilder`](super::VerifierBuilder) for every setting and default.
/// The checks, in order (the first failure decides, and the client only learns "invalid" or
/// "expired"):
///
/// 1. size cap, the JWT alphabet, exactly three non-empty segments;
/// 2. header: strict I-JSON (RFC 7493) throughout: one object, valid UTF-8, no duplicate member
///    names at any depth, no lone surrogate escapes or noncharacters; `alg` exactly one of the
///    allowed algorithms (so `none` in any casing and `HS256` fail); `kid` a non-empty string;
///    `typ`, if present, `JWT` or `at+jwt`; no `crit`. `jku`, `x5u`, `jwk` and `x5c` are
///    ignored, never fetched;
/// 3. the key for `kid` from the [`KeyStore`] (only keys that passed the
///    [JWKS rules](super::VerifierBuilder::algorithms) are held); the key's type and curve must
///    be the one the header's `alg` needs (`RS*`/`PS*` an RSA key, `ES256` EC P-256, `ES384`
///    EC P-384, `EdDSA` OKP Ed25519), so a key is never used with another type's algorithm;
///    if the JWK names an `alg`, it must equal the header's;
/// 4. the signature (aws-lc-rs through jsonwebtoken; ECDSA signatures in JOSE's fixed-length
///    `r || s` form only);
/// 5. claims: strict I-JSON as the header, and an object; `iss` a string equal to the issuer;
///    `aud` (string or array) containing a configured audience; `exp` a number, not passed;
///    `nbf` and `iat`, if present, not in the future (all with leeway); with a
///    [maximum token age](super::VerifierBuilder::max_token_age), `iat` present and recent
///    enough.
///
/// A verifier may accept [several issuers](super::VerifierBuilder::other_issuer), each token
/// going to the one its `iss` names.
#[derive(Clone)]
pub struct Verifier {
    pub(super) inner: Arc<Inner>,
    /// The other issuers accepted, each a verifier of one issuer (empty: this issuer only).
    pub(super) others: Arc<[Verifier]>,
}

pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: u64,
    pub(crate) max_token_age: Option<u64>,
    pub(crate) max_token_bytes: usize,
    pub(crate) keys: KeyStore,
    pub(crate) cache: Option<TokenCache>,
    /// How this issuer's claims are read.
    pub(crate) profile: Profile,
    /// Explains, once a minute, rejections a misconfiguration causes.
    pub(crate) diagnosis: Diagnosis,
}

/// The result of the synchronous part of verification.
pub(crate) enum Step {
    /// Decided without waiting.
    Done(Result<Claims, AuthError>),
    /// The key is not known yet: call [`Verifier::verify`], which may fetch the JWKS.
    NeedsKey,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A token split and its header checked.
struct Parsed<'a> {
    alg: Algorithm,
    kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

const MAX_HEADER_BYTES: usize = 1024;

pub(super) fn invalid(reason: &'static str) -> AuthError {
    tracing::debug!(reason, "credential rejected");
    AuthError::new(AuthErrorKind::InvalidToken)
}

impl Verifier {
    pub(crate) fn from_inner(inner: Inner, others: Box<[Verifier]>) -> Self {
        Self {
            inner: Arc::new(inner),
            others: others.into(),
        }
    }

    /// The issuer tokens must come from (with [other issuers](super::VerifierBuilder::other_issuer),
    /// the one this verifier was built for; see [`issuers`](Self::issuers) for all).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The accepted signature algorithms, as configured (of this verifier's own issuer).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.algorithms
    }

    /// The largest token accepted, in bytes (of any issuer's).
    pub fn max_token_bytes(&self) -> usize {
        self.others
            .iter()
            .map(Verifier::max_token_bytes)
            .fold(self.inner.max_token_bytes, usize::max)
    }

    /// What the verified-token cache holds now (zero when it is off).
    pub fn token_cache_usage(&self) -> super::TokenCacheUsage {
        self.inner
            .cache
            .as_ref()
            .map(TokenCache::usage)
            .unwrap_or_default()
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.inner.leeway)
    }

    /// The key store behind this verifier.
    pub fn key_store(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Fetches the issuer's keys now (every issuer's, when there are several), so the first
    /// request does not pay for it. Returns whether keys are available for every issuer; a
    /// `false` is not fatal: requests answer 503 until the JWKS is reachable.
    pub async fn warm_up(&self) -> bool {
        let mut ok = true;
        for issuer in std::iter::once(self).chain(self.others.iter()) {
            ok &= issuer.inner.keys.warm_up().await;
        }
        if !ok {
            tracing::warn!(
                "JWKS unavailable at warm-up; requests answer 503 until it is reachable"
            );
        }
        ok
    }

    /// Verifies `token` (the bare JWT, without `Bearer `).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.route(token)?.verify_here(token).await
    }

    /// [`verify`](Self::verify) by this verifier's own issuer.
    async fn verify_here(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(claims) = self.cached_here(token.as_bytes()) {
            return Ok(claims);
        }
        if let Step::Done(result) = self.uncached_here(token) {
            return result;
        }
        let parsed = self.parse(token, self.inner.max_token_bytes)?;
        let epoch = self.inner.keys.epoch();
        let key = self.key(&parsed).await?;
        self.finish(token, &parsed, key, epoch)
    }

    /// Verifies a JWT's header and signature with the keys of the Kinde business (see
    /// [`webhook_issuer`](Self::webhook_issuer)), under the same rules as access tokens, and
    /// returns its payload as JSON text without checking any claim. For Kinde's webhook JWTs,
    /// which carry no `iss`, `aud` or `exp`: no other issuer's key may sign one.
    pub(crate) async fn verify_signature(
        &self,
        token: &str,
        max_bytes: usize,
    ) -> Result<String, AuthError> {
        let kinde = self.webhook_issuer();
        let parsed = kinde.parse(token, max_bytes)?;
        let key = kinde.key(&parsed).await?;
        kinde.check_signature(&parsed, &key)?;
        decode_payload(parsed.payload)
    }

    async fn key(&self, parsed: &Parsed<'_>) -> Result<Arc<VerifyingKey>, AuthError> {
        self.inner.keys.get(&parsed.kid).await.map_err(|e| match e {
            KeyError::Unknown => {
                let inner = &self.inner;
                let held = || inner.keys.key_count();
                inner
                    .diagnosis
                    .kid(&parsed.kid, parsed.payload, &inner.issuer, held);
                invalid("unknown kid")
            }
            KeyError::Unavailable => AuthError::new(AuthErrorKind::Unavailable),
        })
    }

    /// Everything that can be decided without waiting for a token the
    /// [cache](Self::cached) just missed: a malformed token, or a full verification with a key
    /// already known (only a token verified anew is read as text).
    pub(crate) fn try_verify_uncached(&self, token: &[u8]) -> Step {
        let Ok(token) = std::str::from_utf8(token) else {
            return Step::Done(Err(invalid("not a compact JWS")));
        };
        match self.route(token) {
            Ok(verifier) => verifier.uncached_here(token),
            Err(error) => Step::Done(Err(error)),
        }
    }

    /// [`try_verify_uncached`](Self::try_verify_uncached) by this verifier's own issuer.
    fn uncached_here(&self, token: &str) -> Step {
        let parsed = match self.parse(token, self.inner.max_token_bytes) {
            Ok(parsed) => parsed,
            Err(e) => return Step::Done(Err(e)),
        };
        let epoch = self.inner.keys.epoch();
        match self.inner.keys.get_now(&parsed.kid) {
            Some(key) => Step::Done(self.finish(token, &parsed, key, epoch)),
            None => Step::NeedsKey,
        }
    }

    /// The claims of `token` from the cache, if it was verified before with a key the issuer
    /// still publishes. Compared byte for byte, so a hit is a token that passed every check.
    pub(crate) fn cached(&self, token: &[u8]) -> Option<Claims> {
        let own = self.cached_here(token);
        if own.is_some() || self.others.is_empty() {
            return own;
        }
        self.others
            .iter()
            .find_map(|other| other.cached_here(token))
    }

    /// [`cached`](Self::cached) in this issuer's own cache.
    fn cached_here(&self, token: &[u8]) -> Option<Claims> {
        let cache = self.inner.cache.as_ref()?;
        let now_ms = crate::clock::now_ms();
        let hit = cache.get(token, now_ms)?;
        let keys = &self.inner.keys;
        keys.refresh_if_due(now_ms);
        let epoch = keys.epoch();
        if hit.epoch.load(Ordering::Relaxed) == epoch {
            return Some(hit.claims.clone());
        }
        // A key was withdrawn since this entry was last looked at: is it this one? Stamped
        // with the epoch read before the look, so a withdrawal meanwhile is seen next time.
        if keys.still_publishes(&hit.key) {
            hit.epoch.store(epoch, Ordering::Relaxed);
            return Some(hit.claims.clone());
        }
        // Its key was withdrawn: verified again, it is refused as an unknown kid.
        cache.remove(token);
        None
    }

    fn parse<'a>(&self, token: &'a str, max_bytes: usize) -> Result<Parsed<'a>, AuthError> {
        if token.len() > max_bytes {
            return Err(invalid("token over the size cap"));
        }
        if !token.bytes().all(crate::bearer::is_jwt_byte) {
            return Err(invalid("not a compact JWS"));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(invalid("not three segments"));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(invalid("empty segment"));
        }
        if header.len() > MAX_HEADER_BYTES {
            return Err(invalid("header too large"));
        }
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| invalid("header is not base64url"))?;
        let header_json =
            std::str::from_utf8(&header_json).map_err(|_| invalid("header is not UTF-8"))?;
        ijson::validate_object(header_json).map_err(invalid)?;
        let jose: Header = serde_json::from_str(header_json)
            .map_err(|_| invalid("header is not a JOSE object"))?;
        if jose.crit {
            return Err(invalid("crit header present"));
        }
        let alg = Algorithm::from_jose(&jose.alg)
            .filter(|alg| self.inner.algorithms.contains(alg))
            .ok_or_else(|| {
                self.inner
                    .diagnosis
                    .algorithm(&jose.alg, &self.inner.algorithms);
                invalid("alg not allowed")
            })?;
        if let Some(typ) = &jose.typ {
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            if !typ.eq_ignore_ascii_case("jwt") && !typ.eq_ignore_ascii_case("at+jwt") {
                return Err(invalid("typ is not JWT or at+jwt"));
            }
        }
        let kid = jose
            .kid
            .filter(|kid| !kid.is_empty())
            .ok_or_else(|| invalid("no kid"))?;
        Ok(Parsed {
            alg,
            kid,
            signing_input: &token[..header.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    fn check_signature(&self, parsed: &Parsed<'_>, key: &VerifyingKey) -> Result<(), AuthError> {
        key.fits(parsed.alg).map_err(invalid)?;
        let valid = jsonwebtoken::crypto::verify(
            parsed.signature,
            parsed.signing_input.as_bytes(),
            &key.key,
            parsed.alg.to_jwt(),
        );
        if !matches!(valid, Ok(true)) {
            return Err(invalid("bad signature"));
        }
        Ok(())
    }

    /// Checks the signature and the claims; caches the result. `epoch` is the key set's epoch
    /// from before `key` was looked up.
    fn finish(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
        key: Arc<VerifyingKey>,
        epoch: u64,
    ) -> Result<Claims, AuthError> {
        self.check_signature(parsed, &key)?;
        let payload = decode_payload(parsed.payload)?;
        let repr: Repr =
            serde_json::from_str(&payload).map_err(|_| invalid("claims malformed or mistyped"))?;
        let valid_until = self.check_claims(&repr)?;
        let token = AccessToken::new(Arc::from(token));
        let claims =
            Claims::verified(repr, &payload, token, &self.inner.profile).map_err(invalid)?;
        if let Some(cache) = &self.inner.cache {
            let entry = Verified::new(claims.clone(), key, epoch, valid_until);
            cache.insert(entry, crate::clock::now_ms());
        }
        Ok(claims)
    }

    /// Checks the claims; returns the Unix second after which the token stops being accepted.
    fn check_claims(&self, repr: &Repr) -> Result<i64, AuthError> {
        if repr.iss != self.inner.issuer {
            self.inner.diagnosis.issuer(&repr.iss, &self.inner.issuer);
            return Err(invalid("iss mismatch"));
        }
        if !repr
            .aud
            .iter()
            .any(|aud| self.inner.audiences.contains(aud))
        {
            self.inner
                .diagnosis
                .audience(&repr.aud, &self.inner.audiences);
            return Err(invalid("aud mismatch"));
        }
        let now = i128::from(now_secs());
        let leeway = i128::from(self.inner.leeway);
        let in_future = |t: Option<i64>| t.is_some_and(|t| i128::from(t) > now + leeway);
        if in_future(repr.nbf) {
            return Err(invalid("nbf in the future"));
        }
        if in_future(repr.iat) {
            return Err(invalid("iat in the future"));
        }
        let mut until = i128::from(repr.exp);
        if let Some(max_age) = self.inner.max_token_age {
            let iat = repr
                .iat
                .ok_or_else(|| invalid("no iat, and a maximum token age is set"))?;
            until = until.min(i128::from(iat) + i128::from(max_age));
        }
        until += leeway;
        if until < now {
            tracing::debug!(reason = "expired", "credential rejected");
            return Err(AuthError::new(AuthErrorKind::ExpiredToken));
        }
        Ok(i64::try_from(until).unwrap_or(i64::MAX))
    }
}

/// The payload segment as JSON text, which must be one strict I-JSON object.
fn decode_payload(payload: &str) -> Result<String, AuthError> {
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("payload is not base64url"))?;
    let payload = String::from_utf8(payload).map_err(|_| invalid("payload is not UTF-8"))?;
    ijson::validate_object(&payload).map_err(invalid)?;
    Ok(payload)
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("other_issuers", &self.others)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .field("leeway", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}
