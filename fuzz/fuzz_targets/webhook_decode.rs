//! Webhook bodies: the receiver never panics and applies nothing unsigned; the event model
//! never panics on any JSON.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use claimcheck::live::{KindeAccountApi, LiveCheck};
use claimcheck::testing::FakeKinde;
use claimcheck::webhook::{Receipt, WebhookEvent, WebhookReceiver};
use claimcheck::{Auth, Verifier};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

struct Setup {
    rt: Runtime,
    _kinde: FakeKinde,
    receiver: WebhookReceiver,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = Runtime::new().unwrap();
        let kinde = rt.block_on(FakeKinde::start());
        let verifier = Verifier::builder(kinde.issuer())
            .audience(kinde.audience())
            .build()
            .unwrap();
        assert!(rt.block_on(verifier.warm_up()));
        let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap()).build();
        let receiver = Auth::new(verifier, live).webhook_receiver();
        Setup {
            rt,
            _kinde: kinde,
            receiver,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<WebhookEvent>(data) {
        let _ = event.effect();
        let _ = event.occurred_at(SystemTime::now());
    }
    let s = setup();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/jwt"));
    let receipt = s.rt.block_on(s.receiver.receive(&headers, data));
    assert!(
        !matches!(receipt, Ok(Receipt::Applied(_))),
        "an unsigned body took effect"
    );
});
