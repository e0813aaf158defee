use std::hash::{DefaultHasher, Hash};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::claims::{AccessToken, Repr};
use crate::clock::now_ms;

/// An entry for the claims `json`, carried by a token shaped like a JWS whose last segment
/// differs with the claims, as a real signature does (the cache picks shards by it).
fn verified(json: &str, valid_until: i64) -> Arc<Verified> {
    let mut hasher = DefaultHasher::new();
    json.hash(&mut hasher);
    let signature = URL_SAFE_NO_PAD.encode(hasher.finish().to_le_bytes());
    signed(json, &signature, valid_until)
}

/// An entry for the claims `json`, carried by a token whose last segment is `signature`.
fn signed(json: &str, signature: &str, valid_until: i64) -> Arc<Verified> {
    let repr: Repr = serde_json::from_str(json).unwrap();
    let token = format!("e30.{}.{signature}", URL_SAFE_NO_PAD.encode(json));
    let claims = Claims::from_parts(repr, json, AccessToken::new(Arc::from(token)));
    Verified::new(claims, VerifyingKey::test_key(), 0, valid_until)
}

/// A small entry whose token is told apart by `jti`.
fn small(jti: &str, valid_until: i64) -> Arc<Verified> {
    verified(
        &format!(r#"{{"iss":"i","exp":1,"jti":"{jti}"}}"#),
        valid_until,
    )
}

/// The token `entry` is cached under.
fn token(entry: &Verified) -> Vec<u8> {
    entry.token().to_vec()
}

/// Unix seconds an hour from now.
fn in_an_hour() -> i64 {
    (now_ms() / 1000) as i64 + 3600
}

/// The weight of `small` with a two-character `jti`.
fn small_weight() -> u64 {
    u64::from(small("00", 0).weight())
}

/// A cache of one shard with room for `n` entries of `small` with two-character `jti`s.
fn room_for(n: u64) -> TokenCache {
    let weight = small_weight();
    let cache = TokenCache::new(n * weight, 1 << 20, Duration::from_secs(600));
    assert_eq!(cache.shards.len(), 1);
    cache
}

#[test]
fn deadlines_saturate() {
    assert_eq!(deadline_ms(130, 50_000, u64::MAX), 130_000);
    assert_eq!(deadline_ms(130, 50_000, 1_000), 51_000);
    assert_eq!(deadline_ms(-5, 50_000, 1_000), 0);
    assert_eq!(deadline_ms(i64::MAX, 7, u64::MAX), u64::MAX);
}

#[test]
fn shards_hold_four_of_the_heaviest_entries() {
    // The defaults: 64 MiB, 256 KiB entries.
    assert_eq!(shard_count(64 << 20, 256 << 10), 32);
    assert_eq!(shard_count(3 << 20, 256 << 10), 2);
    assert_eq!(shard_count(1 << 20, 1 << 20), 1);
    assert_eq!(shard_count(u64::MAX, 0), MAX_SHARDS);
}

#[test]
fn expired_entries_are_not_served() {
    let cache = TokenCache::new(1 << 20, 1 << 16, Duration::from_secs(60));
    let now = now_ms();
    let secs = (now / 1000) as i64;
    let (live, dead) = (small("live", secs + 100), small("dead", secs - 1));
    let (live_token, dead_token) = (token(&live), token(&dead));
    cache.insert(live, now);
    cache.insert(dead, now);
    assert!(cache.get(&live_token, now).is_some());
    assert!(cache.get(&dead_token, now).is_none());
}

#[test]
fn exp_is_exact_to_the_millisecond() {
    let cache = TokenCache::new(1 << 20, 1 << 16, Duration::from_secs(600));
    let now = now_ms();
    let until = (now / 1000) as i64 + 10;
    let entry = small("exp", until);
    let key = token(&entry);
    cache.insert(entry, now);
    let exp_ms = until as u64 * 1000;
    assert!(cache.get(&key, exp_ms - 1).is_some());
    assert!(cache.get(&key, exp_ms).is_none());
}

#[test]
fn entries_expire_after_max_ttl() {
    let cache = TokenCache::new(1 << 20, 1 << 16, Duration::from_secs(60));
    let now = now_ms();
    let entry = small("ttl", in_an_hour());
    let key = token(&entry);
    cache.insert(entry, now);
    assert!(cache.get(&key, now + 59_999).is_some());
    assert!(cache.get(&key, now + 60_000).is_none());
}

#[test]
fn the_budget_is_in_bytes() {
    let exp = in_an_hour();
    let entry = small("x", exp);
    let budget = 50 * u64::from(entry.weight());
    let cache = TokenCache::new(budget, 1 << 16, Duration::from_secs(60));
    for i in 0..1_000 {
        cache.insert(small(&format!("token-{i}"), exp), now_ms());
    }
    let TokenCacheUsage { entries, bytes } = cache.usage();
    assert!(bytes <= budget, "{bytes} > {budget}");
    assert!((45..=50).contains(&entries), "{entries}");
}

#[test]
fn eviction_gives_entries_hit_a_second_chance() {
    let cache = room_for(4);
    let now = now_ms();
    let entries: Vec<_> = (0..4)
        .map(|i| small(&format!("e{i}"), in_an_hour()))
        .collect();
    let keys: Vec<_> = entries.iter().map(|e| token(e)).collect();
    for entry in entries {
        cache.insert(entry, now);
    }
    assert!(cache.get(&keys[0], now).is_some());
    cache.insert(small("nw", in_an_hour()), now);
    assert!(cache.get(&keys[0], now).is_some(), "the entry hit stays");
    let evicted = keys[1..].iter().filter(|k| cache.get(k, now).is_none());
    assert_eq!(evicted.count(), 1);
    assert_eq!(cache.usage().entries, 4);
}

#[test]
fn expired_entries_are_evicted_first() {
    let cache = room_for(3);
    let now = now_ms();
    let soon = (now / 1000) as i64 + 5;
    let (a, b, c) = (
        small("aa", in_an_hour()),
        small("bb", soon),
        small("cc", in_an_hour()),
    );
    let keys = [token(&a), token(&b), token(&c)];
    for entry in [a, b, c] {
        cache.insert(entry, now);
    }
    let later = now + 10_000;
    cache.insert(small("dd", in_an_hour()), later);
    assert!(cache.get(&keys[0], later).is_some());
    assert!(cache.get(&keys[2], later).is_some());
    assert_eq!(cache.usage().entries, 3);
}

#[test]
fn removed_tokens_are_gone_and_their_bytes_freed() {
    let cache = room_for(4);
    let now = now_ms();
    let entry = small("gn", in_an_hour());
    let key = token(&entry);
    cache.insert(entry, now);
    cache.insert(small("kp", in_an_hour()), now);
    cache.remove(&key);
    assert!(cache.get(&key, now).is_none());
    let usage = cache.usage();
    assert_eq!(
        usage,
        TokenCacheUsage {
            entries: 1,
            bytes: small_weight()
        }
    );
}

#[test]
fn a_token_inserted_twice_is_held_once() {
    let cache = room_for(4);
    let now = now_ms();
    cache.insert(small("tw", in_an_hour()), now);
    cache.insert(small("tw", in_an_hour()), now);
    assert_eq!(cache.usage().entries, 1);
}

#[test]
fn tokens_with_the_same_hashed_tail_are_told_apart() {
    let cache = TokenCache::new(1 << 20, 1 << 16, Duration::from_secs(60));
    let now = now_ms();
    let claims =
        |first: char| format!(r#"{{"iss":"i","exp":1,"jti":"{first}{}"}}"#, "x".repeat(90));
    let (a, b) = (
        signed(&claims('a'), "c2lnbmF0dXJl", in_an_hour()),
        signed(&claims('b'), "c2lnbmF0dXJl", in_an_hour()),
    );
    let (key_a, key_b) = (token(&a), token(&b));
    assert_eq!(key_a.len(), key_b.len());
    assert_eq!(
        key_a[key_a.len() - HASHED_TAIL..],
        key_b[key_b.len() - HASHED_TAIL..]
    );
    assert_ne!(key_a, key_b);
    cache.insert(a, now);
    assert!(
        cache.get(&key_b, now).is_none(),
        "equality is on every byte"
    );
    cache.insert(b, now);
    assert_eq!(token(&cache.get(&key_a, now).unwrap()), key_a);
    assert_eq!(token(&cache.get(&key_b, now).unwrap()), key_b);
}

#[test]
fn threads_inserting_and_reading_keep_the_budget() {
    // Every `jti` below is "t-iiii": one weight.
    let weight = u64::from(small("0-0000", 0).weight());
    let budget = 200 * weight;
    let cache = TokenCache::new(
        budget,
        u32::try_from(weight).unwrap(),
        Duration::from_secs(60),
    );
    assert!(cache.shards.len() > 1);
    let exp = in_an_hour();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let cache = &cache;
            scope.spawn(move || {
                for i in 0..2_000 {
                    let entry = small(&format!("{thread}-{i:04}"), exp);
                    let key = token(&entry);
                    cache.insert(entry, now_ms());
                    // Just inserted; another thread may have evicted it since, but a hit is
                    // always the entry of this very token.
                    if let Some(hit) = cache.get(&key, now_ms()) {
                        assert_eq!(token(&hit), key);
                    }
                }
            });
        }
    });
    let TokenCacheUsage { entries, bytes } = cache.usage();
    assert!(bytes <= budget, "{bytes} > {budget}");
    assert_eq!(bytes, entries * weight);
    assert!(entries > 100, "{entries}");
}

