//! [`FakeKindeBuilder`]: a fake started as Kinde (the default) or as another issuer.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::server::{self, State};
use super::site::{DiscoveryDocuments, Settings, Site};
use super::{DEFAULT_AUDIENCE, FakeKinde};

/// Starts a [`FakeKinde`] laid out as Kinde, or as a generic OpenID provider: an issuer with a
/// path or a trailing `/`, the JWKS at a path of its own (named by the discovery document's
/// `jwks_uri`), RFC 8414's discovery document instead of OpenID Connect's, a document naming
/// another issuer.
///
/// ```
/// use claimcheck::testing::{DiscoveryDocuments, FakeKinde};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let issuer = FakeKinde::builder()
///     .issuer_path("/tenant")
///     .issuer_trailing_slash()
///     .jwks_path("/oauth/keys")
///     .discovery(DiscoveryDocuments::OAuthServer)
///     .start()
///     .await;
/// assert!(issuer.issuer().ends_with("/tenant/"));
/// assert!(issuer.jwks_uri().ends_with("/oauth/keys"));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeKindeBuilder {
    audience: String,
    issuer_path: String,
    trailing_slash: bool,
    jwks_path: Option<String>,
    documents: DiscoveryDocuments,
    issuer_named: Option<String>,
}

impl FakeKinde {
    /// A fake to configure before starting; [`FakeKinde::start`] is `builder().start()`.
    pub fn builder() -> FakeKindeBuilder {
        FakeKindeBuilder {
            audience: DEFAULT_AUDIENCE.to_owned(),
            issuer_path: String::new(),
            trailing_slash: false,
            jwks_path: None,
            documents: DiscoveryDocuments::OpenId,
            issuer_named: None,
        }
    }

    /// Serves the JWKS at `path` (origin-relative, `/oauth/keys`) from now on, and the discovery
    /// documents name it; the previous JWKS paths answer 404.
    pub fn set_jwks_path(&self, path: &str) {
        let path = absolute(path);
        self.state.site.update(|s| s.jwks_path = Some(path));
    }

    /// Makes the discovery documents name `issuer` (`None`: the fake's own issuer again).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        self.state
            .site
            .update(|s| s.issuer_named = issuer.map(str::to_owned));
    }

    /// The `jwks_uri` the discovery documents name: `{origin}{jwks path}`, by default
    /// `{issuer}/.well-known/jwks` as Kinde's.
    pub fn jwks_uri(&self) -> String {
        self.state.site.jwks_uri()
    }
}

impl FakeKindeBuilder {
    /// The audience of user tokens. Default [`DEFAULT_AUDIENCE`].
    pub fn audience(mut self, audience: &str) -> Self {
        audience.clone_into(&mut self.audience);
        self
    }

    /// A path in the issuer: `http://127.0.0.1:<port>/tenant` for `/tenant`. The discovery
    /// documents and Kinde's JWKS paths follow it; the Kinde APIs stay at the root.
    pub fn issuer_path(mut self, path: &str) -> Self {
        self.issuer_path = absolute(path.trim_end_matches('/'));
        if self.issuer_path == "/" {
            self.issuer_path.clear();
        }
        self
    }

    /// A trailing `/` in the issuer, as several providers issue (`http://127.0.0.1:<port>/`):
    /// in the tokens' `iss` and the documents' `issuer`.
    pub fn issuer_trailing_slash(mut self) -> Self {
        self.trailing_slash = true;
        self
    }

    /// Serves the JWKS at `path` (origin-relative) only, named by the documents' `jwks_uri`;
    /// Kinde's JWKS paths answer 404.
    pub fn jwks_path(mut self, path: &str) -> Self {
        self.jwks_path = Some(absolute(path));
        self
    }

    /// Which discovery documents are served. Default [`DiscoveryDocuments::OpenId`].
    pub fn discovery(mut self, documents: DiscoveryDocuments) -> Self {
        self.documents = documents;
        self
    }

    /// The `issuer` the discovery documents name, instead of the fake's own.
    pub fn discovery_issuer(mut self, issuer: &str) -> Self {
        self.issuer_named = Some(issuer.to_owned());
        self
    }

    /// Starts the fake on `127.0.0.1:<random port>`, with one fresh RSA-2048 key.
    pub async fn start(self) -> FakeKinde {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let origin = format!("http://{addr}");
        let slash = if self.trailing_slash { "/" } else { "" };
        let issuer = format!("{origin}{}{slash}", self.issuer_path);
        let settings = Settings {
            jwks_path: self.jwks_path,
            documents: self.documents,
            issuer_named: self.issuer_named,
        };
        let site = Site::new(origin, self.issuer_path, settings);
        let state = Arc::new(State::new(issuer, self.audience, site));
        let task = tokio::spawn(server::serve(listener, state.clone()));
        FakeKinde { state, addr, task }
    }
}

/// `path` with a leading `/`.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}
