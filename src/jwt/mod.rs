//! Token verification: [`Verifier`], its [`KeyStore`] and the verified-token cache.
//!
//! The signing keys come from the issuer's JWKS, located by [`Discovery`]: by default the
//! `jwks_uri` of the issuer's discovery document when that names exactly the configured
//! issuer, else the fixed URL (`{issuer}/.well-known/jwks.json`, or
//! [`VerifierBuilder::jwks_url`], which turns discovery off). The document is read again with
//! every refresh of the key set; keys and document are fetched single-flight, with a cooldown,
//! and the last good keys stay in service while the issuer fails.
//!
//! jsonwebtoken alone gets several rules wrong for an API (it accepts an `iss` array, a token
//! without `aud`, a claims set that is a JSON array, and it ignores `crit`); jwks_client_rs alone
//! refetches the JWKS for every unknown kid and fails a whole set for one odd key. The verifier
//! keeps their strengths (aws-lc-rs signatures, JWKS parsing) and does the rest itself; each
//! rule is listed on [`Verifier`].

mod algorithm;
mod builder;
mod cache;
mod diagnose;
mod discovery;
mod ijson;
mod issuers;
mod jwk;
mod keys;
mod published;
mod source;
mod verifier;
mod verifying_key;

pub use algorithm::Algorithm;
pub use builder::VerifierBuilder;
pub use cache::TokenCacheUsage;
pub use discovery::Discovery;
pub use keys::KeyStore;
pub use verifier::Verifier;

#[cfg(feature = "fuzzing")]
pub(crate) use ijson::validate_object;

pub(crate) use discovery::Found;
pub(crate) use verifier::Step;
