//! Faults the fake Kinde can inject into one endpoint, and the answers they produce.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::json;

/// A misbehaviour to inject into one endpoint.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Fault {
    /// The connection is closed without an answer.
    Down,
    /// The request is read and never answered (the connection stays open).
    Hang,
    /// The answer comes after this delay (then normally): slow headers.
    Slow(Duration),
    /// This status, these headers and a short JSON error body. The first header of a name
    /// replaces the default one; a repeated name is sent again (two `Retry-After`s, say).
    Status(u16, Vec<(String, String)>),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a body of this many bytes, streamed without a length.
    Huge(usize),
    /// 302 to this location.
    Redirect(String),
    /// The answer is computed at once but sent after this delay: data that goes stale while
    /// in flight.
    Late(Duration),
    /// 200 JSON headers at once, then the real body one byte per this delay.
    Drip(Duration),
    /// 200 promising a longer `content-length` than the body sent before the connection ends.
    Truncated,
    /// 200 `application/json` whose body is not valid UTF-8.
    InvalidUtf8,
    /// 200 `application/json` nesting arrays this deep.
    Nested(usize),
    /// 200 `application/json` with exactly this body.
    Body(String),
}

/// Kinde's application-wide rate limit, modelled: at most `calls` API requests (token,
/// Management API and Account API endpoints together, whoever sends them) per `window`; past
/// that, every API request is answered 429 with `RateLimit-Reset` until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// API requests allowed per window.
    pub calls: usize,
    /// The window (fixed, starting at the first request after the previous one ended).
    pub window: Duration,
}

/// The state of a [`RateLimit`].
pub(crate) struct Limiter {
    limit: RateLimit,
    window_start: Option<Instant>,
    used: usize,
    refused: usize,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            window_start: None,
            used: 0,
            refused: 0,
        }
    }

    /// Counts one request; the 429 to answer when it is over the limit.
    pub(crate) fn admit(&mut self) -> Option<Response> {
        let now = Instant::now();
        let start = match self.window_start {
            Some(start) if now.duration_since(start) < self.limit.window => start,
            _ => {
                self.used = 0;
                *self.window_start.insert(now)
            }
        };
        self.used += 1;
        if self.used <= self.limit.calls {
            return None;
        }
        self.refused += 1;
        let left = self.limit.window.saturating_sub(now.duration_since(start));
        let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let headers = [("ratelimit-reset".to_owned(), reset.max(1).to_string())];
        Some(status_answer(429, &headers))
    }

    /// Requests answered 429 so far.
    pub(crate) fn refused(&self) -> usize {
        self.refused
    }
}

/// What the server does about a fault.
pub(crate) enum Effect {
    Drop,
    Delay(Duration),
    Late(Duration),
    Respond(Response),
}

impl Fault {
    pub(crate) fn effect(self) -> Effect {
        match self {
            Fault::Down => Effect::Drop,
            Fault::Hang => Effect::Delay(Duration::from_secs(24 * 3600)),
            Fault::Slow(delay) => Effect::Delay(delay),
            Fault::Late(delay) => Effect::Late(delay),
            Fault::Status(status, headers) => Effect::Respond(status_answer(status, &headers)),
            Fault::Garbage => Effect::Respond(json_body("<html>oops")),
            Fault::Huge(size) => Effect::Respond(huge_answer(size)),
            Fault::Redirect(location) => {
                Effect::Respond(status_answer(302, &[("location".into(), location)]))
            }
            Fault::Drip(delay) => Effect::Respond(drip_answer(delay)),
            Fault::Truncated => Effect::Respond(truncated_answer()),
            Fault::InvalidUtf8 => Effect::Respond(json_body(vec![b'{', 0xff, 0xfe, b'}'])),
            Fault::Body(body) => Effect::Respond(json_body(body)),
            Fault::Nested(depth) => {
                let body = "[".repeat(depth) + &"]".repeat(depth);
                Effect::Respond(json_body(body))
            }
        }
    }
}

fn json_body(body: impl Into<Body>) -> Response {
    ([("content-type", "application/json")], body.into()).into_response()
}

fn status_answer(status: u16, headers: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"errors": [{"code": "FAULT", "message": "injected fault"}]});
    let mut response = (status, Json(body)).into_response();
    let mut seen: Vec<HeaderName> = Vec::new();
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            continue;
        };
        if seen.contains(&name) {
            response.headers_mut().append(name, value);
        } else {
            seen.push(name.clone());
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn huge_answer(size: usize) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunks = (0..size.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(size - i * CHUNK);
        Ok::<_, Infallible>(Bytes::from(vec![b' '; len]))
    });
    json_body(Body::from_stream(futures_util::stream::iter(chunks)))
}

fn drip_answer(delay: Duration) -> Response {
    let body = br#"{"keys": [], "permissions": []}"#.to_vec();
    let drops = futures_util::stream::iter(body).then(move |byte| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, Infallible>(Bytes::from(vec![byte]))
    });
    json_body(Body::from_stream(drops))
}

fn truncated_answer() -> Response {
    let first = futures_util::stream::iter([Ok(Bytes::from_static(b"{\"keys\": ["))]);
    let broken = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("connection cut by fault injection"))
    });
    let mut response = json_body(Body::from_stream(first.chain(broken)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(4096u32));
    response
}
