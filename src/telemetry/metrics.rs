//! Prometheus metrics: the names (one constant each, Prometheus conventions: `bankgate_`
//! prefix, `_total` counters, `_seconds` in base units) and the recorder; what is sampled at
//! each scrape is `http::metrics`.
//!
//! Code on the request path records through the `metrics` macros, which do nothing until
//! [`install`] set the process's recorder: with metrics off (no `metrics_listen`) they cost a
//! relaxed load. Labels never carry an identifier a caller chose (routes are templates,
//! banks are registered ids, failure kinds are a fixed set).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `method`, `route` (the template, e.g. `/v1/accounts/{id}/balances`,
/// or `unmatched`) and `status`.
pub const HTTP_REQUESTS: &str = "bankgate_http_requests_total";
/// Time from the request's arrival to its response head, same labels.
pub const HTTP_REQUEST_DURATION: &str = "bankgate_http_request_duration_seconds";
/// Calls to a bank's API through its outbound stack, by `bank`.
pub const BANK_CALLS: &str = "bankgate_bank_calls_total";
/// Duration of those calls (retries included), by `bank`.
pub const BANK_CALL_DURATION: &str = "bankgate_bank_call_duration_seconds";
/// Failed calls, by `bank` and `kind` (`timeout`, `transport`, `status`, `decode`,
/// `error_body`, `too_large`, `circuit_open`, `saturated`, `unknown_account`, `refused`).
pub const BANK_CALL_FAILURES: &str = "bankgate_bank_call_failures_total";
/// The bank's circuit breaker: 1 for its current `state` (`closed`, `open`, `half_open`), 0
/// for the others.
pub const BANK_BREAKER_STATE: &str = "bankgate_bank_breaker_state";
/// Calls to the bank in flight now, by `bank`.
pub const BANK_IN_FLIGHT: &str = "bankgate_bank_calls_in_flight";
/// Calls waiting for a slot at the bank now (its in-flight cap reached), by `bank`.
pub const BANK_QUEUED: &str = "bankgate_bank_calls_queued";
/// When each of bankgate's eIDAS certificates at a bank ends (Unix seconds), by `bank` and
/// `certificate` (`qwac`, `qseal`): alert well before it.
pub const BANK_CERTIFICATE_EXPIRY: &str = "bankgate_bank_certificate_expiry_timestamp_seconds";
/// Audit events waiting for a commit.
pub const AUDIT_QUEUE_DEPTH: &str = "bankgate_audit_queue_depth";
/// Events per committed batch (group commit).
pub const AUDIT_BATCH_SIZE: &str = "bankgate_audit_batch_size";
/// Time to commit one batch, durability barrier included.
pub const AUDIT_COMMIT_DURATION: &str = "bankgate_audit_commit_duration_seconds";
/// Audit events committed.
pub const AUDIT_EVENTS: &str = "bankgate_audit_events_total";
/// Batches that failed to commit (their requests got 503).
pub const AUDIT_COMMIT_FAILURES: &str = "bankgate_audit_commit_failures_total";
/// Events in the chain past the last signed checkpoint this instance knows.
pub const AUDIT_CHECKPOINT_LAG: &str = "bankgate_audit_checkpoint_lag_events";
/// Webhook deliveries not yet delivered nor given up.
pub const WEBHOOK_BACKLOG: &str = "bankgate_webhook_backlog";
/// Webhook attempts that failed, by `outcome` (`retry` or `gave_up`).
pub const WEBHOOK_FAILURES: &str = "bankgate_webhook_delivery_failures_total";
/// 1 for each purpose policy in force, by `purpose` and `hash` (the version).
pub const POLICY_INFO: &str = "bankgate_policy_info";
/// Consents by `state`.
pub const CONSENTS: &str = "bankgate_consents";

