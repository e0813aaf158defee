//! [`FakeKinde`]'s keys of other types: EC P-256, EC P-384 and Ed25519 keys published beside
//! its RSA keys, as issuers other than Kinde publish them, and each key's public half in every
//! encoding an attacker would try as an HMAC secret.
//!
//! ```
//! use claimcheck::jwt::Algorithm;
//! use claimcheck::testing::{FakeKinde, KeyType};
//! use claimcheck::Verifier;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let kinde = FakeKinde::start().await;
//! let kid = kinde.add_signing_key(KeyType::Es256);
//! let verifier = Verifier::builder(kinde.issuer())
//!     .audience(kinde.audience())
//!     .algorithms([Algorithm::RS256, Algorithm::ES256])
//!     .build()
//!     .unwrap();
//! let token = kinde.user_token("kp_1").signed_with(&kid).sign(); // header alg ES256
//! assert!(verifier.verify(&token).await.is_ok());
//! # }
//! ```

use serde_json::Value;

use super::FakeKinde;
use super::keys::{KeyType, SigningKey};

impl FakeKinde {
    /// Generates a key of `key_type`, publishes it in the JWKS beside the others and returns
    /// its kid. New tokens are still signed with the current key; sign with this one with
    /// [`TokenBuilder::signed_with`](super::TokenBuilder::signed_with).
    pub fn add_signing_key(&self, key_type: KeyType) -> String {
        self.push_key(key_type, false)
    }

    /// [`rotate_key`](Self::rotate_key) to a key of `key_type`: published beside the old ones,
    /// and signing new tokens from now on. Returns its kid.
    pub fn rotate_key_to(&self, key_type: KeyType) -> String {
        self.push_key(key_type, true)
    }

    /// The JWK of the key `kid` as the fake publishes it (retired or not), if it has one.
    pub fn jwk_of(&self, kid: &str) -> Option<Value> {
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().find(|k| k.kid == kid).map(SigningKey::jwk)
    }

    /// The public key `kid` in every encoding an attacker might use as an HMAC secret in a
    /// key-confusion forgery: SPKI PEM and DER and the JWK's JSON for every type; for RSA the
    /// PKCS#1 DER, the modulus and `n`; for EC the SEC1 uncompressed and compressed points,
    /// the raw `x || y`, `x` and `y` alone, and their base64url text (`x`, `y`, both
    /// concatenated, `x || y` encoded); for Ed25519 the raw 32 bytes and `x`. Empty for a kid
    /// the fake does not have.
    pub fn public_key_encodings_of(&self, kid: &str) -> Vec<(&'static str, Vec<u8>)> {
        let keys = self.state.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .find(|k| k.kid == kid)
            .map(SigningKey::public_encodings)
            .unwrap_or_default()
    }

    fn push_key(&self, key_type: KeyType, current: bool) -> String {
        let key = SigningKey::generate_type(key_type);
        let kid = key.kid.clone();
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.push(key);
        if current {
            self.state.set_current_key(keys.len() - 1);
        }
        kid
    }
}
