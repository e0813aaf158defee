//! [`Auth`]: one value that hands out every layer of an application.

use crate::authn::JwtAuthLayer;
use crate::authz::{RequirePermissionLayer, Strict, TokenTrusted};
use crate::error::ConfigError;
use crate::jwt::Verifier;
use crate::kinde::KindeConfig;
use crate::live::LiveCheck;
use crate::permission::Permission;

/// The application's authorization setup: a [`Verifier`] and a [`LiveCheck`]. Cheap to clone.
///
/// ```no_run
/// use axum::{Router, handler::Handler, routing::{get, post}};
/// use claimcheck::{Auth, Claims, Permission, kinde::KindeConfig};
///
/// const READ_REPORTS: Permission = Permission::from_static("read:reports");
/// const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Auth::kinde(&KindeConfig::from_env()?).await?;
/// let app: Router = Router::new()
///     .route("/reports", get((|| async { "reports" }).layer(auth.token_trusted(READ_REPORTS))))
///     .route("/payments", post((|| async { "paid" }).layer(auth.strict(CREATE_PAYMENTS))))
///     .route("/me", get(|c: Claims| async move { c.subject().unwrap_or_default().to_owned() }))
///     .layer(auth.layer());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Auth {
    verifier: Verifier,
    live: LiveCheck,
}

impl Auth {
    /// Combines a verifier and a live check built by hand.
    pub fn new(verifier: Verifier, live: LiveCheck) -> Self {
        Self { verifier, live }
    }

    /// Sets up Kinde token verification (and fetches the keys once) and live permissions
    /// (Management API when `config` has credentials, else Account API; 5 s time-to-live).
    /// An unreachable JWKS is not an error here: requests answer 503 until it is reachable.
    pub async fn kinde(config: &KindeConfig) -> Result<Self, ConfigError> {
        let verifier = config.verifier().build()?;
        let live = config.live_check()?.build();
        verifier.warm_up().await;
        Ok(Self::new(verifier, live))
    }

    /// The authentication layer; put it outside every protected route.
    pub fn layer(&self) -> JwtAuthLayer {
        JwtAuthLayer::new(self.verifier.clone())
    }

    /// A route layer requiring `permission`, decided from the token's claims (and live for
    /// tokens that carry no `permissions` claim).
    pub fn token_trusted(&self, permission: Permission) -> RequirePermissionLayer<TokenTrusted> {
        RequirePermissionLayer::token_trusted(permission).with_live_fallback(self.live.clone())
    }

    /// A route layer requiring `permission`, decided from live permissions.
    pub fn strict(&self, permission: Permission) -> RequirePermissionLayer<Strict> {
        RequirePermissionLayer::strict(permission, self.live.clone())
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The live check, to [`invalidate_user`](LiveCheck::invalidate_user) and the like.
    pub fn live_check(&self) -> &LiveCheck {
        &self.live
    }
}
