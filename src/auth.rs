//! [`Auth`]: one value that hands out every layer of an application.

use crate::authn::JwtAuthLayer;
use crate::authz::{RequirePermissionLayer, TokenTrusted};
use crate::error::ConfigError;
use crate::jwt::Verifier;
use crate::kinde::KindeConfig;
use crate::permission::Permission;

/// The application's authorization setup. Cheap to clone.
///
/// ```no_run
/// use axum::{Router, handler::Handler, routing::get};
/// use claimcheck::{Auth, Claims, Permission, kinde::KindeConfig};
///
/// const READ_REPORTS: Permission = Permission::from_static("read:reports");
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Auth::kinde(&KindeConfig::from_env()?).await?;
/// let app: Router = Router::new()
///     .route("/reports", get((|| async { "reports" }).layer(auth.token_trusted(READ_REPORTS))))
///     .route("/me", get(|c: Claims| async move { c.subject().unwrap_or_default().to_owned() }))
///     .layer(auth.layer());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Auth {
    verifier: Verifier,
}

impl Auth {
    /// Wraps a verifier built by hand.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }

    /// Sets up Kinde token verification and fetches the keys once. An unreachable JWKS is not
    /// an error here: requests answer 503 until it is reachable.
    pub async fn kinde(config: &KindeConfig) -> Result<Self, ConfigError> {
        let verifier = config.verifier().build()?;
        verifier.warm_up().await;
        Ok(Self::new(verifier))
    }

    /// The authentication layer; put it outside every protected route.
    pub fn layer(&self) -> JwtAuthLayer {
        JwtAuthLayer::new(self.verifier.clone())
    }

    /// A route layer requiring `permission`, decided from the token's claims.
    pub fn token_trusted(&self, permission: Permission) -> RequirePermissionLayer<TokenTrusted> {
        RequirePermissionLayer::token_trusted(permission)
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}
