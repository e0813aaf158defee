//! Signing keys of the fake Kinde, generated at start (no private key is ever committed): RSA
//! by default, as Kinde's, and EC P-256, EC P-384 and Ed25519 keys on request, as other
//! issuers publish.

use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPublicKeyCompressedBin, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The kind of signing key a [`FakeKinde`](super::FakeKinde) can publish and sign with
/// ([`FakeKinde::add_signing_key`](super::FakeKinde::add_signing_key)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA-2048, signing RS256 (`kty: RSA`): Kinde's keys, the fake's default.
    Rs256,
    /// EC P-256, signing ES256 (`kty: EC`, `crv: P-256`).
    Es256,
    /// EC P-384, signing ES384 (`kty: EC`, `crv: P-384`).
    Es384,
    /// Ed25519, signing EdDSA (`kty: OKP`, `crv: Ed25519`).
    EdDsa,
}

impl KeyType {
    /// Every key type.
    pub const ALL: [KeyType; 4] = [Self::Rs256, Self::Es256, Self::Es384, Self::EdDsa];

    /// The JOSE `alg` this key signs with (`RS256`, `ES256`, `ES384`, `EdDSA`).
    pub fn alg(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// The private half of a signing key.
enum Pair {
    Rsa(KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key with a Kinde-style colon-hex kid.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) key_type: KeyType,
    pair: Pair,
}

/// How a token is signed.
#[derive(Debug, Clone)]
pub(crate) enum Signing {
    /// With the fake's key of this kid (or the current key), in that key's algorithm.
    Key(Option<String>),
    /// RS256 with a key only this token knows: a forgery the issuer never published.
    Forged,
    /// HMAC with SHA-256 (`HS256`) or SHA-384 (`HS384`) and these secret bytes (for
    /// key-confusion tests).
    Hmac(&'static aws_lc_rs::hmac::Algorithm, Vec<u8>),
    /// No signature at all (`alg: none` style): the third segment is empty.
    Unsigned,
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes
}

/// `bytes` as standard base64 in 64-column lines, between PEM `PUBLIC KEY` armour.
fn pem(spki: &[u8]) -> String {
    let body = STANDARD
        .encode(spki)
        .as_bytes()
        .chunks(64)
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

impl SigningKey {
    /// A fresh RSA-2048 key.
    pub(crate) fn generate() -> Self {
        Self::generate_type(KeyType::Rs256)
    }

    /// A fresh key of `key_type`.
    pub(crate) fn generate_type(key_type: KeyType) -> Self {
        let pair = match key_type {
            KeyType::Rs256 => {
                Pair::Rsa(KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
            }
            KeyType::Es256 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("P-256 key generation"),
            ),
            KeyType::Es384 => Pair::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("P-384 key generation"),
            ),
            KeyType::EdDsa => Pair::Ed(Ed25519KeyPair::generate().expect("Ed25519 generation")),
        };
        let kid = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Self {
            kid,
            key_type,
            pair,
        }
    }

    fn rsa_modulus(pair: &KeyPair) -> &[u8] {
        pair.public_key()
            .modulus()
            .big_endian_without_leading_zero()
    }

    /// An EC key's `x` and `y` (each the curve's size, leading zeros kept).
    fn ec_coordinates(pair: &EcdsaKeyPair) -> (&[u8], &[u8]) {
        let point = &pair.public_key().as_ref()[1..];
        point.split_at(point.len() / 2)
    }

    /// The public JWK, as Kinde (RSA) or a standards-compliant issuer (EC, OKP) publishes it.
    pub(crate) fn jwk(&self) -> Value {
        let (kid, alg) = (&self.kid, self.key_type.alg());
        match &self.pair {
            Pair::Rsa(pair) => json!({
                "alg": alg,
                "e": URL_SAFE_NO_PAD.encode(pair.public_key().exponent().big_endian_without_leading_zero()),
                "kid": kid,
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(Self::rsa_modulus(pair)),
                "use": "sig",
            }),
            Pair::Ec(pair) => {
                let (x, y) = Self::ec_coordinates(pair);
                let crv = if self.key_type == KeyType::Es384 {
                    "P-384"
                } else {
                    "P-256"
                };
                json!({
                    "alg": alg,
                    "crv": crv,
                    "kid": kid,
                    "kty": "EC",
                    "use": "sig",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                })
            }
            Pair::Ed(pair) => json!({
                "alg": alg,
                "crv": "Ed25519",
                "kid": kid,
                "kty": "OKP",
                "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// The public key in the encodings an attacker might use as an HMAC secret.
    pub(crate) fn public_encodings(&self) -> Vec<(&'static str, Vec<u8>)> {
        let spki: PublicKeyX509Der<'static> = match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_der(),
            Pair::Ec(pair) => pair.public_key().as_der(),
            Pair::Ed(pair) => pair.public_key().as_der(),
        }
        .expect("SPKI encoding");
        let spki = spki.as_ref().to_vec();
        let pem = pem(&spki);
        let jwk = self.jwk();
        let field = |name: &str| jwk[name].as_str().unwrap_or_default().as_bytes().to_vec();
        let mut encodings = vec![
            ("spki-pem", pem.clone().into_bytes()),
            ("spki-pem-no-newline", pem.trim_end().as_bytes().to_vec()),
            ("spki-der", spki),
            ("jwk-json", jwk.to_string().into_bytes()),
        ];
        match &self.pair {
            Pair::Rsa(pair) => encodings.extend([
                ("pkcs1-der", pair.public_key().as_ref().to_vec()),
                ("modulus", Self::rsa_modulus(pair).to_vec()),
                ("n-base64url", field("n")),
            ]),
            Pair::Ec(pair) => {
                let uncompressed = pair.public_key().as_ref().to_vec();
                let compressed: EcPublicKeyCompressedBin<'static> =
                    pair.public_key().as_be_bytes().expect("compressed point");
                let (x, y) = Self::ec_coordinates(pair);
                encodings.extend([
                    ("sec1-uncompressed", uncompressed.clone()),
                    ("sec1-compressed", compressed.as_ref().to_vec()),
                    ("raw-x-y", uncompressed[1..].to_vec()),
                    ("x", x.to_vec()),
                    ("x-base64url", field("x")),
                    ("y-base64url", field("y")),
                    ("x-y-base64url", [field("x"), field("y")].concat()),
                    (
                        "raw-x-y-base64url",
                        URL_SAFE_NO_PAD.encode(&uncompressed[1..]).into_bytes(),
                    ),
                    ("y", y.to_vec()),
                ]);
            }
            Pair::Ed(pair) => encodings.extend([
                ("raw", pair.public_key().as_ref().to_vec()),
                ("x-base64url", field("x")),
            ]),
        }
        encodings
    }

    /// Whether `signature` (base64url) is this key's signature of `message` in its algorithm.
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let (algorithm, public): (&'static dyn signature::VerificationAlgorithm, &[u8]) =
            match (&self.pair, self.key_type) {
                (Pair::Rsa(pair), _) => (
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    pair.public_key().as_ref(),
                ),
                (Pair::Ec(pair), KeyType::Es384) => (
                    &signature::ECDSA_P384_SHA384_FIXED,
                    pair.public_key().as_ref(),
                ),
                (Pair::Ec(pair), _) => (
                    &signature::ECDSA_P256_SHA256_FIXED,
                    pair.public_key().as_ref(),
                ),
                (Pair::Ed(pair), _) => (&signature::ED25519, pair.public_key().as_ref()),
            };
        signature::UnparsedPublicKey::new(algorithm, public)
            .verify(message, &signature)
            .is_ok()
    }

    /// This key's signature of `message` in its algorithm (ECDSA in JOSE's fixed-length
    /// `r || s`), base64url.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .expect("RSA signing");
                sig
            }
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), message)
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        };
        URL_SAFE_NO_PAD.encode(signature)
    }
}

/// HMAC signature of `message` with `secret`, base64url.
pub(crate) fn hmac(
    algorithm: &'static aws_lc_rs::hmac::Algorithm,
    secret: &[u8],
    message: &[u8],
) -> String {
    let key = aws_lc_rs::hmac::Key::new(*algorithm, secret);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, message).as_ref())
}

/// `base64url(header).base64url(payload)`.
pub(crate) fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}