#[test]
fn a_flood_of_distinct_tokens_stays_bounded() {
    let weight = u64::from(small("flood-00000", 0).weight());
    let cache = TokenCache::new(64 * weight, 1 << 20, Duration::from_secs(60));
    let exp = in_an_hour();
    for i in 0..20_000 {
        cache.insert(small(&format!("flood-{i:05}"), exp), now_ms());
    }
    let usage = cache.usage();
    assert!(
        usage.bytes <= 64 * weight && usage.entries <= 64,
        "{usage:?}"
    );
    // The bookkeeping does not grow with the flood either.
    let slots: usize = cache
        .shards
        .iter()
        .map(|s| s.0.read().unwrap().slot_count())
        .sum();
    assert!(slots <= 64, "{slots}");
}

#[test]
fn weight_follows_what_the_claims_hold() {
    let exp = in_an_hour();
    let plain = small("a", exp).weight();
    let permissions: Vec<String> = (0..1_300).map(|i| format!("p:{i}")).collect();
    let json = serde_json::json!({"iss": "i", "exp": 1, "permissions": permissions});
    let many = verified(&json.to_string(), exp).weight();
    // Each short permission ("p:123") holds its String (24 bytes, in a Vec grown by
    // doubling), a 32-byte allocation, and ~11 bytes of the token, all weighed twice.
    let per_permission = (many - plain) / 1_300;
    assert!((136..=170).contains(&per_permission), "{per_permission}");
}

#[test]
fn a_small_object_is_weighed_at_a_whole_b_tree_node() {
    let exp = in_an_hour();
    let plain = small("a", exp).weight();
    // 400 one-member objects: each allocates a whole leaf (11 slots of a String and a
    // Value: 640 bytes with glibc), not a 400th of one.
    let objects: serde_json::Map<String, serde_json::Value> = (0..400)
        .map(|i| (format!("k{i}"), serde_json::json!({"": 0})))
        .collect();
    let flags = serde_json::json!({"f": {"t": "j", "v": objects}});
    let json = serde_json::json!({"iss": "i", "exp": 1, "feature_flags": flags});
    let heavy = verified(&json.to_string(), exp).weight();
    let per_object = (heavy - plain) / 400;
    assert!(per_object >= 2 * 640, "{per_object}");
}

#[test]
fn entries_over_the_size_limit_are_not_cached() {
    let entry = small("big", in_an_hour());
    let big = token(&entry);
    let cache = TokenCache::new(1 << 20, entry.weight() - 1, Duration::from_secs(60));
    cache.insert(entry, now_ms());
    assert!(cache.get(&big, now_ms()).is_none());
    assert_eq!(cache.usage(), TokenCacheUsage::default());
}
