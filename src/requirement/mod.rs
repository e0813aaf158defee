//! [`Requirement`]s: what a route (or a handler's check) needs of its caller, as a value.
//!
//! A requirement is a permission, a role, an organization, a boolean feature flag that is on,
//! or all-of / any-of other requirements. Built from constants, it is a constant, checked by
//! the compiler as [`Permission::from_static`] is:
//!
//! ```
//! use claimcheck::{Requirement, all_of, any_of};
//!
//! const READ_AUDIT: Requirement = Requirement::permission("read:audit");
//! const ADMIN_ALL: Requirement = Requirement::permission("admin:all");
//! const AUDIT: Requirement = any_of![READ_AUDIT, ADMIN_ALL];
//! const BETA: Requirement = Requirement::flag("beta");
//! const REFUNDS: Requirement = all_of![
//!     Requirement::permission("create:payments"),
//!     Requirement::permission("approve:refunds"),
//! ];
//!
//! assert_eq!(AUDIT.to_string(), "any of (read:audit, admin:all)");
//! assert_eq!(BETA.to_string(), "flag beta");
//! // Plain all-of permissions are what RFC 6750's `scope` can say; nothing else is.
//! assert_eq!(REFUNDS.scope().as_deref(), Some("create:payments approve:refunds"));
//! assert_eq!(AUDIT.scope(), None);
//! ```
//!
//! ```compile_fail
//! use claimcheck::Requirement;
//! const BAD: Requirement = Requirement::role("no spaces"); // rejected by the compiler
//! ```
//!
//! From run-time values, build them with [`Requirement::all`], [`Requirement::any`] and the
//! `try_` constructors. A [`Permission`] converts into a requirement, so every API that took
//! one permission takes it still.
//!
//! Where the facts come from is the route's business, not the requirement's: a token-trusted
//! route reads the token's `permissions`, `roles`, `org_code` and `feature_flags` claims; a
//! strict route asks the live source for permissions, roles and feature flags (only those its
//! requirement names), and takes the organization from the token, which is the organization
//! the live answers are for.

mod facts;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

pub(crate) use facts::{Facts, Needs, TokenFacts};

use crate::permission::{MAX_PERMISSION_LEN, Permission, is_valid};

/// What a route requires of its caller. See [`requirement`](self).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Requirement(Node);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Node {
    Permission(Permission),
    Role(Cow<'static, str>),
    Org(Cow<'static, str>),
    Flag(Cow<'static, str>),
    AllOf(Parts),
    AnyOf(Parts),
}

/// The parts of an all-of or any-of: borrowed for constants, shared otherwise (a clone is a
/// copy or a reference count, never an allocation).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Parts {
    Static(&'static [Requirement]),
    Shared(Arc<[Requirement]>),
}

impl std::ops::Deref for Parts {
    type Target = [Requirement];

    fn deref(&self) -> &[Requirement] {
        match self {
            Self::Static(parts) => parts,
            Self::Shared(parts) => parts,
        }
    }
}

/// A role key, feature-flag key or organization code that is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey(&'static str);

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} is 1 to {MAX_PERMISSION_LEN} characters from [A-Za-z0-9:_.-]",
            self.0
        )
    }
}

impl std::error::Error for InvalidKey {}

