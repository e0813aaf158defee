//! [`VerifierBuilder`]: every verification setting, with its default.

use std::time::Duration;

use super::Verifier;
use super::algorithm::Algorithm;
use super::cache::TokenCache;
use super::diagnose::Diagnosis;
use super::discovery::{Discovery, Locator};
use super::keys::{KeyStore, KeyTiming};
use super::source::{FetchLimits, HttpJwksSource};
use super::verifier::Inner;
use crate::bearer::DEFAULT_MAX_TOKEN_BYTES;
use crate::claims::Profile;
use crate::error::ConfigError;

/// Largest clock skew tolerated.
const MAX_LEEWAY: Duration = Duration::from_secs(3600);
/// Longest JWKS timing (refresh interval, cooldowns).
const MAX_TIMING: Duration = Duration::from_secs(24 * 3600);

/// Default byte budget of the verified-token cache.
const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Default weight above which a verified token is not cached.
const DEFAULT_CACHE_ENTRY_BYTES: u32 = 256 * 1024;

/// How the JWKS is located when neither [`VerifierBuilder::discovery`] nor
/// [`VerifierBuilder::jwks_url`] says: the one place that decides it. Kinde keeps its
/// documented JWKS path unless its discovery document names exactly this issuer; any other
/// issuer's keys are where its discovery document says.
fn default_discovery(profile: &Profile) -> Discovery {
    if profile.is_kindes() {
        Discovery::Preferred
    } else {
        Discovery::Required
    }
}

/// Builds a [`Verifier`].
///
/// ```
/// use std::time::Duration;
/// use claimcheck::Verifier;
///
/// let verifier = Verifier::builder("https://example.kinde.com")
///     .audience("my-api")
///     .leeway(Duration::from_secs(10))
///     .build()
///     .expect("valid settings");
/// assert_eq!(verifier.issuer(), "https://example.kinde.com");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    jwks_url: Option<String>,
    discovery: Option<Discovery>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_token_age: Option<Duration>,
    max_token_bytes: usize,
    cache_max_bytes: u64,
    cache_max_entry_bytes: u32,
    cache_max_ttl: Duration,
    timing: KeyTiming,
    limits: FetchLimits,
    profile: Profile,
    others: Vec<Verifier>,
}

impl Verifier {
    /// Starts a verifier for tokens issued by `issuer` (for Kinde `https://<sub>.kinde.com`,
    /// or your custom domain), compared with each token's `iss` exactly as given: a trailing
    /// `/` is meaningful (OpenID Connect Discovery §4.3), as some issuers put one in `iss`.
    /// URLs built on it (the default JWKS location) work with either form.
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            jwks_url: None,
            discovery: None,
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(30),
            max_token_age: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            cache_max_bytes: DEFAULT_CACHE_BYTES,
            cache_max_entry_bytes: DEFAULT_CACHE_ENTRY_BYTES,
            cache_max_ttl: Duration::from_secs(600),
            timing: KeyTiming {
                cooldown: Duration::from_secs(30),
                cold_retry: Duration::from_secs(1),
                negative_ttl: Duration::from_secs(5),
                refresh_interval: Duration::from_secs(600),
                // Set by `build` from the fetch timeout.
                fetch_deadline: Duration::ZERO,
            },
            limits: FetchLimits {
                connect_timeout: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
                max_body_bytes: 256 * 1024,
            },
            profile: Profile::kinde(),
            others: Vec::new(),
        }
    }
}

