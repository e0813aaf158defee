//! Token verification against a FakeKinde's keys: never panics, and nothing but the one
//! genuine token (which the fuzzer cannot forge) verifies.
#![no_main]

use std::sync::OnceLock;

use claimcheck::testing::BlockingKinde;
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static (BlockingKinde, String) {
    static SETUP: OnceLock<(BlockingKinde, String)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fake = BlockingKinde::start();
        let genuine = fake.kinde.user_token("kp_fuzz").sign();
        (fake, genuine)
    })
}

fuzz_target!(|data: &[u8]| {
    let (fake, genuine) = setup();
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if fake.runtime.block_on(fake.verifier.verify(token)).is_ok() {
        assert_eq!(token, genuine);
    }
});
