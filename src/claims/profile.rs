//! [`Profile`]: how one issuer's access tokens are read.

use std::sync::Arc;

use super::repr::{Repr, one_or_many_text};

/// Where a user token's permissions are read from. See [`Profile`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionsClaim {
    /// `permissions`, an array of strings (Kinde's, and Auth0's with RBAC), or Kinde's
    /// `x-hasura-permissions`.
    Permissions,
    /// The OAuth scopes: `scope` (space-separated, RFC 9068 §2.2.3) when present, else `scp`
    /// (a string or an array).
    Scope,
    /// A claim of this name: an array of strings, or one space-separated string. Any other
    /// type makes the token invalid (401), as a mistyped `permissions` does.
    Claim(String),
}

/// A way an issuer marks a machine-to-machine (client credentials) token. A token is a
/// machine's when any of the profile's rules matches. See [`Profile`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineToken {
    /// `gty` contains `client_credentials` (Kinde).
    KindeGrantType,
    /// `sub` equals `client_id`: the client acting for itself (RFC 9068 §2.2, as several
    /// providers issue client-credentials tokens).
    SubjectIsClient,
    /// `gty` is `client-credentials` and `sub` ends with `@clients` (Auth0).
    Auth0ClientCredentials,
}

/// How one issuer's access tokens are read. Set per verifier with
/// [`VerifierBuilder::profile`](crate::jwt::VerifierBuilder::profile).
///
/// Kinde and RFC 9068 issuers agree on the signature and the registered claims, and differ on
/// the rest: where a user's permissions are, what marks a machine-to-machine token, and whether
/// a permission a token does not carry can be asked of a live API. A profile says it once per
/// issuer, at verification; [`Claims::permissions`](crate::Claims::permissions) and
/// [`Claims::is_machine`](crate::Claims::is_machine) then answer the profile's way.
///
/// | | [`Profile::kinde`] (the default) | [`Profile::rfc9068`] |
/// | --- | --- | --- |
/// | a user's permissions | `permissions` (or `x-hasura-permissions`) | `scope` (space-separated), else `scp` |
/// | a machine token | `gty` contains `client_credentials` | `sub` equals `client_id`; or Auth0's `gty: client-credentials` with `sub` ending in `@clients`; or Kinde's `gty` |
/// | a machine's permissions | its scopes (`scp` or `scope`) | its scopes |
/// | a claim the token lacks | asked live, when the route has a live check | not held: 403 |
/// | a token issued before a change (webhook, invalidation) | decided live | decided from the token |
///
/// ```
/// use claimcheck::Verifier;
/// use claimcheck::claims::{MachineToken, PermissionsClaim, Profile};
///
/// // Auth0 with RBAC: permissions in `permissions`, machines as Auth0 marks them.
/// let auth0 = Profile::rfc9068()
///     .permissions_from(PermissionsClaim::Permissions)
///     .machine_tokens([MachineToken::Auth0ClientCredentials]);
/// let verifier = Verifier::builder("https://tenant.eu.auth0.com/")
///     .profile(auth0)
///     .audience("https://api.example.com")
///     .build()?;
/// # Ok::<(), claimcheck::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Built from [`Profile::kinde`] (whatever was changed since).
    kindes: bool,
    permissions: PermissionsClaim,
    machines: Arc<[MachineToken]>,
    live_lookups: bool,
}

impl Default for Profile {
    /// [`Profile::kinde`].
    fn default() -> Self {
        Self::kinde()
    }
}

/// What a profile made of a token's claims.
pub(crate) struct Reading {
    pub(crate) machine: bool,
    pub(crate) live_lookups: bool,
}

impl Profile {
    /// Kinde's tokens: permissions in `permissions`, machines marked by `gty`, and users looked
    /// up live when their token cannot be trusted alone (Kinde lets workflows strip
    /// `permissions` and `feature_flags`, and adds `roles` only when asked).
    pub fn kinde() -> Self {
        Self {
            kindes: true,
            permissions: PermissionsClaim::Permissions,
            machines: Arc::new([MachineToken::KindeGrantType]),
            live_lookups: true,
        }
    }