impl VerifierBuilder {
    /// Adds an accepted audience. At least one is required: a token's `aud` must contain one of
    /// them (this is what keeps ID tokens and other APIs' tokens out).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Adds several accepted audiences.
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// A fixed JWKS URL (`https://`, or `http://` to a loopback host). Setting it turns
    /// [`discovery`](Self::discovery) off unless that is set too (then it is
    /// [`Discovery::Preferred`]'s fallback). Default: `{issuer}/.well-known/jwks.json` (any
    /// trailing `/` of the issuer removed first), used when discovery is off or falls back.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Whether the JWKS location is read from the issuer's discovery document (see
    /// [`Discovery`] for the rules). Default: [`Discovery::Preferred`] with Kinde's
    /// [`profile`](Self::profile) (the default), [`Discovery::Required`] with any other
    /// ([`Profile::rfc9068`]), and [`Discovery::Off`] when [`jwks_url`](Self::jwks_url) is set.
    ///
    /// The document is `{issuer}/.well-known/openid-configuration`, or when that answers 404,
    /// RFC 8414's `oauth-authorization-server` metadata; it is used only when its `issuer` is
    /// byte for byte the configured issuer (a trailing `/` counts) and its `jwks_uri` is
    /// `https://` (or `http://` to a loopback host). It is read before each fetch of the key
    /// set (one more request per refresh), with the JWKS's client: the
    /// [`jwks_timeouts`](Self::jwks_timeouts), no redirects, and at most 64 KiB. A failure
    /// is logged at `warn` with the document's URL and the reason; with
    /// [`Discovery::Required`] it means no keys until keys were once fetched (503), and the
    /// last good keys after.
    ///
    /// ```
    /// use claimcheck::{Discovery, Verifier};
    ///
    /// let verifier = Verifier::builder("https://login.example.com/")
    ///     .audience("my-api")
    ///     .discovery(Discovery::Required)
    ///     .build()?;
    /// // No JWKS URL until the discovery document names one.
    /// assert_eq!(verifier.key_store().jwks_url(), None);
    /// # Ok::<(), claimcheck::ConfigError>(())
    /// ```
    pub fn discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// The accepted signature algorithms, replacing the default `[RS256]` (Kinde signs with
    /// RS256 only; other issuers may sign with `ES256`, `ES384` or `EdDSA`, opted into here).
    ///
    /// Each algorithm verifies only with its own kind of key (see [`Algorithm`]): a token is
    /// refused, before any signature work, when its key's type or curve is not the one its
    /// `alg` needs, or when the key's JWK names another `alg`. The JWKS keeps only keys some
    /// accepted algorithm can use (the others are dropped with their reason at `warn`); a set
    /// with keys but none usable, an EC-only JWKS with the default `[RS256]` say, is a `warn`
    /// naming what it holds (`algorithms_found = "ES256 (EC P-256)"`), and the startup check
    /// [`Auth::preflight`](crate::Auth::preflight) fails with the same words.
    ///
    /// ```
    /// use claimcheck::Verifier;
    /// use claimcheck::jwt::Algorithm;
    ///
    /// let verifier = Verifier::builder("https://issuer.example")
    ///     .audience("my-api")
    ///     .algorithms([Algorithm::ES256, Algorithm::EdDSA])
    ///     .build()
    ///     .expect("valid settings");
    /// assert_eq!(verifier.algorithms(), [Algorithm::ES256, Algorithm::EdDSA]);
    /// ```
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How this issuer's tokens are read: where permissions are, what marks a machine token,
    /// whether a claim a token lacks is asked live. Default [`Profile::kinde`]; use
    /// [`Profile::rfc9068`] for other issuers (see [`Profile`]).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Also accepts tokens from `other`'s issuer (and from every issuer `other` accepts), each
    /// verified with that verifier's own keys, audiences, algorithms, profile and limits: one
    /// authentication layer for several tenants, or for a migration from one to another.
    ///
    /// Each token goes to the issuer its `iss` names exactly, read before any signature work:
    /// a token naming no configured issuer is refused (401) without a key lookup or JWKS fetch,
    /// and a token is only ever checked with the keys of the issuer it names (issuer A's token
    /// with a key id of issuer B's is an unknown key to A). With one issuer, nothing is read
    /// ahead. [`build`](Self::build) fails if an issuer is configured twice (compared exactly:
    /// a trailing `/` makes another issuer) or there are more than 64. Kinde webhooks are
    /// verified with the keys of the first issuer with Kinde's profile only (another issuer
    /// could otherwise sign Kinde change events).
    ///
    /// ```
    /// use claimcheck::Verifier;
    /// use claimcheck::claims::Profile;
    ///
    /// let old_tenant = Verifier::builder("https://old.example.com/")
    ///     .profile(Profile::rfc9068())
    ///     .audience("my-api")
    ///     .build()?;
    /// let verifier = Verifier::builder("https://example.kinde.com")
    ///     .audience("my-api")
    ///     .other_issuer(old_tenant)
    ///     .build()?;
    /// let issuers: Vec<&str> = verifier.issuers().collect();
    /// assert_eq!(issuers, ["https://example.kinde.com", "https://old.example.com/"]);
    /// # Ok::<(), claimcheck::ConfigError>(())
    /// ```
    pub fn other_issuer(mut self, other: Verifier) -> Self {
        self.others.push(other);
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 30 s; at most 1 h.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuses tokens issued (`iat`) more than `age` ago, whatever their `exp` says (401,
    /// "expired"), as `express-oauth2-jwt-bearer`'s `maxTokenAge` does; tokens without `iat` are
    /// then refused too. Off by default: Kinde's 24 h `exp` decides.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = Some(age);
        self
    }

    /// Largest token accepted, in bytes. Default 8 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Memory the verified-token cache may use, in bytes of what its entries really hold (the
    /// token, its parsed claims and the cache's bookkeeping, counted twice to cover the
    /// allocator's fragmentation once it evicts; a typical Kinde token weighs about 6 KiB, an
    /// 8 KiB token with 1 300 permissions about 180 KiB). 0 turns the cache off. Default 64 MiB.
    pub fn token_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// A verified token weighing more than this (see
    /// [`token_cache_max_bytes`](Self::token_cache_max_bytes)) is not cached: it is verified on
    /// every request instead of crowding out others. Default 256 KiB.
    pub fn token_cache_max_entry_bytes(mut self, bytes: u32) -> Self {
        self.cache_max_entry_bytes = bytes;
        self
    }

    /// How many verified tokens to remember, counted as 4 KiB each (0 turns the cache off).
    #[deprecated(
        since = "0.2.0",
        note = "the cache is bounded in bytes now: use `token_cache_max_bytes`"
    )]
    pub fn token_cache_capacity(self, capacity: u64) -> Self {
        self.token_cache_max_bytes(capacity.saturating_mul(4096))
    }

    /// Longest a verified token is remembered (never past its `exp`). Default 10 min.
    pub fn token_cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.cache_max_ttl = ttl;
        self
    }

    /// After a JWKS fetch, an unknown kid causes no new fetch for this long. Default 30 s; at
    /// most 24 h (as every JWKS timing).
    pub fn jwks_refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.timing.cooldown = cooldown;
        self
    }

    /// While no key set was ever obtained, how often a request may retry the fetch. Default 1 s.
    pub fn jwks_cold_retry(mut self, retry: Duration) -> Self {
        self.timing.cold_retry = retry;
        self
    }

    /// How long a kid that was unknown after a fetch is answered from memory. Default 5 s.
    pub fn unknown_kid_ttl(mut self, ttl: Duration) -> Self {
        self.timing.negative_ttl = ttl;
        self
    }

    /// Age after which the key set is refreshed in the background. Default 10 min.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.timing.refresh_interval = interval;
        self
    }

    /// Connect and total timeouts of each request of a JWKS fetch (the discovery document's
    /// too). Defaults 2 s and 5 s.
    pub fn jwks_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.limits.connect_timeout = connect;
        self.limits.timeout = total;
        self
    }

    /// Largest JWKS document accepted, in bytes. Default 256 KiB.
    pub fn jwks_max_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_body_bytes = bytes;
        self
    }

    /// Checks the settings and builds the verifier. No network traffic happens here; call
    /// [`Verifier::warm_up`] to fetch the keys before serving.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let issuer = self.issuer;
        let issuer_url = crate::upstream::check_url("issuer", &issuer)?;
        let discovery = match (self.discovery, &self.jwks_url) {
            (Some(Discovery::Required), Some(_)) => {
                let reason = "unused with `Discovery::Required`: set one or the other";
                return Err(ConfigError::invalid("jwks_url", reason));
            }
            (Some(discovery), _) => discovery,
            (None, Some(_)) => Discovery::Off,
            (None, None) => default_discovery(&self.profile),
        };
        let jwks_url = self
            .jwks_url
            .unwrap_or_else(|| crate::upstream::default_jwks_url(&issuer));
        let jwks_url = crate::upstream::check_url("jwks_url", &jwks_url)?;
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::Missing("audience"));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "algorithms",
                "at least one is required",
            ));
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::invalid("max_token_bytes", "must be positive"));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::invalid(
                "leeway",
                "at most 1 h: clocks further apart than that are broken",
            ));
        }
        let timing = &self.timing;
        let timings = [
            ("jwks_refetch_cooldown", timing.cooldown),
            ("jwks_cold_retry", timing.cold_retry),
            ("unknown_kid_ttl", timing.negative_ttl),
            ("jwks_refresh_interval", timing.refresh_interval),
        ];
        if let Some((setting, _)) = timings.iter().find(|(_, d)| *d > MAX_TIMING) {
            return Err(ConfigError::invalid(setting, "at most 24 h"));
        }
        let locator = Locator::new(discovery, issuer.clone(), issuer_url, jwks_url);
        let source = HttpJwksSource::new(locator, &self.limits, self.algorithms.clone())
            .map_err(|e| ConfigError::invalid("jwks http client", e.to_string()))?;
        // A fetch is abandoned a second past the HTTP timeouts of its requests (an hour at
        // most): the JWKS, after up to two discovery documents (RFC 8414's after a 404).
        let requests = if discovery == Discovery::Off { 1 } else { 3 };
        let timing = KeyTiming {
            fetch_deadline: (self.limits.timeout.saturating_mul(requests))
                .saturating_add(Duration::from_secs(1))
                .min(Duration::from_secs(3600)),
            ..self.timing
        };
        let leeway = self.leeway.as_secs();
        let cache = (self.cache_max_bytes > 0).then(|| {
            TokenCache::new(
                self.cache_max_bytes,
                self.cache_max_entry_bytes,
                self.cache_max_ttl,
            )
        });
        let others = super::issuers::flatten(&issuer, self.others)?;
        Ok(Verifier::from_inner(
            Inner {
                issuer,
                audiences: self.audiences,
                algorithms: self.algorithms,
                leeway,
                max_token_age: self.max_token_age.map(|age| age.as_secs()),
                max_token_bytes: self.max_token_bytes,
                keys: KeyStore::new(source, timing),
                cache,
                diagnosis: Diagnosis::default(),
                profile: self.profile,
            },
            others,
        ))
    }
}

#[cfg(test)]
mod tests;
