//! Kinde configuration: [`KindeConfig::from_env`].
//!
//! | variable | meaning |
//! | --- | --- |
//! | `KINDE_ISSUER_URL` | `https://<sub>.kinde.com` or your custom domain, exactly as your tokens' `iss` (no trailing `/` for Kinde) (required, or `KINDE_DOMAIN`) |
//! | `KINDE_DOMAIN` | fallback for the issuer; `https://` is added when it has no scheme |
//! | `KINDE_AUDIENCE` | the API audience(s) tokens must carry, space-separated (required) |
//! | `KINDE_JWKS_URL` | a fixed JWKS URL, turning discovery off; default: the `jwks_uri` of the issuer's discovery document when it names exactly the issuer, else `{issuer}/.well-known/jwks.json` (see [`Discovery::Preferred`](crate::Discovery::Preferred)) |
//! | `KINDE_MANAGEMENT_CLIENT_ID`, `KINDE_MANAGEMENT_CLIENT_SECRET` | M2M credentials for the Management API (both or neither); strict routes use it when set, the Account API otherwise |
//! | `CLAIMCHECK_REDIS_URL` | `redis://host:port/db`: share changes between replicas through Redis Streams (feature `redis`; an error without it) |
//! | `CLAIMCHECK_REDIS_PREFIX` | prefix of every Redis key (default `claimcheck`); one per application |
//! | `CLAIMCHECK_PREFLIGHT` | `warn` (default): startup checks that fail are logged; `strict`: they stop [`Auth::kinde`](crate::Auth::kinde) (see [`preflight`](crate::preflight)) |
//!
//! ```
//! use claimcheck::kinde::KindeConfig;
//!
//! let vars = [("KINDE_DOMAIN", "example.kinde.com"), ("KINDE_AUDIENCE", "my-api other-api")];
//! let config = KindeConfig::from_lookup(|name| {
//!     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
//! })?;
//! assert_eq!(config.issuer(), "https://example.kinde.com");
//! assert_eq!(config.audiences(), ["my-api", "other-api"]);
//! assert_eq!(config.jwks_url(), "https://example.kinde.com/.well-known/jwks.json");
//! # Ok::<(), claimcheck::ConfigError>(())
//! ```

use std::fmt;

use crate::error::ConfigError;
use crate::jwt::{Verifier, VerifierBuilder};
use crate::live::{KindeAccountApi, KindeManagementApi, LiveCheck, LiveCheckBuilder};
use crate::preflight::PreflightPolicy;

/// Where the Kinde business lives and what this API accepts.
#[derive(Clone)]
pub struct KindeConfig {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: String,
    /// Whether `jwks_url` was set (and discovery is off).
    jwks_url_set: bool,
    management: Option<(String, String)>,
    preflight: PreflightPolicy,
    #[cfg(feature = "redis")]
    redis: Option<crate::changes::RedisConfig>,
}

