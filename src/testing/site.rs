//! Where the fake serves its discovery documents and its JWKS, and what the documents say:
//! Kinde's layout by default, or a generic issuer's (a path or a trailing `/` in the issuer, the
//! JWKS at another path, RFC 8414's document only, a document naming another issuer).

use std::sync::RwLock;

use serde_json::{Value, json};

use super::server::Endpoint;

/// Which discovery documents the fake serves (the others answer 404).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryDocuments {
    /// OpenID Connect's `{issuer}/.well-known/openid-configuration` only, as Kinde. The default.
    OpenId,
    /// RFC 8414's `/.well-known/oauth-authorization-server{issuer path}` only.
    OAuthServer,
    /// Both.
    Both,
    /// Neither.
    Neither,
}

/// What the fake answers on one of its site's paths.
pub(crate) enum Route {
    /// The JWKS.
    Jwks,
    /// This discovery document.
    Document(Value),
    /// 404: a document it does not serve.
    Missing,
}

pub(crate) struct Site {
    /// `http://127.0.0.1:<port>`.
    origin: String,
    /// The issuer's path without trailing `/`: `""` or `/tenant`.
    issuer_path: String,
    settings: RwLock<Settings>,
}

pub(crate) struct Settings {
    /// Where the JWKS is served (`None`: Kinde's `/.well-known/jwks` and `/.well-known/jwks.json`
    /// after the issuer's path).
    pub(crate) jwks_path: Option<String>,
    pub(crate) documents: DiscoveryDocuments,
    /// The `issuer` the documents name (`None`: the fake's own).
    pub(crate) issuer_named: Option<String>,
}

impl Site {
    pub(crate) fn new(origin: String, issuer_path: String, settings: Settings) -> Self {
        Self {
            origin,
            issuer_path,
            settings: RwLock::new(settings),
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.settings.write().unwrap_or_else(|e| e.into_inner()));
    }

    fn with<T>(&self, read: impl FnOnce(&Settings) -> T) -> T {
        read(&self.settings.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn oidc_path(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer_path)
    }

    fn oauth_server_path(&self) -> String {
        format!(
            "/.well-known/oauth-authorization-server{}",
            self.issuer_path
        )
    }

    /// The URL of the JWKS the documents name.
    pub(crate) fn jwks_uri(&self) -> String {
        let path = self.with(|s| s.jwks_path.clone());
        let path = path.unwrap_or_else(|| format!("{}/.well-known/jwks", self.issuer_path));
        format!("{}{path}", self.origin)
    }

    /// A URL the JWKS is served at: the `jwks_path`, or Kinde's `/.well-known/jwks.json`.
    pub(crate) fn jwks_url(&self) -> String {
        match self.with(|s| s.jwks_path.clone()) {
            Some(path) => format!("{}{path}", self.origin),
            None => format!("{}{}/.well-known/jwks.json", self.origin, self.issuer_path),
        }
    }

    /// Which endpoint `path` is, if it is one of the site's.
    pub(crate) fn endpoint(&self, path: &str) -> Option<Endpoint> {
        let jwks = match self.with(|s| s.jwks_path.clone()) {
            Some(jwks_path) => path == jwks_path,
            None => path
                .strip_prefix(self.issuer_path.as_str())
                .is_some_and(|rest| {
                    rest == "/.well-known/jwks" || rest == "/.well-known/jwks.json"
                }),
        };
        if jwks {
            Some(Endpoint::Jwks)
        } else if path == self.oidc_path() || path == self.oauth_server_path() {
            Some(Endpoint::Discovery)
        } else {
            None
        }
    }

    /// What to answer on `path` for the fake whose issuer is `issuer`, if it is the site's.
    pub(crate) fn route(&self, path: &str, issuer: &str) -> Option<Route> {
        match self.endpoint(path)? {
            Endpoint::Jwks => Some(Route::Jwks),
            _ => {
                let oidc = path == self.oidc_path();
                let served = self.with(|s| match s.documents {
                    DiscoveryDocuments::OpenId => oidc,
                    DiscoveryDocuments::OAuthServer => !oidc,
                    DiscoveryDocuments::Both => true,
                    DiscoveryDocuments::Neither => false,
                });
                Some(if served {
                    Route::Document(self.document(issuer))
                } else {
                    Route::Missing
                })
            }
        }
    }

    /// The discovery document, with Kinde's members.
    fn document(&self, issuer: &str) -> Value {
        let named = self.with(|s| s.issuer_named.clone());
        let base = &self.origin;
        json!({
            "issuer": named.as_deref().unwrap_or(issuer),
            "authorization_endpoint": format!("{base}/oauth2/auth"),
            "token_endpoint": format!("{base}/oauth2/token"),
            "jwks_uri": self.jwks_uri(),
            "userinfo_endpoint": format!("{base}/oauth2/v2/user_profile"),
            "end_session_endpoint": format!("{base}/logout"),
            "introspection_endpoint": format!("{base}/oauth2/introspect"),
            "revocation_endpoint": format!("{base}/oauth2/revoke"),
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }
}
