//! A change record read from a shared log (anyone with write access to Redis can put bytes
//! there) never panics the reader, and whatever is accepted survives a round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(encoded) = claimcheck::fuzzing::change_record(text) {
        let again = claimcheck::fuzzing::change_record(&encoded).expect("re-encoding is accepted");
        assert_eq!(again, encoded, "a record survives the wire");
    }
});
