//! What the benches share: the baseline every verification is measured against.

use claimcheck::testing::FakeKinde;
use jsonwebtoken::{DecodingKey, Validation};

/// A prebuilt key and validation for raw `jsonwebtoken::decode` RS256 of `kinde`'s tokens: the
/// crypto limit, with the same issuer and audience rules.
pub fn raw_decoder(kinde: &FakeKinde) -> (DecodingKey, Validation) {
    let jwk = kinde.current_jwk();
    let (n, e) = (jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap());
    let key = DecodingKey::from_rsa_components(n, e).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[kinde.audience()]);
    validation.set_issuer(&[kinde.issuer()]);
    (key, validation)
}

/// A prebuilt key and validation for raw `jsonwebtoken::decode` of tokens signed with `kinde`'s
/// key `kid` (EC or Ed25519) in `alg`, with the same issuer and audience rules.
pub fn raw_decoder_of(
    kinde: &FakeKinde,
    kid: &str,
    alg: jsonwebtoken::Algorithm,
) -> (DecodingKey, Validation) {
    let jwk = kinde.jwk_of(kid).unwrap();
    let x = jwk["x"].as_str().unwrap();
    let key = match jwk["y"].as_str() {
        Some(y) => DecodingKey::from_ec_components(x, y).unwrap(),
        None => DecodingKey::from_ed_components(x).unwrap(),
    };
    let mut validation = Validation::new(alg);
    validation.set_audience(&[kinde.audience()]);
    validation.set_issuer(&[kinde.issuer()]);
    (key, validation)
}
