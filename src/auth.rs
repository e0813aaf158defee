//! [`Auth`]: one value that hands out every layer of an application.

use std::time::SystemTime;

use crate::authn::JwtAuthLayer;
use crate::authz::{RequirePermissionLayer, Strict, TokenTrusted};
use crate::changes::{APPLIED_MEMORY, Action, Applier, Change, ChangeLog, Target};
use crate::error::ConfigError;
use crate::freshness::Freshness;
use crate::jwt::Verifier;
use crate::kinde::KindeConfig;
use crate::live::LiveCheck;
use crate::preflight::Preflight;
use crate::readiness::Readiness;
use crate::requirement::Requirement;
use crate::webhook::{WebhookFuture, WebhookReceiver};

/// The application's authorization setup: a [`Verifier`], a [`LiveCheck`], the [`Freshness`]
/// state (watermarks and lock-outs) and the [`ChangeLog`] every change goes through. Cheap to
/// clone; clones share all state.
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
    log: ChangeLog,
}

impl Auth {
    /// Combines a verifier and a live check built by hand, with default [`Freshness`]
    /// (watermarks kept for Kinde's default 24 h token lifetime) and the in-process
    /// [`ChangeLog`].
    pub fn new(verifier: Verifier, live: LiveCheck) -> Self {
        let freshness = Freshness::default();
        let log = ChangeLog::local(applier(&verifier, &live, &freshness));
        Self {
            verifier,
            live,
            freshness,
            log,
        }
    }

