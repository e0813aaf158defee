//! A rejection as gRPC says it: a *trailers-only* answer (gRPC over HTTP/2, "Responses"), its
//! percent-encoded `grpc-message`, and the `google.rpc.Status` with a `google.rpc.RetryInfo`
//! detail that `UNAVAILABLE` carries in `grpc-status-details-bin`. Those messages are a handful
//! of protobuf fields, encoded here by hand so that the library needs no protobuf crate.
//!
//! Whether a request is gRPC is read from its `content-type` only when a rejection is rendered:
//! the allowed path reads nothing more than it did.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, header};

use super::{AuthError, AuthErrorKind, whole_seconds};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
const APPLICATION_GRPC: &str = "application/grpc";
const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// How a rejection is said: as HTTP (RFC 9457 problem) or as a gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `application/problem+json` with the HTTP status.
    Http,
    /// A trailers-only gRPC answer.
    Grpc,
}

impl Protocol {
    /// gRPC when the request's `content-type` is `application/grpc` or one of its variants
    /// (`+proto`, `+json`, `-web…`: gRPC-Web is best translated by `tonic-web` outside
    /// claimcheck's layers, but its clients read a trailers-only answer's headers too).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let prefix = APPLICATION_GRPC.as_bytes();
        // `application/grpc`, then nothing, a `+codec`, parameters, or `-web…`: not any
        // media type that merely starts with those letters (`application/grpcfoo`).
        let grpc = headers.get(header::CONTENT_TYPE).is_some_and(|value| {
            let value = value.as_bytes();
            let Some((head, rest)) = value.split_at_checked(prefix.len()) else {
                return false;
            };
            head.eq_ignore_ascii_case(prefix) && {
                let rest = strip_ignoring_case(rest, b"-web");
                let rest = strip_ignoring_case(rest, b"-text");
                matches!(rest.first(), None | Some(b'+' | b';' | b' '))
            }
        });
        if grpc { Self::Grpc } else { Self::Http }
    }

    /// `error`, said this way.
    pub(crate) fn render<B: From<Bytes>>(self, error: AuthError) -> Response<B> {
        match self {
            Self::Http => error.into_http_response(),
            Self::Grpc => trailers_only(&error).map(|()| B::from(Bytes::new())),
        }
    }
}

impl AuthError {
    /// `grpc-message`, before percent-encoding: the problem's `detail` sentence, and for a
    /// permission denied the requirement the problem names in its `requirement` member.
    fn grpc_message(&self) -> String {
        let detail = self.kind.description();
        match (&self.requirement, self.kind) {
            (Some(requirement), AuthErrorKind::InsufficientScope) => {
                format!("{detail}: {requirement}")
            }
            _ => detail.to_owned(),
        }
    }

    /// The encoded `google.rpc.Status` of `grpc-status-details-bin`: for `UNAVAILABLE`, with
    /// one `google.rpc.RetryInfo` (the `Retry-After` delay); no details otherwise.
    fn grpc_details(&self, message: &str) -> Option<Vec<u8>> {
        let after = self
            .retry_after
            .filter(|_| self.kind == AuthErrorKind::Unavailable)?;
        let retry_info = proto::retry_info(whole_seconds(after));
        let any = proto::any(RETRY_INFO_TYPE_URL, &retry_info);
        Some(proto::status(self.kind.grpc_code(), message, &[any]))
    }
}

/// The head of a trailers-only answer to `error` (its body is empty).
pub(super) fn trailers_only(error: &AuthError) -> Response<()> {
    let mut response = Response::new(());
    let message = error.grpc_message();
    let details = error.grpc_details(&message);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(APPLICATION_GRPC),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from(error.kind.grpc_code()));
    // Both are visible ASCII once encoded: the conversions cannot fail.
    if let Ok(value) = HeaderValue::try_from(percent_encode(&message)) {
        headers.insert(GRPC_MESSAGE, value);
    }
    if let Some(details) = details
        && let Ok(value) = HeaderValue::try_from(STANDARD_NO_PAD.encode(details))
    {
        headers.insert(GRPC_STATUS_DETAILS, value);
    }
    response
}

/// Percent-encoding as gRPC's `grpc-message` has it: bytes outside `%x20-%x7E`, and `%`
/// itself, become `%XX`; the rest is sent as is.
fn percent_encode(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
    encoded
}

/// The few protobuf messages a status needs, in proto3's binary encoding (fields at their
/// default value are left out, as every encoder does).
mod proto {
    /// `google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }`
    pub(super) fn status(code: i32, message: &str, details: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        if code != 0 {
            // An int32 is the varint of its 64-bit two's complement.
            varint_field(&mut out, 1, i64::from(code) as u64);
        }
        if !message.is_empty() {
            bytes_field(&mut out, 2, message.as_bytes());
        }
        for any in details {
            bytes_field(&mut out, 3, any);
        }
        out
    }

