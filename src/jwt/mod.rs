//! Token verification: [`Verifier`], its [`KeyStore`] and the verified-token cache.
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
pub use keys::KeyStore;
pub use verifier::Verifier;

#[cfg(feature = "fuzzing")]
pub(crate) use ijson::validate_object;

pub(crate) use verifier::Step;
