//! The verified-token cache stays within its byte budget, measured on the process (resident
//! memory), not only by its own weigher: 4 000 maximum-size tokens through a 32 MiB cache,
//! including tokens with ~1 300 short permissions. Its own test binary, so no other test
//! allocates meanwhile. Measured here: the process grew 15.4 MiB (29.3 MiB weighed, 223
//! entries; 24.8 MiB with the moka cache of 0.2).

#![cfg(target_os = "linux")]

mod common;

use claimcheck::testing::FakeKinde;
use common::verifier_for;

const MIB: u64 = 1024 * 1024;
const BUDGET: u64 = 32 * MIB;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A token of up to 8 KiB (the default cap) in one of five shapes.
fn token(kinde: &FakeKinde, i: usize) -> String {
    let builder = kinde.user_token(&format!("kp_{i:032x}"));
    match i % 5 {
        // One large custom claim.
        0 => builder.claim("blob", "x".repeat(5_300)).sign(),
        // ~1 300 one-letter permissions: ~80 KB held.
        1 => builder.permissions(vec!["a"; 1_300]).sign(),
        // 1 000 of them: ~62 KB held.
        2 => builder.permissions(vec!["b"; 1_000]).sign(),
        // Three chains of 50 nested one-member objects: each a whole B-tree leaf (640 B).
        3 => {
            let chain = |_| {
                (0..50).fold(
                    serde_json::json!(0),
                    |inner, _| serde_json::json!({"": inner}),
                )
            };
            let chains: Vec<serde_json::Value> = (0..3).map(chain).collect();
            let flags = serde_json::json!({"nested": {"t": "j", "v": chains}});
            builder.claim("feature_flags", flags).sign()
        }
        // Many small flags.
        _ => {
            let flags: serde_json::Map<String, serde_json::Value> = (0..200)
                .map(|f| (format!("f{f}"), serde_json::json!({"t": "b", "v": true})))
                .collect();
            builder.claim("feature_flags", flags).sign()
        }
    }
}

#[tokio::test]
async fn thousands_of_maximum_size_tokens_stay_within_the_byte_budget() {
    let kinde = FakeKinde::start().await;
    let verifier = verifier_for(&kinde)
        .token_cache_max_bytes(BUDGET)
        .build()
        .unwrap();
    assert!(verifier.warm_up().await);
    // Warm every allocation path once before the baseline.
    for i in 0..8 {
        verifier.verify(&token(&kinde, i)).await.unwrap();
    }
    let before = rss();
    let mut largest = 0;
    for i in 8..4_008 {
        let token = token(&kinde, i);
        largest = largest.max(token.len());
        verifier.verify(&token).await.unwrap();
    }
    let grown = rss().saturating_sub(before);
    let usage = verifier.token_cache_usage();
    eprintln!(
        "largest token {largest} B; cache: {} entries, {:.1} MiB weighed; process grew {:.1} MiB",
        usage.entries,
        usage.bytes as f64 / MIB as f64,
        grown as f64 / MIB as f64
    );
    assert!(largest > 7 * 1024 && largest <= 8 * 1024, "{largest}");
    assert!(usage.bytes <= BUDGET, "weigher over budget: {usage:?}");
    assert!(usage.entries > 100, "the cache still caches: {usage:?}");
    // The process, not only the weigher, stays within the budget. Held by entry count instead,
    // 4 000 such entries would take over 180 MiB.
    assert!(
        grown <= BUDGET,
        "process grew {grown} B with a {BUDGET} B budget ({} B weighed)",
        usage.bytes
    );
}
