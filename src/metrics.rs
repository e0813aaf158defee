//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade: claimcheck records, the
//! application chooses the exporter (`metrics-exporter-prometheus`, OpenTelemetry, …) and
//! installs it. Without a recorder, recording is a no-op.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `claimcheck_decisions_total` | counter | `outcome`, `provenance`, `requirement` | authorization decisions: `allow`, `deny`, `unavailable`, `refused`; from `token`, `live-cache`, `live` or `coalesced`; the requirement as its `Display` (`any of (read:audit, admin:all)`), keys built at run time as `*` |
//! | `claimcheck_authn_rejections_total` | counter | `reason` | requests the authentication layer refused: `missing_credentials`, `invalid_request`, `invalid_token`, `expired_token`, `locked_out`, `unavailable` (no signing keys) |
//! | `claimcheck_token_mismatches_total` | counter | `claim` | `invalid_token` rejections a misconfiguration causes, by what did not match: `iss`, `aud`, `kid`, `alg` |
//! | `claimcheck_live_lookups_total` | counter | `kind`, `result` | live facts a strict decision used, per kind (`permissions`, `roles`, `feature_flags`): `hit` (cache), `miss` (this request called upstream), `coalesced` (joined another's call) |
//! | `claimcheck_upstream_requests_total` | counter | `endpoint`, `status` | HTTP requests to the issuer, by `endpoint` (`jwks`, `discovery`, `token`, `account_permissions`, `account_roles`, `account_feature_flags`, `management_permissions`, `management_roles`, `management_refresh_claims`) and status class (`2xx`, `3xx`, `4xx`, `5xx`, or `error`: no answer) |
//! | `claimcheck_upstream_request_duration_seconds` | histogram | `endpoint` | their latency, to the response's headers |
//! | `claimcheck_jwks_keys` | gauge | `issuer` (as configured) | usable signing keys after the last fetch of that issuer's key set |
//! | `claimcheck_live_source_paused` | gauge | `kind` | how many live checks have upstream calls for that kind paused after failures (strict routes answer 503): from the pause until a call succeeds again; 0 when none |
//! | `claimcheck_webhooks_total` | counter | `event`, `result` | webhook deliveries: `event` a known Kinde type (`user.updated`, …) or `other`, `unknown` when refused before it was read; `result` `applied`, `ignored`, `duplicate`, `invalid`, `unsupported_media_type`, `unavailable`, `log_unavailable` |
//! | `claimcheck_change_log_lag_seconds` | histogram | | Redis change log: time from a change's append to this replica applying it |
//!
//! Every label value comes from a fixed set or from the application's own code (route
//! requirements, where a key built at run time, perhaps from a caller's input, shows as `*`:
//! `org *`); none carries a user id, an organization code, a token or a URL.
//!
//! Call [`describe`] once after installing a recorder to give each metric its unit and help
//! text:
//!
//! ```
//! // `metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?` in an app.
//! claimcheck::metrics::describe();
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{Key, Label, Level, Metadata, Unit};

use crate::decision::{Decision, Outcome, Provenance};
use crate::requirement::Requirement;

/// Authorization decisions.
pub const DECISIONS_TOTAL: &str = "claimcheck_decisions_total";
/// Requests the authentication layer refused.
pub const AUTHN_REJECTIONS_TOTAL: &str = "claimcheck_authn_rejections_total";
/// Token rejections a misconfiguration causes.
pub const TOKEN_MISMATCHES_TOTAL: &str = "claimcheck_token_mismatches_total";
/// Live facts strict decisions used.
pub const LIVE_LOOKUPS_TOTAL: &str = "claimcheck_live_lookups_total";
/// HTTP requests to the issuer.
pub const UPSTREAM_REQUESTS_TOTAL: &str = "claimcheck_upstream_requests_total";
/// Latency of HTTP requests to the issuer.
pub const UPSTREAM_REQUEST_DURATION_SECONDS: &str = "claimcheck_upstream_request_duration_seconds";
/// Usable signing keys.
pub const JWKS_KEYS: &str = "claimcheck_jwks_keys";
/// Whether upstream calls for a kind of live facts are paused.
pub const LIVE_SOURCE_PAUSED: &str = "claimcheck_live_source_paused";
/// Webhook deliveries.
pub const WEBHOOKS_TOTAL: &str = "claimcheck_webhooks_total";
/// Change log lag.
pub const CHANGE_LOG_LAG_SECONDS: &str = "claimcheck_change_log_lag_seconds";

