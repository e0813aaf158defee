//! ES256, ES384 and EdDSA beside RS256, over real HTTP against FakeKinde: each accepted only when
//! the verifier opts in, each only with its own key type and curve, JWK `use`/`key_ops`/`alg`
//! honoured for every key type, rotation, and the warning an operator gets when the JWKS has no
//! key the verifier may use. The hostile tokens are in `tests/algorithms_attacks.rs`.

mod common;

use std::time::Duration;

use claimcheck::Auth;
use claimcheck::jwt::Algorithm;
use claimcheck::readiness::Condition;
use claimcheck::testing::{Endpoint, FakeKinde, KeyType};
use common::log::Log;
use common::{Harness, start_with, verifier_for};
use serde_json::json;

const EVERY: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The kid of one key of each type, all published by the fake.
struct Kids {
    rs256: String,
    es256: String,
    es384: String,
    eddsa: String,
}

impl Kids {
    fn add(kinde: &FakeKinde) -> Self {
        Self {
            rs256: kinde.current_kid(),
            es256: kinde.add_signing_key(KeyType::Es256),
            es384: kinde.add_signing_key(KeyType::Es384),
            eddsa: kinde.add_signing_key(KeyType::EdDsa),
        }
    }

    /// `(alg, kid)` of each key.
    fn each(&self) -> [(&'static str, &str); 4] {
        [
            ("RS256", &self.rs256),
            ("ES256", &self.es256),
            ("ES384", &self.es384),
            ("EdDSA", &self.eddsa),
        ]
    }
}

/// A fake with a key of each type, and the app behind a verifier allowing `allowed`.
async fn start(allowed: &[Algorithm]) -> (Harness, Kids) {
    let kinde = FakeKinde::start().await;
    let kids = Kids::add(&kinde);
    let verifier = verifier_for(&kinde)
        .algorithms(allowed.iter().copied())
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    (start_with(kinde, verifier).await, kids)
}

fn header_alg(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["alg"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_of_each_algorithm_are_accepted_when_allowed() {
    let (h, kids) = start(&EVERY).await;
    assert_eq!(h.verifier.key_store().key_count(), 4);
    for (alg, kid) in kids.each() {
        let token = h
            .kinde
            .user_token("kp_1")
            .permissions(["read:reports"])
            .signed_with(kid)
            .sign();
        assert_eq!(header_alg(&token), alg);
        let me = h.get("/me", Some(&token)).await;
        assert_eq!(me.status, 200, "{alg}: {}", me.body);
        assert_eq!(me.json()["sub"], "kp_1");
        assert_eq!(h.get("/reports", Some(&token)).await.status, 200, "{alg}");
    }
}

#[tokio::test]
async fn each_algorithm_is_refused_unless_opted_in() {
    // The default verifier: RS256 only, so the EC and Ed25519 keys are not even held.
    let kinde = FakeKinde::start().await;
    let kids = Kids::add(&kinde);
    let verifier = common::warm_verifier(&kinde).await;
    assert_eq!(verifier.algorithms(), [Algorithm::RS256]);
    assert_eq!(verifier.key_store().key_count(), 1);
    let h = start_with(kinde, verifier).await;
    for (alg, kid) in kids.each() {
        let token = h.kinde.user_token("kp_1").signed_with(kid).sign();
        let answer = h.get("/me", Some(&token)).await;
        if alg == "RS256" {
            assert_eq!(answer.status, 200, "{}", answer.body);
        } else {
            answer.assert_invalid_token();
        }
    }
    // Opting into one algorithm allows that one alone (RS256 included: it was replaced).
    for only in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let (h, kids) = start(&[only]).await;
        assert_eq!(h.verifier.key_store().key_count(), 1, "{only:?}");
        for (alg, kid) in kids.each() {
            let token = h.kinde.user_token("kp_1").signed_with(kid).sign();
            let answer = h.get("/me", Some(&token)).await;
            if alg == only.as_str() {
                assert_eq!(answer.status, 200, "{alg}: {}", answer.body);
            } else {
                answer.assert_invalid_token();
            }
        }
    }
}

/// How many credentials were rejected for `reason`, in a log captured at `DEBUG`.
fn rejected_for(log: &Log, reason: &str) -> usize {
    log.text()
        .lines()
        .filter(|line| line.contains("credential rejected"))
        .filter(|line| line.contains(&format!("reason=\"{reason}\"")))
        .count()
}

// Catches: an alg checked only against the allowed list, with whatever key the kid names, and
// left to the signature check to fail (jsonwebtoken would, today: the binding must not depend
// on it, and comes before any signature work).
#[tokio::test]
async fn a_token_naming_a_key_of_another_type_is_refused() {
    let log = Log::default();
    let _guard = log.capture_at(tracing::Level::DEBUG);
    let (h, kids) = start(&EVERY).await;
    for (alg, kid) in kids.each() {
        for (other_alg, other_kid) in kids.each() {
            if alg == other_alg {
                continue;
            }
            // Signed by the key of `alg`, naming the other key: an RS256 token with an EC kid,
            // an ES256 token with the P-384 kid, an EdDSA token with an EC kid, and so on.
            let token = h
                .kinde
                .user_token("kp_1")
                .signed_with(kid)
                .header("kid", other_kid)
                .sign();
            h.get("/me", Some(&token)).await.assert_invalid_token();
            // Signed by the other key, the header claiming `alg`.
            let token = h
                .kinde
                .user_token("kp_1")
                .signed_with(other_kid)
                .header("alg", alg)
                .sign();
            h.get("/me", Some(&token)).await.assert_invalid_token();
        }
    }
    assert_eq!(
        rejected_for(&log, "alg needs another key type or curve"),
        4 * 3 * 2
    );
    assert_eq!(rejected_for(&log, "bad signature"), 0);
}

// Catches: a curve (or key type) taken from the token instead of the key, when the JWK does not
// pin an alg: only the binding of alg to key type and curve stands in the way.
#[tokio::test]
async fn keys_without_alg_are_still_bound_to_their_type_and_curve() {
    let log = Log::default();
    let _guard = log.capture_at(tracing::Level::DEBUG);
    let kinde = FakeKinde::start().await;
    let kids = Kids::add(&kinde);
    for (_, kid) in kids.each() {
        let mut jwk = kinde.jwk_of(kid).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk["kid"] = json!(format!("bare-{kid}"));
        kinde.publish_jwk(jwk);
    }
    let verifier = verifier_for(&kinde).algorithms(EVERY).build().unwrap();
    assert!(verifier.warm_up().await);
    assert_eq!(verifier.key_store().key_count(), 8);
    let h = start_with(kinde, verifier).await;
    for (alg, kid) in kids.each() {
        let bare = format!("bare-{kid}");
        let token = |claimed: &str| {
            h.kinde
                .user_token("kp_1")
                .signed_with(kid)
                .header("kid", bare.as_str())
                .header("alg", claimed)
                .sign()
        };
        assert_eq!(h.get("/me", Some(&token(alg))).await.status, 200, "{alg}");
        for (other, _) in kids.each() {
            if other != alg {
                h.get("/me", Some(&token(other)))
                    .await
                    .assert_invalid_token();
            }
        }
    }
    assert_eq!(
        rejected_for(&log, "alg needs another key type or curve"),
        4 * 3
    );
}

// Catches: JWK `use`, `key_ops` and `alg` checked for RSA keys only.
#[tokio::test]
async fn jwk_use_key_ops_and_alg_are_honoured_for_every_key_type() {
    let kinde = FakeKinde::start().await;
    let kids = Kids::add(&kinde);
    let variants = [
        ("enc", json!({"use": "enc"})),
        ("ops", json!({"key_ops": ["sign"]})),
        ("ops-empty", json!({"key_ops": []})),
        ("ES384-pin", json!({"alg": "ES384"})),
        ("ES256-pin", json!({"alg": "ES256"})),
        ("EdDSA-pin", json!({"alg": "EdDSA"})),
        ("RS256-pin", json!({"alg": "RS256"})),
    ];
    for (_, kid) in kids.each() {
        for (name, change) in &variants {
            let mut jwk = kinde.jwk_of(kid).unwrap();
            for (field, value) in change.as_object().unwrap() {
                jwk[field] = value.clone();
            }
            jwk["kid"] = json!(format!("{name}-{kid}"));
            kinde.publish_jwk(jwk);
        }
    }
    let verifier = verifier_for(&kinde).algorithms(EVERY).build().unwrap();
    assert!(verifier.warm_up().await);
    // Of each key's variants, the one pinning its own algorithm is kept.
    assert_eq!(verifier.key_store().key_count(), 4 + 4);
    let h = start_with(kinde, verifier).await;
    for (alg, kid) in kids.each() {
        // Signed by the very key the JWK carries, in its own algorithm.
        let token = |name: &str| {
            let named = format!("{name}-{kid}");
            h.kinde
                .user_token("kp_1")
                .signed_with(kid)
                .header("kid", named)
                .sign()
        };
        for (name, _) in &variants {
            let answer = h.get("/me", Some(&token(name))).await;
            if *name == format!("{alg}-pin") {
                assert_eq!(answer.status, 200, "{alg}: {}", answer.body);
            } else {
                answer.assert_invalid_token();
            }
        }
    }
}

#[tokio::test]
async fn rotation_to_and_from_ec_keys_is_picked_up() {
    let (h, kids) = start(&EVERY).await;
    let cached = h.kinde.user_token("kp_1").signed_with(&kids.es256).sign();
    assert_eq!(h.get("/me", Some(&cached)).await.status, 200);
    // The issuer moves to a new P-256 key: new tokens are ES256 by default.
    let new_kid = h.kinde.rotate_key_to(KeyType::Es256);
    tokio::time::sleep(Duration::from_millis(250)).await; // past the 200 ms cooldown
    let new = h.kinde.user_token("kp_2").sign();
    assert_eq!(header_alg(&new), "ES256");
    assert_eq!(h.get("/me", Some(&new)).await.status, 200, "refetched");
    assert_eq!(h.verifier.key_store().key_count(), 5);
    // The old P-256 key is withdrawn: what it verified (cached or not) is refused.
    h.kinde.retire_key(&kids.es256);
    let newest = h.kinde.rotate_key_to(KeyType::EdDsa);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let token = h.kinde.user_token("kp_3").sign();
    assert_eq!(header_alg(&token), "EdDSA");
    assert_eq!(h.get("/me", Some(&token)).await.status, 200, "refetched");
    h.get("/me", Some(&cached)).await.assert_invalid_token();
    assert_eq!(h.get("/me", Some(&new)).await.status, 200);
    assert_eq!(h.verifier.key_store().key_count(), 5);
    // And back to RSA.
    h.kinde.retire_key(&newest);
    h.kinde.retire_key(&new_kid);
    let rsa = h.kinde.rotate_key_to(KeyType::Rs256);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let token = h.kinde.user_token("kp_4").sign();
    assert_eq!(header_alg(&token), "RS256");
    assert_eq!(h.get("/me", Some(&token)).await.status, 200);
    h.get("/me", Some(&new)).await.assert_invalid_token();
    assert!(h.kinde.jwk_of(&rsa).is_some());
}

#[tokio::test]
async fn an_ec_only_jwks_for_an_rs256_verifier_is_a_startup_warning_naming_what_it_holds() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    let rsa = kinde.current_kid();
    kinde.rotate_key_to(KeyType::Es256);
    kinde.add_signing_key(KeyType::Es256);
    kinde.add_signing_key(KeyType::EdDsa);
    kinde.retire_key(&rsa);
    let verifier = verifier_for(&kinde).build().unwrap();
    assert!(verifier.warm_up().await, "a set was fetched: it is empty");
    assert_eq!(verifier.key_store().key_count(), 0);
    let text = log.text();
    let warning = text
        .lines()
        .find(|line| line.contains("algorithms_found"))
        .unwrap_or_else(|| panic!("no warning naming what the JWKS holds:\n{text}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("algorithms_found=ES256 (EC P-256), EdDSA (OKP Ed25519)"),
        "{warning}"
    );
    assert!(warning.contains("allowed=RS256"), "{warning}");
    assert!(warning.contains(&kinde.jwks_uri()), "{warning}");
    // Said once: the same set fetched again does not repeat it.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fetches = kinde.calls(Endpoint::Jwks);
    assert!(verifier.warm_up().await);
    assert_eq!(kinde.calls(Endpoint::Jwks), fetches + 1);
    assert_eq!(log.text().matches("algorithms_found").count(), 1);

    // The startup check fails with the same words.
    let live = common::live_for(&kinde, common::Via::Account).build();
    let report = Auth::new(verifier.clone(), live).preflight().await;
    let keys = &report.checks()[0];
    assert_eq!(
        (keys.name(), keys.condition()),
        ("keys", Condition::Failing)
    );
    let detail = keys.detail();
    assert!(
        detail.contains("no usable key for the allowed algorithms (RS256): it has ES256 (EC P-256), EdDSA (OKP Ed25519)"),
        "{detail}"
    );
    assert!(detail.contains(&kinde.jwks_uri()), "{detail}");

    // Every token is refused meanwhile; opting in makes the same set usable.
    let token = kinde.user_token("kp_1").sign();
    assert!(verifier.verify(&token).await.is_err());
    let opted_in = verifier_for(&kinde)
        .algorithms([Algorithm::RS256, Algorithm::ES256])
        .build()
        .unwrap();
    assert!(opted_in.warm_up().await);
    assert_eq!(opted_in.key_store().key_count(), 2);
    assert!(opted_in.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_set_with_usable_keys_gives_no_such_warning() {
    let log = Log::default();
    let _guard = log.capture();
    let kinde = FakeKinde::start().await;
    kinde.add_signing_key(KeyType::Es256);
    let verifier = common::warm_verifier(&kinde).await;
    assert_eq!(verifier.key_store().key_count(), 1);
    let text = log.text();
    // The EC key is dropped with its reason; the set as a whole is fine.
    assert!(text.contains("JWKS key dropped"), "{text}");
    assert!(text.contains("reason=\"alg not allowed\""), "{text}");
    assert!(!text.contains("algorithms_found"), "{text}");
}
