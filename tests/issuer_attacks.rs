//! Hostile callers and careless operators against several issuers, profiles, discovery and
//! the new algorithms (issue 15), over loopback against FakeKindes: the issuer read ahead
//! against the one verified, key ids shared between issuers, algorithms allowed for one issuer
//! only, floods of unknown issuers, mistyped or oversized scopes, machine look-alikes, discovery
//! documents naming other key sets or flipping issuers, slow and cold discovery under load,
//! strict routes and webhooks with a second issuer.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimcheck::AuthErrorKind;
use claimcheck::jwt::Algorithm;
use claimcheck::testing::{Endpoint, FakeKinde, Fault, KeyType};
use common::issuers::{
    B_AUDIENCE, a_shaped, assert_both_serve, b_builder, b_shaped, b_token, b_verifier,
    generic_issuer, two_issuers,
};
use common::{Via, live_for, start_live, start_with, verifier_for};
use serde_json::json;

fn exp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600
}

#[tokio::test]
async fn the_issuer_read_ahead_is_the_issuer_verified() {
    let (h, b) = two_issuers().await;
    let (a_iss, b_iss) = (h.kinde.issuer().to_owned(), b.issuer().to_owned());
    let exp = exp();
    let body = |iss_json: &str| {
        format!(
            r#"{{"iss":{iss_json},"sub":"b-user","aud":"{B_AUDIENCE}","exp":{exp},"scope":"read:reports"}}"#
        )
    };
    let escaped_h = format!(r#""\u0068{}""#, &b_iss[1..]);
    let escaped_slashes = format!("\"{}\"", b_iss.replace('/', "\\/"));
    // B's own issuer, however it is spelled in JSON, nested claims naming A around it.
    let accepted = [
        body(&escaped_h),
        body(&escaped_slashes),
        format!(
            r#"{{"act":{{"iss":"{a_iss}"}},"iss":"{b_iss}","sub":"b-user","aud":"{B_AUDIENCE}","exp":{exp},"scope":"read:reports"}}"#
        ),
        format!(
            r#"{{"iss":"{b_iss}","sub":"b-user","aud":"{B_AUDIENCE}","exp":{exp},"scope":"read:reports","act":{{"iss":"{a_iss}","sub":"x"}}}}"#
        ),
    ];
    for (i, payload) in accepted.iter().enumerate() {
        let token = b_token(&b, "").raw_payload(payload.clone()).sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_eq!(answer.status, 200, "accepted {i}: {}", answer.body);
    }
    // Signed by B, naming A in some spelling, or naming nobody exactly.
    let fullwidth: String = b_iss
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap()
            } else {
                c
            }
        })
        .collect();
    let refused = [
        body(&format!(r#""\u0068{}""#, &a_iss[1..])),
        body(&format!("\"{b_iss} \"")),
        body(&format!("\" {b_iss}\"")),
        body(&format!("\"{b_iss}\\u0000\"")),
        body(&format!("\"{}\"", b_iss.trim_end_matches('/'))),
        body(&format!("\"{fullwidth}\"")),
        body(&format!("\"{}\"", b_iss.to_uppercase())),
        body("null"),
        body(&format!(r#"{{"iss":"{b_iss}"}}"#)),
        format!("\u{feff}{}", body(&format!("\"{b_iss}\""))),
        format!(
            r#"{{"iss":"{b_iss}","x":{{"iss":"{a_iss}","iss":"{b_iss}"}},"aud":"{B_AUDIENCE}","exp":{exp},"scope":"read:reports"}}"#
        ),
        format!("{} ", body(&format!("\"{b_iss}\""))) + "{}",
    ];
    for (i, payload) in refused.iter().enumerate() {
        let token = b_token(&b, "").raw_payload(payload.clone()).sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_eq!(answer.status, 401, "refused {i}: {payload} {}", answer.body);
        answer.assert_invalid_token();
    }
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn a_key_id_shared_by_two_issuers_never_lends_one_issuers_key_to_the_other() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let a_kid = a.current_kid();
    // B publishes its own key under A's kid (by accident or on purpose).
    let mut jwk = b.current_jwk();
    jwk["kid"] = json!(a_kid);
    b.publish_jwk(jwk);
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(a, verifier).await;
    // B's key, A's kid, A's issuer and audience: A's key for that kid does not verify it.
    let forged_a = a_shaped(&b, &h.kinde).header("kid", a_kid.as_str()).sign();
    h.get("/reports", Some(&forged_a))
        .await
        .assert_invalid_token();
    // A's key, A's kid, B's issuer: B's key for that kid does not verify it.
    let forged_b = b_shaped(&h.kinde, &b, "read:reports").sign();
    h.get("/reports", Some(&forged_b))
        .await
        .assert_invalid_token();
    // Controls: B's key under the shared kid is B's to use; A's own tokens still pass.
    let b_shared = b_token(&b, "read:reports")
        .header("kid", a_kid.as_str())
        .sign();
    assert_eq!(h.get("/reports", Some(&b_shared)).await.status, 200);
    let a_own = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&a_own)).await.status, 200);
    // And again once both are cached: the forgeries stay refused.
    h.get("/reports", Some(&forged_a))
        .await
        .assert_invalid_token();
    h.get("/reports", Some(&forged_b))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn an_algorithm_allowed_for_one_issuer_only_is_refused_for_the_other() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    b.rotate_key_to(KeyType::Es256);
    // Each publishes the other's key too (a shared key server, a careless migration).
    a.publish_jwk(b.current_jwk());
    b.publish_jwk(a.current_jwk());
    let verifier = verifier_for(&a)
        .other_issuer(
            b_builder(&b)
                .algorithms([Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(a, verifier).await;
    // ES256 naming A (RS256 only), signed by B's EC key that A's JWKS holds.
    let es_for_a = a_shaped(&b, &h.kinde).sign();
    h.get("/reports", Some(&es_for_a))
        .await
        .assert_invalid_token();
    // RS256 naming B (ES256 only), signed by A's RSA key that B's JWKS holds.
    let rs_for_b = b_shaped(&h.kinde, &b, "read:reports").sign();
    h.get("/reports", Some(&rs_for_b))
        .await
        .assert_invalid_token();
    // Controls: each issuer's own algorithm works.
    assert_both_serve(&h, &b).await;
}

#[tokio::test]
async fn an_issuer_named_in_the_header_routes_nothing() {
    let (h, b) = two_issuers().await;
    let a_iss = h.kinde.issuer().to_owned();
    // RFC 7519 §5.3 lets claims be replicated in the header: only the payload's `iss` counts.
    let b_with_a_header = b_token(&b, "read:reports")
        .header("iss", a_iss.as_str())
        .sign();
    assert_eq!(h.get("/reports", Some(&b_with_a_header)).await.status, 200);
    // A's key, A's name in the header, B's in the payload: B's keys decide, and refuse it.
    let a_key_b_payload = b_shaped(&h.kinde, &b, "read:reports")
        .header("iss", a_iss.as_str())
        .sign();
    h.get("/reports", Some(&a_key_b_payload))
        .await
        .assert_invalid_token();
    // No payload `iss`, A's in the header: no issuer.
    let header_only = h
        .kinde
        .user_token("a-user")
        .without_claim("iss")
        .header("iss", a_iss.as_str())
        .permissions(["read:reports"])
        .sign();
    h.get("/reports", Some(&header_only))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_for_one_issuer_costs_the_other_nothing() {
    let (h, b) = two_issuers().await;
    let (a_jwks, b_jwks) = (h.kinde.calls(Endpoint::Jwks), b.calls(Endpoint::Jwks));
    let b_discovery = b.calls(Endpoint::Discovery);
    for i in 0..300 {
        let token = b_token(&b, "read:reports")
            .header("kid", format!("kid-{i}"))
            .sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert!(matches!(answer.status, 401 | 503), "{}", answer.body);
    }
    assert_eq!(
        h.kinde.calls(Endpoint::Jwks),
        a_jwks,
        "A fetched for B's kids"
    );
    let fetched = b.calls(Endpoint::Jwks) - b_jwks;
    assert!(
        fetched <= 10,
        "B's JWKS fetched {fetched} times for 300 unknown kids"
    );
    assert!(b.calls(Endpoint::Discovery) - b_discovery <= fetched);
    // Both issuers still serve their tokens.
    assert_both_serve(&h, &b).await;
}

#[tokio::test]
async fn an_issuers_published_keys_of_other_types_are_not_used_outside_its_algorithms() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let es256 = b.rotate_key_to(KeyType::Es256);
    let es384 = b.add_signing_key(KeyType::Es384);
    let eddsa = b.add_signing_key(KeyType::EdDsa);
    let rsa = b.add_signing_key(KeyType::Rs256);
    let verifier = verifier_for(&a)
        .other_issuer(
            b_builder(&b)
                .algorithms([Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    verifier.warm_up().await;
    let h = start_with(a, verifier).await;
    let ok = b_token(&b, "read:reports").signed_with(&es256).sign();
    assert_eq!(h.get("/reports", Some(&ok)).await.status, 200);
    for kid in [&es384, &eddsa, &rsa] {
        let token = b_token(&b, "read:reports").signed_with(kid).sign();
        h.get("/reports", Some(&token)).await.assert_invalid_token();
        // Named as A's (RS256 allowed there): B's RSA key is not A's.
        let as_a = a_shaped(&b, &h.kinde).signed_with(kid).sign();
        h.get("/reports", Some(&as_a)).await.assert_invalid_token();
    }
    // ES256 with the P-256 key's kid but `alg` claimed as ES384 or EdDSA: refused.
    for alg in ["ES384", "EdDSA", "RS256", "HS256"] {
        let token = b_token(&b, "read:reports")
            .signed_with(&es256)
            .header("alg", alg)
            .sign();
        h.get("/reports", Some(&token)).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn a_flood_of_unknown_issuers_costs_no_upstream_call_and_caches_nothing() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    let stranger = FakeKinde::start().await;
    let template = stranger
        .user_token("x")
        .permissions(["read:reports"])
        .sign();
    let started = Instant::now();
    for i in 0..5_000 {
        // Issuers close to the configured ones, and random ones.
        let iss = match i % 4 {
            0 => format!("{}/", a.issuer()),
            1 => format!("{}x{i}", b.issuer()),
            2 => format!("https://evil{i}.example.com"),
            _ => format!("{}{i}", a.issuer()),
        };
        let token = if i % 2 == 0 {
            stranger.user_token("x").claim("iss", iss).sign()
        } else {
            // A syntactically signed token of its own (no work to sign: reuse the header).
            let mut parts = template.split('.');
            let header = parts.next().unwrap();
            let payload = URL_SAFE_NO_PAD.encode(json!({"iss": iss, "exp": exp()}).to_string());
            format!("{header}.{payload}.c2ln")
        };
        let err = verifier.verify(&token).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    for kinde in [&a, &b, &stranger] {
        assert_eq!(kinde.calls(Endpoint::Jwks), 0);
        assert_eq!(kinde.calls(Endpoint::Discovery), 0);
    }
    assert_eq!(verifier.token_cache_usage().entries, 0);
    assert_eq!(verifier.key_store().key_count(), 0);
}

#[tokio::test]
async fn mistyped_scope_claims_are_refused_never_granted() {
    let (h, b) = two_issuers().await;
    for scope in [
        json!(["read:reports"]),
        json!(7),
        json!({"read:reports": true}),
        json!(true),
    ] {
        let token = b_token(&b, "").claim("scope", scope.clone()).sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_eq!(answer.status, 401, "scope {scope}: {}", answer.body);
        answer.assert_invalid_token();
    }
    // `scope` absent: `scp` is read instead (documented), and only as a list of strings.
    let scp_only = b_token(&b, "")
        .without_claim("scope")
        .claim("scp", json!(["read:reports"]))
        .sign();
    assert_eq!(h.get("/reports", Some(&scp_only)).await.status, 200);
    // One string is one scope; anything else is not a scope list.
    for scp in [
        json!([1]),
        json!(7),
        json!({"read:reports": 1}),
        json!([["read:reports"]]),
    ] {
        let token = b_token(&b, "")
            .without_claim("scope")
            .claim("scp", scp.clone())
            .sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_ne!(answer.status, 200, "scp {scp}: {}", answer.body);
        assert!(answer.status < 500, "scp {scp}: {}", answer.body);
    }
    // Both present and disagreeing: `scope` decides.
    let disagree = b_token(&b, "openid")
        .claim("scp", json!(["read:reports"]))
        .sign();
    assert_eq!(h.get("/reports", Some(&disagree)).await.status, 403);
    let disagree = b_token(&b, "read:reports")
        .claim("scp", json!(["openid"]))
        .sign();
    assert_eq!(h.get("/reports", Some(&disagree)).await.status, 200);
    // Odd separators never make `read:reports` out of something else.
    for scope in [
        "read:reports\u{a0}x",
        "x\u{a0}read:reports",
        "read:reports\u{0}",
        "\u{0}read:reports",
        "read:reports\u{200b}",
        "read:reportsread:reports",
        "READ:REPORTS",
        "read:report s",
        "\u{feff}read:reports",
    ] {
        let token = b_token(&b, scope).sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_eq!(answer.status, 403, "{scope:?}: {}", answer.body);
    }
    // The Kinde profile: a mistyped `permissions` claim is refused too.
    for permissions in [json!("read:reports"), json!(1), json!({"read:reports": 1})] {
        let token = h
            .kinde
            .user_token("a-user")
            .claim("permissions", permissions.clone())
            .sign();
        let answer = h.get("/reports", Some(&token)).await;
        assert_ne!(answer.status, 200, "{permissions}: {}", answer.body);
        assert!(answer.status < 500, "{permissions}: {}", answer.body);
    }
    assert_eq!(b.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn huge_scope_lists_work_under_the_cap_and_are_401_past_it() {
    let (h, b) = two_issuers().await;
    let scopes = |n: usize| {
        let mut s: Vec<String> = (0..n).map(|i| format!("s:{i:06}")).collect();
        s.push("read:reports".into());
        s.join(" ")
    };
    let within = b_token(&b, &scopes(400)).sign();
    assert!(within.len() < 8 * 1024, "{}", within.len());
    let started = Instant::now();
    let answer = h.get("/reports", Some(&within)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let me = h.get("/me", Some(&within)).await.json();
    assert_eq!(me["permissions"].as_array().unwrap().len(), 401);
    // Thousands of scopes: past the 8 KiB cap of both issuers, refused before any decoding.
    for n in [2_000, 20_000] {
        let over = b_token(&b, &scopes(n)).sign();
        assert!(over.len() > 8 * 1024);
        h.get("/reports", Some(&over)).await.assert_invalid_token();
    }
    // 8 KiB of whitespace around the one scope.
    let padded = b_token(
        &b,
        &format!("{}read:reports{}", " ".repeat(2500), "\t".repeat(2500)),
    )
    .sign();
    let answer = h.get("/reports", Some(&padded)).await;
    assert!(matches!(answer.status, 200 | 401), "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn machine_look_alikes_are_machines_only_where_the_profile_says_so() {
    let (h, b) = two_issuers().await;
    // RFC 9068: `sub == client_id` is a client acting for itself. Only B can sign that.
    let b_machine = b_token(&b, "sync:fleet")
        .without_claim("scp")
        .claim("sub", "b-app")
        .claim("client_id", "b-app")
        .sign();
    let me = h.get("/me", Some(&b_machine)).await.json();
    assert_eq!(me["machine"], true, "{me}");
    let answer = h.post("/fleet", &b_machine).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(h.runs(), 1);
    // The same shape signed by A's key, or with A's issuer: not B's, refused.
    let forged = b_shaped(&h.kinde, &b, "sync:fleet")
        .claim("sub", "b-app")
        .sign();
    h.post("/fleet", &forged).await.assert_invalid_token();
    // B's user whose client_id differs: a user, sent to no live source of A's.
    let b_user = b_token(&b, "sync:fleet").sign();
    assert_eq!(h.get("/me", Some(&b_user)).await.json()["machine"], false);
    let answer = h.post("/fleet", &b_user).await;
    assert_ne!(answer.status, 200, "{}", answer.body);
    // Kinde's profile: `client_id == sub` is still a user (Kinde marks machines by `gty`).
    let a_lookalike = h
        .kinde
        .user_token("kp_c1")
        .claim("client_id", "kp_c1")
        .claim("scope", "sync:fleet")
        .permissions(["sync:fleet"])
        .sign();
    assert_eq!(
        h.get("/me", Some(&a_lookalike)).await.json()["machine"],
        false
    );
    let answer = h.post("/fleet", &a_lookalike).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(h.kinde.calls(Endpoint::AccountPermissions), 1);
    // Auth0's shape under Kinde's profile is a user too.
    let auth0 = h
        .kinde
        .user_token("abc@clients")
        .claim("gty", "client-credentials")
        .permissions(["sync:fleet"])
        .sign();
    assert_eq!(h.get("/me", Some(&auth0)).await.json()["machine"], false);
    assert_eq!(h.runs(), 1);
    assert_eq!(b.calls(Endpoint::AccountPermissions), 0);
}

#[tokio::test]
async fn another_issuers_tokens_never_reach_kindes_management_api() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let live = live_for(&a, Via::Management).build();
    let h = start_live(a, verifier, live).await;
    // B's user, whose `sub` is also one of A's users holding the permission.
    h.kinde.grant(
        claimcheck::testing::DEFAULT_ORG,
        "b-user",
        "create:payments",
    );
    for token in [
        b_token(&b, "create:payments").sign(),
        b_token(&b, "create:payments")
            .claim("org_code", claimcheck::testing::DEFAULT_ORG)
            .sign(),
    ] {
        let answer = h.post("/payments", &token).await;
        assert_ne!(answer.status, 200, "{}", answer.body);
        let strict = h.get("/settle/strict", Some(&token)).await;
        assert_ne!(strict.status, 200, "{}", strict.body);
    }
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 0);
    assert_eq!(h.kinde.calls(Endpoint::ManagementRoles), 0);
    assert_eq!(h.runs(), 0);
    // A's token for the same user is looked up.
    let a_token = h
        .kinde
        .user_token("b-user")
        .org_code(claimcheck::testing::DEFAULT_ORG)
        .sign();
    assert_eq!(h.post("/payments", &a_token).await.status, 200);
    assert_eq!(h.kinde.calls(Endpoint::ManagementPermissions), 1);
}

/// B's discovery document, as B would serve it, with `jwks_uri` replaced.
fn document(b: &FakeKinde, jwks_uri: &str) -> String {
    json!({
        "issuer": b.issuer(),
        "jwks_uri": jwks_uri,
        "token_endpoint": format!("{}oauth2/token", b.issuer()),
    })
    .to_string()
}

#[tokio::test]
async fn a_discovery_document_naming_a_forbidden_or_foreign_key_set() {
    // Plain http off loopback, and a redirecting scheme: never fetched, 503 cold.
    for jwks_uri in [
        "http://192.0.2.1/keys",
        "http://example.com/.well-known/jwks",
        "ftp://127.0.0.1/keys",
        "file:///etc/passwd",
        "/oauth/keys",
        "",
    ] {
        let a = FakeKinde::start().await;
        let b = generic_issuer().await;
        b.set_fault(Endpoint::Discovery, Fault::Body(document(&b, jwks_uri)));
        let verifier = verifier_for(&a)
            .other_issuer(b_verifier(&b))
            .build()
            .unwrap();
        let h = start_with(a, verifier).await;
        let started = Instant::now();
        let answer = h
            .get("/reports", Some(&b_token(&b, "read:reports").sign()))
            .await;
        assert_eq!(answer.status, 503, "{jwks_uri}: {}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(3), "{jwks_uri}");
        assert_eq!(b.calls(Endpoint::Jwks), 0, "{jwks_uri}");
        // A is unaffected.
        let a_token = h
            .kinde
            .user_token("a-user")
            .permissions(["read:reports"])
            .sign();
        assert_eq!(h.get("/reports", Some(&a_token)).await.status, 200);
    }

    // B's document naming A's key set: B's verifier then holds A's keys, as B asked; an A
    // token is still A's only (its `iss` and `aud` route and bind it).
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    b.set_fault(
        Endpoint::Discovery,
        Fault::Body(document(&b, &a.jwks_uri())),
    );
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    verifier.warm_up().await;
    let h = start_with(a, verifier).await;
    let a_token = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .audience(json!([h.kinde.audience(), B_AUDIENCE]))
        .sign();
    let me = h.get("/me", Some(&a_token)).await.json();
    assert_eq!(me["permissions"], json!(["read:reports"]), "read as A's");
    // B's own key is not in the set B pointed at.
    h.get("/reports", Some(&b_token(&b, "read:reports").sign()))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn a_discovery_document_flipping_issuers_keeps_the_last_good_keys_only() {
    let (h, b) = two_issuers().await;
    let old = b_token(&b, "read:reports").sign();
    assert_eq!(h.get("/reports", Some(&old)).await.status, 200);
    // The document now claims to be A's (or anyone's): B's keys must not change through it.
    b.set_discovery_issuer(Some(h.kinde.issuer()));
    let new_kid = b.rotate_key();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = b_token(&b, "read:reports").signed_with(&new_kid).sign();
    let answer = h.get("/reports", Some(&fresh)).await;
    assert_ne!(answer.status, 200, "a key found through a foreign document");
    assert!(matches!(answer.status, 401 | 503), "{}", answer.body);
    assert_eq!(h.get("/reports", Some(&old)).await.status, 200);
    // A's tokens are never read with anything B's document says.
    let a_token = h
        .kinde
        .user_token("a-user")
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&a_token)).await.status, 200);
    // The document flips back: the new key is found.
    b.set_discovery_issuer(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut status = 0;
    for _ in 0..20 {
        status = h.get("/reports", Some(&fresh)).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_hanging_or_huge_discovery_document_does_not_hold_requests() {
    for fault in [
        Fault::Hang,
        Fault::Drip(Duration::from_millis(200)),
        Fault::Huge(64 << 20),
        Fault::Slow(Duration::from_secs(30)),
    ] {
        let a = FakeKinde::start().await;
        let b = generic_issuer().await;
        b.set_fault(Endpoint::Discovery, fault.clone());
        let verifier = verifier_for(&a)
            .other_issuer(b_verifier(&b))
            .build()
            .unwrap();
        let h = std::sync::Arc::new(start_with(a, verifier).await);
        let token = b_token(&b, "read:reports").sign();
        let a_token = h
            .kinde
            .user_token("a-user")
            .permissions(["read:reports"])
            .sign();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (h, token, a_token) = (h.clone(), token.clone(), a_token.clone());
            tasks.push(tokio::spawn(async move {
                if i % 4 == 0 {
                    h.get("/reports", Some(&a_token)).await.status
                } else {
                    h.get("/reports", Some(&token)).await.status
                }
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let status = task.await.unwrap();
            let expected = if i % 4 == 0 { 200 } else { 503 };
            assert_eq!(status, expected, "{fault:?} request {i}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{fault:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(b.calls(Endpoint::Jwks), 0);
    }
}

#[tokio::test]
async fn concurrent_cold_requests_share_one_discovery_and_one_key_fetch() {
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    b.set_fault(Endpoint::Discovery, Fault::Late(Duration::from_millis(150)));
    let verifier = verifier_for(&a)
        .other_issuer(b_verifier(&b))
        .build()
        .unwrap();
    let h = std::sync::Arc::new(start_with(a, verifier).await);
    let mut tasks = Vec::new();
    for i in 0..48 {
        let h = h.clone();
        let token = b_token(&b, "read:reports")
            .claim("sub", format!("b-user-{i}"))
            .sign();
        tasks.push(tokio::spawn(async move {
            h.get("/reports", Some(&token)).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(b.calls(Endpoint::Discovery), 1, "one discovery");
    assert_eq!(b.calls(Endpoint::Jwks), 1, "one key fetch");
    assert_eq!(h.kinde.calls(Endpoint::Jwks), 0);
    assert_eq!(h.kinde.calls(Endpoint::Discovery), 0);
}

#[tokio::test]
async fn webhooks_are_kindes_only_whichever_issuer_is_configured_first() {
    // Kinde first, B other: a webhook signed by B's key is not Kinde's.
    let (h, b) = two_issuers().await;
    let forged = b.user_updated("kp_1");
    let status = forged.deliver(&h.webhook_url()).await;
    assert!(
        (400..500).contains(&status),
        "B-signed webhook answered {status}"
    );
    assert_eq!(
        h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await,
        200
    );
}

#[tokio::test]

async fn webhooks_are_kindes_even_when_kinde_is_the_other_issuer() {
    // B (generic) first, Kinde other: the webhook receiver must still use Kinde's keys.
    let a = FakeKinde::start().await;
    let b = generic_issuer().await;
    let a_verifier = verifier_for(&a).build().unwrap();
    let verifier = b_builder(&b).other_issuer(a_verifier).build().unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(a, verifier).await;
    let forged = b.user_updated("kp_1").deliver(&h.webhook_url()).await;
    let genuine = h.kinde.user_updated("kp_1").deliver(&h.webhook_url()).await;
    assert!(
        (400..500).contains(&forged) && genuine == 200,
        "B-signed webhook answered {forged}, Kinde's own {genuine}"
    );
}

#[tokio::test]

async fn a_machines_scope_claim_decides_as_a_users_does() {
    let (h, b) = two_issuers().await;
    let machine = |scope: &str, scp: serde_json::Value| {
        b_token(&b, scope)
            .claim("sub", "b-app")
            .claim("client_id", "b-app")
            .claim("scp", scp)
            .sign()
    };
    // `scope` grants, `scp` does not: as for a user (`scope` when present), the machine holds it.
    let granted = machine("sync:fleet", json!(["openid"]));
    assert_eq!(h.get("/me", Some(&granted)).await.json()["machine"], true);
    let granted = h.post("/fleet", &granted).await.status;
    // `scope` does not grant, `scp` does: never more than `scope` says.
    let smuggled = machine("openid", json!(["sync:fleet"]));
    let smuggled = h.post("/fleet", &smuggled).await.status;
    assert_eq!(
        (granted, smuggled),
        (200, 403),
        "(scope grants, scp smuggles)"
    );
    assert_eq!(h.runs(), 1);
}