    /// `google.protobuf.Any { string type_url = 1; bytes value = 2; }`
    pub(super) fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(&mut out, 1, type_url.as_bytes());
        if !value.is_empty() {
            bytes_field(&mut out, 2, value);
        }
        out
    }

    /// `google.rpc.RetryInfo { google.protobuf.Duration retry_delay = 1; }` of whole seconds
    /// (`Duration { int64 seconds = 1; int32 nanos = 2; }`, nanos zero).
    pub(super) fn retry_info(seconds: u64) -> Vec<u8> {
        let mut duration = Vec::new();
        if seconds != 0 {
            varint_field(&mut duration, 1, seconds);
        }
        let mut out = Vec::new();
        bytes_field(&mut out, 1, &duration);
        out
    }

    fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
        varint(out, field << 3); // wire type 0: varint
        varint(out, value);
    }

    fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        varint(out, (field << 3) | 2); // wire type 2: length-delimited
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
}

/// For tonic handlers: the same status a layer answers a gRPC request with, `RetryInfo`
/// included, so `?` on a claimcheck result answers as the route layers do.
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        let code = tonic::Code::from(error.kind.grpc_code());
        let message = error.grpc_message();
        match error.grpc_details(&message) {
            Some(details) => Self::with_details(code, message, Bytes::from(details)),
            None => Self::new(code, message),
        }
    }
}