impl KindeConfig {
    /// A configuration for `issuer`, accepting tokens for any of `audiences`.
    pub fn new<I, S>(issuer: impl Into<String>, audiences: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // Exactly as given: a token's `iss` is compared with it byte for byte.
        let issuer = issuer.into();
        crate::upstream::check_url("KINDE_ISSUER_URL", &issuer)?;
        let audiences: Vec<String> = audiences.into_iter().map(Into::into).collect();
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(ConfigError::Missing("KINDE_AUDIENCE"));
        }
        Ok(Self {
            jwks_url: crate::upstream::default_jwks_url(&issuer),
            jwks_url_set: false,
            issuer,
            audiences,
            management: None,
            preflight: PreflightPolicy::default(),
            #[cfg(feature = "redis")]
            redis: None,
        })
    }

    /// Reads the environment variables in the module docs.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`KindeConfig::from_env`], reading variables through `lookup` (handy in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let issuer = match (var("KINDE_ISSUER_URL"), var("KINDE_DOMAIN")) {
            (Some(issuer), _) => issuer,
            // Kinde's issuer is its domain's origin: no trailing `/`.
            (None, Some(domain)) if domain.contains("://") => {
                crate::upstream::issuer_base(&domain).to_owned()
            }
            (None, Some(domain)) => format!("https://{}", crate::upstream::issuer_base(&domain)),
            (None, None) => return Err(ConfigError::Missing("KINDE_ISSUER_URL")),
        };
        let audiences = var("KINDE_AUDIENCE").ok_or(ConfigError::Missing("KINDE_AUDIENCE"))?;
        let mut config = Self::new(issuer, audiences.split_ascii_whitespace())?;
        if let Some(url) = var("KINDE_JWKS_URL") {
            config = config.with_jwks_url(url)?;
        }
        match (
            var("KINDE_MANAGEMENT_CLIENT_ID"),
            var("KINDE_MANAGEMENT_CLIENT_SECRET"),
        ) {
            (Some(id), Some(secret)) => config = config.with_management_credentials(id, secret),
            (None, None) => {}
            (Some(_), None) => return Err(ConfigError::Missing("KINDE_MANAGEMENT_CLIENT_SECRET")),
            (None, Some(_)) => return Err(ConfigError::Missing("KINDE_MANAGEMENT_CLIENT_ID")),
        }
        match var("CLAIMCHECK_PREFLIGHT").as_deref() {
            None | Some("warn") => {}
            Some("strict") => config = config.with_preflight(PreflightPolicy::Strict),
            Some(_) => {
                let reason = "must be `warn` or `strict`";
                return Err(ConfigError::invalid("CLAIMCHECK_PREFLIGHT", reason));
            }
        }
        if let Some(url) = var("CLAIMCHECK_REDIS_URL") {
            config = config.with_redis(&url, var("CLAIMCHECK_REDIS_PREFIX").as_deref())?;
        } else if var("CLAIMCHECK_REDIS_PREFIX").is_some() {
            return Err(ConfigError::Missing("CLAIMCHECK_REDIS_URL"));
        }
        Ok(config)
    }

    /// Shares changes between replicas through the Redis at `url`, keys under `prefix`
    /// (default `claimcheck`). Needs the cargo feature `redis`: without it this is an error,
    /// so a fleet is never silently run on per-process state.
    pub fn with_redis(self, url: &str, prefix: Option<&str>) -> Result<Self, ConfigError> {
        #[cfg(feature = "redis")]
        {
            let mut redis = crate::changes::RedisConfig::new(url)?;
            if let Some(prefix) = prefix {
                redis = redis.prefix(prefix)?;
            }
            Ok(Self {
                redis: Some(redis),
                ..self
            })
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (self, url, prefix);
            Err(ConfigError::invalid(
                "CLAIMCHECK_REDIS_URL",
                "set, but claimcheck was built without its `redis` feature",
            ))
        }
    }

    /// The shared change log's configuration, if one was given.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_config(&self) -> Option<&crate::changes::RedisConfig> {
        self.redis.as_ref()
    }

    #[cfg(feature = "redis")]
    pub(crate) fn redis(&self) -> Result<Option<crate::changes::RedisConfig>, ConfigError> {
        Ok(self.redis.clone())
    }

    /// Nothing: without the `redis` feature no shared log can be configured.
    #[cfg(not(feature = "redis"))]
    pub(crate) fn redis(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Fetches the keys from `url` only, instead of the discovery document's `jwks_uri` (or
    /// `{issuer}/.well-known/jwks.json` when that document is unusable).
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        crate::upstream::check_url("KINDE_JWKS_URL", &url)?;
        self.jwks_url = url;
        self.jwks_url_set = true;
        Ok(self)
    }

    /// Adds Management API (M2M) credentials.
    pub fn with_management_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.management = Some((client_id.into(), client_secret.into()));
        self
    }

    /// The issuer, exactly as configured (from `KINDE_DOMAIN`: `https://` and the domain, no
    /// trailing `/`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The fixed JWKS URL: `KINDE_JWKS_URL` when set (the keys come from there only),
    /// otherwise `{issuer}/.well-known/jwks.json`, where the keys come from when the discovery
    /// document is unusable (the verifier's [`KeyStore::jwks_url`](crate::jwt::KeyStore::jwks_url)
    /// says which is in use).
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// What [`Auth::kinde`](crate::Auth::kinde) does when a startup check fails (default:
    /// warn and start).
    pub fn with_preflight(mut self, policy: PreflightPolicy) -> Self {
        self.preflight = policy;
        self
    }

    /// The startup checks' policy.
    pub fn preflight(&self) -> PreflightPolicy {
        self.preflight
    }

    /// The Management API client id, when credentials are configured.
    pub fn management_client_id(&self) -> Option<&str> {
        self.management.as_ref().map(|(id, _)| id.as_str())
    }

    /// A verifier builder for this configuration, to adjust before building.
    pub fn verifier(&self) -> VerifierBuilder {
        let builder = Verifier::builder(&self.issuer).audiences(self.audiences.iter().cloned());
        if self.jwks_url_set {
            builder.jwks_url(&self.jwks_url)
        } else {
            builder
        }
    }

    /// A live-permissions builder for this configuration, to adjust before building: the
    /// Management API when credentials are configured, the Account API (with each caller's own
    /// token) otherwise.
    pub fn live_check(&self) -> Result<LiveCheckBuilder, ConfigError> {
        Ok(match &self.management {
            Some((id, secret)) => {
                LiveCheck::builder(KindeManagementApi::new(&self.issuer, id, secret)?)
            }
            None => LiveCheck::builder(KindeAccountApi::new(&self.issuer)?),
        })
    }
}

impl KindeConfig {
    #[cfg(feature = "redis")]
    fn redis_debug(&self) -> Option<&crate::changes::RedisConfig> {
        self.redis.as_ref()
    }

    #[cfg(not(feature = "redis"))]
    fn redis_debug(&self) -> Option<()> {
        None
    }
}