/// Gives every metric its unit and help text in the installed recorder.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(DECISIONS_TOTAL, "Authorization decisions");
    describe_counter!(
        AUTHN_REJECTIONS_TOTAL,
        "Requests the authentication layer refused"
    );
    describe_counter!(
        TOKEN_MISMATCHES_TOTAL,
        "Tokens refused for a claim a misconfiguration would cause (iss, aud, kid, alg)"
    );
    describe_counter!(LIVE_LOOKUPS_TOTAL, "Live facts used by strict decisions");
    describe_counter!(UPSTREAM_REQUESTS_TOTAL, "HTTP requests to the issuer");
    describe_histogram!(
        UPSTREAM_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Latency of HTTP requests to the issuer"
    );
    describe_gauge!(JWKS_KEYS, "Usable signing keys after the last fetch");
    describe_gauge!(
        LIVE_SOURCE_PAUSED,
        "Live checks with upstream calls for a kind of facts paused after failures"
    );
    describe_counter!(WEBHOOKS_TOTAL, "Webhook deliveries");
    describe_histogram!(
        CHANGE_LOG_LAG_SECONDS,
        Unit::Seconds,
        "Time from a change's append to the shared log to this replica applying it"
    );
}

static METADATA: Metadata<'static> = Metadata::new("claimcheck", Level::INFO, Some("claimcheck"));

const OUTCOMES: [Outcome; 4] = [
    Outcome::Allow,
    Outcome::Deny,
    Outcome::Unavailable,
    Outcome::Refused,
];
const PROVENANCES: [Provenance; 4] = [
    Provenance::Token,
    Provenance::LiveCache,
    Provenance::Live,
    Provenance::Coalesced,
];

/// The decision counters of one requirement, keyed on its first decision (a handler that
/// builds a layer per request pays for none it does not record): recording a decision then
/// costs no allocation and no hashing of labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecisionMetrics {
    keys: Arc<OnceLock<Box<[Key]>>>,
}

impl DecisionMetrics {
    fn keys(requirement: &Requirement) -> Box<[Key]> {
        let requirement = requirement.metric_label();
        OUTCOMES
            .iter()
            .flat_map(|outcome| {
                PROVENANCES
                    .iter()
                    .map(move |provenance| (outcome, provenance))
            })
            .map(|(outcome, provenance)| {
                let labels = vec![
                    Label::from_static_parts("outcome", outcome.as_str()),
                    Label::from_static_parts("provenance", provenance.as_str()),
                    Label::new("requirement", requirement.clone()),
                ];
                Key::from_parts(DECISIONS_TOTAL, labels)
            })
            .collect()
    }

    /// Counts `decision` (made for this requirement).
    #[inline]
    pub(crate) fn record(&self, decision: &Decision) {
        let outcome = match decision.outcome() {
            Outcome::Allow => 0,
            Outcome::Deny => 1,
            Outcome::Unavailable => 2,
            Outcome::Refused => 3,
        };
        let provenance = match decision.provenance() {
            Provenance::Token => 0,
            Provenance::LiveCache => 1,
            Provenance::Live => 2,
            Provenance::Coalesced => 3,
        };
        let keys = self.keys.get_or_init(|| Self::keys(decision.requirement()));
        if let Some(key) = keys.get(outcome * PROVENANCES.len() + provenance) {
            ::metrics::with_recorder(|recorder| {
                recorder.register_counter(key, &METADATA).increment(1);
            });
        }
    }
}

/// Counts a request the authentication layer refused, for `reason`.
pub(crate) fn authn_rejected(reason: &'static str) {
    ::metrics::counter!(AUTHN_REJECTIONS_TOTAL, "reason" => reason).increment(1);
}

/// Counts an `invalid_token` rejection for the claim `claim` (`iss`, `aud`, `kid`, `alg`).
pub(crate) fn token_mismatch(claim: &'static str) {
    ::metrics::counter!(TOKEN_MISMATCHES_TOTAL, "claim" => claim).increment(1);
}

/// A key whose name and labels are constants: built at compile time, hash included.
macro_rules! static_key {
    ($name:expr, $($label:literal => $value:literal),+) => {{
        static LABELS: [Label; [$($label),+].len()] = [$(Label::from_static_parts($label, $value)),+];
        static KEY: Key = Key::from_static_parts($name, &LABELS);
        &KEY
    }};
}

