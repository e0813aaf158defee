//! [`Repr`]: the claims as deserialized, with Kinde's alternative shapes, and what an instance
//! weighs in memory (for the verified-token cache's byte budget).

use std::collections::BTreeMap;
use std::mem::size_of;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::{FeatureFlag, Role};

#[derive(Deserialize)]
pub(crate) struct Repr {
    pub(crate) iss: String,
    #[serde(default)]
    pub(super) sub: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub(crate) aud: Vec<String>,
    pub(crate) exp: i64,
    #[serde(default)]
    pub(crate) nbf: Option<i64>,
    #[serde(default)]
    pub(crate) iat: Option<i64>,
    #[serde(default)]
    pub(super) azp: Option<String>,
    #[serde(default)]
    pub(super) client_id: Option<String>,
    #[serde(default)]
    pub(super) jti: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub(super) gty: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub(super) scp: Vec<String>,
    #[serde(default)]
    pub(super) scope: Option<String>,
    #[serde(default)]
    pub(super) org_code: Option<String>,
    #[serde(default, rename = "x-hasura-org-code")]
    pub(super) hasura_org_code: Option<String>,
    #[serde(default)]
    pub(super) permissions: Option<Vec<String>>,
    #[serde(default, rename = "x-hasura-permissions")]
    pub(super) hasura_permissions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "roles")]
    pub(super) roles: Option<Vec<Role>>,
    #[serde(default, rename = "x-hasura-roles", deserialize_with = "roles")]
    pub(super) hasura_roles: Option<Vec<Role>>,
    #[serde(default)]
    pub(super) feature_flags: Option<BTreeMap<String, RawFlag>>,
    #[serde(default, rename = "x-hasura-feature-flags")]
    pub(super) hasura_feature_flags: Option<BTreeMap<String, RawFlag>>,
}

/// Heap bytes of a string (or any buffer) of `len` bytes, as glibc's malloc hands them out: an
/// 8-byte header, rounded up to 16 bytes, at least 32.
pub(super) fn string_bytes(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).next_multiple_of(16).max(32)
    }
}

fn option_string(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| string_bytes(s.capacity()))
}

fn strings(v: &[String], capacity: usize) -> usize {
    string_bytes(capacity * size_of::<String>())
        + v.iter().map(|s| string_bytes(s.capacity())).sum::<usize>()
}

fn value_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => string_bytes(s.capacity()),
        Value::Array(items) => {
            string_bytes(items.capacity() * size_of::<Value>())
                + items.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => {
            btree_bytes(map.len(), size_of::<String>() + size_of::<Value>())
                + map
                    .iter()
                    .map(|(k, v)| string_bytes(k.capacity()) + value_bytes(v))
                    .sum::<usize>()
        }
    }
}

/// Heap bytes of a `BTreeMap` of `len` entries of `entry` bytes (key and value). A node has room
/// for 11 entries (and, inside the tree, 12 edges); a map of up to 11 entries is one whole leaf,
/// however few it holds, and a larger one built by deserializing (ascending inserts) keeps about
/// 6 entries per leaf, with an internal node per 5 leaves.
fn btree_bytes(len: usize, entry: usize) -> usize {
    let leaf = string_bytes(16 + 11 * entry);
    let internal = string_bytes(16 + 11 * entry + 12 * size_of::<usize>());
    match len {
        0 => 0,
        1..=11 => leaf,
        _ => {
            let leaves = len.div_ceil(6);
            leaves * leaf + leaves.div_ceil(5) * internal
        }
    }
}

impl Repr {
    /// Kinde's alternative shapes folded into the standard ones: `x-hasura-*` claims when the
    /// standard ones are absent, and the space-separated `scope` in place of `scp` when present.
    pub(super) fn normalised(mut self) -> Self {
        if self.permissions.is_none() {
            self.permissions = self.hasura_permissions.take();
        }
        if self.org_code.is_none() {
            self.org_code = self.hasura_org_code.take();
        }
        if self.roles.is_none() {
            self.roles = self.hasura_roles.take();
        }
        if self.feature_flags.is_none() {
            self.feature_flags = self.hasura_feature_flags.take();
        }
        // RFC 9068's `scope` decides when present (Kinde's tokens agree in both when they
        // carry both), so a machine's grants and a user's are read the same way.
        if let Some(scope) = &self.scope {
            self.scp = scope.split_ascii_whitespace().map(str::to_owned).collect();
        }
        self
    }

