//! [`VerifyingKey`]: one published key made usable, built once per kid and key material.
//!
//! It keeps the [`KeyKind`] the key was published as, so a token whose `alg` needs another kind
//! of key is refused before its signature is looked at, and the material it was built from, so
//! a refresh that republishes the same key reuses it (and withdraws nothing).

use jsonwebtoken::DecodingKey;
use jwks_client_rs::JsonWebKey;

use super::algorithm::{Algorithm, KeyKind};

/// A key's public material as the JWK gives it (unpadded base64url), borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Material<'a> {
    /// `n` and `e`.
    Rsa { n: &'a str, e: &'a str },
    /// `x` and `y` on the curve of `kind` (P-256 or P-384).
    Ec {
        kind: KeyKind,
        x: &'a str,
        y: &'a str,
    },
    /// `x` of an Ed25519 key.
    Ed25519 { x: &'a str },
}

impl<'a> Material<'a> {
    /// The kid, the `alg` (if any) and the material of a parsed JWK; `None` for a curve we do
    /// not support (the raw key check has dropped those already).
    pub(crate) fn of(jwk: &'a JsonWebKey) -> Option<(&'a str, Option<&'a str>, Self)> {
        let material = match jwk {
            JsonWebKey::Rsa(key) => Self::Rsa {
                n: key.modulus(),
                e: key.exponent(),
            },
            JsonWebKey::Ec(key) => Self::Ec {
                kind: KeyKind::of(Some("EC"), Some(key.curve())).ok()?,
                x: key.x(),
                y: key.y(),
            },
            JsonWebKey::Okp(key) => {
                KeyKind::of(Some("OKP"), Some(key.curve())).ok()?;
                Self::Ed25519 { x: key.x() }
            }
        };
        Some((jwk.key_id(), jwk.alg(), material))
    }

    fn kind(self) -> KeyKind {
        match self {
            Self::Rsa { .. } => KeyKind::Rsa,
            Self::Ec { kind, .. } => kind,
            Self::Ed25519 { .. } => KeyKind::Ed25519,
        }
    }

    /// The one or two base64url fields, in a fixed order (`""` for a field the kind lacks).
    fn fields(self) -> [&'a str; 2] {
        match self {
            Self::Rsa { n, e } => [n, e],
            Self::Ec { x, y, .. } => [x, y],
            Self::Ed25519 { x } => [x, ""],
        }
    }
}

/// A usable verification key, built once per kid and key material.
pub(crate) struct VerifyingKey {
    /// The kid the issuer publishes it under.
    pub(crate) kid: Box<str>,
    /// The JWK's `alg`, when it names one: a token must then say the same.
    pub(crate) alg: Option<Algorithm>,
    /// The key's type and curve: a token's `alg` must need exactly this kind.
    pub(crate) kind: KeyKind,
    pub(crate) key: DecodingKey,
    fields: [Box<str>; 2],
}

impl VerifyingKey {
    /// Whether this key was built from exactly this material (so it can be reused).
    pub(crate) fn same_material(&self, material: Material<'_>, alg: Option<Algorithm>) -> bool {
        let fields = material.fields();
        self.kind == material.kind()
            && *self.fields[0] == *fields[0]
            && *self.fields[1] == *fields[1]
            && self.alg == alg
    }

    /// Whether a token signed with `alg` may be verified with this key: its kind is the one
    /// `alg` needs, and the JWK's `alg`, if any, is `alg`.
    pub(crate) fn fits(&self, alg: Algorithm) -> Result<(), &'static str> {
        if alg.key_kind() != self.kind {
            return Err("alg needs another key type or curve");
        }
        if self.alg.is_some_and(|own| own != alg) {
            return Err("alg differs from the JWK's");
        }
        Ok(())
    }

    /// A key that verifies nothing, for unit tests of what holds keys.
    #[cfg(test)]
    pub(crate) fn test_key() -> std::sync::Arc<Self> {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri";
        std::sync::Arc::new(Self::new("kid", Material::Rsa { n, e: "AQAB" }, None).unwrap())
    }

    pub(crate) fn new(
        kid: &str,
        material: Material<'_>,
        alg: Option<Algorithm>,
    ) -> Result<Self, &'static str> {
        let key = match material {
            Material::Rsa { n, e } => DecodingKey::from_rsa_components(n, e),
            Material::Ec { x, y, .. } => DecodingKey::from_ec_components(x, y),
            Material::Ed25519 { x } => DecodingKey::from_ed_components(x),
        }
        .map_err(|_| "unusable key components")?;
        let [a, b] = material.fields();
        Ok(Self {
            kid: kid.into(),
            alg,
            kind: material.kind(),
            key,
            fields: [a.into(), b.into()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "LEBfQpwTDXJtLFiPcnYvGv-WaFXZGBnFP_yGhLL9MGc";
    const Y: &str = "a1Or3ovkpH12b0o3ruZUtm_z8bg3xQtHXi-uPC7UJT0";

    fn ec(x: &'static str, y: &'static str) -> Material<'static> {
        Material::Ec {
            kind: KeyKind::P256,
            x,
            y,
        }
    }

    #[test]
    fn a_key_is_reused_only_for_the_same_kind_material_and_alg() {
        let key = VerifyingKey::new("k", ec(X, Y), Some(Algorithm::ES256)).unwrap();
        assert!(key.same_material(ec(X, Y), Some(Algorithm::ES256)));
        assert!(!key.same_material(ec(X, Y), None));
        assert!(!key.same_material(ec(Y, X), Some(Algorithm::ES256)));
        let p384 = Material::Ec {
            kind: KeyKind::P384,
            x: X,
            y: Y,
        };
        assert!(!key.same_material(p384, Some(Algorithm::ES256)));
        // The same text in other fields of another kind is other material.
        assert!(!key.same_material(Material::Rsa { n: X, e: Y }, Some(Algorithm::ES256)));
        let ed = VerifyingKey::new("k", Material::Ed25519 { x: X }, None).unwrap();
        assert!(ed.same_material(Material::Ed25519 { x: X }, None));
        assert!(!ed.same_material(ec(X, ""), None));
    }

    #[test]
    fn a_key_fits_only_the_algorithms_of_its_kind_and_its_own_alg() {
        let any = VerifyingKey::new("k", ec(X, Y), None).unwrap();
        assert_eq!(any.fits(Algorithm::ES256), Ok(()));
        for alg in [Algorithm::ES384, Algorithm::EdDSA, Algorithm::RS256] {
            assert_eq!(any.fits(alg), Err("alg needs another key type or curve"));
        }
        let rsa = VerifyingKey::test_key();
        assert_eq!(rsa.fits(Algorithm::PS512), Ok(()));
        assert!(rsa.fits(Algorithm::ES256).is_err());
        let pinned = VerifyingKey::new(
            "k",
            Material::Rsa {
                n: "sXch",
                e: "AQAB",
            },
            Some(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(
            pinned.fits(Algorithm::PS256),
            Err("alg differs from the JWK's")
        );
    }
}
