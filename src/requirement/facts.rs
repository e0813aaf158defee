//! What deciding a [`Requirement`](super::Requirement) takes: [`Needs`] (which kinds of facts)
//! and [`Facts`] (where they are read from), with the token's own claims as [`TokenFacts`].

use crate::claims::{Claims, FeatureFlag};

/// The kinds of facts a requirement names, besides the organization (always the token's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs(u8);

impl Needs {
    pub(crate) const NOTHING: Self = Self(0);
    pub(crate) const PERMISSIONS: Self = Self(1);
    pub(crate) const ROLES: Self = Self(2);
    pub(crate) const FLAGS: Self = Self(4);

    /// Both.
    pub(crate) const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every kind `other` names is named here.
    pub(crate) const fn covers(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether nothing is named.
    pub(crate) const fn is_nothing(self) -> bool {
        self.0 == 0
    }
}

/// Facts a requirement is decided on.
pub(crate) trait Facts {
    /// Whether the caller holds the permission `key`.
    fn has_permission(&self, key: &str) -> bool;
    /// Whether the caller holds the role `key`.
    fn has_role(&self, key: &str) -> bool;
    /// The organization the caller's token is for.
    fn org_code(&self) -> Option<&str>;
    /// Whether the boolean feature flag `key` is on for the caller.
    fn flag_is_on(&self, key: &str) -> bool;
}

/// The verified token's claims as facts: `permissions` (`scp` for machine tokens), `roles`,
/// `org_code` and `feature_flags`. A claim that is absent holds nothing.
pub(crate) struct TokenFacts<'a> {
    claims: &'a Claims,
    machine: bool,
}

impl<'a> TokenFacts<'a> {
    #[inline]
    pub(crate) fn of(claims: &'a Claims) -> Self {
        Self {
            claims,
            machine: claims.is_machine(),
        }
    }

    /// Whether the token is a machine-to-machine token.
    pub(crate) fn is_machine(&self) -> bool {
        self.machine
    }

    /// The claims.
    pub(crate) fn claims(&self) -> &'a Claims {
        self.claims
    }

    /// Whether this user token lacks a claim `needs` names (Kinde lets workflows strip
    /// `permissions` and `feature_flags`; `roles` is opt-in): those can only be known live.
    /// Machine tokens lack nothing: they have no live facts.
    #[inline]
    pub(crate) fn lacks(&self, needs: Needs) -> bool {
        let claims = self.claims;
        if self.machine {
            return false;
        }
        (needs.covers(Needs::PERMISSIONS) && claims.permissions().is_none())
            || (needs.covers(Needs::ROLES) && !claims.has_roles_claim())
            || (needs.covers(Needs::FLAGS) && !claims.has_feature_flags_claim())
    }
}

impl Facts for TokenFacts<'_> {
    #[inline]
    fn has_permission(&self, key: &str) -> bool {
        let claims = self.claims;
        if self.machine {
            claims.scopes().iter().any(|scope| scope == key)
        } else {
            claims
                .permissions()
                .is_some_and(|granted| granted.iter().any(|p| p.as_str() == key))
        }
    }

    fn has_role(&self, key: &str) -> bool {
        self.claims.roles().iter().any(|role| role.key == key)
    }

    fn org_code(&self) -> Option<&str> {
        self.claims.org_code()
    }

    fn flag_is_on(&self, key: &str) -> bool {
        matches!(self.claims.feature_flag(key), Some(FeatureFlag::Bool(true)))
    }
}
