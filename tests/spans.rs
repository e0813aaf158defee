//! The spans a `tracing-opentelemetry` user would export: one `claimcheck.authenticate` and one
//! `claimcheck.authorize` per request, children of the request's span (tower-http's
//! `TraceLayer`), the decision event inside the authorize span, its fields recorded on the span.
//! Captured with a test layer, over loopback.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use claimcheck::testing::DEFAULT_ORG;
use serde_json::json;
use tower_http::trace::TraceLayer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A closed-or-open span as captured: its name, its parent's name, its fields.
#[derive(Debug, Clone, Default)]
struct Captured {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

/// An event's message, and the name of the span it happened in.
type Seen = (String, Option<&'static str>);

#[derive(Clone, Default)]
struct Spans {
    spans: Arc<Mutex<Vec<(Id, Captured)>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut captured = Captured {
            name: attrs.metadata().name(),
            parent: ctx.span(id).and_then(|s| s.parent()).map(|p| p.name()),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        self.spans.lock().unwrap().push((id.clone(), captured));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, captured)) = spans.iter_mut().rev().find(|(i, _)| i == id) {
            values.record(&mut Fields(&mut captured.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|s| s.name());
        self.events.lock().unwrap().push((message, span));
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<Captured> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|(_, c)| c.name == name)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn clear(&self) {
        self.spans.lock().unwrap().clear();
        self.events.lock().unwrap().clear();
    }
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields.get(name).map_or("", String::as_str)
}

#[tokio::test]
async fn each_request_has_an_authenticate_and_an_authorize_span_under_its_own() {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    // Everything runs on this thread (a current-thread runtime): the app, the fake, the client.
    let h = common::start().await;
    let app = common::app(&h.auth, h.runs.clone()).layer(TraceLayer::new_for_http());
    let (base, _server) = common::serve(app).await;
    let client = reqwest::Client::new();
    let reader = h
        .kinde
        .user_token("kp_span")
        .permissions(["read:reports"])
        .sign();

    // Token-trusted: allowed from the token.
    spans.clear();
    let response = client
        .get(format!("{base}/reports"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let authn = spans.named("claimcheck.authenticate");
    assert_eq!(authn.len(), 1, "{authn:?}");
    assert_eq!(authn[0].parent, Some("request"));
    assert_eq!(field(&authn[0], "outcome"), "ok");
    let authz = spans.named("claimcheck.authorize");
    assert_eq!(authz.len(), 1, "{authz:?}");
    assert_eq!(authz[0].parent, Some("request"));
    assert_eq!(field(&authz[0], "requirement"), "read:reports");
    assert_eq!(field(&authz[0], "decision"), "allow");
    assert_eq!(field(&authz[0], "provenance"), "token");
    assert_eq!(field(&authz[0], "subject"), "kp_span");
    let events = spans.events.lock().unwrap().clone();
    assert!(
        events.contains(&(
            "authorization decision".into(),
            Some("claimcheck.authorize")
        )),
        "{events:?}"
    );

    // Strict: the live lookup happens inside the authorize span.
    spans.clear();
    h.kinde.grant(DEFAULT_ORG, "kp_span", "create:payments");
    let response = client
        .post(format!("{base}/payments"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let authz = spans.named("claimcheck.authorize");
    assert_eq!(authz.len(), 1, "{authz:?}");
    assert_eq!(
        (field(&authz[0], "decision"), field(&authz[0], "provenance")),
        ("allow", "live")
    );

    // A handler's own check has its span too (a refund over 1 000 needs approve:refunds).
    spans.clear();
    let response = client
        .post(format!("{base}/refunds"))
        .bearer_auth(&reader)
        .json(&json!({"amount": 5_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let authz = spans.named("claimcheck.authorize");
    assert_eq!(authz.len(), 1, "{authz:?}");
    assert_eq!(field(&authz[0], "requirement"), "approve:refunds");
    assert_eq!(field(&authz[0], "decision"), "deny");

    // Refused credentials: the authenticate span says why, and nothing is authorized.
    spans.clear();
    let response = client
        .get(format!("{base}/reports"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let authn = spans.named("claimcheck.authenticate");
    assert_eq!(field(&authn[0], "outcome"), "invalid_token");
    assert!(spans.named("claimcheck.authorize").is_empty());
    // No field of any span carries the token.
    let all = spans.spans.lock().unwrap();
    assert!(
        all.iter()
            .all(|(_, c)| !format!("{c:?}").contains(&reader[..30]))
    );
}
