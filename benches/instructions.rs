//! Instruction counts of the first sight of a token against a raw signature check, for
//! budgets that must not flap on a shared machine (`scripts/instructions` runs this under
//! callgrind and prints the ratio). Run on its own it only does the work:
//!
//! - `first_seen`: `Verifier::verify` with the verified-token cache off, the key known (strict
//!   I-JSON, header rules, RS256 signature, claims), `ITERATIONS` times;
//! - `raw_decode`: `jsonwebtoken::decode` RS256 with a prebuilt key and validation on the same
//!   token, `ITERATIONS` times (the crypto limit);
//! - `cache_hit`: `Verifier::verify` of a token verified before (the verified-token cache hit
//!   every repeated request takes), `ITERATIONS` times: reported, not budgeted;
//! - `first_seen_es256` / `raw_decode_es256` and `first_seen_eddsa` / `raw_decode_eddsa`: the
//!   same pair for an ES256 (P-256) and an EdDSA (Ed25519) token, with a verifier allowing
//!   RS256, ES256 and EdDSA: reported, not budgeted.
//!
//! - whole request paths (`stack.rs`): `bare`, `token_trusted_repeat`, `strict_hit`,
//!   `watermarked_repeat`, and `token_trusted_repeat_redis` (feature `redis`).
//!
//! All are polled with a no-op waker: no runtime in the count.
#![allow(missing_docs)]

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use claimcheck::Verifier;
use claimcheck::jwt::Algorithm;
use claimcheck::testing::{FakeKinde, KeyType};
use jsonwebtoken::{DecodingKey, Validation};

const ITERATIONS: usize = 200;
const USER: &str = "kp_0195ac80a14e8d71f42b98e75d3c61ad";

#[path = "instructions/stack.rs"]
mod stack;

/// `ITERATIONS` first sights of `token` (the verifier's cache is off).
#[inline(always)]
fn verify_loop(verifier: &Verifier, token: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..ITERATIONS {
        verify_now(verifier, token, &mut cx);
    }
}

/// `ITERATIONS` raw `jsonwebtoken::decode`s of `token`.
#[inline(always)]
fn decode_loop(key: &DecodingKey, validation: &Validation, token: &str) {
    for _ in 0..ITERATIONS {
        let decoded = jsonwebtoken::decode::<serde_json::Value>(black_box(token), key, validation);
        black_box(decoded.expect("a valid token"));
    }
}

/// `verifier.verify(token)`, polled once: the key is known, so it never waits.
#[inline(always)]
fn verify_now(verifier: &Verifier, token: &str, cx: &mut Context<'_>) {
    match pin!(verifier.verify(black_box(token))).poll(cx) {
        Poll::Ready(claims) => {
            black_box(claims.expect("a valid token"));
        }
        Poll::Pending => panic!("the key is known: verification never waits"),
    }
}

#[inline(never)]
fn first_seen(verifier: &Verifier, token: &str) {
    verify_loop(verifier, token);
}

/// Each measured function has a body of its own (here a distinct constant): rustc merges
/// identical functions, and callgrind would then count them under one name.
#[inline(never)]
fn first_seen_es256(verifier: &Verifier, token: &str) {
    black_box("es256"); // a body of its own
    verify_loop(verifier, token);
}

#[inline(never)]
fn first_seen_eddsa(verifier: &Verifier, token: &str) {
    black_box("eddsa"); // a body of its own: see `first_seen_es256`
    verify_loop(verifier, token);
}

#[inline(never)]
fn cache_hit(cached: &Verifier, token: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..ITERATIONS {
        verify_now(cached, black_box(token), &mut cx);
    }
}

#[inline(never)]
fn raw_decode(key: &DecodingKey, validation: &Validation, token: &str) {
    decode_loop(key, validation, token);
}

#[inline(never)]
fn raw_decode_es256(key: &DecodingKey, validation: &Validation, token: &str) {
    black_box("es256"); // a body of its own: see `first_seen_es256`
    decode_loop(key, validation, token);
}

#[inline(never)]
fn raw_decode_eddsa(key: &DecodingKey, validation: &Validation, token: &str) {
    black_box("eddsa"); // a body of its own: see `first_seen_es256`
    decode_loop(key, validation, token);
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument (a criterion filter) means "not me".
    if std::env::args().skip(1).any(|arg| arg != "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kinde = rt.block_on(FakeKinde::start());
    let verifier = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .token_cache_max_bytes(0)
        .build()
        .unwrap();
    assert!(rt.block_on(verifier.warm_up()));
    let token = kinde
        .user_token(USER)
        .permissions(["read:reports", "create:payments"])
        .sign();

    let (key, validation) = common::raw_decoder(&kinde);

    first_seen(&verifier, &token);
    raw_decode(&key, &validation, &token);

    // ES256 and EdDSA against their raw decodes, in the same run.
    let es256 = kinde.add_signing_key(KeyType::Es256);
    let eddsa = kinde.add_signing_key(KeyType::EdDsa);
    let others = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
        .token_cache_max_bytes(0)
        .build()
        .unwrap();
    assert!(rt.block_on(others.warm_up()));
    let signed = |kid: &str| {
        kinde
            .user_token(USER)
            .permissions(["read:reports", "create:payments"])
            .signed_with(kid)
            .sign()
    };
    let (es256_token, eddsa_token) = (signed(&es256), signed(&eddsa));
    let (es256_key, es256_validation) =
        common::raw_decoder_of(&kinde, &es256, jsonwebtoken::Algorithm::ES256);
    let (eddsa_key, eddsa_validation) =
        common::raw_decoder_of(&kinde, &eddsa, jsonwebtoken::Algorithm::EdDSA);
    first_seen_es256(&others, &es256_token);
    raw_decode_es256(&es256_key, &es256_validation, &es256_token);
    first_seen_eddsa(&others, &eddsa_token);
    raw_decode_eddsa(&eddsa_key, &eddsa_validation, &eddsa_token);

    let cached = Verifier::builder(kinde.issuer())
        .audience(kinde.audience())
        .build()
        .unwrap();
    assert!(rt.block_on(cached.warm_up()));
    rt.block_on(cached.verify(&token)).unwrap();
    cache_hit(&cached, &token);

    stack::run(&rt, &kinde, USER, &token);
}
