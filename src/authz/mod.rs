//! Per-route authorization: [`RequirePermissionLayer`], token-trusted or strict, for a
//! [`Requirement`](crate::Requirement): one permission (the common case, which a
//! [`Permission`](crate::Permission) converts into), or a role, an organization, a feature flag
//! that is on, and all-of / any-of them (see [`requirement`](crate::requirement)).
//!
//! Attach it to a route with `Handler::layer` or `MethodRouter::route_layer`, behind
//! [`JwtAuthLayer`](crate::JwtAuthLayer). [`Auth`](crate::Auth) hands both kinds out:
//!
//! ```no_run
//! use axum::{Router, handler::Handler, routing::{get, post}};
//! use claimcheck::{Auth, Permission, kinde::KindeConfig};
//!
//! const READ_REPORTS: Permission = Permission::from_static("read:reports");
//! const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
//! async fn reports() -> &'static str { "reports" }
//! async fn pay() -> &'static str { "paid" }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::kinde(&KindeConfig::from_env()?).await?;
//! let app: Router = Router::new()
//!     .route("/reports", get(reports.layer(auth.token_trusted(READ_REPORTS))))
//!     .route("/payments", post(pay.layer(auth.strict(CREATE_PAYMENTS))))
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```
//!
//! **Token-trusted** routes decide from the verified token, in microseconds: a user token needs
//! the permission in its `permissions` claim (an empty array is a deny), a role in `roles`, a
//! flag on in `feature_flags`; a machine-to-machine token (`gty` `client_credentials`) needs
//! permissions in `scp`. A user token with **no** such claim at all (Kinde workflows can strip
//! `permissions` and `feature_flags`; `roles` is opt-in) is decided live, as on a strict route.
//!
//! **Strict** routes decide from the live permissions source through a
//! [`LiveCheck`](crate::live::LiveCheck): a permission (or role, or flag) revoked at Kinde
//! stops working once the cache's time-to-live has passed (default 5 s), and one granted starts
//! working, whatever the token says. When the source cannot answer the route fails closed: 503 with `Retry-After`,
//! and the handler does not run. Machine tokens are denied unless the route
//! [allows machines](RequirePermissionLayer::allow_machines).
//!
//! A gRPC request (`content-type: application/grpc…`) is refused with a gRPC status instead of
//! an HTTP one (`PERMISSION_DENIED`, `UNAUTHENTICATED`, `UNAVAILABLE` with `RetryInfo`; see
//! [`error`](crate::error)); on a tonic server, mount the methods on an axum `Router` and put
//! these layers on with `route_layer` (see the crate docs' [gRPC](crate#grpc) section).
//!
//! Every decision is traced and inserted into the response extensions as a
//! [`Decision`](crate::decision::Decision). A route reached without `Claims` (no
//! authentication layer in front) answers 500: a wiring mistake is never an allow.
//!
//! A handler whose requirement depends on the request (its body, its path) asks the same layer
//! value: [`RequirePermissionLayer::check`] decides as the route layer would and answers the
//! same [`Rejection`] when it does not allow.
//!
//! Pitfall: `get(a).route_layer(x).post(b).route_layer(y)` wraps `GET` in **both** `x` and `y`,
//! because `route_layer` applies to every method registered so far. Put the layer on the
//! handler (`get(a.layer(x)).post(b.layer(y))`) to scope it to one method.

mod check;
mod decide;
mod future;
mod layer;
mod mode;
mod service;

pub use check::Rejection;
pub use future::ResponseFuture;
pub use layer::RequirePermissionLayer;
pub use mode::{Mode, Strict, TokenTrusted};
pub use service::RequirePermission;
