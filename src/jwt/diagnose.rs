//! Rejections that a misconfiguration causes, explained once a minute at `warn`.
//!
//! A wrong issuer, audience or JWKS URL makes every request 401 with the same "invalid token"
//! answer, and the reason is only at `debug`. When a token is refused for its issuer, its
//! audience, its key id or its algorithm, this says what the token carries and what is
//! configured, at most once a minute per reason, so the first bad deploy explains itself.
//! Issuers, audiences, key ids and algorithms are not secrets; the token itself is never
//! logged, and what comes from an unverified token is cut to 120 characters and printed
//! escaped (`Debug`), so a hostile token cannot forge log lines.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::algorithm::Algorithm;
use crate::clock::now_ms;

/// Least time between two warnings for one reason.
const INTERVAL_MS: u64 = 60_000;

/// Longest piece of a token quoted in a warning.
const MAX_QUOTED: usize = 120;

/// Why a token was refused, among those a misconfiguration causes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mismatch {
    /// Its `iss` is not the configured issuer (signature valid).
    Issuer = 0,
    /// None of its `aud` is a configured audience (signature valid).
    Audience = 1,
    /// Its `kid` is not in the issuer's key set.
    Kid = 2,
    /// Its `alg` is not an accepted algorithm.
    Algorithm = 3,
}

impl Mismatch {
    /// The claim (or header member) that did not match.
    fn claim(self) -> &'static str {
        match self {
            Self::Issuer => "iss",
            Self::Audience => "aud",
            Self::Kid => "kid",
            Self::Algorithm => "alg",
        }
    }
}

/// When each reason was last warned about (Unix milliseconds, 0: never).
#[derive(Debug, Default)]
pub(crate) struct Diagnosis {
    last_ms: [AtomicU64; 4],
}

impl Diagnosis {
    /// Counts `mismatch`, and says whether a warning about it is due now; if so, it is
    /// counted as given.
    fn due(&self, mismatch: Mismatch) -> bool {
        crate::metrics::token_mismatch(mismatch.claim());
        let slot = &self.last_ms[mismatch as usize];
        let now = now_ms();
        let last = slot.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < INTERVAL_MS {
            return false;
        }
        slot.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// A token signed by the issuer's key says another issuer.
    pub(crate) fn issuer(&self, token_iss: &str, configured: &str) {
        if self.due(Mismatch::Issuer) {
            tracing::warn!(
                target: "claimcheck::diagnose",
                token_iss = ?quote(token_iss),
                configured_issuer = configured,
                "tokens are refused: their iss is not the configured issuer \
                 (check KINDE_ISSUER_URL / Verifier::builder; it is compared exactly)"
            );
        }
    }

    /// A token signed by the issuer's key is for other audiences.
    pub(crate) fn audience(&self, token_aud: &[String], configured: &[String]) {
        if self.due(Mismatch::Audience) {
            let token_aud: Vec<String> = token_aud.iter().take(5).map(|a| quote(a)).collect();
            tracing::warn!(
                target: "claimcheck::diagnose",
                ?token_aud,
                ?configured,
                "tokens are refused: none of their aud is a configured audience \
                 (check KINDE_AUDIENCE / VerifierBuilder::audience, and that clients request it)"
            );
        }
    }

    /// A token names a key the issuer's key set does not hold. `payload` is the token's
    /// unverified payload segment: its `iss` often tells a token of another issuer.
    /// `held` counts the keys held; it is asked only when a warning is due.
    pub(crate) fn kid(
        &self,
        kid: &str,
        payload: &str,
        configured_issuer: &str,
        held: impl FnOnce() -> usize,
    ) {
        if self.due(Mismatch::Kid) {
            let token_iss = unverified_iss(payload);
            tracing::warn!(
                target: "claimcheck::diagnose",
                token_kid = ?quote(kid),
                token_iss_unverified = ?token_iss.as_deref().map(quote),
                configured_issuer,
                keys_held = held(),
                "tokens are refused: their kid is not in the issuer's key set \
                 (tokens of another issuer, or a wrong KINDE_JWKS_URL)"
            );
        }
    }

    /// A token is signed with an algorithm not accepted.
    pub(crate) fn algorithm(&self, alg: &str, accepted: &[Algorithm]) {
        if self.due(Mismatch::Algorithm) {
            let accepted: Vec<&str> = accepted.iter().map(|a| a.as_str()).collect();
            tracing::warn!(
                target: "claimcheck::diagnose",
                token_alg = ?quote(alg),
                ?accepted,
                "tokens are refused: their alg is not accepted (VerifierBuilder::algorithms)"
            );
        }
    }
}

/// At most [`MAX_QUOTED`] characters of `text`.
fn quote(text: &str) -> String {
    text.chars().take(MAX_QUOTED).collect()
}

/// The `iss` of an unverified payload segment, if it has one.
fn unverified_iss(payload: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_due_once_a_minute() {
        let diagnosis = Diagnosis::default();
        assert!(diagnosis.due(Mismatch::Issuer));
        assert!(
            !diagnosis.due(Mismatch::Issuer),
            "not again within the minute"
        );
        assert!(
            diagnosis.due(Mismatch::Audience),
            "reasons are counted apart"
        );
        // A minute later (as if): due again.
        diagnosis.last_ms[Mismatch::Issuer as usize]
            .store(now_ms() - INTERVAL_MS, Ordering::Relaxed);
        assert!(diagnosis.due(Mismatch::Issuer));
    }

    #[test]
    fn quotes_are_cut_and_payloads_read_leniently() {
        assert_eq!(quote(&"x".repeat(1_000)).len(), MAX_QUOTED);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://other.kinde.com"}"#);
        assert_eq!(
            unverified_iss(&payload).as_deref(),
            Some("https://other.kinde.com")
        );
        assert_eq!(unverified_iss("!!!"), None);
        assert_eq!(unverified_iss(&URL_SAFE_NO_PAD.encode("[1]")), None);
    }
}
