#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! | module | owns |
//! | --- | --- |
//! | [`authn`] | [`JwtAuthLayer`]: verifies the bearer token, inserts [`Claims`] |
//! | [`authz`] | per-route [`authz::RequirePermissionLayer`], token-trusted or strict |
//! | [`live`] | [`live::LiveCheck`] (short-TTL, coalescing cache) and the [`live::PermissionSource`]s: Kinde's Management and Account APIs |
//! | [`decision`] | [`decision::Decision`]: what a route decided, from which data, how old |
//! | [`changes`] | [`changes::Change`] records and the [`changes::ChangeLog`] every replica applies them from: in process, or Redis Streams (feature `redis`) |
//! | [`freshness`] | [`freshness::Freshness`]: "permissions changed at" watermarks per user, organization, or globally; lock-outs; the trust gate |
//! | [`webhook`] | [`webhook::WebhookReceiver`]: verified Kinde webhooks turned into change records |
//! | [`jwt`] | [`Verifier`], its [`jwt::KeyStore`] (the JWKS, located by [`Discovery`]) and the verified-token cache |
//! | [`claims`] | [`Claims`] with Kinde's shapes, and its axum extractor |
//! | [`metrics`] | the metrics recorded through the `metrics` facade: names, labels, [`metrics::describe`] |
//! | [`permission`] | [`Permission`], [`PermissionSet`] |
//! | [`preflight`] | [`preflight::Preflight`]: startup checks (keys, discovery, live source credentials) and their policy |
//! | [`readiness`] | [`readiness::Readiness`]: whether this instance can serve (keys, change log, live source) |
//! | [`requirement`] | [`Requirement`]: a permission, role, organization or feature flag, all-of / any-of |
//! | [`bearer`] | `Authorization: Bearer` parsing |
//! | [`error`] | [`AuthError`] and the RFC 6750 / RFC 9457 answers, or gRPC statuses to gRPC requests; [`ConfigError`] |
//! | [`kinde`] | [`kinde::KindeConfig::from_env`], and the live source it implies |
//! | `testing` | `FakeKinde` (feature `test-util`), `RedisServer` (with `redis`) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
// The library's lint block, as tower-http keeps one (tests and examples use `pub` freely).
#![warn(unreachable_pub, missing_debug_implementations, rust_2018_idioms)]
#![forbid(unsafe_code)]

mod auth;
pub mod authn;
pub mod authz;
pub mod bearer;
pub mod changes;
pub mod claims;
mod clock;
pub mod decision;
pub mod error;
pub mod freshness;
pub mod jwt;
pub mod kinde;
pub mod live;
pub mod metrics;
pub mod permission;
pub mod preflight;
pub mod readiness;
mod recent;
pub mod requirement;
mod single_flight;
mod spans;
mod upstream;
pub mod webhook;

pub use auth::Auth;
pub use authn::JwtAuthLayer;
pub use claims::{AccessToken, Claims};
pub use error::{AuthError, AuthErrorKind, ConfigError};
pub use jwt::{Discovery, Verifier};
pub use permission::{Permission, PermissionSet};
pub use requirement::Requirement;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`). Not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// `Authorization` header parsing, as the authentication layer does it.
    pub fn bearer(value: &[u8]) -> Result<&str, crate::AuthError> {
        let token = crate::bearer::parse(value, crate::bearer::DEFAULT_MAX_TOKEN_BYTES)?;
        Ok(std::str::from_utf8(token).expect("a token that passed is visible ASCII"))
    }

    /// The strict I-JSON check every JOSE header and claims set passes.
    pub fn ijson(text: &str) -> Result<(), &'static str> {
        crate::jwt::validate_object(text)
    }

    /// A change record read from a shared log: `Some(its re-encoding)` when accepted.
    pub fn change_record(text: &str) -> Option<String> {
        crate::changes::Change::decode(text)
            .ok()
            .map(|c| c.encode())
    }
}
