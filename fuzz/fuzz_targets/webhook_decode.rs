//! Webhook bodies: the receiver never panics and applies nothing unsigned; the event model
//! never panics on any JSON.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use claimcheck::Auth;
use claimcheck::live::{KindeAccountApi, LiveCheck};
use claimcheck::testing::BlockingKinde;
use claimcheck::webhook::{Receipt, WebhookEvent, WebhookReceiver};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static (BlockingKinde, WebhookReceiver) {
    static SETUP: OnceLock<(BlockingKinde, WebhookReceiver)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let fake = BlockingKinde::start();
        let live = LiveCheck::builder(KindeAccountApi::new(fake.kinde.issuer()).unwrap()).build();
        let receiver = Auth::new(fake.verifier.clone(), live).webhook_receiver();
        (fake, receiver)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<WebhookEvent>(data) {
        let _ = event.effect();
        let _ = event.occurred_at(SystemTime::now());
        let _ = event.sent_at();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WebhookEvent::from_payload(text);
    }
    let (fake, receiver) = setup();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/jwt"));
    let receipt = fake.runtime.block_on(receiver.receive(&headers, data));
    assert!(
        !matches!(receipt, Ok(Receipt::Applied(_))),
        "an unsigned body took effect"
    );
});