/// Latency buckets (seconds): 1 ms to 30 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Batch size buckets (events).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and spawns its
/// upkeep on the current runtime.
///
/// # Panics
/// If another `metrics` recorder was installed in this process first (bankgate installs none
/// elsewhere).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(AUDIT_BATCH_SIZE.into()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder)
                .unwrap_or_else(|error| panic!("the metrics recorder installs once: {error}"));
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                loop {
                    every.tick().await;
                    upkeep.run_upkeep();
                }
            });
            describe();
            handle
        })
        .clone()
}

/// Whether [`install`] ran in this process.
pub fn installed() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to the response head"
    );
    describe_counter!(BANK_CALLS, "Calls to the bank's API");
    describe_histogram!(
        BANK_CALL_DURATION,
        Unit::Seconds,
        "Duration of bank calls, retries included"
    );
    describe_counter!(BANK_CALL_FAILURES, "Failed bank calls by kind");
    describe_gauge!(BANK_BREAKER_STATE, "1 for the bank's circuit breaker state");
    describe_gauge!(BANK_IN_FLIGHT, "Calls to the bank in flight");
    describe_gauge!(BANK_QUEUED, "Calls waiting for a slot at the bank");
    describe_gauge!(
        BANK_CERTIFICATE_EXPIRY,
        "When bankgate's eIDAS certificate at the bank ends (Unix seconds)"
    );
    describe_gauge!(AUDIT_QUEUE_DEPTH, "Audit events waiting for a commit");
    describe_histogram!(AUDIT_BATCH_SIZE, "Events per committed audit batch");
    describe_histogram!(
        AUDIT_COMMIT_DURATION,
        Unit::Seconds,
        "Time to commit one audit batch"
    );
    describe_counter!(AUDIT_EVENTS, "Audit events committed");
    describe_counter!(AUDIT_COMMIT_FAILURES, "Audit batches that failed to commit");
    describe_gauge!(
        AUDIT_CHECKPOINT_LAG,
        "Audit events past the last signed checkpoint"
    );
    describe_gauge!(WEBHOOK_BACKLOG, "Webhook deliveries pending");
    describe_counter!(WEBHOOK_FAILURES, "Failed webhook attempts by outcome");
    describe_gauge!(
        POLICY_INFO,
        "Purpose policies in force, by purpose and content hash"
    );
    describe_gauge!(CONSENTS, "Consents by state");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family this module names.
    const ALL: &[&str] = &[
        HTTP_REQUESTS,
        HTTP_REQUEST_DURATION,
        BANK_CALLS,
        BANK_CALL_DURATION,
        BANK_CALL_FAILURES,
        BANK_BREAKER_STATE,
        BANK_IN_FLIGHT,
        BANK_QUEUED,
        BANK_CERTIFICATE_EXPIRY,
        AUDIT_QUEUE_DEPTH,
        AUDIT_BATCH_SIZE,
        AUDIT_COMMIT_DURATION,
        AUDIT_EVENTS,
        AUDIT_COMMIT_FAILURES,
        AUDIT_CHECKPOINT_LAG,
        WEBHOOK_BACKLOG,
        WEBHOOK_FAILURES,
        POLICY_INFO,
        CONSENTS,
    ];

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in ALL {
            assert!(name.starts_with("bankgate_"), "{name}");
            let counter = name.ends_with("_total");
            let is_counter = [
                HTTP_REQUESTS,
                BANK_CALLS,
                BANK_CALL_FAILURES,
                AUDIT_EVENTS,
                AUDIT_COMMIT_FAILURES,
                WEBHOOK_FAILURES,
            ]
            .contains(name);
            assert_eq!(counter, is_counter, "{name}: _total is for counters only");
        }
    }

    #[test]
    fn the_dashboard_uses_only_metrics_bankgate_exports() {
        let dashboard = include_str!("../../ops/grafana/bankgate.json");
        let mut used = 0;
        for (start, _) in dashboard.match_indices("bankgate_") {
            let name: String = dashboard[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| ALL.contains(family))
                .unwrap_or(&name);
            assert!(ALL.contains(&family), "the dashboard uses {name}");
            used += 1;
        }
        assert!(used >= ALL.len(), "{used} uses");
    }
}
