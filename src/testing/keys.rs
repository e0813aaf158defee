//! Signing keys of the fake Kinde, generated at start (no private key is ever committed).

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// One RSA-2048 signing key with a Kinde-style colon-hex kid.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: KeyPair,
}

/// How a token is signed.
#[derive(Debug, Clone)]
pub(crate) enum Signing {
    /// RS256 with the fake's key of this kid (or the current key).
    Rs256(Option<String>),
    /// RS256 with a key only this token knows: a forgery the issuer never published.
    Forged,
    /// HMAC-SHA256 with these secret bytes (for key-confusion tests).
    Hs256(Vec<u8>),
    /// No signature at all (`alg: none` style): the third segment is empty.
    Unsigned,
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    bytes
}

impl SigningKey {
    pub(crate) fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let kid = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        Self { kid, pair }
    }

    fn modulus(&self) -> &[u8] {
        self.pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
    }

    fn exponent(&self) -> &[u8] {
        self.pair
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
    }

    /// The public JWK, exactly as Kinde publishes it.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(self.exponent()),
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(self.modulus()),
            "use": "sig",
        })
    }

    /// The public key in the encodings an attacker might use as an HMAC secret.
    pub(crate) fn public_encodings(&self) -> Vec<(&'static str, Vec<u8>)> {
        let pkcs1 = self.pair.public_key().as_ref().to_vec();
        let spki: PublicKeyX509Der<'static> =
            self.pair.public_key().as_der().expect("SPKI encoding");
        let spki = spki.as_ref().to_vec();
        let pem_body = STANDARD
            .encode(&spki)
            .as_bytes()
            .chunks(64)
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{pem_body}\n-----END PUBLIC KEY-----\n");
        vec![
            ("spki-pem", pem.clone().into_bytes()),
            ("spki-pem-no-newline", pem.trim_end().as_bytes().to_vec()),
            ("spki-der", spki),
            ("pkcs1-der", pkcs1),
            ("modulus", self.modulus().to_vec()),
            ("jwk-json", self.jwk().to_string().into_bytes()),
            (
                "n-base64url",
                URL_SAFE_NO_PAD.encode(self.modulus()).into_bytes(),
            ),
        ]
    }

    /// Whether `signature` (base64url) is this key's RS256 signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let public = signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        );
        public.verify(message, &signature).is_ok()
    }

    /// RS256 signature of `message`, base64url.
    pub(crate) fn sign(&self, message: &[u8]) -> String {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("RSA signing");
        URL_SAFE_NO_PAD.encode(sig)
    }
}

/// HS256 signature of `message` with `secret`, base64url.
pub(crate) fn hs256(secret: &[u8], message: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
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