    /// RFC 9068 JWT access tokens from any standards-compliant issuer: permissions are the
    /// token's `scope`, a machine token is recognised by every [`MachineToken`] rule, and no
    /// live lookups (the issuer has no Kinde API to ask): a claim the token lacks is not held.
    pub fn rfc9068() -> Self {
        Self {
            kindes: false,
            permissions: PermissionsClaim::Scope,
            machines: Arc::new([
                MachineToken::SubjectIsClient,
                MachineToken::Auth0ClientCredentials,
                MachineToken::KindeGrantType,
            ]),
            live_lookups: false,
        }
    }

    /// Reads a user's permissions from `claim`.
    pub fn permissions_from(self, claim: PermissionsClaim) -> Self {
        Self {
            permissions: claim,
            ..self
        }
    }

    /// Recognises machine tokens by these rules (any of them). None: every token is a user's.
    pub fn machine_tokens(self, rules: impl IntoIterator<Item = MachineToken>) -> Self {
        Self {
            machines: rules.into_iter().collect(),
            ..self
        }
    }

    /// Whether token-trusted routes look this issuer's users up live (with the route's live
    /// fallback) when their token cannot be trusted alone: for a claim the token lacks
    /// (`permissions`, `roles`, `feature_flags`), and for a token issued before a change the
    /// application was told of (a Kinde webhook, [`Auth::invalidate_user`](crate::Auth::invalidate_user)).
    /// Kinde: `true`. Off (the [`rfc9068`](Self::rfc9068) preset), what a token lacks is not
    /// held (403), and the token's claims decide however old: such changes concern the Kinde
    /// business the application's webhooks and live source belong to, not this issuer (strict
    /// routes ask their live check whatever this says).
    pub fn live_lookups(self, ask: bool) -> Self {
        Self {
            live_lookups: ask,
            ..self
        }
    }

    /// Whether this profile was built from [`Profile::kinde`]: the issuer is a Kinde business,
    /// whose JWKS is at its documented path unless discovery says otherwise.
    pub(crate) fn is_kindes(&self) -> bool {
        self.kindes
    }

    /// Where a user's permissions are read from.
    pub fn permissions_claim(&self) -> &PermissionsClaim {
        &self.permissions
    }

    /// Applies the profile to verified claims: `repr`'s permissions become the profile's, and
    /// the reading says whether the token is a machine's. `payload` is the claims set's JSON
    /// text, read again only for a custom permissions claim. Err: a mistyped custom claim.
    pub(crate) fn read(&self, repr: &mut Repr, payload: &str) -> Result<Reading, &'static str> {
        match &self.permissions {
            PermissionsClaim::Permissions => {}
            PermissionsClaim::Scope => repr.permissions = repr.scopes_if_present(),
            PermissionsClaim::Claim(name) => repr.permissions = custom_claim(payload, name)?,
        }
        let machine = self.machines.iter().any(|rule| rule.matches(repr));
        Ok(Reading {
            machine,
            live_lookups: self.live_lookups,
        })
    }
}

impl MachineToken {
    fn matches(self, repr: &Repr) -> bool {
        match self {
            Self::KindeGrantType => repr.gty.iter().any(|g| g == "client_credentials"),
            Self::SubjectIsClient => match (&repr.sub, &repr.client_id) {
                (Some(sub), Some(client)) => sub == client,
                _ => false,
            },
            Self::Auth0ClientCredentials => {
                repr.gty.iter().any(|g| g == "client-credentials")
                    && repr.sub.as_deref().is_some_and(|s| s.ends_with("@clients"))
            }
        }
    }
}