fn checked(what: &'static str, key: String) -> Result<Cow<'static, str>, InvalidKey> {
    if is_valid(&key) {
        Ok(Cow::Owned(key))
    } else {
        Err(InvalidKey(what))
    }
}

impl Requirement {
    /// The permission `key` (`read:reports`). Invalid input fails to compile in a `const`, and
    /// panics at run time otherwise; see [`Permission::new`] for run-time input.
    pub const fn permission(key: &'static str) -> Self {
        Self(Node::Permission(Permission::from_static(key)))
    }

    /// The role `key` (`admin`), as in the token's `roles` claim. Checked as
    /// [`permission`](Self::permission) is.
    pub const fn role(key: &'static str) -> Self {
        assert!(
            is_valid(key),
            "invalid role key: use 1 to 128 characters from [A-Za-z0-9:_.-]"
        );
        Self(Node::Role(Cow::Borrowed(key)))
    }

    /// Membership of the organization `code`: the token is for that organization (its
    /// `org_code`). Checked as [`permission`](Self::permission) is.
    pub const fn org(code: &'static str) -> Self {
        assert!(
            is_valid(code),
            "invalid organization code: use 1 to 128 characters from [A-Za-z0-9:_.-]"
        );
        Self(Node::Org(Cow::Borrowed(code)))
    }

    /// The boolean feature flag `key` is on (a flag that is off, absent or not boolean does
    /// not meet it). Checked as [`permission`](Self::permission) is.
    pub const fn flag(key: &'static str) -> Self {
        assert!(
            is_valid(key),
            "invalid feature flag key: use 1 to 128 characters from [A-Za-z0-9:_.-]"
        );
        Self(Node::Flag(Cow::Borrowed(key)))
    }

    /// Every one of `parts` (an empty list is always met). For constants; the
    /// [`all_of!`](crate::all_of) macro builds the list in place.
    pub const fn all_of(parts: &'static [Requirement]) -> Self {
        Self(Node::AllOf(Parts::Static(parts)))
    }

    /// At least one of `parts` (an empty list is never met). For constants; the
    /// [`any_of!`](crate::any_of) macro builds the list in place.
    pub const fn any_of(parts: &'static [Requirement]) -> Self {
        Self(Node::AnyOf(Parts::Static(parts)))
    }

    /// Every one of `parts`, from run-time values.
    pub fn all(parts: impl IntoIterator<Item = impl Into<Requirement>>) -> Self {
        Self(Node::AllOf(Parts::Shared(
            parts.into_iter().map(Into::into).collect(),
        )))
    }

    /// At least one of `parts`, from run-time values.
    pub fn any(parts: impl IntoIterator<Item = impl Into<Requirement>>) -> Self {
        Self(Node::AnyOf(Parts::Shared(
            parts.into_iter().map(Into::into).collect(),
        )))
    }

    /// The role `key`, from run-time input.
    pub fn try_role(key: impl Into<String>) -> Result<Self, InvalidKey> {
        Ok(Self(Node::Role(checked("role key", key.into())?)))
    }

    /// Membership of the organization `code`, from run-time input.
    pub fn try_org(code: impl Into<String>) -> Result<Self, InvalidKey> {
        Ok(Self(Node::Org(checked("organization code", code.into())?)))
    }

    /// The boolean feature flag `key` is on, from run-time input.
    pub fn try_flag(key: impl Into<String>) -> Result<Self, InvalidKey> {
        Ok(Self(Node::Flag(checked("feature flag key", key.into())?)))
    }

    /// The one permission this requirement is, if it is just that.
    pub fn as_permission(&self) -> Option<&Permission> {
        match &self.0 {
            Node::Permission(permission) => Some(permission),
            _ => None,
        }
    }

    /// The RFC 6750 `scope` a token would need: the space-separated permissions, when the
    /// requirement is one permission or all-of permissions (nested all-ofs included). `None`
    /// for anything else, which a scope cannot express.
    pub fn scope(&self) -> Option<String> {
        let mut scope = String::new();
        self.push_scope(&mut scope).then_some(scope)
    }

    fn push_scope(&self, scope: &mut String) -> bool {
        match &self.0 {
            Node::Permission(permission) => {
                if !scope.is_empty() {
                    scope.push(' ');
                }
                scope.push_str(permission.as_str());
                true
            }
            Node::AllOf(parts) => parts.iter().all(|part| part.push_scope(scope)),
            _ => false,
        }
    }

    /// Whether `facts` meet the requirement. One permission, by far the most common
    /// requirement, is decided inline; everything else by [`is_met_by`](Self::is_met_by).
    #[inline(always)]
    pub(crate) fn is_met(&self, facts: &impl Facts) -> bool {
        match &self.0 {
            Node::Permission(permission) => facts.has_permission(permission.as_str()),
            _ => self.is_met_by(facts),
        }
    }

    fn is_met_by(&self, facts: &impl Facts) -> bool {
        match &self.0 {
            Node::Permission(permission) => facts.has_permission(permission.as_str()),
            Node::Role(key) => facts.has_role(key),
            Node::Org(code) => facts.org_code() == Some(&**code),
            Node::Flag(key) => facts.flag_is_on(key),
            Node::AllOf(parts) => parts.iter().all(|part| part.is_met(facts)),
            Node::AnyOf(parts) => parts.iter().any(|part| part.is_met(facts)),
        }
    }

    /// Which facts deciding it takes.
    pub(crate) fn needs(&self) -> Needs {
        match &self.0 {
            Node::Permission(_) => Needs::PERMISSIONS,
            Node::Role(_) => Needs::ROLES,
            Node::Flag(_) => Needs::FLAGS,
            Node::Org(_) => Needs::NOTHING,
            Node::AllOf(parts) | Node::AnyOf(parts) => parts
                .iter()
                .fold(Needs::NOTHING, |needs, part| needs.and(part.needs())),
        }
    }
}

impl From<Permission> for Requirement {
    fn from(permission: Permission) -> Self {
        Self(Node::Permission(permission))
    }
}

impl From<&Requirement> for Requirement {
    fn from(requirement: &Requirement) -> Self {
        requirement.clone()
    }
}

impl fmt::Display for Requirement {
    /// `read:audit`, `role admin`, `org org_123`, `flag beta`, `all of (a, b)`, `any of (a, b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, parts) = match &self.0 {
            Node::Permission(permission) => return f.write_str(permission.as_str()),
            Node::Role(key) => return write!(f, "role {key}"),
            Node::Org(code) => return write!(f, "org {code}"),
            Node::Flag(key) => return write!(f, "flag {key}"),
            Node::AllOf(parts) => ("all of", parts),
            Node::AnyOf(parts) => ("any of", parts),
        };
        write!(f, "{word} (")?;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(part, f)?;
        }
        f.write_str(")")
    }
}

