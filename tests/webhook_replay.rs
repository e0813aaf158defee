//! Webhooks against a hostile sender over loopback: replays under new or no `webhook-id`,
//! old and future-dated events, oversized headers, access tokens posted as webhooks, and a
//! Kinde clock running ahead of ours.

mod common;

use std::time::{Duration, SystemTime};

use claimcheck::testing::{DEFAULT_ORG, Endpoint};
use common::{Harness, Via, start_via};
use serde_json::json;

const TTL: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// POSTs `body` as Kinde would, with this `webhook-id` header (or none).
async fn post(h: &Harness, body: &str, webhook_id: Option<&str>) -> u16 {
    let mut request = h
        .client
        .post(h.webhook_url())
        .header("content-type", "application/jwt")
        .body(body.to_owned());
    if let Some(id) = webhook_id {
        request = request.header("webhook-id", id);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Users `kp_0`..`kp_{n-1}`, each holding `create:payments` live, with their answers cached.
async fn cached_users(h: &Harness, n: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..n {
        let user = format!("kp_{i}");
        h.kinde.grant(DEFAULT_ORG, &user, "create:payments");
        let token = h.kinde.user_token(&user).sign();
        assert_eq!(h.post("/payments", &token).await.status, 200);
        tokens.push(token);
    }
    tokens
}

/// Strict requests for every token; the Management API calls they made.
async fn upstream_calls_for(h: &Harness, tokens: &[String]) -> usize {
    let before = h.kinde.calls(Endpoint::ManagementPermissions);
    for token in tokens {
        assert_eq!(h.post("/payments", token).await.status, 200);
    }
    h.kinde.calls(Endpoint::ManagementPermissions) - before
}

#[tokio::test]
async fn a_replayed_event_applies_once_whatever_its_webhook_id() {
    let h = start_via(Via::Management, TTL).await;
    let tokens = cached_users(&h, 20).await;
    assert_eq!(upstream_calls_for(&h, &tokens).await, 0, "all cached");

    let event = h
        .kinde
        .webhook("role.updated", json!({"role": {"id": "r1"}}));
    assert_eq!(event.deliver(&h.webhook_url()).await, 200);
    assert_eq!(upstream_calls_for(&h, &tokens).await, 20, "applied once");

    // The same signed body, replayed five times under new ids and once with none.
    let body = event.token().sign();
    for i in 0..5 {
        assert_eq!(post(&h, &body, Some(&format!("msg_replay_{i}"))).await, 200);
    }
    assert_eq!(post(&h, &body, None).await, 200);
    assert_eq!(
        upstream_calls_for(&h, &tokens).await,
        0,
        "replays cost nothing"
    );

    // A new event (new signed event_id) under the old header id is not a duplicate.
    let next = h
        .kinde
        .webhook("role.updated", json!({"role": {"id": "r1"}}))
        .with_webhook_id(event.webhook_id());
    assert_ne!(next.event_id(), event.event_id());
    assert_eq!(next.deliver(&h.webhook_url()).await, 200);
    assert_eq!(upstream_calls_for(&h, &tokens).await, 20);
}

#[tokio::test]
async fn events_outside_the_age_window_are_refused() {
    let h = start_via(Via::Management, TTL).await;
    let tokens = cached_users(&h, 1).await;
    let now = SystemTime::now();
    let role_updated = || {
        h.kinde
            .webhook("role.updated", json!({"role": {"id": "r"}}))
    };
    for (what, at) in [
        ("a month old", now - 30 * 24 * HOUR),
        ("49 hours old", now - 49 * HOUR),
        ("10 minutes ahead", now + Duration::from_secs(600)),
    ] {
        assert_eq!(
            role_updated().at(at).deliver(&h.webhook_url()).await,
            400,
            "{what}"
        );
        assert_eq!(
            upstream_calls_for(&h, &tokens).await,
            0,
            "{what}: no effect"
        );
    }
    for (what, at) in [
        ("47 hours old (Kinde retries for 36 h)", now - 47 * HOUR),
        ("10 seconds ahead", now + Duration::from_secs(10)),
    ] {
        assert_eq!(
            role_updated().at(at).deliver(&h.webhook_url()).await,
            200,
            "{what}"
        );
        assert_eq!(upstream_calls_for(&h, &tokens).await, 1, "{what}: applied");
    }

    // A shorter window by configuration.
    let receiver = h.auth.webhook_receiver().max_age(HOUR);
    let event = role_updated().at(now - 2 * HOUR);
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/jwt".parse().unwrap());
    let body = event.token().sign();
    assert!(receiver.receive(&headers, body.as_bytes()).await.is_err());
}

#[tokio::test]
async fn signed_payloads_that_are_not_kinde_events_are_refused() {
    let h = start_via(Via::Management, TTL).await;
    let tokens = cached_users(&h, 1).await;
    // A user's access token carrying every webhook member: its aud gives it away.
    let access_token = h
        .kinde
        .user_token("kp_0")
        .claim("type", "role.updated")
        .claim("event_id", "event_018f331a3178f7fef284b95fe6770384")
        .claim("timestamp", "2026-01-01T00:00:00Z")
        .claim("data", json!({}))
        .sign();
    assert_eq!(post(&h, &access_token, Some("msg_1")).await, 400);
    let event = h
        .kinde
        .webhook("role.updated", json!({"role": {"id": "r"}}));
    let mut payload = event.payload();
    payload.as_object_mut().unwrap().remove("event_id");
    let no_id = event.token().raw_payload(payload.to_string()).sign();
    assert_eq!(post(&h, &no_id, Some("msg_2")).await, 400);
    let mut payload = event.payload();
    payload.as_object_mut().unwrap().remove("timestamp");
    let no_time = event.token().raw_payload(payload.to_string()).sign();
    assert_eq!(post(&h, &no_time, Some("msg_3")).await, 400);
    // Strict I-JSON, as for tokens: a second `type` could make two parsers see two events.
    let payload = event.payload().to_string();
    let twice = format!(
        "{},\"type\":\"user.created\"}}",
        &payload[..payload.len() - 1]
    );
    let duplicate_type = event.token().raw_payload(twice).sign();
    assert_eq!(post(&h, &duplicate_type, Some("msg_4")).await, 400);
    assert_eq!(upstream_calls_for(&h, &tokens).await, 0, "no effect");
}

#[tokio::test]
async fn the_webhook_id_header_is_bounded_and_never_remembered() {
    let h = start_via(Via::Management, TTL).await;
    let tokens = cached_users(&h, 1).await;
    let event = h
        .kinde
        .webhook("role.updated", json!({"role": {"id": "r"}}));
    let body = event.token().sign();
    assert_eq!(post(&h, &body, Some(&"x".repeat(257))).await, 400);
    assert_eq!(upstream_calls_for(&h, &tokens).await, 0);
    assert_eq!(post(&h, &body, Some(&"y".repeat(256))).await, 200);
    assert_eq!(upstream_calls_for(&h, &tokens).await, 1);

    let receiver = h.auth.webhook_receiver();
    let printed = format!("{receiver:?}");
    assert!(!printed.contains(event.event_id()), "{printed}");
    assert!(!printed.contains("yyyy"), "{printed}");
    assert!(printed.len() < 200, "{printed}");
}

#[tokio::test]
async fn a_watermark_covers_tokens_from_a_kinde_clock_ten_seconds_ahead() {
    let h = start_via(Via::Management, TTL).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let skew = 10;
    // Kinde's clock runs 10 s ahead: a token it issued 5 s before the revocation carries an
    // iat 5 s in our future (inside the verifier's 30 s leeway).
    let token = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(skew - 5)
        .sign();
    assert_eq!(h.get("/reports", Some(&token)).await.status, 200);
    h.kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    let kinde_now = SystemTime::now() + Duration::from_secs(skew as u64);
    let event = h.kinde.user_updated("kp_1").at(kinde_now);
    assert_eq!(event.deliver(&h.webhook_url()).await, 200);
    let answer = h.get("/reports", Some(&token)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.source.as_deref(), Some("live"));
    // A token Kinde issues after the event (by its clock) is trusted from its claims again.
    let fresh = h
        .kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(skew + 2)
        .sign();
    assert_eq!(
        h.get("/reports", Some(&fresh)).await.source.as_deref(),
        Some("token")
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_buffered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start_via(Via::Management, TTL).await;
    // 3 MiB: past axum's own 2 MiB default too; still a 400 problem document.
    let response = h
        .client
        .post(h.webhook_url())
        .header("content-type", "application/jwt")
        .body(vec![b'a'; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // 2 000 000 bytes announced, 100 KiB sent: answered at once, not waited for.
    let addr = h.base.trim_start_matches("http://").to_owned();
    for (length, chunked) in [
        ("content-length: 2000000", false),
        ("transfer-encoding: chunked", true),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /webhooks/kinde HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/jwt\r\n{length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'a'; 100 * 1024];
        if chunked {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .unwrap();
        }
        stream.write_all(&chunk).await.unwrap();
        let mut first = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_millis(800), stream.read(&mut first)).await;
        let n = read
            .expect("answered without waiting for the rest")
            .unwrap();
        assert_eq!(&first[..n], b"HTTP/1.1 400", "{length}");
    }
    // The content type is checked before anything is read.
    let response = h
        .client
        .post(h.webhook_url())
        .header("content-type", "application/json")
        .body(vec![b'a'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn a_reported_revocation_survives_any_number_of_later_changes() {
    use claimcheck::Auth;
    use claimcheck::changes::Target as Change;
    use claimcheck::freshness::{DEFAULT_MAX_TOKEN_LIFETIME, Freshness};
    let kinde = claimcheck::testing::FakeKinde::start().await;
    let verifier = common::warm_verifier(&kinde).await;
    let live = common::live_for(&kinde, Via::Management).build();
    // Room for 100 user watermarks only.
    let freshness = Freshness::new(DEFAULT_MAX_TOKEN_LIFETIME, 100);
    let h = common::start_auth(kinde, Auth::new(verifier, live).with_freshness(freshness)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_victim", "read:reports");
    let old = h
        .kinde
        .user_token("kp_victim")
        .permissions(["read:reports"])
        .issued_in(-60)
        .sign();
    assert_eq!(h.get("/reports", Some(&old)).await.status, 200);
    h.kinde.revoke(DEFAULT_ORG, "kp_victim", "read:reports");
    h.auth
        .mark_changed(Change::User("kp_victim".into()), SystemTime::now());
    assert_eq!(h.get("/reports", Some(&old)).await.status, 403);
    // Ten times the room in later changes of other users.
    for i in 0..1_000 {
        h.auth
            .mark_changed(Change::User(format!("kp_{i}")), SystemTime::now());
    }
    let answer = h.get("/reports", Some(&old)).await;
    assert_eq!(answer.status, 403, "the revocation was forgotten");
    assert_ne!(answer.source.as_deref(), Some("token"), "decided live");
}

#[tokio::test]
async fn a_webhook_during_a_cold_start_without_keys_is_retried_not_lost() {
    use claimcheck::Auth;
    use claimcheck::testing::Fault;
    // Restarted while Kinde's JWKS is unreachable: no key has ever been fetched.
    let kinde = claimcheck::testing::FakeKinde::start().await;
    kinde.set_fault(Endpoint::Jwks, Fault::Down);
    let verifier = common::verifier_for(&kinde).build().unwrap();
    assert!(!verifier.warm_up().await);
    let live = common::live_for(&kinde, Via::Management).build();
    let h = common::start_auth(kinde, Auth::new(verifier, live)).await;
    h.kinde.grant(DEFAULT_ORG, "kp_1", "create:payments");
    let event = h.kinde.user_updated("kp_1");
    let body = event.token().sign();

    // Kinde's delivery gets a 503 with Retry-After, so Kinde retries it...
    let refused = h
        .client
        .post(h.webhook_url())
        .header("content-type", "application/jwt")
        .header("webhook-id", event.webhook_id())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(
        h.auth.freshness().user_watermark("kp_1").is_none(),
        "not applied"
    );

    // ...and the retry, once the keys are reachable, applies: the failed attempt did not
    // claim the event id.
    h.kinde.clear_fault(Endpoint::Jwks);
    tokio::time::sleep(Duration::from_millis(80)).await; // past the 50 ms cold retry
    assert_eq!(post(&h, &body, Some(event.webhook_id())).await, 200);
    assert!(
        h.auth.freshness().user_watermark("kp_1").is_some(),
        "applied"
    );
}
