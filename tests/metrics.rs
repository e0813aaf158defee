//! Metrics as an operator scrapes them: `examples/server.rs` serves `GET /metrics`
//! (Prometheus); a few requests of each kind, then the counters must have moved by exactly
//! what they did, with no user id, organization code or token in any label.

mod common;

use claimcheck::testing::{DEFAULT_ORG, FakeKinde};
use common::example::start_server;
use serde_json::json;

/// The sum of every series of `name` carrying all of `labels` (`0.0` when there is none).
fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn the_server_example_counts_decisions_rejections_lookups_and_upstream_calls() {
    let kinde = FakeKinde::start().await;
    let (child, base) = start_server(&kinde, &[("CLAIMCHECK_STRICT_TTL_MS", "60000")]).await;
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder, token: Option<&str>| {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let get = |path: &str, token: Option<&str>| send(client.get(format!("{base}{path}")), token);

    let reader = kinde
        .user_token("kp_metrics_reader")
        .permissions(["read:reports"])
        .sign();
    let nobody = kinde.user_token("kp_metrics_nobody").sign();
    let elsewhere = kinde
        .user_token("kp_metrics_reader")
        .audience("https://another.api")
        .sign();
    assert_eq!(get("/reports", Some(&reader)).await, 200);
    assert_eq!(get("/reports", Some(&reader)).await, 200);
    assert_eq!(get("/reports", Some(&nobody)).await, 403);
    assert_eq!(get("/reports", None).await, 401);
    assert_eq!(get("/reports", Some("not-a-jwt")).await, 401);
    assert_eq!(get("/reports", Some(&elsewhere)).await, 401);
    // Strict: the first asks Kinde, the second is answered from the live cache.
    kinde.grant(DEFAULT_ORG, "kp_metrics_payer", "create:payments");
    let payer = kinde
        .user_token("kp_metrics_payer")
        .permissions(["create:payments"])
        .sign();
    let pay = || send(client.post(format!("{base}/payments")), Some(&payer));
    assert_eq!(pay().await, 200);
    assert_eq!(pay().await, 200);
    // A webhook of a type no one documented: counted, under `other`.
    let hook = kinde.webhook("made.up.type", json!({}));
    assert_eq!(hook.deliver(&format!("{base}/webhooks/kinde")).await, 200);

    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let scrape = response.text().await.unwrap();
    let decisions = |outcome, provenance, requirement| {
        let labels = [
            ("outcome", outcome),
            ("provenance", provenance),
            ("requirement", requirement),
        ];
        value(&scrape, "claimcheck_decisions_total", &labels)
    };
    assert_eq!(decisions("allow", "token", "read:reports"), 2.0, "{scrape}");
    assert_eq!(decisions("deny", "token", "read:reports"), 1.0);
    assert_eq!(decisions("allow", "live", "create:payments"), 1.0);
    assert_eq!(decisions("allow", "live-cache", "create:payments"), 1.0);
    let rejections = |reason| {
        value(
            &scrape,
            "claimcheck_authn_rejections_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejections("missing_credentials"), 1.0);
    assert_eq!(rejections("invalid_token"), 2.0);
    let mismatches = value(
        &scrape,
        "claimcheck_token_mismatches_total",
        &[("claim", "aud")],
    );
    assert_eq!(mismatches, 1.0);
    let lookups = |result| {
        let labels = [("kind", "permissions"), ("result", result)];
        value(&scrape, "claimcheck_live_lookups_total", &labels)
    };
    assert_eq!((lookups("miss"), lookups("hit")), (1.0, 1.0));
    let upstream = |endpoint| {
        let labels = [("endpoint", endpoint), ("status", "2xx")];
        value(&scrape, "claimcheck_upstream_requests_total", &labels)
    };
    assert_eq!(upstream("account_permissions"), 1.0);
    // The startup check's fetch at least (rotation checks may add more).
    assert!(upstream("jwks") >= 1.0, "{scrape}");
    assert_eq!(upstream("discovery"), 1.0);
    let timed = value(
        &scrape,
        "claimcheck_upstream_request_duration_seconds_count",
        &[("endpoint", "account_permissions")],
    );
    assert_eq!(timed, 1.0);
    let keys = [("issuer", kinde.issuer())];
    assert_eq!(value(&scrape, "claimcheck_jwks_keys", &keys), 1.0);
    let webhooks = [("event", "other"), ("result", "ignored")];
    assert_eq!(value(&scrape, "claimcheck_webhooks_total", &webhooks), 1.0);
    // Bounded labels: no user, organization or token anywhere.
    for secret in ["kp_metrics", DEFAULT_ORG, "made.up", &reader[..20]] {
        assert!(!scrape.contains(secret), "{secret} in {scrape}");
    }
    // Described: units and help text.
    assert!(scrape.contains("# HELP claimcheck_decisions_total Authorization decisions"));
    drop(child);
}

/// A breaker that pauses upstream calls shows as `claimcheck_live_source_paused{kind}` 1, and
/// 0 again once a call succeeds. In process, with a recorder local to this thread.
#[test]
fn a_paused_live_source_shows_in_its_gauge_until_it_recovers() {
    use std::time::Duration;

    use claimcheck::live::{Backoff, KindeAccountApi, LiveCheck, PermissionQuery};
    use claimcheck::testing::{Endpoint, Fault};
    use metrics_exporter_prometheus::PrometheusBuilder;

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let paused = || {
        let scrape = handle.render();
        let labels = [("kind", "permissions")];
        value(&scrape, "claimcheck_live_source_paused", &labels)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let kinde = FakeKinde::start().await;
            let verifier = common::warm_verifier(&kinde).await;
            let pause = Duration::from_millis(30);
            let live = LiveCheck::builder(KindeAccountApi::new(kinde.issuer()).unwrap())
                .time_to_live(Duration::ZERO)
                .backoff(Backoff {
                    after_failures: 1,
                    first_pause: pause,
                    max_pause: pause,
                })
                .build();
            let token = kinde.login("kp_gauge").access_token;
            let claims = verifier.verify(&token).await.unwrap();
            let query = PermissionQuery::from_claims(&claims).unwrap();

            assert!(live.lookup(&query).await.is_ok());
            assert_eq!(paused(), 0.0, "never paused: not set, or 0");
            kinde.set_fault(Endpoint::AccountPermissions, Fault::Status(500, vec![]));
            assert!(live.lookup(&query).await.is_err());
            assert_eq!(paused(), 1.0);
            kinde.clear_fault(Endpoint::AccountPermissions);
            tokio::time::sleep(pause * 2).await;
            assert!(live.lookup(&query).await.is_ok());
            assert_eq!(paused(), 0.0);
        })
    });
}

/// With replicas sharing the Redis change log, a change one publishes is applied by the other,
/// and the time it took is recorded in `claimcheck_change_log_lag_seconds`.
#[cfg(feature = "redis")]
#[test]
fn the_change_log_lag_is_recorded_when_another_replica_applies_a_change() {
    use std::time::SystemTime;

    use claimcheck::changes::Target;
    use metrics_exporter_prometheus::PrometheusBuilder;

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let fleet = common::fleet::Fleet::start(2).await;
            let lagged = || {
                value(
                    &handle.render(),
                    "claimcheck_change_log_lag_seconds_count",
                    &[],
                )
            };
            let before = lagged();
            let applied = fleet.replicas[1].applied();
            let user = Target::User("kp_lagged".into());
            fleet.a().auth.mark_changed(user, SystemTime::now());
            common::fleet::until("the other replica applies the change", || {
                fleet.replicas[1].applied() > applied
            })
            .await;
            assert!(lagged() > before, "{}", handle.render());
            let lag = value(
                &handle.render(),
                "claimcheck_change_log_lag_seconds_sum",
                &[],
            );
            assert!((0.0..60.0).contains(&lag), "{lag}");
        })
    });
}
