//! Every token-verification rule, over real HTTP against FakeKinde.

mod common;

use std::time::Duration;

use common::{start, start_with, verifier_for};
use serde_json::json;

#[tokio::test]
async fn a_kinde_user_token_is_accepted_and_claims_reach_the_handler() {
    let h = start().await;
    // Kinde's real shape: typ "JWT", aud an array, colon-hex kid.
    assert!(h.kinde.current_kid().contains(':'));
    let token = h
        .kinde
        .user_token("kp_0123456789abcdef0123456789abcdef")
        .permissions(["read:reports"])
        .sign();
    let me = h.get("/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], "kp_0123456789abcdef0123456789abcdef");
    assert_eq!(me.json()["permissions"], json!(["read:reports"]));
    assert_eq!(h.get("/reports", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn missing_credentials_get_a_bare_challenge() {
    let h = start().await;
    let res = h.get("/me", None).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.challenge.as_deref(), Some("Bearer"));
    assert_eq!(
        res.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(h.get("/health", None).await.status, 200);
}

#[tokio::test]
async fn alg_none_in_every_casing_is_rejected() {
    let h = start().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = h.kinde.user_token("kp_1").unsigned(alg).sign();
        h.get("/me", Some(&token)).await.assert_invalid_token();
        // A "signature" of garbage does not help either.
        let token = format!("{token}AAAA");
        h.get("/me", Some(&token)).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected_in_every_encoding() {
    let h = start().await;
    let encodings = h.kinde.public_key_encodings();
    assert!(encodings.len() >= 5);
    for (name, secret) in encodings {
        let token = h.kinde.user_token("kp_1").hs256(secret).sign();
        let res = h.get("/me", Some(&token)).await;
        assert_eq!(res.status, 401, "{name}");
        res.assert_invalid_token();
    }
}

#[tokio::test]
async fn a_forged_signature_is_rejected() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").forged().sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    // Swapping the payload of a genuine token breaks its signature.
    let genuine = h.kinde.user_token("kp_1").sign();
    let other = h
        .kinde
        .user_token("kp_2")
        .permissions(["read:reports"])
        .sign();
    let g: Vec<&str> = genuine.split('.').collect();
    let o: Vec<&str> = other.split('.').collect();
    let spliced = format!("{}.{}.{}", g[0], o[1], g[2]);
    h.get("/reports", Some(&spliced))
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn crit_header_is_rejected() {
    let h = start().await;
    for crit in [json!(["exp"]), json!([]), json!("b64")] {
        let token = h.kinde.user_token("kp_1").header("crit", crit).sign();
        h.get("/me", Some(&token)).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn kid_is_required_and_typ_must_be_an_access_token_type() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").header("kid", json!(null)).sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").header("kid", "").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").without_header("kid").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    for typ in ["JWE", "secevent+jwt", "dpop+jwt"] {
        let token = h.kinde.user_token("kp_1").header("typ", typ).sign();
        h.get("/me", Some(&token)).await.assert_invalid_token();
    }
    // RFC 9068 access tokens and a missing typ are fine.
    for typ in ["at+jwt", "application/at+jwt", "jwt"] {
        let token = h.kinde.user_token("kp_1").header("typ", typ).sign();
        assert_eq!(h.get("/me", Some(&token)).await.status, 200, "{typ}");
    }
    let token = h.kinde.user_token("kp_1").without_header("typ").sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn issuer_must_be_the_exact_string() {
    let h = start().await;
    let iss = h.kinde.issuer().to_owned();
    for bad in [
        json!("https://evil.kinde.com"),
        json!(format!("{iss}/")),
        json!([iss.clone()]),
        json!([iss.clone(), "https://evil"]),
        json!(null),
    ] {
        let token = h.kinde.user_token("kp_1").claim("iss", bad.clone()).sign();
        let res = h.get("/me", Some(&token)).await;
        assert_eq!(res.status, 401, "iss {bad}");
        res.assert_invalid_token();
    }
    let token = h.kinde.user_token("kp_1").without_claim("iss").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
}

#[tokio::test]
async fn audience_must_contain_ours_and_be_well_typed() {
    let h = start().await;
    let ours = h.kinde.audience().to_owned();
    for bad in [
        json!("another-api"),
        json!(["another-api"]),
        json!([]),
        json!(5),
        json!([5]),
        json!({"aud": ours}),
        json!(null),
    ] {
        let token = h.kinde.user_token("kp_1").audience(bad.clone()).sign();
        let res = h.get("/me", Some(&token)).await;
        assert_eq!(res.status, 401, "aud {bad}");
    }
    let token = h.kinde.user_token("kp_1").without_claim("aud").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    // A plain string and a multi-valued array are both fine.
    for good in [json!(ours), json!(["other", ours])] {
        let token = h.kinde.user_token("kp_1").audience(good).sign();
        assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    }
}

#[tokio::test]
async fn expired_tokens_are_told_apart_from_invalid_ones() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").expires_in(-120).sign();
    let res = h.get("/me", Some(&token)).await;
    res.assert_invalid_token();
    assert!(res.challenge.unwrap().contains("expired"));
    // Within the 30 s leeway it still passes.
    let token = h.kinde.user_token("kp_1").expires_in(-5).sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    // exp is required and must be a number.
    let token = h.kinde.user_token("kp_1").without_claim("exp").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").claim("exp", "9999999999").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_rejected() {
    let h = start().await;
    let now = h.kinde.user_token("x").claims()["iat"].as_i64().unwrap();
    let token = h.kinde.user_token("kp_1").claim("nbf", now + 600).sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").issued_in(600).sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
    let token = h.kinde.user_token("kp_1").claim("nbf", now - 10).sign();
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn claims_that_are_not_an_object_are_rejected() {
    let h = start().await;
    let iss = h.kinde.issuer().to_owned();
    let aud = h.kinde.audience().to_owned();
    // A JSON array that serde would happily map onto a struct, field by field.
    let array = json!([iss, "kp_1", [aud], 9_999_999_999i64]).to_string();
    for payload in [array.as_str(), "\"claims\"", "42", "null", "{", ""] {
        let token = h.kinde.user_token("kp_1").raw_payload(payload).sign();
        let res = h.get("/me", Some(&token)).await;
        assert_eq!(res.status, 401, "{payload}");
    }
}

#[tokio::test]
async fn oversized_tokens_are_rejected_before_any_work() {
    let h = start().await;
    let token = h
        .kinde
        .user_token("kp_1")
        .claim("padding", "x".repeat(9 * 1024))
        .sign();
    assert!(token.len() > 8 * 1024);
    h.get("/me", Some(&token)).await.assert_invalid_token();
}

#[tokio::test]
async fn malformed_authorization_headers() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").sign();
    // Two Authorization headers: 400 invalid_request, even if both are valid.
    let req = h
        .client
        .get(format!("{}/me", h.base))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"));
    let res = h.send(req).await;
    assert_eq!(res.status, 400);
    assert!(
        res.challenge
            .unwrap()
            .starts_with("Bearer error=\"invalid_request\"")
    );
    // Lowercase scheme is accepted.
    let req = h
        .client
        .get(format!("{}/me", h.base))
        .header("authorization", format!("bearer {token}"));
    assert_eq!(h.send(req).await.status, 200);
    // Another scheme counts as no credentials.
    let req = h
        .client
        .get(format!("{}/me", h.base))
        .header("authorization", "Basic dXNlcjpwYXNz");
    assert_eq!(h.send(req).await.challenge.as_deref(), Some("Bearer"));
    // Not a JWT at all.
    for junk in [
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "e30.e30.e30",
        "a.b.c=",
        "a+b/c.d.e",
        "a,b",
    ] {
        h.get("/me", Some(junk)).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn a_token_in_the_query_string_is_ignored() {
    let h = start().await;
    let token = h.kinde.user_token("kp_1").sign();
    let res = h.get(&format!("/me?access_token={token}"), None).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.challenge.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn an_id_token_is_not_an_access_token() {
    let h = start().await;
    let token = h.kinde.id_token("kp_1").sign();
    h.get("/me", Some(&token)).await.assert_invalid_token();
}

#[tokio::test]
async fn m2m_tokens_authenticate_and_use_scp_for_permissions() {
    let h = start().await;
    let token = h
        .kinde
        .m2m_token("d4d3c5b74e064badb9625a4aa6241bcc", &["read:reports"])
        .sign();
    let me = h.get("/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], json!(null));
    assert_eq!(me.json()["machine"], true);
    assert_eq!(h.get("/reports", Some(&token)).await.status, 200);
    // A `permissions` claim on an M2M token does not count: scopes do.
    let token = h
        .kinde
        .m2m_token("d4d3c5b74e064badb9625a4aa6241bcc", &["read:users"])
        .permissions(["read:reports"])
        .sign();
    assert_eq!(h.get("/reports", Some(&token)).await.status, 403);
}

#[tokio::test]
async fn m2m_tokens_from_the_token_endpoint_verify() {
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let (id, secret) = kinde.register_m2m_client(&["read:reports"]);
    let audience = kinde.audience().to_owned();
    let body = reqwest::Client::new()
        .post(format!("{}/oauth2/token", kinde.issuer()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", audience.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "bearer");
    let verifier = common::verifier_for(&kinde).build().unwrap();
    let claims = verifier
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(claims.is_machine());
    assert_eq!(claims.authorized_party(), Some(id.as_str()));
}

#[tokio::test]
async fn permission_rules_on_token_trusted_routes() {
    let h = start().await;
    let without = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:other"])
        .sign();
    let res = h.get("/reports", Some(&without)).await;
    assert_eq!(res.status, 403);
    let challenge = res.challenge.clone().unwrap();
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""));
    assert!(challenge.contains("scope=\"read:reports\""));
    assert_eq!(res.json()["error"], "insufficient_scope");
    let empty = h.kinde.user_token("kp_1").sign();
    assert_eq!(h.get("/reports", Some(&empty)).await.status, 403);
    let hasura = h
        .kinde
        .user_token("kp_1")
        .without_claim("permissions")
        .claim("x-hasura-permissions", json!(["read:reports"]))
        .sign();
    assert_eq!(h.get("/reports", Some(&hasura)).await.status, 200);
}

#[tokio::test]
async fn a_maximum_token_age_refuses_old_tokens_whatever_their_exp() {
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let verifier = verifier_for(&kinde)
        .max_token_age(Duration::from_secs(600))
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    let h = start_with(kinde, verifier).await;
    let young = h.kinde.user_token("kp_1").issued_in(-60).sign();
    assert_eq!(h.get("/me", Some(&young)).await.status, 200);
    // 20 minutes old, valid for hours by its exp: too old.
    let old = h
        .kinde
        .user_token("kp_1")
        .issued_in(-1200)
        .expires_in(3 * 3600)
        .sign();
    let answer = h.get("/me", Some(&old)).await;
    answer.assert_invalid_token();
    assert_eq!(answer.json()["detail"], "The access token expired");
    // Inside the 30 s leeway of the age limit: accepted, as for exp.
    let edge = h.kinde.user_token("kp_1").issued_in(-610).sign();
    assert_eq!(h.get("/me", Some(&edge)).await.status, 200);
    let ageless = h.kinde.user_token("kp_1").without_claim("iat").sign();
    let answer = h.get("/me", Some(&ageless)).await;
    answer.assert_invalid_token();
    assert_eq!(answer.json()["detail"], "The access token is invalid");

    // Off by default: the same old token is fine where no age limit is set.
    let default = start().await;
    let old = default
        .kinde
        .user_token("kp_1")
        .issued_in(-1200)
        .expires_in(3 * 3600)
        .sign();
    assert_eq!(default.get("/me", Some(&old)).await.status, 200);
}

/// `{...}` with `member` (raw bytes) added as its last member.
fn with_member(object: &str, member: &[u8]) -> Vec<u8> {
    let mut bytes = object.as_bytes()[..object.len() - 1].to_vec();
    bytes.push(b',');
    bytes.extend_from_slice(member);
    bytes.push(b'}');
    bytes
}

#[tokio::test]
async fn jose_json_must_be_strict_i_json_in_every_member() {
    let h = start().await;
    let builder = || h.kinde.user_token("kp_1").permissions(["read:reports"]);
    let claims = serde_json::to_string(builder().claims()).unwrap();
    let header = json!({"alg": "RS256", "kid": h.kinde.current_kid(), "typ": "JWT"}).to_string();
    let members: [(&str, &[u8]); 7] = [
        (
            "invalid UTF-8 in an unread member",
            b"\"note\":\"\xff\xfe\"",
        ),
        ("a lone high surrogate escape", b"\"note\":\"\\ud800\""),
        ("a lone low surrogate escape", b"\"note\":\"\\udc00x\""),
        ("a noncharacter", b"\"note\":\"\\ufdd0\""),
        ("a duplicate unread member", b"\"note\":1,\"note\":2"),
        (
            "a duplicate inside an unread object",
            b"\"note\":{\"a\":1,\"a\":2}",
        ),
        (
            "a name duplicated through an escape",
            b"\"n\\u006fte\":1,\"note\":2",
        ),
    ];
    // The raw bytes themselves are fine when they are I-JSON: the rule is what refuses.
    let fine = builder()
        .raw_payload(with_member(&claims, b"\"note\":\"\\u00e9\""))
        .sign();
    assert_eq!(h.get("/reports", Some(&fine)).await.status, 200);
    let fine = builder()
        .raw_header(with_member(&header, b"\"note\":1"))
        .sign();
    assert_eq!(h.get("/reports", Some(&fine)).await.status, 200);
    for (what, member) in members {
        let in_claims = builder().raw_payload(with_member(&claims, member)).sign();
        let answer = h.get("/reports", Some(&in_claims)).await;
        assert_eq!(answer.status, 401, "claims with {what}");
        answer.assert_invalid_token();
        let in_header = builder().raw_header(with_member(&header, member)).sign();
        let answer = h.get("/reports", Some(&in_header)).await;
        assert_eq!(answer.status, 401, "header with {what}");
    }
    // A second `sub` or `alg` cannot smuggle another identity or algorithm past any parser.
    let second_sub = builder()
        .raw_payload(with_member(&claims, b"\"sub\":\"kp_admin\""))
        .sign();
    h.get("/me", Some(&second_sub)).await.assert_invalid_token();
    let second_alg = builder()
        .raw_header(with_member(&header, b"\"alg\":\"none\""))
        .sign();
    h.get("/me", Some(&second_alg)).await.assert_invalid_token();
}
