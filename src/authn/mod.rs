//! Authentication middleware: [`JwtAuthLayer`] verifies the bearer token of every request.
//!
//! For each request it:
//! 1. reads exactly one `Authorization: Bearer <jwt>` header (see [`bearer`](crate::bearer));
//! 2. answers from the verified-token cache (a hit is byte for byte a token that passed every
//!    check before), or checks the header's token and verifies it with the
//!    [`Verifier`](crate::Verifier);
//! 3. inserts the [`Claims`](crate::Claims) into the request extensions, replacing any that
//!    came from outside (only this layer may vouch for a caller), and calls the inner service.
//!
//! A request that fails answers 400/401/503 (see [`error`](crate::error)) without reaching the
//! inner service; a gRPC request (`content-type: application/grpc…`) is answered
//! `UNAUTHENTICATED` or `UNAVAILABLE` instead, as a trailers-only gRPC response. The inner service's error type is kept: rejections are responses. The common
//! paths (cache hit, known key) are synchronous and allocate no future; only a token whose key
//! must first be fetched boxes the wait.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use claimcheck::{Claims, JwtAuthLayer, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder("https://example.kinde.com").audience("my-api").build()?;
//! verifier.warm_up().await;
//! let app: Router = Router::new()
//!     .route("/me", get(|claims: Claims| async move { claims.subject().unwrap_or("").to_owned() }))
//!     .layer(JwtAuthLayer::new(verifier));
//! # Ok(()) }
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub use service::JwtAuth;