    /// The scopes as permissions: RFC 9068's `scope` (space-separated) when present, else
    /// `scp`; `None` when the token has neither.
    pub(super) fn scopes_if_present(&self) -> Option<Vec<String>> {
        match &self.scope {
            Some(scope) => Some(scope.split_ascii_whitespace().map(str::to_owned).collect()),
            None => (!self.scp.is_empty()).then(|| self.scp.clone()),
        }
    }

    /// Heap bytes held by these claims: what a cache of them really costs.
    pub(super) fn heap_bytes(&self) -> usize {
        let lists = [&self.aud, &self.gty, &self.scp];
        let optional = [
            &self.sub,
            &self.azp,
            &self.client_id,
            &self.jti,
            &self.scope,
            &self.org_code,
            &self.hasura_org_code,
        ];
        let permissions = [&self.permissions, &self.hasura_permissions];
        let roles = [&self.roles, &self.hasura_roles];
        let flags = [&self.feature_flags, &self.hasura_feature_flags];
        string_bytes(self.iss.capacity())
            + lists
                .iter()
                .map(|v| strings(v, v.capacity()))
                .sum::<usize>()
            + optional.iter().map(|s| option_string(s)).sum::<usize>()
            + permissions
                .iter()
                .flat_map(|p| p.as_ref())
                .map(|v| strings(v, v.capacity()))
                .sum::<usize>()
            + roles
                .iter()
                .flat_map(|r| r.as_ref())
                .map(|roles| {
                    string_bytes(roles.capacity() * size_of::<Role>())
                        + roles
                            .iter()
                            .map(|r| {
                                string_bytes(r.key.capacity())
                                    + option_string(&r.id)
                                    + option_string(&r.name)
                            })
                            .sum::<usize>()
                })
                .sum::<usize>()
            + flags
                .iter()
                .flat_map(|f| f.as_ref())
                .map(|flags| {
                    btree_bytes(flags.len(), size_of::<String>() + size_of::<RawFlag>())
                        + flags
                            .iter()
                            .map(|(key, flag)| {
                                string_bytes(key.capacity())
                                    + string_bytes(flag.t.capacity())
                                    + value_bytes(&flag.v)
                            })
                            .sum::<usize>()
                })
                .sum::<usize>()
    }
}

#[derive(Deserialize)]
pub(super) struct RawFlag {
    t: String,
    v: serde_json::Value,
}

impl RawFlag {
    pub(super) fn typed(&self) -> FeatureFlag {
        match (self.t.as_str(), &self.v) {
            ("b", serde_json::Value::Bool(b)) => FeatureFlag::Bool(*b),
            ("s", serde_json::Value::String(s)) => FeatureFlag::String(s.clone()),
            ("i", v) if v.as_i64().is_some() => FeatureFlag::Integer(v.as_i64().unwrap_or(0)),
            (t, v) => FeatureFlag::Other {
                t: t.to_owned(),
                v: v.clone(),
            },
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A JSON value as a list of strings: an array of strings, or one space-separated string.
pub(super) fn one_or_many_text(value: serde_json::Value) -> Option<Vec<String>> {
    match value {
        serde_json::Value::String(s) => {
            Some(s.split_ascii_whitespace().map(str::to_owned).collect())
        }
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn roles<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Role>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum RoleRepr {
        Key(String),
        Object(Role),
    }
    let Some(items) = Option::<Vec<RoleRepr>>::deserialize(d)? else {
        return Ok(None);
    };
    let roles = items.into_iter().map(|item| match item {
        RoleRepr::Key(key) => Role {
            id: None,
            key,
            name: None,
        },
        RoleRepr::Object(role) => role,
    });
    let roles: Vec<Role> = roles.collect();
    if roles.iter().any(|r| r.key.is_empty()) {
        return Err(de::Error::custom("empty role key"));
    }
    Ok(Some(roles))
}
