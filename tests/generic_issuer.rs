//! The FakeKinde acting as a generic standards-compliant issuer, everything of issue 15 at once:
//! a trailing-slash issuer, its JWKS at a path only its discovery document names, RFC 9068
//! `at+jwt` tokens with `client_id` and `scope`, EC P-256 and Ed25519 keys, and the
//! `rfc9068` profile, which finds the keys through discovery by default. Over loopback, through
//! the shared harness's routes.

mod common;

use claimcheck::Verifier;
use claimcheck::claims::Profile;
use claimcheck::jwt::Algorithm;
use claimcheck::testing::{Endpoint, FakeKinde, KeyType, TokenBuilder};
use common::{fast, start_with};

const AUDIENCE: &str = "https://api.example.com";

async fn provider() -> FakeKinde {
    FakeKinde::builder()
        .audience(AUDIENCE)
        .issuer_trailing_slash()
        .jwks_path("/oauth/keys")
        .start()
        .await
}

fn verifier(issuer: &FakeKinde) -> Verifier {
    fast(Verifier::builder(issuer.issuer()))
        .audience(AUDIENCE)
        .profile(Profile::rfc9068())
        .algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .build()
        .unwrap()
}

fn access_token(issuer: &FakeKinde, kid: &str, scope: &str) -> TokenBuilder {
    issuer
        .user_token("user-1")
        .without_claim("permissions")
        .without_claim("scp")
        .without_claim("org_code")
        .header("typ", "at+jwt")
        .claim("client_id", "web-app")
        .claim("scope", scope)
        .signed_with(kid)
}

#[tokio::test]
async fn a_generic_issuer_works_end_to_end_with_ec_and_ed25519_keys() {
    let issuer = provider().await;
    let rsa_kid = issuer.current_kid();
    let es256 = issuer.rotate_key_to(KeyType::Es256);
    let eddsa = issuer.add_signing_key(KeyType::EdDsa);
    let verifier = verifier(&issuer);
    // The profile's default: the keys are only where the discovery document says (Kinde's
    // JWKS paths answer 404 here), so no URL is known before it was read.
    assert_eq!(verifier.key_store().jwks_url(), None);
    assert!(verifier.warm_up().await);
    assert_eq!(verifier.key_store().jwks_url(), Some(issuer.jwks_uri()));
    assert_eq!(
        verifier.key_store().key_count(),
        2,
        "the RSA key is not allowed"
    );
    let h = start_with(issuer, verifier).await;

    for kid in [&es256, &eddsa] {
        let granted = access_token(&h.kinde, kid, "openid read:reports").sign();
        assert_eq!(h.get("/reports", Some(&granted)).await.status, 200, "{kid}");
        let bare = access_token(&h.kinde, kid, "openid").sign();
        assert_eq!(h.get("/reports", Some(&bare)).await.status, 403, "{kid}");
    }
    // A client-credentials token: `sub` is the client; a machine, refused by strict routes.
    let machine = access_token(&h.kinde, &es256, "sync:fleet")
        .claim("sub", "svc")
        .claim("client_id", "svc")
        .sign();
    assert_eq!(h.get("/me", Some(&machine)).await.json()["machine"], true);
    assert_eq!(h.post("/fleet", &machine).await.status, 200);
    assert_eq!(h.post("/payments", &machine).await.status, 403);
    // The issuer's RSA key is not an allowed algorithm's: its tokens are refused.
    let rsa = access_token(&h.kinde, &rsa_kid, "read:reports").sign();
    h.get("/reports", Some(&rsa)).await.assert_invalid_token();
    // Nothing was ever asked of Kinde's APIs, which this issuer does not have.
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
    assert!(h.kinde.calls(Endpoint::Discovery) >= 1);
}