/// Counts live facts of `kind` (`permissions`, `roles`, `feature_flags`) a decision used,
/// from where `provenance` says. On every strict decision: the keys are constants.
pub(crate) fn live_lookup(kind: &'static str, provenance: Provenance) {
    let key = match (kind, provenance) {
        ("permissions", Provenance::Live) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "permissions", "result" => "miss")
        }
        ("permissions", Provenance::Coalesced) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "permissions", "result" => "coalesced")
        }
        ("permissions", _) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "permissions", "result" => "hit")
        }
        ("roles", Provenance::Live) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "roles", "result" => "miss")
        }
        ("roles", Provenance::Coalesced) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "roles", "result" => "coalesced")
        }
        ("roles", _) => static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "roles", "result" => "hit"),
        (_, Provenance::Live) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "feature_flags", "result" => "miss")
        }
        (_, Provenance::Coalesced) => {
            static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "feature_flags", "result" => "coalesced")
        }
        (_, _) => static_key!(LIVE_LOOKUPS_TOTAL, "kind" => "feature_flags", "result" => "hit"),
    };
    ::metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(1));
}

/// Counts and times one HTTP request to `endpoint`; `status` is `None` when none came back.
pub(crate) fn upstream(endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
    let class = match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    };
    ::metrics::counter!(UPSTREAM_REQUESTS_TOTAL, "endpoint" => endpoint, "status" => class)
        .increment(1);
    ::metrics::histogram!(UPSTREAM_REQUEST_DURATION_SECONDS, "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
}

/// The number of usable signing keys now held for `issuer` (a configured issuer: bounded).
pub(crate) fn jwks_keys(issuer: &str, count: usize) {
    ::metrics::gauge!(JWKS_KEYS, "issuer" => issuer.to_owned()).set(count as f64);
}

/// One more (`1.0`) or one fewer (`-1.0`) breaker pausing upstream calls for `kind`: a
/// count, so that one source recovering does not clear another's pause.
pub(crate) fn live_source_paused(kind: &'static str, change: f64) {
    ::metrics::gauge!(LIVE_SOURCE_PAUSED, "kind" => kind).increment(change);
}

/// Counts a webhook delivery.
pub(crate) fn webhook(event: &'static str, result: &'static str) {
    ::metrics::counter!(WEBHOOKS_TOTAL, "event" => event, "result" => result).increment(1);
}

/// Records how long a change took from the shared log to this replica.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn change_log_lag(lag: Duration) {
    ::metrics::histogram!(CHANGE_LOG_LAG_SECONDS).record(lag.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Age;

    #[test]
    fn each_outcome_and_provenance_has_its_own_key() {
        let metrics = DecisionMetrics::default();
        let mut seen = std::collections::HashSet::new();
        for outcome in OUTCOMES {
            for provenance in PROVENANCES {
                let requirement = Requirement::permission("read:x");
                let decision = Decision::new(outcome, requirement, provenance, Age::Unknown);
                let o = OUTCOMES.iter().position(|o| *o == outcome).unwrap();
                let p = PROVENANCES.iter().position(|p| *p == provenance).unwrap();
                metrics.record(&decision); // no recorder: a no-op, and no panic
                let key = &metrics.keys.get().expect("keyed by the first")[o * 4 + p];
                let labels: Vec<_> = key.labels().map(|l| l.value().to_owned()).collect();
                assert_eq!(labels, [outcome.as_str(), provenance.as_str(), "read:x"]);
                assert!(seen.insert(key.clone()));
            }
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn live_lookups_are_counted_under_their_kind_and_result() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            for kind in ["permissions", "roles", "feature_flags"] {
                live_lookup(kind, Provenance::Live);
                live_lookup(kind, Provenance::Coalesced);
                live_lookup(kind, Provenance::LiveCache);
                live_lookup(kind, Provenance::LiveCache);
            }
        });
        let mut counted: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels: Vec<String> =
                    key.key().labels().map(|l| l.value().to_owned()).collect();
                format!("{} {value:?}", labels.join(" "))
            })
            .collect();
        counted.sort();
        assert_eq!(counted.len(), 9, "{counted:?}");
        assert!(
            counted.contains(&"roles hit Counter(2)".to_owned()),
            "{counted:?}"
        );
        assert!(counted.contains(&"feature_flags coalesced Counter(1)".to_owned()));
        assert!(counted.contains(&"permissions miss Counter(1)".to_owned()));
    }
}
