//! Property tests (proptest, bounded case counts): hostile headers, tokens and webhook bodies
//! never panic, and never authenticate or take effect unless they are the exact signed bytes.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::handler::Handler;
use axum::routing::get;
use axum::routing::post;
use claimcheck::live::{Backoff, KindeManagementApi, LiveCheck};
use claimcheck::testing::{BlockingKinde, Endpoint, Fault};
use claimcheck::webhook::{Receipt, WebhookReceiver};
use claimcheck::{Auth, Claims, Permission};
use http::{HeaderMap, HeaderValue, Request};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

const CREATE_PAYMENTS: Permission = Permission::from_static("create:payments");

/// A Management API answer that grants `create:payments`, to mutate.
const GRANTING: &str = r#"{"code":"OK","message":"Success","permissions":[{"id":"p1","key":"create:payments","name":"Pay","description":"Pay","roles":[]}]}"#;

struct Setup {
    fake: BlockingKinde,
    app: Router,
    live: LiveCheck,
    token: String,
    receiver: WebhookReceiver,
    webhook: String,
}

/// One fake Kinde, verifier and app for every case (a runtime with its own threads, so the
/// fake keeps serving while a case blocks on it).
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fake = BlockingKinde::start();
        let (kinde, verifier) = (&fake.kinde, &fake.verifier);
        // Never pause: every case must reach the (faulted) upstream.
        let patient = Backoff {
            after_failures: u32::MAX,
            ..Backoff::default()
        };
        let (id, secret) = kinde.register_management_client();
        let source = KindeManagementApi::new(kinde.issuer(), id, secret).unwrap();
        let live = LiveCheck::builder(source).backoff(patient).build();
        let auth = Auth::new(verifier.clone(), live.clone());
        let app = Router::new()
            .route("/me", get(|_: Claims| async { "me" }))
            .route(
                "/payments",
                post((|| async { "paid" }).layer(auth.strict(CREATE_PAYMENTS))),
            )
            .layer(auth.layer());
        let token = kinde.user_token("kp_1").sign();
        let webhook = kinde.user_updated("kp_1").token().sign();
        Setup {
            fake,
            app,
            live,
            token,
            receiver: auth.webhook_receiver(),
            webhook,
        }
    })
}

/// Edits of a valid string: replace, insert or delete one character, or truncate.
fn mutated(original: &'static str) -> impl Strategy<Value = String> {
    let len = original.len();
    let alphabet = prop::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_. =+/%\t"
            .chars()
            .collect::<Vec<_>>(),
    );
    (0..4u8, 0..len.max(1), alphabet).prop_map(move |(edit, at, c)| {
        let mut s: Vec<char> = original.chars().collect();
        let at = at.min(s.len().saturating_sub(1));
        match edit {
            0 => s[at] = c,
            1 => s.insert(at, c),
            2 => {
                s.remove(at);
            }
            _ => s.truncate(at),
        }
        s.into_iter().collect()
    })
}

fn status_of(header: HeaderValue) -> u16 {
    let s = setup();
    let request = Request::get("/me")
        .header("authorization", header)
        .body(Body::empty())
        .unwrap();
    let response = s
        .fake
        .runtime
        .block_on(s.app.clone().oneshot(request))
        .unwrap();
    response.status().as_u16()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_authorization_headers_never_authenticate(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(header) = HeaderValue::from_bytes(&bytes) {
            let status = status_of(header);
            prop_assert!(matches!(status, 400 | 401), "status {status}");
        }
    }

    #[test]
    fn mutated_bearer_headers_authenticate_only_with_the_exact_token(
        header in mutated(Box::leak(format!("Bearer {}", setup().token).into_boxed_str()))
    ) {
        let Ok(value) = HeaderValue::from_str(&header) else { return Ok(()) };
        let status = status_of(value);
        prop_assert!(matches!(status, 200 | 400 | 401), "status {status}");
        if status == 200 {
            let (scheme, rest) = header.trim().split_once([' ', '\t']).unwrap();
            prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
            prop_assert_eq!(rest.trim(), setup().token.as_str());
        }
    }

    #[test]
    fn mutated_tokens_never_verify(token in mutated(Box::leak(setup().token.clone().into_boxed_str()))) {
        let s = setup();
        let verified = s.fake.runtime.block_on(s.fake.verifier.verify(&token));
        prop_assert_eq!(verified.is_ok(), token == s.token, "{}", token);
    }

    #[test]
    fn webhook_bodies_take_effect_only_when_signed(
        body in prop_oneof![
            mutated(Box::leak(setup().webhook.clone().into_boxed_str())),
            ".{0,300}",
        ]
    ) {
        let s = setup();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/jwt"));
        let receipt = s.fake.runtime.block_on(s.receiver.receive(&headers, body.as_bytes()));
        if let Ok(Receipt::Applied(_)) = receipt {
            prop_assert_eq!(body.trim(), s.webhook.as_str());
        }
    }
}

/// Whether `body` is a Management API answer granting `create:payments`, judged independently
/// of the crate: a JSON object whose `permissions` array holds an object with that exact key.
fn grants(body: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    value["permissions"]
        .as_array()
        .is_some_and(|all| all.iter().any(|p| p["key"] == "create:payments"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn permission_answers_allow_only_when_well_formed_and_granting(
        body in prop_oneof![mutated(GRANTING), ".{0,200}", Just(GRANTING.to_owned())]
    ) {
        let s = setup();
        s.fake.kinde.set_fault(Endpoint::ManagementPermissions, Fault::Body(body.clone()));
        s.live.invalidate_all();
        let token = s.fake.kinde.user_token("kp_payer").sign();
        let request = Request::post("/payments")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let status = s.fake.runtime.block_on(s.app.clone().oneshot(request)).unwrap().status().as_u16();
        prop_assert!(matches!(status, 200 | 403 | 503), "status {status}");
        if status == 200 {
            prop_assert!(grants(&body), "allowed on {body}");
        }
        if body == GRANTING {
            prop_assert_eq!(status, 200);
        }
    }
}