impl Requirement {
    /// The requirement as a metric label: its `Display`, with each key built at run time
    /// (`Permission::new`, `try_role`, …, possibly from a caller's input) shown as `*`, so
    /// that no caller can grow the set of label values.
    pub(crate) fn metric_label(&self) -> String {
        let mut label = String::new();
        self.write_label(&mut label);
        label
    }

    fn write_label(&self, out: &mut String) {
        let constant = |key: &Cow<'static, str>| match key {
            Cow::Borrowed(key) => *key,
            Cow::Owned(_) => "*",
        };
        let (word, parts) = match &self.0 {
            Node::Permission(permission) => {
                return out.push_str(permission.as_static().unwrap_or("*"));
            }
            Node::Role(key) => return out.push_str(&format!("role {}", constant(key))),
            Node::Org(code) => return out.push_str(&format!("org {}", constant(code))),
            Node::Flag(key) => return out.push_str(&format!("flag {}", constant(key))),
            Node::AllOf(parts) => ("all of", parts),
            Node::AnyOf(parts) => ("any of", parts),
        };
        out.push_str(word);
        out.push_str(" (");
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            part.write_label(out);
        }
        out.push(')');
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Requirement({self})")
    }
}

/// A constant [`Requirement`] met when all of the given constant requirements are:
/// `all_of![A, B]` is `Requirement::all_of(&[A, B])` with the list kept in a constant.
#[macro_export]
macro_rules! all_of {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[$crate::Requirement] = &[$($part),+];
        $crate::Requirement::all_of(PARTS)
    }};
}

/// A constant [`Requirement`] met when any of the given constant requirements is:
/// `any_of![A, B]` is `Requirement::any_of(&[A, B])` with the list kept in a constant.
#[macro_export]
macro_rules! any_of {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[$crate::Requirement] = &[$($part),+];
        $crate::Requirement::any_of(PARTS)
    }};
}

#[cfg(test)]
mod tests;
