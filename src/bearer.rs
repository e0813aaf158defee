//! `Authorization: Bearer` parsing (RFC 6750 §2.1).
//!
//! Only the header is read: RFC 6750's form-body and query-string transports are never used,
//! so a token in `?access_token=` is ignored and the request counts as unauthenticated.
//!
//! | input | answer |
//! | --- | --- |
//! | no `Authorization` header, or another scheme (`Basic …`) | 401, bare `Bearer` challenge |
//! | two or more `Authorization` headers | 400 `invalid_request` |
//! | a header value that is not visible ASCII, `Bearer` with no token, or a token with spaces | 400 `invalid_request` |
//! | a token over the size cap | 401 `invalid_token` |
//!
//! What the token itself must look like (the JWT alphabet, three segments) is the
//! [`Verifier`](crate::Verifier)'s business: a cached token is not scanned twice. Nor is it
//! scanned here: the authentication layer first looks the header's token up in the
//! verified-token cache, and a hit is byte for byte a token that passed every check below when
//! it was first seen. Only a token not in the cache is checked (`check`) before verification.
//!
//! The scheme name is case-insensitive (`bearer`, `BEARER`).

use http::{HeaderMap, header};

use crate::error::{AuthError, AuthErrorKind};

/// Default cap on the size of a token, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The bearer token in the request headers, not yet checked (`check`).
///
/// Returns the token exactly as sent (borrowed from the header) or the rejection to answer with.
pub(crate) fn extract(headers: &HeaderMap) -> Result<&[u8], AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthErrorKind::MissingCredentials.into());
    };
    if values.next().is_some() {
        return Err(AuthErrorKind::InvalidRequest.into());
    }
    split(value.as_bytes())
}

/// Parses and checks one `Authorization` header value: [`split`], then [`check`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse(value: &[u8], max_token_bytes: usize) -> Result<&[u8], AuthError> {
    check(split(value)?, max_token_bytes)
}

/// The credentials after a case-insensitive `Bearer` scheme, blanks trimmed.
fn split(value: &[u8]) -> Result<&[u8], AuthError> {
    let value = trim_blanks(value);
    let (scheme, rest) = match value.iter().position(|b| is_blank(*b)) {
        Some(end) => (&value[..end], trim_blanks(&value[end..])),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        // Another scheme is no bearer credential at all (RFC 6750 §3.1: no error code).
        return Err(AuthErrorKind::MissingCredentials.into());
    }
    Ok(rest)
}

/// Checks a token from [`extract`]: non-empty visible ASCII (so also UTF-8), within the cap.
///
/// Looks at each byte once, without an early exit (so the compiler vectorizes it), and keeps
/// the token as bytes: nothing validates it as UTF-8 again.
pub(crate) fn check(token: &[u8], max_token_bytes: usize) -> Result<&[u8], AuthError> {
    // Spaces, tabs, control characters and anything beyond ASCII: not a token68. Only
    // `!`..=`~` pass, so the lowest and highest bytes tell (a min and a max per 16 bytes).
    let (lowest, highest) = token
        .iter()
        .fold((u8::MAX, 0), |(low, high), &b| (low.min(b), high.max(b)));
    if token.is_empty() || lowest < b'!' || highest > b'~' {
        return Err(AuthErrorKind::InvalidRequest.into());
    }
    if token.len() > max_token_bytes {
        return Err(AuthErrorKind::InvalidToken.into());
    }
    Ok(token)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_blank(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_blank(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// The base64url alphabet plus the JWS segment separator.
pub(crate) fn is_jwt_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const MAX: usize = DEFAULT_MAX_TOKEN_BYTES;

    fn kind(headers: &HeaderMap) -> Result<&str, AuthErrorKind> {
        let token = extract(headers).and_then(|t| check(t, MAX));
        let token = token.map_err(|e| e.kind())?;
        Ok(std::str::from_utf8(token).expect("visible ASCII"))
    }

    fn one(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn accepts_bearer_in_any_case() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR   a.b.c  ",
        ] {
            assert_eq!(kind(&one(value)), Ok("a.b.c"), "{value}");
        }
    }

    #[test]
    fn missing_header_is_missing_credentials() {
        assert_eq!(
            kind(&HeaderMap::new()),
            Err(AuthErrorKind::MissingCredentials)
        );
    }

    #[test]
    fn other_schemes_are_missing_credentials() {
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearerx a.b.c",
            "Token a.b.c",
            "a.b.c",
        ] {
            assert_eq!(
                kind(&one(value)),
                Err(AuthErrorKind::MissingCredentials),
                "{value}"
            );
        }
    }

    #[test]
    fn two_headers_are_an_invalid_request() {
        let mut headers = one("Bearer a.b.c");
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert_eq!(kind(&headers), Err(AuthErrorKind::InvalidRequest));
    }

    #[test]
    fn empty_or_spaced_tokens_are_invalid_requests() {
        for value in ["Bearer", "Bearer ", "Bearer a.b.c d", "Bearer a.b\t.c"] {
            assert_eq!(
                kind(&one(value)),
                Err(AuthErrorKind::InvalidRequest),
                "{value}"
            );
        }
    }

    #[test]
    fn non_ascii_header_is_an_invalid_request() {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"Bearer a.b.\xffc").unwrap();
        headers.insert(header::AUTHORIZATION, value);
        assert_eq!(kind(&headers), Err(AuthErrorKind::InvalidRequest));
    }

    #[test]
    fn token_characters_are_left_to_the_verifier() {
        for value in ["Bearer a.b.c=", "Bearer a+b/c", "Bearer a,b"] {
            assert_eq!(kind(&one(value)), Ok(&value[7..]), "{value}");
        }
    }

    #[test]
    fn only_visible_ascii_passes() {
        for b in 0..=u8::MAX {
            let value = [b"Bearer a".as_slice(), &[b], b"b"].concat();
            let visible = (b'!'..=b'~').contains(&b);
            let answer = parse(&value, MAX).map_err(|e| e.kind());
            if visible {
                assert_eq!(answer, Ok(&value[7..]), "{b:#x}");
            } else {
                assert_eq!(answer, Err(AuthErrorKind::InvalidRequest), "{b:#x}");
            }
        }
    }

    #[test]
    fn size_cap_is_enforced_exactly() {
        let at_cap = format!("Bearer {}", "a".repeat(MAX));
        assert_eq!(parse(at_cap.as_bytes(), MAX).map(<[u8]>::len), Ok(MAX));
        let over = format!("Bearer {}", "a".repeat(MAX + 1));
        assert_eq!(
            parse(over.as_bytes(), MAX).map_err(|e| e.kind()),
            Err(AuthErrorKind::InvalidToken)
        );
    }
}
