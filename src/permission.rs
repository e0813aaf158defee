//! [`Permission`] names and [`PermissionSet`]s.
//!
//! A permission is a Kinde permission key such as `read:reports`: 1 to 128 characters from
//! `[A-Za-z0-9:_.-]`. Constants are checked at compile time:
//!
//! ```
//! use claimcheck::Permission;
//! pub const READ_REPORTS: Permission = Permission::from_static("read:reports");
//! ```
//!
//! ```compile_fail
//! use claimcheck::Permission;
//! const BAD: Permission = Permission::from_static("read reports"); // space: rejected by the compiler
//! ```

use std::borrow::{Borrow, Cow};
use std::collections::BTreeSet;
use std::fmt;

/// Longest accepted permission key.
pub const MAX_PERMISSION_LEN: usize = 128;

/// A validated permission key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission(Cow<'static, str>);

/// A string that is not a valid permission key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPermission(());

impl fmt::Display for InvalidPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a permission is 1 to {MAX_PERMISSION_LEN} characters from [A-Za-z0-9:_.-]"
        )
    }
}

impl std::error::Error for InvalidPermission {}

pub(crate) const fn is_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_PERMISSION_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.' || b == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

impl Permission {
    /// A permission from a string literal. Invalid input fails to compile in a `const`, and
    /// panics at run time otherwise.
    pub const fn from_static(s: &'static str) -> Self {
        assert!(
            is_valid(s),
            "invalid permission: use 1 to 128 characters from [A-Za-z0-9:_.-]"
        );
        Self(Cow::Borrowed(s))
    }

    /// A permission from run-time input.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidPermission> {
        let s = s.into();
        if is_valid(&s) {
            Ok(Self(Cow::Owned(s)))
        } else {
            Err(InvalidPermission(()))
        }
    }

    /// The key, if it is a constant (`from_static`), not run-time input.
    pub(crate) fn as_static(&self) -> Option<&'static str> {
        match self.0 {
            Cow::Borrowed(key) => Some(key),
            Cow::Owned(_) => None,
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Permission {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Permission {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::str::FromStr for Permission {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A set of permission keys, as granted to one user in one organization.
///
/// Entries that are not valid permission keys are dropped when the set is built from strings:
/// they could never match a [`Permission`] anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `permission` is in the set.
    pub fn contains(&self, permission: &str) -> bool {
        self.0.contains(permission)
    }

    /// Adds a permission.
    pub fn insert(&mut self, permission: Permission) {
        self.0.insert(permission);
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The permissions, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .filter_map(|s| Permission::new(s.as_ref()).ok())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in [
            "read:reports",
            "view_reports",
            "a",
            "payments.refund-all",
            "A1",
        ] {
            assert!(Permission::new(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(MAX_PERMISSION_LEN + 1);
        for bad in ["", "read reports", "a\"b", "é", "a,b", long.as_str()] {
            assert!(Permission::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid permission")]
    fn from_static_panics_at_run_time_on_bad_input() {
        let s: &'static str = Box::leak(String::from("no spaces").into_boxed_str());
        let _ = Permission::from_static(s);
    }

    #[test]
    fn set_drops_invalid_entries() {
        let set: PermissionSet = ["read:reports", "bad key", "create:payments"]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains("read:reports"));
        assert!(!set.contains("bad key"));
    }
}