    /// Uses `freshness` (to match a longer token lifetime, say). The change log keeps its kind
    /// (a Redis log restarts its follower on the new state, replaying the log).
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.log = self
            .log
            .rebind(applier(&self.verifier, &self.live, &freshness));
        self.freshness = freshness;
        self
    }

    /// Shares changes with every replica through the Redis Streams log `config` describes
    /// (feature `redis`; see [`changes`](crate::changes)). Starts the background follower, so
    /// it must be called within a Tokio runtime; Redis need not be reachable yet (until this
    /// replica has replayed the log, token-trusted routes decide live). The follower runs until
    /// the last clone of this `Auth`, of its [`layer`](Self::layer) and of its webhook receiver
    /// is dropped, or [`ChangeLog::shutdown`].
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn with_redis(mut self, config: crate::changes::RedisConfig) -> Self {
        let applier = applier(&self.verifier, &self.live, &self.freshness);
        self.log = ChangeLog::redis(applier, config);
        self
    }

    /// Sets up Kinde token verification (and fetches the keys once) and live permissions
    /// (Management API when `config` has credentials, else Account API; 5 s time-to-live).
    /// Runs the startup checks ([`preflight`](Self::preflight)): failures are logged at `warn`
    /// (requests fail closed meanwhile: an unreachable JWKS means 503 until it is reachable),
    /// or, with [`PreflightPolicy::Strict`](crate::preflight::PreflightPolicy), returned as
    /// [`ConfigError::Preflight`].
    ///
    /// With `CLAIMCHECK_REDIS_URL` set in `config`, changes are shared through Redis (feature
    /// `redis`; without it, that setting is an error rather than silently ignored).
    pub async fn kinde(config: &KindeConfig) -> Result<Self, ConfigError> {
        let verifier = config.verifier().build()?;
        let live = config.live_check()?.build();
        #[cfg(feature = "redis")]
        let redis = config.redis()?;
        #[cfg(not(feature = "redis"))]
        config.redis()?;
        let auth = Self::new(verifier, live);
        auth.preflight().await.enforce(config.preflight())?;
        #[cfg(feature = "redis")]
        let auth = match redis {
            Some(redis) => auth.with_redis(redis),
            None => auth,
        };
        Ok(auth)
    }

    /// The authentication layer; put it outside every protected route. It also refuses tokens
    /// that were [locked out](Self::lock_out_user).
    pub fn layer(&self) -> JwtAuthLayer {
        JwtAuthLayer::new(self.verifier.clone()).with_change_log(self.log.clone())
    }

    /// The authentication layer, letting requests without credentials through as anonymous
    /// (see [`JwtAuthLayer::optional`]): for routes that serve everyone but say more to a
    /// signed-in caller (`Option<Claims>`). Bad credentials are still 401.
    pub fn optional_layer(&self) -> JwtAuthLayer {
        self.layer().optional()
    }

    /// A route layer requiring `requirement` (a [`Permission`](crate::Permission) or any
    /// [`Requirement`]), decided from the token's claims, and live for user tokens that lack a
    /// claim it needs (`permissions`, `roles`, `feature_flags`) or were issued before a change
    /// of their user (see [`mark_changed`](Self::mark_changed)).
    pub fn token_trusted(
        &self,
        requirement: impl Into<Requirement>,
    ) -> RequirePermissionLayer<TokenTrusted> {
        RequirePermissionLayer::token_trusted(requirement)
            .with_live_fallback(self.live.clone())
            .with_freshness(self.freshness.clone())
    }

    /// A route layer requiring `requirement`, decided from the live source: permissions, and
    /// roles and feature flags when the requirement names them.
    pub fn strict(&self, requirement: impl Into<Requirement>) -> RequirePermissionLayer<Strict> {
        RequirePermissionLayer::strict(requirement, self.live.clone())
    }

    /// The startup checks (see [`preflight`](crate::preflight)): fetches the signing keys,
    /// reads the issuer's discovery document, and asks the live source to verify its
    /// credentials (one machine-token request for the Management API). For applications
    /// that build their `Auth` by hand; [`Auth::kinde`] runs it.
    pub async fn preflight(&self) -> Preflight {
        Preflight::run(&self.verifier, &self.live).await
    }

    /// Whether this instance can serve: keys loaded, change log replayed, and the live
    /// source's breaker. For a load balancer's readiness probe (it is `IntoResponse`); see
    /// [`readiness`](crate::readiness).
    pub fn readiness(&self) -> Readiness {
        Readiness::of(&self.verifier, &self.live, &self.log)
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

    /// The change log every change goes through.
    pub fn change_log(&self) -> &ChangeLog {
        &self.log
    }

    /// Forgets the cached live permissions of `user_id` on every replica: strict routes ask
    /// again.
    pub fn invalidate_user(&self, user_id: &str) {
        self.publish(
            Target::User(user_id.to_owned()),
            Action::Invalidate,
            SystemTime::now(),
        );
    }

    /// Forgets the cached live permissions of everyone in `org_code`, on every replica.
    pub fn invalidate_org(&self, org_code: &str) {
        self.publish(
            Target::Org(org_code.to_owned()),
            Action::Invalidate,
            SystemTime::now(),
        );
    }

    /// Forgets every cached live permission, on every replica.
    pub fn invalidate_all(&self) {
        self.publish(Target::Everyone, Action::Invalidate, SystemTime::now());
    }

    /// Records that permissions changed at `at`: the live entries concerned are dropped, and
    /// tokens issued up to `at` are no longer trusted on token-trusted routes (they are decided
    /// live) until they expire, on every replica. What a `user.updated` webhook does; call it
    /// when your app changes permissions itself. Applied here at once; with a shared log it is
    /// appended in the background ([`ChangeLog::publish`] waits for the append).
    pub fn mark_changed(&self, target: Target, at: SystemTime) {
        self.publish(target, Action::Distrust, at);
    }

    /// Refuses (401 `invalid_token`, on every route and every replica) every token of `user_id`
    /// issued up to `at`, until it expires: for a user you deleted or suspended. Tokens issued
    /// later are accepted (and decided as usual).
    pub fn lock_out_user(&self, user_id: &str, at: SystemTime) {
        self.publish(Target::User(user_id.to_owned()), Action::LockOut, at);
    }

    /// Refuses the one token whose `jti` claim is `jti`, on every route and every replica,
    /// until it expires.
    pub fn revoke_token(&self, jti: &str) {
        self.publish(
            Target::Token(jti.to_owned()),
            Action::LockOut,
            SystemTime::now(),
        );
    }

    fn publish(&self, target: Target, action: Action, at: SystemTime) {
        self.log.publish_later(Change::new(target, action, at));
    }

    /// A Kinde webhook receiver bound to this setup, to adjust before use.
    pub fn webhook_receiver(&self) -> WebhookReceiver {
        WebhookReceiver::new(self.verifier.clone(), self.log.clone())
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

/// The one applier of an `Auth`'s parts.
fn applier(verifier: &Verifier, live: &LiveCheck, freshness: &Freshness) -> Applier {
    Applier::new(
        verifier.issuer(),
        live.clone(),
        freshness.clone(),
        verifier.leeway(),
        APPLIED_MEMORY,
    )
}
