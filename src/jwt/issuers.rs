//! Several issuers on one [`Verifier`]: a token goes to the issuer its `iss` names.
//!
//! A verifier built with [`VerifierBuilder::other_issuer`](super::VerifierBuilder::other_issuer)
//! accepts tokens from its own issuer and from each other verifier's, each with that
//! verifier's keys, audiences, algorithms, profile and token cache (a tenant migration, or one
//! API serving several tenants). The issuer is chosen **before any signature work**: the
//! payload's `iss` is read (decoded, nothing verified yet) and compared exactly with each
//! configured issuer; a token naming none is refused without a key lookup or JWKS fetch. The
//! chosen verifier then checks everything as it would alone, `iss` again included, so a token
//! cannot be verified with one issuer's keys and read as another's: issuer A's token with
//! issuer B's key id is an unknown key to A.
//!
//! With one issuer nothing is read ahead: the path is the single verifier's.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::Verifier;
use super::verifier::invalid;
use crate::claims::Profile;
use crate::error::{AuthError, ConfigError};

/// Most issuers one verifier accepts: a fixed list, scanned for each new token.
pub(crate) const MAX_ISSUERS: usize = 64;

impl Verifier {
    /// Every issuer accepted: [`issuer`](Self::issuer) first, then the others in the order
    /// they were added.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.issuer()).chain(self.others.iter().map(Verifier::issuer))
    }

    /// How this verifier's issuer's claims are read.
    pub fn profile(&self) -> &Profile {
        &self.inner.profile
    }

    /// The other issuers' verifiers.
    pub(crate) fn other_issuers(&self) -> &[Verifier] {
        &self.others
    }

    /// Each issuer's own verifier (without the others): this one's first.
    pub(crate) fn each_issuer(&self) -> Vec<Verifier> {
        std::iter::once(self.alone())
            .chain(self.others.iter().cloned())
            .collect()
    }

    /// The issuer whose keys sign Kinde's webhooks: the first with Kinde's profile (this
    /// verifier's own when none has: a verifier built for one issuer, whatever its profile).
    pub(crate) fn webhook_issuer(&self) -> &Verifier {
        std::iter::once(self)
            .chain(self.others.iter())
            .find(|v| v.profile().is_kindes())
            .unwrap_or(self)
    }

    /// This verifier's own issuer, without the others.
    pub(crate) fn alone(&self) -> Verifier {
        Self {
            inner: self.inner.clone(),
            others: Arc::from([]),
        }
    }

    /// The verifier for `token`'s issuer: this one alone, or the one its `iss` names among
    /// several (read before any signature work; an `iss` naming none is refused).
    pub(crate) fn route(&self, token: &str) -> Result<&Verifier, AuthError> {
        if self.others.is_empty() {
            return Ok(self);
        }
        // Nothing is decoded past the largest size any issuer accepts.
        if token.len() > self.max_token_bytes() {
            return Err(invalid("token over the size cap"));
        }
        let iss = peek_issuer(token).ok_or_else(|| invalid("no iss"))?;
        choose(self, &self.others, &iss).ok_or_else(|| {
            let configured: Vec<&str> = self.issuers().collect();
            self.inner.diagnosis.issuer(&iss, &configured.join(" "));
            invalid("iss names no configured issuer")
        })
    }
}

/// The unverified `iss` of a compact JWS, or `None` when the payload is not an object with a
/// string `iss` (decoding stops at the payload: the header is the chosen verifier's to check).
pub(crate) fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    // serde reads a struct from an array too: only an object names an issuer.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    // A duplicated `iss` is an error here, as in the full check.
    serde_json::from_slice::<Iss>(&json).ok().map(|c| c.iss)
}

/// The verifier, among `primary` and `others`, for tokens whose `iss` is `iss`.
pub(crate) fn choose<'a>(
    primary: &'a Verifier,
    others: &'a [Verifier],
    iss: &str,
) -> Option<&'a Verifier> {
    std::iter::once(primary)
        .chain(others)
        .find(|v| v.issuer() == iss)
}

/// The other issuers of a verifier for `primary`: each of `others` with the ones it accepts
/// itself, none twice, `primary` not among them.
pub(crate) fn flatten(
    primary: &str,
    others: Vec<Verifier>,
) -> Result<Box<[Verifier]>, ConfigError> {
    let mut flat: Vec<Verifier> = Vec::new();
    for verifier in others {
        let extra = verifier.other_issuers().to_vec();
        for v in std::iter::once(verifier.alone()).chain(extra) {
            if v.issuer() == primary || flat.iter().any(|f| f.issuer() == v.issuer()) {
                return Err(ConfigError::invalid(
                    "other_issuer",
                    format!("issuer {:?} is configured twice", v.issuer()),
                ));
            }
            flat.push(v);
        }
    }
    if flat.len() + 1 > MAX_ISSUERS {
        return Err(ConfigError::invalid(
            "other_issuer",
            format!("at most {MAX_ISSUERS} issuers"),
        ));
    }
    Ok(flat.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn the_issuer_is_read_from_the_payload_only_when_it_is_one_string() {
        assert_eq!(
            peek_issuer(&token(r#"{"iss":"https://a/","sub":"x"}"#)).as_deref(),
            Some("https://a/")
        );
        for bad in [
            r#"{"iss":["https://a"]}"#,
            r#"{"iss":"https://a","iss":"https://b"}"#,
            r#"{"sub":"x"}"#,
            r#"["iss"]"#,
            "not json",
        ] {
            assert_eq!(peek_issuer(&token(bad)), None, "{bad}");
        }
        assert_eq!(peek_issuer("only-one-segment"), None);
        assert_eq!(peek_issuer("a.!!!.c"), None);
    }

    #[test]
    fn issuers_are_distinct_and_bounded() {
        let v = |iss: &str| Verifier::builder(iss).audience("api").build().unwrap();
        let dup = flatten("https://a", vec![v("https://b"), v("https://b")]);
        assert!(dup.is_err());
        assert!(flatten("https://a", vec![v("https://a")]).is_err());
        // A trailing slash makes another issuer.
        assert_eq!(
            flatten("https://a", vec![v("https://a/")]).unwrap().len(),
            1
        );
        let many: Vec<Verifier> = (0..MAX_ISSUERS)
            .map(|i| v(&format!("https://i{i}")))
            .collect();
        assert!(flatten("https://a", many).is_err());
    }
}
