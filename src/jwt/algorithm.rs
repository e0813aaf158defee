//! [`Algorithm`]: the signature algorithms claimcheck can accept, each bound to one kind of key.
//!
//! RFC 7518 §3 and RFC 8037 §3.1 tie each algorithm to a key type: `RS*` and `PS*` to an RSA
//! key, `ES256` to an EC key on P-256, `ES384` to one on P-384, `EdDSA` to an OKP key on
//! Ed25519. claimcheck keeps that pairing as a [`KeyKind`] on every key it holds, and refuses a
//! token whose `alg` needs another kind of key before any signature work, so a key of one type
//! is never used with another type's algorithm (nor an EC key with the other curve's).

use jsonwebtoken::Algorithm as JwtAlgorithm;

/// A signature algorithm claimcheck can accept. Kinde signs with `RS256` only, the default;
/// others are opted into per verifier with
/// [`VerifierBuilder::algorithms`](super::VerifierBuilder::algorithms).
///
/// Each is bound to one kind of key: `RS*` and `PS*` verify only with an RSA key (`kty: RSA`),
/// `ES256` only with an EC P-256 key (`kty: EC`, `crv: P-256`), `ES384` only with an EC P-384
/// key, `EdDSA` only with an Ed25519 key (`kty: OKP`, `crv: Ed25519`). HMAC (`HS*`) and `none`
/// are not algorithms claimcheck has: a verifier holds only public keys.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Kinde's algorithm; the default).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256; the signature is the fixed-length `r || s` (64 bytes).
    ES256,
    /// ECDSA on P-384 with SHA-384; the signature is the fixed-length `r || s` (96 bytes).
    ES384,
    /// EdDSA, on Ed25519 only (RFC 8037; Ed448 is not supported).
    EdDSA,
}

impl Algorithm {
    const ALL: [Self; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The JOSE name (`RS256`, …, `ES256`, `ES384`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses an exact, case-sensitive JOSE name (so `none`, `None`, `HS256`, `es256` and
    /// `EDDSA` never parse).
    pub fn from_jose(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub(crate) fn to_jwt(self) -> JwtAlgorithm {
        match self {
            Self::RS256 => JwtAlgorithm::RS256,
            Self::RS384 => JwtAlgorithm::RS384,
            Self::RS512 => JwtAlgorithm::RS512,
            Self::PS256 => JwtAlgorithm::PS256,
            Self::PS384 => JwtAlgorithm::PS384,
            Self::PS512 => JwtAlgorithm::PS512,
            Self::ES256 => JwtAlgorithm::ES256,
            Self::ES384 => JwtAlgorithm::ES384,
            Self::EdDSA => JwtAlgorithm::EdDSA,
        }
    }

    /// The one kind of key this algorithm verifies with.
    pub(crate) fn key_kind(self) -> KeyKind {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyKind::Rsa
            }
            Self::ES256 => KeyKind::P256,
            Self::ES384 => KeyKind::P384,
            Self::EdDSA => KeyKind::Ed25519,
        }
    }
}

/// A key's type and curve: what decides which algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl KeyKind {
    /// The kind of a JWK with this `kty` and `crv`, or why there is none we support.
    pub(crate) fn of(kty: Option<&str>, crv: Option<&str>) -> Result<Self, &'static str> {
        match (kty, crv) {
            (Some("RSA"), _) => Ok(Self::Rsa),
            (Some("EC"), Some("P-256")) => Ok(Self::P256),
            (Some("EC"), Some("P-384")) => Ok(Self::P384),
            (Some("OKP"), Some("Ed25519")) => Ok(Self::Ed25519),
            (Some("EC" | "OKP"), None) => Err("no crv"),
            (Some("EC" | "OKP"), Some(_)) => Err("unsupported curve"),
            _ => Err("kty is not RSA, EC or OKP"),
        }
    }

    /// Bytes in each coordinate of a public point (`x`, and `y` for EC); `None` for RSA.
    pub(crate) fn coordinate_bytes(self) -> Option<usize> {
        match self {
            Self::Rsa => None,
            Self::P256 | Self::Ed25519 => Some(32),
            Self::P384 => Some(48),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact_and_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_jose(alg.as_str()), Some(alg));
            assert_eq!(format!("{:?}", alg.to_jwt()), alg.as_str());
        }
        for bad in [
            "none", "None", "NONE", "rs256", "HS256", "HS384", "es256", "ES512", "EDDSA", "eddsa",
            "Ed25519", "ES256K", "",
        ] {
            assert_eq!(Algorithm::from_jose(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_algorithm_needs_exactly_one_kind_of_key() {
        use Algorithm::*;
        for alg in [RS256, RS384, RS512, PS256, PS384, PS512] {
            assert_eq!(alg.key_kind(), KeyKind::Rsa, "{alg:?}");
        }
        assert_eq!(ES256.key_kind(), KeyKind::P256);
        assert_eq!(ES384.key_kind(), KeyKind::P384);
        assert_eq!(EdDSA.key_kind(), KeyKind::Ed25519);
    }

    #[test]
    fn key_kinds_come_from_kty_and_crv_exactly() {
        let of = KeyKind::of;
        assert_eq!(of(Some("RSA"), None), Ok(KeyKind::Rsa));
        assert_eq!(of(Some("EC"), Some("P-256")), Ok(KeyKind::P256));
        assert_eq!(of(Some("EC"), Some("P-384")), Ok(KeyKind::P384));
        assert_eq!(of(Some("OKP"), Some("Ed25519")), Ok(KeyKind::Ed25519));
        for (kty, crv) in [("EC", "P-521"), ("EC", "secp256k1"), ("EC", "p-256")] {
            assert_eq!(of(Some(kty), Some(crv)), Err("unsupported curve"), "{crv}");
        }
        for crv in ["Ed448", "X25519", "X448", "P-256"] {
            assert_eq!(
                of(Some("OKP"), Some(crv)),
                Err("unsupported curve"),
                "{crv}"
            );
        }
        assert_eq!(of(Some("EC"), None), Err("no crv"));
        for kty in [Some("oct"), Some("rsa"), Some("ec"), Some("AKP"), None] {
            assert_eq!(of(kty, Some("P-256")), Err("kty is not RSA, EC or OKP"));
        }
    }
}
