//! Two issuers on one layer (issue 15): A, a FakeKinde with Kinde's profile, and B, a FakeKinde
//! acting as a generic RFC 9068 issuer (a trailing-slash issuer, its JWKS at a path only its
//! discovery document names, its own audience), with the shared harness in front of both.

use claimcheck::Verifier;
use claimcheck::claims::Profile;
use claimcheck::jwt::VerifierBuilder;
use claimcheck::testing::{FakeKinde, TokenBuilder};

use super::{Harness, fast, start_with, verifier_for};

/// B's audience.
pub const B_AUDIENCE: &str = "https://api.example.com";

/// B: `http://127.0.0.1:<port>/`, keys at `/oauth/keys` (Kinde's JWKS paths answer 404).
pub async fn generic_issuer() -> FakeKinde {
    FakeKinde::builder()
        .audience(B_AUDIENCE)
        .issuer_trailing_slash()
        .jwks_path("/oauth/keys")
        .start()
        .await
}

/// B's issuer, with its trailing slash.
pub fn b_issuer(b: &FakeKinde) -> String {
    assert!(b.issuer().ends_with('/'));
    b.issuer().to_owned()
}

/// A verifier for B's tokens (generic profile, test timings), to adjust.
pub fn b_builder(b: &FakeKinde) -> VerifierBuilder {
    fast(Verifier::builder(b_issuer(b)))
        .audience(B_AUDIENCE)
        .profile(Profile::rfc9068())
}

pub fn b_verifier(b: &FakeKinde) -> Verifier {
    b_builder(b).build().unwrap()
}

/// A token B issues: its `iss` (with the slash), `typ: at+jwt`, `client_id`, scopes in `scope`.
pub fn b_token(b: &FakeKinde, scope: &str) -> TokenBuilder {
    b_shaped(b, b, scope)
}

/// A token shaped as B's (as [`b_token`]) but signed by `signer`'s current key.
pub fn b_shaped(signer: &FakeKinde, b: &FakeKinde, scope: &str) -> TokenBuilder {
    signer
        .user_token("b-user")
        .claim("iss", b_issuer(b))
        .audience(B_AUDIENCE)
        .without_claim("permissions")
        .header("typ", "at+jwt")
        .claim("client_id", "b-app")
        .claim("scope", scope)
}

/// A token shaped as Kinde A's (its `iss` and audience, `permissions: [read:reports]`) but
/// signed by `signer`'s current key.
pub fn a_shaped(signer: &FakeKinde, a: &FakeKinde) -> TokenBuilder {
    signer
        .user_token("x")
        .claim("iss", a.issuer())
        .audience(a.audience())
        .permissions(["read:reports"])
}

/// A's harness (Kinde's profile, Account API live source), its verifier also accepting B,
/// both key sets fetched.
pub async fn two_issuers() -> (Harness, FakeKinde) {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await, "both key sets fetched");
    (start_with(a, verifier).await, b)
}

/// Both issuers' own tokens are still served: `/reports` answers 200 to each.
pub async fn assert_both_serve(h: &Harness, b: &FakeKinde) {
    let b_own = b_token(b, "read:reports").sign();
    assert_eq!(h.get("/reports", Some(&b_own)).await.status, 200);
    let a_own = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&a_own)).await.status, 200);
}
