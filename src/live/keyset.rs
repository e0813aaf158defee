//! [`KeySet`]: the keys of a user's roles, or of their feature flags that are on.

use std::collections::BTreeSet;

/// A set of Kinde keys, as a [`PermissionSource`](super::PermissionSource) reports them for
/// one user in one organization: the keys of the roles they hold
/// ([`roles`](super::PermissionSource::roles)), or the keys of the boolean feature flags that
/// are on for them ([`feature_flags`](super::PermissionSource::feature_flags)).
///
/// Entries that are not valid keys (1 to 128 characters from `[A-Za-z0-9:_.-]`, as for a
/// [`Permission`](crate::Permission)) are dropped when the set is built from strings: no
/// requirement could name them.
///
/// ```
/// use claimcheck::live::KeySet;
///
/// let roles: KeySet = ["admin", "not a key", "billing"].into_iter().collect();
/// assert!(roles.contains("admin"));
/// assert_eq!(roles.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet(BTreeSet<Box<str>>);

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }

    /// Adds `key`; `false` (and nothing added) when it is not a valid key.
    pub fn insert(&mut self, key: &str) -> bool {
        if !crate::permission::is_valid(key) {
            return false;
        }
        self.0.insert(key.into());
        true
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|key| &**key)
    }
}

impl<S: AsRef<str>> FromIterator<S> for KeySet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut set = Self::new();
        for key in iter {
            set.insert(key.as_ref());
        }
        set
    }
}
