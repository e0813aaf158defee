//! [`Auth`]: one value that hands out every layer of an application.

use std::time::SystemTime;

use crate::authn::JwtAuthLayer;
use crate::authz::{RequirePermissionLayer, Strict, TokenTrusted};
use crate::error::ConfigError;
use crate::freshness::{Change, Freshness};
use crate::jwt::Verifier;
use crate::kinde::KindeConfig;
use crate::live::LiveCheck;
use crate::permission::Permission;
use crate::webhook::{WebhookFuture, WebhookReceiver};

/// The application's authorization setup: a [`Verifier`], a [`LiveCheck`] and the
/// [`Freshness`] watermarks webhooks raise. Cheap to clone; clones share all state.
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
    freshness: Freshness,
}

impl Auth {
    /// Combines a verifier and a live check built by hand, with default [`Freshness`]
    /// (watermarks kept for Kinde's default 24 h token lifetime).
    pub fn new(verifier: Verifier, live: LiveCheck) -> Self {
        Self {
            verifier,
            live,
            freshness: Freshness::default(),
        }
    }

    /// Uses `freshness` (to match a longer token lifetime, say).
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
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

    /// A route layer requiring `permission`, decided from the token's claims, and live for
    /// tokens that carry no `permissions` claim or were issued before a change of their user
    /// (see [`mark_changed`](Self::mark_changed)).
    pub fn token_trusted(&self, permission: Permission) -> RequirePermissionLayer<TokenTrusted> {
        RequirePermissionLayer::token_trusted(permission)
            .with_live_fallback(self.live.clone())
            .with_freshness(self.freshness.clone())
    }

    /// A route layer requiring `permission`, decided from live permissions.
    pub fn strict(&self, permission: Permission) -> RequirePermissionLayer<Strict> {
        RequirePermissionLayer::strict(permission, self.live.clone())
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The live check.
    pub fn live_check(&self) -> &LiveCheck {
        &self.live
    }

    /// The freshness watermarks.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// Forgets the cached live permissions of `user_id`: strict routes ask again.
    pub fn invalidate_user(&self, user_id: &str) {
        self.live.invalidate_user(user_id);
    }

    /// Forgets the cached live permissions of everyone in `org_code`.
    pub fn invalidate_org(&self, org_code: &str) {
        self.live.invalidate_org(org_code);
    }

    /// Forgets every cached live permission.
    pub fn invalidate_all(&self) {
        self.live.invalidate_all();
    }

    /// Records that permissions changed at `at`: the live entries concerned are dropped, and
    /// tokens issued up to `at` are no longer trusted on token-trusted routes (they are decided
    /// live) until they expire. What a `user.updated` webhook does; call it when your app
    /// changes permissions itself.
    pub fn mark_changed(&self, change: Change, at: SystemTime) {
        match &change {
            Change::User(user) => {
                self.live.invalidate_user(user);
                self.freshness.mark_user(user, at);
            }
            Change::Org(org) => {
                self.live.invalidate_org(org);
                self.freshness.mark_org(org, at);
            }
            Change::Everyone => {
                self.live.invalidate_all();
                self.freshness.mark_all(at);
            }
        }
    }

    /// A Kinde webhook receiver bound to this setup, to adjust before use.
    pub fn webhook_receiver(&self) -> WebhookReceiver {
        WebhookReceiver::new(self.clone())
    }

    /// An axum handler for Kinde webhooks: `.route("/webhooks/kinde", post(auth.webhook_handler()))`.
    /// Mount it outside `auth.layer()`. See [`webhook`](crate::webhook).
    pub fn webhook_handler(
        &self,
    ) -> impl Fn(http::Request<axum::body::Body>) -> WebhookFuture + Clone + Send + Sync + 'static
    {
        self.webhook_receiver().into_handler()
    }
}
