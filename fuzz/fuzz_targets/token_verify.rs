//! Token verification against a FakeKinde's keys: never panics, and nothing but the one
//! genuine token (which the fuzzer cannot forge) verifies.
#![no_main]

use std::sync::OnceLock;

use claimcheck::Verifier;
use claimcheck::testing::FakeKinde;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

struct Setup {
    rt: Runtime,
    _kinde: FakeKinde,
    verifier: Verifier,
    genuine: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = Runtime::new().unwrap();
        let kinde = rt.block_on(FakeKinde::start());
        let verifier = Verifier::builder(kinde.issuer())
            .audience(kinde.audience())
            .build()
            .unwrap();
        assert!(rt.block_on(verifier.warm_up()));
        let genuine = kinde.user_token("kp_fuzz").sign();
        Setup {
            rt,
            _kinde: kinde,
            verifier,
            genuine,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if s.rt.block_on(s.verifier.verify(token)).is_ok() {
        assert_eq!(token, s.genuine);
    }
});
