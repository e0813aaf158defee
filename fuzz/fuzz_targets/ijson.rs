//! The strict I-JSON check never panics, and never accepts what a JSON parser refuses: whatever
//! it lets through, serde_json parses as one object.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if claimcheck::fuzzing::ijson(text).is_ok() {
        let parsed: serde_json::Value =
            serde_json::from_str(text).expect("accepted text is JSON");
        assert!(parsed.is_object(), "accepted text is an object");
    }
});
