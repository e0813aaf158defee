//! `examples/server.rs` as a user runs it: configured by environment variables, against a
//! FakeKinde, on a real socket. `cargo test` builds the examples before running tests.

mod common;

use std::process::{Command, Stdio};

use claimcheck::testing::{DEFAULT_ORG, Endpoint, FakeKinde};
use common::example::{Killed, example_binary, first_line, start_server};

#[tokio::test]
async fn the_server_example_serves_health_whoami_me_and_reports() {
    let kinde = FakeKinde::start().await;
    let (child, base) = start_server(&kinde, &[]).await;

    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<String>| {
        let mut req = client.get(format!("{base}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    assert_eq!(get("/health", None).await.unwrap().status(), 200);
    assert_eq!(get("/ready", None).await.unwrap().status(), 200);
    assert_eq!(get("/me", None).await.unwrap().status(), 401);
    let token = kinde
        .user_token("kp_1")
        .org_code("org_abc")
        .permissions(["read:reports"])
        .sign();
    let me: serde_json::Value = get("/me", Some(token.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": "kp_1", "org_code": "org_abc", "permissions": ["read:reports"]})
    );
    // Optional authentication: anonymous, signed in, and a bad token still refused.
    let whoami = |token: Option<String>| async {
        let response = get("/whoami", token).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(whoami(None).await, (200, r#"{"sub":null}"#.to_owned()));
    assert_eq!(
        whoami(Some(token.clone())).await,
        (200, r#"{"sub":"kp_1"}"#.to_owned())
    );
    assert_eq!(whoami(Some("not-a-jwt".to_owned())).await.0, 401);
    assert_eq!(get("/reports", Some(token)).await.unwrap().status(), 200);
    let without = kinde.user_token("kp_2").sign();
    assert_eq!(get("/reports", Some(without)).await.unwrap().status(), 403);
    drop(child);
}

#[tokio::test]
async fn payments_are_strict_through_either_kinde_api() {
    let kinde = FakeKinde::start().await;
    let (id, secret) = kinde.register_management_client();
    let management = [
        ("KINDE_MANAGEMENT_CLIENT_ID", id.as_str()),
        ("KINDE_MANAGEMENT_CLIENT_SECRET", secret.as_str()),
    ];
    let account: [(&str, &str); 0] = [];
    kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
    let payer = kinde.user_token("kp_payer").sign();
    // Holds the permission in its token only: revoked at Kinde, or never granted.
    let stale = kinde
        .user_token("kp_stale")
        .permissions(["create:payments"])
        .sign();
    let client = reqwest::Client::new();
    for (env, endpoint) in [
        (&management[..], Endpoint::ManagementPermissions),
        (&account[..], Endpoint::AccountPermissions),
    ] {
        kinde.reset_calls();
        let (child, base) = start_server(&kinde, env).await;
        let pay = |token: &str| {
            client
                .post(format!("{base}/payments"))
                .bearer_auth(token)
                .send()
        };
        let paid = pay(&payer).await.unwrap();
        assert_eq!(paid.status(), 200, "{endpoint:?}");
        assert_eq!(pay(&stale).await.unwrap().status(), 403, "{endpoint:?}");
        assert_eq!(kinde.calls(endpoint), 2, "{endpoint:?}");

        // Kinde's webhook drops the cached answer at once.
        kinde.revoke(DEFAULT_ORG, "kp_payer", "create:payments");
        assert_eq!(pay(&payer).await.unwrap().status(), 200, "cached");
        let hook = format!("{base}/webhooks/kinde");
        let event = kinde.user_updated("kp_payer");
        assert_eq!(event.deliver_body(&hook, "garbage").await, 400);
        assert_eq!(event.deliver(&hook).await, 200);
        assert_eq!(pay(&payer).await.unwrap().status(), 403, "{endpoint:?}");
        kinde.grant(DEFAULT_ORG, "kp_payer", "create:payments");
        drop(child);
    }
}

#[tokio::test]
async fn the_server_example_shapes_requirements_and_names_them_in_each_refusal() {
    let kinde = FakeKinde::start().await;
    // No cache: each strict request asks Kinde.
    let (child, base) = start_server(&kinde, &[("CLAIMCHECK_STRICT_TTL_MS", "0")]).await;
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder, token: &str| {
        let request = request.bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["requirement"].clone(), body["scope"].clone())
        }
    };
    let get = |path: &str, token: &str| send(client.get(format!("{base}{path}")), token);
    let none = serde_json::Value::Null;

    // GET /audit: any of read:audit, admin:all (the second alone is enough).
    let admin = kinde.user_token("kp_1").permissions(["admin:all"]).sign();
    assert_eq!(get("/audit", &admin).await.0, 200);
    let reader = kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .sign();
    let audit = "any of (read:audit, admin:all)";
    assert_eq!(
        get("/audit", &reader).await,
        (403, audit.into(), none.clone())
    );

    // GET /beta: the boolean flag `beta` on.
    let flag = |on: bool| serde_json::json!({"beta": {"t": "b", "v": on}});
    let beta = kinde
        .user_token("kp_1")
        .claim("feature_flags", flag(true))
        .sign();
    assert_eq!(get("/beta", &beta).await.0, 200);
    let off = kinde
        .user_token("kp_1")
        .claim("feature_flags", flag(false))
        .sign();
    assert_eq!(
        get("/beta", &off).await,
        (403, "flag beta".into(), none.clone())
    );

    // POST /refunds: strict, both permissions as Kinde holds them now.
    let token = kinde
        .user_token("kp_refunder")
        .permissions(["create:payments", "approve:refunds"])
        .sign();
    let refund = || send(client.post(format!("{base}/refunds")), &token);
    kinde.grant(DEFAULT_ORG, "kp_refunder", "create:payments");
    let both = "all of (create:payments, approve:refunds)";
    let scope = "create:payments approve:refunds";
    assert_eq!(refund().await, (403, both.into(), scope.into()));
    kinde.grant(DEFAULT_ORG, "kp_refunder", "approve:refunds");
    assert_eq!(refund().await.0, 200);
    kinde.revoke(DEFAULT_ORG, "kp_refunder", "create:payments");
    assert_eq!(refund().await.0, 403);
    drop(child);
}

#[tokio::test]
async fn the_server_example_is_not_ready_without_signing_keys() {
    let kinde = FakeKinde::start().await;
    kinde.set_fault(
        Endpoint::Jwks,
        claimcheck::testing::Fault::Status(500, vec![]),
    );
    let (child, base) = start_server(&kinde, &[]).await;
    let response = reqwest::get(format!("{base}/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    let keys = &body["checks"][0];
    assert_eq!(
        (&keys["name"], &keys["condition"]),
        (&"keys".into(), &"failing".into())
    );
    // The `jwks_uri` of the fake's discovery document, as the example does not set
    // KINDE_JWKS_URL.
    let looked = format!("from {} ", kinde.jwks_uri());
    assert!(keys["detail"].as_str().unwrap().contains(&looked), "{keys}");
    // Alive all the same.
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    drop(child);
}

#[test]
fn the_server_example_refuses_to_start_without_configuration() {
    let output = Command::new(example_binary("server"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("KINDE_ISSUER_URL"), "{stderr}");
}

#[tokio::test]
async fn under_strict_preflight_the_server_example_refuses_credentials_kinde_refuses() {
    let kinde = FakeKinde::start().await;
    let (id, _) = kinde.register_management_client();
    let secret = "not-the-secret";
    let run = |policy: &'static str| {
        let mut command = Command::new(example_binary("server"));
        command
            .env_clear()
            .env("KINDE_ISSUER_URL", kinde.issuer())
            .env("KINDE_AUDIENCE", kinde.audience())
            .env("KINDE_MANAGEMENT_CLIENT_ID", &id)
            .env("KINDE_MANAGEMENT_CLIENT_SECRET", secret)
            .env("CLAIMCHECK_PREFLIGHT", policy)
            .env("CLAIMCHECK_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "warn");
        command
    };
    let mut strict = run("strict");
    let output = tokio::task::spawn_blocking(move || strict.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("startup checks failed"), "{stderr}");
    assert!(
        stderr.contains(
            "live_source: permission source unavailable: no machine token for the client"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");

    // Warned by default: it starts, and says why strict routes will fail.
    let mut warn = run("warn");
    warn.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Killed(warn.spawn().unwrap());
    let line = first_line(&mut child).await;
    assert!(line.starts_with("listening on "), "{line}");
    drop(child);
}

#[test]
fn the_server_example_refuses_a_bad_strict_ttl() {
    let output = Command::new(example_binary("server"))
        .env_clear()
        .env("KINDE_ISSUER_URL", "https://example.kinde.com")
        .env("KINDE_AUDIENCE", "api")
        .env("CLAIMCHECK_STRICT_TTL_MS", "5s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CLAIMCHECK_STRICT_TTL_MS"), "{stderr}");
}

#[test]
fn the_server_example_says_what_to_write_for_an_issuer_without_a_scheme() {
    let output = Command::new(example_binary("server"))
        .env_clear()
        .env("KINDE_ISSUER_URL", "mybiz.kinde.com")
        .env("KINDE_AUDIENCE", "api")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("write `https://mybiz.kinde.com`"),
        "{stderr}"
    );
    assert!(stderr.contains("KINDE_DOMAIN"), "{stderr}");
    assert!(
        !stderr.contains("Invalid {"),
        "a sentence, not a Debug dump: {stderr}"
    );
}

/// Two processes of the example sharing one Redis (`CLAIMCHECK_REDIS_URL`): a webhook delivered
/// to one is honoured by the other on its next request.
#[cfg(feature = "redis")]
#[tokio::test]
async fn two_server_processes_share_changes_through_redis() {
    let kinde = FakeKinde::start().await;
    let redis = claimcheck::testing::RedisServer::start().unwrap();
    let env = [
        ("CLAIMCHECK_REDIS_URL", redis.url()),
        (
            "CLAIMCHECK_REDIS_PREFIX",
            format!("server-example-{}", std::process::id()),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_a, a) = start_server(&kinde, &env).await;
    let (_b, b) = start_server(&kinde, &env).await;
    kinde.grant(DEFAULT_ORG, "kp_1", "read:reports");
    let token = kinde
        .user_token("kp_1")
        .permissions(["read:reports"])
        .issued_in(-30)
        .sign();
    let client = reqwest::Client::new();
    let reports = |base: &str| {
        client
            .get(format!("{base}/reports"))
            .bearer_auth(&token)
            .send()
    };
    // B has replayed the (empty) log once it trusts the token's claims: no live call.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        kinde.reset_calls();
        assert_eq!(reports(&b).await.unwrap().status(), 200);
        if kinde.calls(Endpoint::AccountPermissions) == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "B never caught up with the log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    kinde.revoke(DEFAULT_ORG, "kp_1", "read:reports");
    let delivered = kinde
        .user_updated("kp_1")
        .deliver(&format!("{a}/webhooks/kinde"))
        .await;
    assert_eq!(delivered, 200);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while reports(&b).await.unwrap().status() != 403 {
        assert!(std::time::Instant::now() < give_up, "B never denied");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
