//! The crate's one wall clock: Unix milliseconds and seconds, for token times (`iat`, `exp`),
//! watermarks, change records and JWKS refresh deadlines. (Waiting and ages use tokio's or std's
//! `Instant`, which no wall-clock step can move.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `at` in Unix milliseconds (negative before 1970), saturating at the ends of `i64`.
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time `ms` Unix milliseconds denote.
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Now, in Unix milliseconds (0 on a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(unix_ms(SystemTime::now())).unwrap_or(0)
}

/// Now, in Unix seconds.
pub(crate) fn now_secs() -> u64 {
    now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_on_both_sides_of_1970() {
        for ms in [0, 1, -1, 1_714_549_305_592, -86_400_000, 32_503_680_000_000] {
            assert_eq!(unix_ms(from_unix_ms(ms)), ms);
        }
        assert!(now_secs() > 1_700_000_000);
        assert_eq!(now_ms() / 1000, now_secs());
    }
}