impl fmt::Debug for KindeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindeConfig")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("jwks_url", &self.jwks_url)
            .field("management_client_id", &self.management_client_id())
            .field(
                "management_client_secret",
                &self.management.as_ref().map(|_| "<redacted>"),
            )
            .field("redis", &self.redis_debug())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<KindeConfig, ConfigError> {
        KindeConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn issuer_url_wins_over_domain() {
        let c = from(&[
            ("KINDE_ISSUER_URL", "https://a.kinde.com/"),
            ("KINDE_DOMAIN", "b.kinde.com"),
            ("KINDE_AUDIENCE", "api"),
        ])
        .unwrap();
        // Exactly as written: tokens whose `iss` lacks the `/` would be refused (and the
        // startup check and the traffic diagnosis say so).
        assert_eq!(c.issuer(), "https://a.kinde.com/");
        assert_eq!(c.jwks_url(), "https://a.kinde.com/.well-known/jwks.json");
    }

    #[test]
    fn a_domain_is_made_kindes_issuer() {
        for domain in ["a.kinde.com", "a.kinde.com/", "https://a.kinde.com/"] {
            let c = from(&[("KINDE_DOMAIN", domain), ("KINDE_AUDIENCE", "api")]).unwrap();
            assert_eq!(c.issuer(), "https://a.kinde.com", "{domain}");
        }
    }

    #[test]
    fn missing_settings_are_named() {
        assert_eq!(
            from(&[("KINDE_AUDIENCE", "api")]).unwrap_err(),
            ConfigError::Missing("KINDE_ISSUER_URL")
        );
        assert_eq!(
            from(&[("KINDE_DOMAIN", "a.kinde.com"), ("KINDE_AUDIENCE", "  ")]).unwrap_err(),
            ConfigError::Missing("KINDE_AUDIENCE")
        );
        let half = from(&[
            ("KINDE_DOMAIN", "a.kinde.com"),
            ("KINDE_AUDIENCE", "api"),
            ("KINDE_MANAGEMENT_CLIENT_ID", "id"),
        ]);
        assert_eq!(
            half.unwrap_err(),
            ConfigError::Missing("KINDE_MANAGEMENT_CLIENT_SECRET")
        );
    }

    #[test]
    fn bad_urls_are_invalid_and_secrets_are_redacted() {
        let err = from(&[
            ("KINDE_ISSUER_URL", "http://a.kinde.com"),
            ("KINDE_AUDIENCE", "x"),
        ]);
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                setting: "KINDE_ISSUER_URL",
                ..
            })
        ));
        let c = from(&[
            ("KINDE_DOMAIN", "a.kinde.com"),
            ("KINDE_AUDIENCE", "api"),
            ("KINDE_JWKS_URL", "https://a.kinde.com/.well-known/jwks"),
            ("KINDE_MANAGEMENT_CLIENT_ID", "id1"),
            ("KINDE_MANAGEMENT_CLIENT_SECRET", "s3cr3tvalue"),
        ])
        .unwrap();
        assert_eq!(c.jwks_url(), "https://a.kinde.com/.well-known/jwks");
        let fixed = c.verifier().build().unwrap();
        assert_eq!(fixed.key_store().discovery_mode(), crate::Discovery::Off);
        let discovered = with(&[]).unwrap().verifier().build().unwrap();
        assert_eq!(
            discovered.key_store().discovery_mode(),
            crate::Discovery::Preferred
        );
        let debug = format!("{c:?}");
        assert!(debug.contains("id1") && !debug.contains("s3cr3tvalue"));
    }

    const BASE: [(&str, &str); 2] = [("KINDE_DOMAIN", "a.kinde.com"), ("KINDE_AUDIENCE", "api")];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<KindeConfig, ConfigError> {
        let vars: Vec<_> = BASE.iter().chain(extra).copied().collect();
        from(&vars)
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_settings_are_checked_and_the_password_never_shown() {
        let c = with(&[
            ("CLAIMCHECK_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0"),
            ("CLAIMCHECK_REDIS_PREFIX", "billing"),
        ])
        .unwrap();
        let redis = c.redis().unwrap().unwrap();
        assert_eq!(redis.key_prefix(), "billing");
        let debug = format!("{c:?}");
        assert!(
            debug.contains("billing") && !debug.contains("hunter2"),
            "{debug}"
        );
        for bad in [
            "127.0.0.1:6379",
            "http://:hunter2@host/",
            "redis://[::1",
            "rediss://:hunter2@host/",
        ] {
            let err = with(&[("CLAIMCHECK_REDIS_URL", bad)]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("CLAIMCHECK_REDIS_URL") && !text.contains("hunter2"),
                "{text}"
            );
        }
        let spaced = with(&[
            ("CLAIMCHECK_REDIS_URL", "redis://127.0.0.1/"),
            ("CLAIMCHECK_REDIS_PREFIX", "my app"),
        ]);
        assert!(
            spaced
                .unwrap_err()
                .to_string()
                .contains("CLAIMCHECK_REDIS_PREFIX")
        );
        assert_eq!(
            with(&[("CLAIMCHECK_REDIS_PREFIX", "billing")]).unwrap_err(),
            ConfigError::Missing("CLAIMCHECK_REDIS_URL")
        );
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_redis_url_without_the_feature_is_an_error_not_ignored() {
        let err = with(&[("CLAIMCHECK_REDIS_URL", "redis://127.0.0.1/")]).unwrap_err();
        assert!(err.to_string().contains("`redis` feature"), "{err}");
    }
}