/// `value` without `prefix` (compared ignoring ASCII case), or `value` itself.
fn strip_ignoring_case<'a>(value: &'a [u8], prefix: &[u8]) -> &'a [u8] {
    match value.split_at_checked(prefix.len()) {
        Some((head, rest)) if head.eq_ignore_ascii_case(prefix) => rest,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use prost::Message as _;
    use tonic_types::StatusExt as _;

    use super::*;

    const ALL: [AuthErrorKind; 7] = [
        AuthErrorKind::MissingCredentials,
        AuthErrorKind::InvalidRequest,
        AuthErrorKind::InvalidToken,
        AuthErrorKind::ExpiredToken,
        AuthErrorKind::InsufficientScope,
        AuthErrorKind::Unavailable,
        AuthErrorKind::Misconfigured,
    ];

    fn grpc(error: AuthError) -> Response<Bytes> {
        Protocol::Grpc.render(error)
    }

    /// What a tonic client makes of the answer's headers.
    fn status_of(response: &Response<Bytes>) -> tonic::Status {
        tonic::Status::from_header_map(response.headers()).expect("grpc-status is there")
    }

    #[test]
    fn codes_follow_the_http_statuses() {
        let codes: Vec<(StatusCode, i32)> = ALL.map(|k| (k.status(), k.grpc_code())).to_vec();
        for (http, grpc) in codes {
            let expected = match http.as_u16() {
                400 | 401 => 16,
                403 => 7,
                503 => 14,
                500 => 13,
                other => panic!("unexpected status {other}"),
            };
            assert_eq!(grpc, expected, "{http}");
        }
    }

    #[test]
    fn every_kind_is_a_trailers_only_answer_tonic_reads() {
        for kind in ALL {
            let response = grpc(AuthError::new(kind));
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
            assert!(response.body().is_empty());
            assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
            assert!(response.headers().get(header::RETRY_AFTER).is_none());
            let status = status_of(&response);
            assert_eq!(status.code(), tonic::Code::from(kind.grpc_code()));
            assert_eq!(status.message(), kind.description());
            let details = response.headers().get("grpc-status-details-bin");
            assert_eq!(
                details.is_some(),
                kind == AuthErrorKind::Unavailable,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn permission_denied_names_the_requirement() {
        let response = grpc(AuthError::insufficient_scope("read:reports"));
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(
            response.headers()["grpc-message"],
            "The caller does not meet this route's requirement: read:reports"
        );
        let status = status_of(&response);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().ends_with(": read:reports"));
    }

    #[test]
    fn unavailable_carries_retry_info_as_tonic_types_decodes_it() {
        let response = grpc(AuthError::unavailable(Duration::from_millis(1500)));
        assert_eq!(response.headers()["grpc-status"], "14");
        // Unpadded, as tonic emits it; every gRPC decoder accepts both.
        let encoded = response.headers()["grpc-status-details-bin"]
            .to_str()
            .unwrap();
        assert!(!encoded.ends_with('='));
        let status = status_of(&response);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let retry = status.get_details_retry_info().expect("a RetryInfo detail");
        // Whole seconds, rounded up: what `Retry-After` says over HTTP.
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
        // The details' own code and message are the status's, as the protocol asks.
        let details = tonic_types::Status::decode(status.details()).unwrap();
        assert_eq!(details.code, 14);
        assert_eq!(details.message, status.message());
        assert_eq!(details.details.len(), 1);
        assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    }

    #[test]
    fn the_hand_encoding_is_protobufs_to_the_byte() {
        let retry = proto::retry_info(7);
        assert_eq!(retry, [0x0a, 0x02, 0x08, 0x07]);
        let any = proto::any(RETRY_INFO_TYPE_URL, &retry);
        let status = proto::status(14, "down", std::slice::from_ref(&any));
        let mut expected = vec![0x08, 14, 0x12, 4];
        expected.extend_from_slice(b"down");
        expected.extend_from_slice(&[0x1a, any.len() as u8]);
        expected.extend_from_slice(&any);
        assert_eq!(status, expected);
        // And prost's own encoding of the same values is the same bytes.
        let ours = tonic_types::Status::decode(&status[..]).unwrap();
        assert_eq!(ours.encode_to_vec(), status);
        let delay = tonic_types::pb::RetryInfo::decode(&ours.details[0].value[..]).unwrap();
        assert_eq!(
            delay.retry_delay.map(|d| (d.seconds, d.nanos)),
            Some((7, 0))
        );
        // Multi-byte varints: a delay of 300 s, a message of 200 bytes.
        let long = "x".repeat(200);
        let any = proto::any(RETRY_INFO_TYPE_URL, &proto::retry_info(300));
        let decoded = tonic_types::Status::decode(&proto::status(16, &long, &[any])[..]).unwrap();
        assert_eq!((decoded.code, decoded.message.len()), (16, 200));
        let delay = tonic_types::pb::RetryInfo::decode(&decoded.details[0].value[..]).unwrap();
        assert_eq!(delay.retry_delay.map(|d| d.seconds), Some(300));
    }

    #[test]
    fn grpc_message_is_percent_encoded_as_the_protocol_says() {
        assert_eq!(percent_encode("plain text: ok"), "plain text: ok");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("a\nb\u{e9}"), "a%0Ab%C3%A9");
        let message = "caf\u{e9} 50% \t\u{1f600} \"quoted\" {braces}";
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from(2));
        headers.insert(
            GRPC_MESSAGE,
            HeaderValue::try_from(percent_encode(message)).unwrap(),
        );
        let status = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(status.message(), message);
    }

    #[test]
    fn grpc_is_told_by_the_content_type() {
        let protocol = |content_type: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            }
            Protocol::of(&headers)
        };
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc; charset=utf-8",
            "Application/GRPC",
        ] {
            assert_eq!(protocol(Some(grpc)), Protocol::Grpc, "{grpc}");
        }
        let lookalikes = [
            "application/grpcfoo",
            "application/grpc-webby",
            "application/grpc_",
        ];
        for http in ["application/json", "application/gr", "text/grpc", ""]
            .into_iter()
            .chain(lookalikes)
        {
            assert_eq!(protocol(Some(http)), Protocol::Http, "{http}");
        }
        assert_eq!(protocol(None), Protocol::Http);
    }

    #[test]
    fn http_answers_are_unchanged() {
        for kind in ALL {
            let rendered: Response<Bytes> = Protocol::Http.render(AuthError::new(kind));
            let direct: Response<Bytes> = AuthError::new(kind).into_http_response();
            assert_eq!(rendered.status(), direct.status());
            assert_eq!(rendered.headers(), direct.headers());
            assert_eq!(rendered.body(), direct.body());
        }
    }

    #[test]
    fn into_grpc_response_takes_bodies_without_from_bytes() {
        let response: Response<tonic::body::Body> =
            AuthError::new(AuthErrorKind::ExpiredToken).into_grpc_response();
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(
            response.headers()["grpc-message"],
            "The access token expired"
        );
        assert!(http_body::Body::is_end_stream(response.body()));
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn tonic_status_is_what_the_layers_answer() {
        for error in [
            AuthError::new(AuthErrorKind::InvalidToken),
            AuthError::insufficient_scope("read:reports"),
            AuthError::unavailable(Duration::from_secs(7)),
            AuthError::new(AuthErrorKind::Misconfigured),
        ] {
            let answered = status_of(&grpc(error.clone()));
            let converted = tonic::Status::from(error);
            assert_eq!(converted.code(), answered.code());
            assert_eq!(converted.message(), answered.message());
            assert_eq!(converted.details(), answered.details());
        }
        let status = tonic::Status::from(AuthError::unavailable(Duration::from_secs(7)));
        let retry = status.get_details_retry_info().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    }
}
