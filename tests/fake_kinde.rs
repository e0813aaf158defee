//! The fake Kinde's live APIs speak Kinde's wire formats: the shapes `kinde-reference.md` §2-4
//! gives, the credentials each endpoint demands, pagination, and the control API behind them.

mod common;

use claimcheck::testing::{DEFAULT_ORG, FakeKinde, READ_PERMISSIONS_SCOPE};
use serde_json::{Value, json};

/// A Management API token for `client`, straight from the fake's `/oauth2/token`.
async fn machine_token(kinde: &FakeKinde, (id, secret): (String, String)) -> String {
    let audience = format!("{}/api", kinde.issuer());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", audience.as_str()),
    ];
    common::token_grant(kinde, &form).await
}

#[tokio::test]
async fn management_permissions_have_kindes_shape_and_need_the_scope() {
    let kinde = FakeKinde::start().await;
    kinde.grant("org_a", "kp_1", "create:payments");
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/organizations/org_a/users/kp_1/permissions",
        kinde.issuer()
    );
    let scoped = machine_token(&kinde, kinde.register_management_client()).await;
    let body = get_json(&url, &scoped).await;
    assert_eq!(body["code"], "OK");
    assert_eq!(body["message"], "Success");
    let permission = &body["permissions"][0];
    assert_eq!(permission["key"], "create:payments");
    for field in ["id", "name", "description"] {
        assert!(permission[field].is_string(), "{field}: {body}");
    }
    assert_eq!(permission["roles"], json!([]));

    let unscoped = machine_token(&kinde, kinde.register_m2m_client(&["read:users"])).await;
    let status = |token: Option<String>| {
        let mut req = client.get(&url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(Some(unscoped)).await, 403);
    assert_eq!(status(None).await, 401);
    let user = kinde.user_token("kp_1").sign();
    assert_eq!(
        status(Some(user)).await,
        401,
        "user tokens are not machine tokens"
    );
    kinde.revoke_management_tokens();
    assert_eq!(status(Some(scoped)).await, 401);
}

#[tokio::test]
async fn refresh_claims_answers_ok_and_is_counted() {
    let kinde = FakeKinde::start().await;
    let token = machine_token(&kinde, kinde.register_management_client()).await;
    let url = format!("{}/api/v1/users/kp_1/refresh_claims", kinde.issuer());
    let client = reqwest::Client::new();
    let answer = client.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body, json!({"code": "OK", "message": "Success"}));
    assert_eq!(kinde.claims_refreshes("kp_1"), 1);
    assert_eq!(kinde.claims_refreshes("kp_2"), 0);

    let read_only = kinde.register_m2m_client(&[READ_PERMISSIONS_SCOPE]);
    let read_only = machine_token(&kinde, read_only).await;
    let refused = client
        .post(&url)
        .bearer_auth(read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(kinde.claims_refreshes("kp_1"), 1);
}

#[tokio::test]
async fn grants_and_revocations_are_per_org_and_user() {
    let kinde = FakeKinde::start().await;
    kinde.grant("org_a", "kp_1", "b:two");
    kinde.grant("org_a", "kp_1", "a:one");
    kinde.grant("org_b", "kp_1", "c:three");
    assert_eq!(kinde.permissions_of("org_a", "kp_1"), ["a:one", "b:two"]);
    kinde.revoke("org_a", "kp_1", "a:one");
    kinde.revoke("org_a", "kp_1", "never:granted");
    assert_eq!(kinde.permissions_of("org_a", "kp_1"), ["b:two"]);
    assert_eq!(kinde.permissions_of("org_b", "kp_1"), ["c:three"]);
    assert!(kinde.permissions_of("org_a", "kp_2").is_empty());
}

#[tokio::test]
async fn the_account_api_pages_by_ten_by_default_for_the_tokens_user() {
    let kinde = FakeKinde::start().await;
    for i in 0..12 {
        kinde.grant(DEFAULT_ORG, "kp_1", &format!("p:{i:02}"));
    }
    let token = kinde.user_token("kp_1").sign();
    let url = format!("{}/account_api/v1/permissions", kinde.issuer());
    let page = get_json(&url, &token).await;
    assert_eq!(page["data"]["permissions"].as_array().unwrap().len(), 10);
    assert_eq!(page["data"]["org_code"], DEFAULT_ORG);
    assert_eq!(page["metadata"]["has_more"], true);
    let first = &page["data"]["permissions"][0];
    assert_eq!(first["key"], "p:00");
    assert!(first["id"].as_str().unwrap().starts_with("perm_"));
    assert!(first["name"].is_string());

    let cursor = page["metadata"]["next_page_starting_after"]
        .as_str()
        .unwrap();
    let rest = get_json(&format!("{url}?starting_after={cursor}"), &token).await;
    assert_eq!(rest["data"]["permissions"].as_array().unwrap().len(), 2);
    assert_eq!(rest["metadata"]["has_more"], false);

    let other_org = kinde.user_token("kp_1").org_code("org_other").sign();
    let empty = get_json(&url, &other_org).await;
    assert_eq!(empty["data"]["permissions"], json!([]));
    for refused in [
        kinde.user_token("kp_1").forged().sign(),
        kinde.user_token("kp_1").expires_in(-10).sign(),
    ] {
        let answer = reqwest::Client::new()
            .get(&url)
            .bearer_auth(refused)
            .send()
            .await;
        assert_eq!(answer.unwrap().status(), 403);
    }
}

async fn get_json(url: &str, token: &str) -> Value {
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await;
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

#[tokio::test]
async fn webhooks_are_signed_kinde_events_with_a_stable_id() {
    use base64::Engine;
    let kinde = FakeKinde::start().await;
    kinde.grant("org_a", "kp_1", "create:payments");
    let event = kinde.user_updated("kp_1");
    let jwt = event.token().sign();
    let mut parts = jwt.split('.');
    let decode = |part: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let header = decode(parts.next().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], kinde.current_kid());
    let payload = decode(parts.next().unwrap());
    assert_eq!(payload, event.payload());
    let keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["data", "event_id", "source", "timestamp", "type"],
        "no iss/aud/exp"
    );
    assert_eq!(payload["type"], "user.updated");
    let event_id = payload["event_id"].as_str().unwrap();
    assert!(
        event_id.starts_with("event_") && event_id.len() == 38,
        "{event_id}"
    );
    let user = &payload["data"]["user"];
    assert_eq!(user["id"], "kp_1");
    assert_eq!(user["organizations"][0]["code"], "org_a");
    assert_eq!(
        user["organizations"][0]["permissions"][0]["key"],
        "create:payments"
    );
    assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'));
    let same = event.clone();
    assert_eq!(same.webhook_id(), event.webhook_id());
    assert_ne!(kinde.user_updated("kp_1").webhook_id(), event.webhook_id());
}