/// The custom claim `name` of `payload` as a list of strings; `None` when absent.
fn custom_claim(payload: &str, name: &str) -> Result<Option<Vec<String>>, &'static str> {
    let mut all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(payload).map_err(|_| "claims malformed")?;
    match all.remove(name) {
        None => Ok(None),
        Some(value) => one_or_many_text(value)
            .map(Some)
            .ok_or("permissions claim is not a string or an array of strings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(profile: &Profile, payload: &str) -> (Repr, Result<Reading, &'static str>) {
        let mut repr: Repr = serde_json::from_str(payload).unwrap();
        repr = repr.normalised();
        let reading = profile.read(&mut repr, payload);
        (repr, reading)
    }

    #[test]
    fn kinde_reads_permissions_and_gty() {
        let kinde = Profile::kinde();
        let (repr, reading) = read(
            &kinde,
            r#"{"iss":"i","exp":1,"sub":"kp_1","permissions":["a"],"scope":"openid"}"#,
        );
        assert_eq!(repr.permissions, Some(vec!["a".to_owned()]));
        assert!(!reading.unwrap().machine);
        let (_, reading) = read(
            &kinde,
            r#"{"iss":"i","exp":1,"gty":["client_credentials"],"scope":"x"}"#,
        );
        assert!(reading.unwrap().machine);
        // Kinde's rule only: a client acting for itself is a user to Kinde's profile.
        let (_, reading) = read(&kinde, r#"{"iss":"i","exp":1,"sub":"c","client_id":"c"}"#);
        assert!(!reading.unwrap().machine);
    }

    #[test]
    fn rfc9068_reads_scope_and_recognises_machines() {
        let generic = Profile::rfc9068();
        let (repr, reading) = read(
            &generic,
            r#"{"iss":"i","exp":1,"sub":"u1","client_id":"c","scope":"read:a write:b","permissions":["x"]}"#,
        );
        assert_eq!(
            repr.permissions,
            Some(vec!["read:a".to_owned(), "write:b".to_owned()])
        );
        let reading = reading.unwrap();
        assert!(!reading.machine);
        assert!(!reading.live_lookups);
        let (repr, _) = read(&generic, r#"{"iss":"i","exp":1,"sub":"u1"}"#);
        assert_eq!(repr.permissions, None, "no scope: no permissions");
        for machine in [
            r#"{"iss":"i","exp":1,"sub":"c","client_id":"c"}"#,
            r#"{"iss":"i","exp":1,"sub":"abc@clients","gty":"client-credentials"}"#,
        ] {
            assert!(read(&generic, machine).1.unwrap().machine, "{machine}");
        }
        for user in [
            r#"{"iss":"i","exp":1,"sub":"c","client_id":"d"}"#,
            r#"{"iss":"i","exp":1,"client_id":"c"}"#,
            r#"{"iss":"i","exp":1,"sub":"abc@clients"}"#,
            r#"{"iss":"i","exp":1,"sub":"abc","gty":"client-credentials"}"#,
        ] {
            assert!(!read(&generic, user).1.unwrap().machine, "{user}");
        }
        let nobody = generic.clone().machine_tokens([]);
        assert!(
            !read(&nobody, r#"{"iss":"i","exp":1,"sub":"c","client_id":"c"}"#)
                .1
                .unwrap()
                .machine
        );
    }

    #[test]
    fn a_custom_claim_is_a_list_or_a_string_and_nothing_else() {
        let custom = Profile::rfc9068().permissions_from(PermissionsClaim::Claim("perms".into()));
        let (repr, _) = read(&custom, r#"{"iss":"i","exp":1,"perms":["a","b"]}"#);
        assert_eq!(repr.permissions, Some(vec!["a".to_owned(), "b".to_owned()]));
        let (repr, _) = read(&custom, r#"{"iss":"i","exp":1,"perms":"a b"}"#);
        assert_eq!(repr.permissions, Some(vec!["a".to_owned(), "b".to_owned()]));
        let (repr, _) = read(&custom, r#"{"iss":"i","exp":1,"permissions":["a"]}"#);
        assert_eq!(repr.permissions, None);
        for bad in [r#"[1]"#, r#"{"a":1}"#, "true", r#"["a",1]"#] {
            let payload = format!(r#"{{"iss":"i","exp":1,"perms":{bad}}}"#);
            assert!(read(&custom, &payload).1.is_err(), "{bad}");
        }
    }
}
