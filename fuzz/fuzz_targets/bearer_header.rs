//! `Authorization` header parsing: never panics; a token it returns is a non-empty run of
//! visible ASCII without blanks, inside the header value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = claimcheck::fuzzing::bearer(data) {
        assert!(!token.is_empty());
        assert!(token.bytes().all(|b| b > b' ' && b < 0x7f));
        assert!(token.len() <= claimcheck::bearer::DEFAULT_MAX_TOKEN_BYTES);
    }
});
