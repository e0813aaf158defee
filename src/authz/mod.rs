//! Per-route authorization: [`RequirePermissionLayer`].
//!
//! Attach it to a route with `Handler::layer` or `MethodRouter::route_layer`, behind
//! [`JwtAuthLayer`](crate::JwtAuthLayer):
//!
//! ```
//! use axum::{Router, handler::Handler, routing::get};
//! use claimcheck::{Permission, authz::RequirePermissionLayer};
//!
//! const READ_REPORTS: Permission = Permission::from_static("read:reports");
//! async fn reports() -> &'static str { "reports" }
//!
//! let app: Router = Router::new()
//!     .route("/reports", get(reports.layer(RequirePermissionLayer::token_trusted(READ_REPORTS))));
//! ```
//!
//! **Token-trusted** routes decide from the verified token: a user token needs the permission in
//! its `permissions` claim; a machine-to-machine token (`gty` `client_credentials`) needs it in
//! `scp`. A missing or empty `permissions` claim is a 403. A route reached without
//! `Claims` (no authentication layer in front) answers 500: a wiring mistake is never an allow.
//!
//! Pitfall: `get(a).route_layer(x).post(b).route_layer(y)` wraps `GET` in **both** `x` and `y`,
//! because `route_layer` applies to every method registered so far. Put the layer on the
//! handler (`get(a.layer(x)).post(b.layer(y))`) to scope it to one method.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::{RequirePermissionLayer, TokenTrusted};
pub use service::RequirePermission;
