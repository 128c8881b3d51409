//! `/metrics` (issue 15), scraped from its own listener after a data request, a denial, a bank
//! failure and the audit commits they make: each series with its labels and counts.

use std::collections::BTreeMap;

use bankgate_sandbox::faults::Fault;
use serde_json::json;

use crate::registration::{connect, provide_credentials, register_sandbox_bank};
use crate::support::{Options, StoreKind, TestGateway};

on_both_stores!(metrics_count_requests_banks_audit_and_state);

/// The proprietary sandbox's balance path of the main account.
const POSITIONS: &str = "/api/v2/me/accounts/alice-giro/positions";

/// One sample of the exposition text.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (no escaped quotes in bankgate's label values).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("key=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("{line}")),
            }
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include `labels`.
#[track_caller]
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .collect();
    match found.as_slice() {
        [sample] => sample.value,
        [] => panic!("no sample {name} {labels:?}"),
        many => panic!("{} samples {name} {labels:?}: {many:?}", many.len()),
    }
}

async fn metrics_count_requests_banks_audit_and_state(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    provide_credentials(&gateway);
    // One attempt per call, and the first failure opens the circuit.
    let limits = json!({"timeout_ms": 5000, "retries": 0, "breaker_failures": 1,
                        "breaker_cooldown_ms": 600000});
    let sandbox = register_sandbox_bank(&gateway, "acme-bank", limits).await;
    let (token, giro) = connect(&gateway, "acme-bank", "u-metrics").await;
    let balances = format!("/v1/accounts/{giro}/balances");
    // A data request, a denial, a bank failure.
    let (status, body) = gateway.platform.get(&token, &balances).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = gateway
        .platform
        .get(&token, &format!("/v1/accounts/{giro}/transactions"))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    sandbox.faults.set(POSITIONS, Fault::Status(500));
    let (status, body) = gateway.platform.get(&token, &balances).await.unwrap();
    assert_eq!(status, 502, "{body}");
    let bank_hits = sandbox.faults.hits(POSITIONS);
    assert_eq!(bank_hits, 2, "two balance calls reached the bank");

    // The API listener has no /metrics: it is the operator's, on its own address.
    let http = bankgate::crypto::http_client_builder().build().unwrap();
    let public = http
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let response = http
        .get(gateway.metrics_url.as_deref().expect("metrics are on"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = response.text().await.unwrap();
    let samples = parse(&text);

    // Requests by route template and status, and their latency histogram.
    let route = "/v1/accounts/{account_id}/balances";
    for (route, status) in [
        (route, "200"),
        (route, "502"),
        ("/v1/accounts/{account_id}/transactions", "403"),
    ] {
        let labels = [("method", "GET"), ("route", route), ("status", status)];
        assert_eq!(
            value(&samples, "bankgate_http_requests_total", &labels),
            1.0,
            "{route} {status}"
        );
        assert_eq!(
            value(
                &samples,
                "bankgate_http_request_duration_seconds_count",
                &labels
            ),
            1.0
        );
        let mut le = labels.to_vec();
        le.push(("le", "+Inf"));
        assert_eq!(
            value(
                &samples,
                "bankgate_http_request_duration_seconds_bucket",
                &le
            ),
            1.0
        );
    }
    assert!(
        !text.contains(&giro),
        "no account id in a label: routes are templates"
    );

    // The bank: calls, latency, failures by kind, breaker, in flight.
    let bank = [("bank", "acme-bank")];
    let calls = value(&samples, "bankgate_bank_calls_total", &bank);
    assert!(calls >= 3.0, "accounts and two balance calls: {calls}");
    assert_eq!(
        value(&samples, "bankgate_bank_call_duration_seconds_count", &bank),
        calls
    );
    assert_eq!(
        value(
            &samples,
            "bankgate_bank_call_failures_total",
            &[("bank", "acme-bank"), ("kind", "status")]
        ),
        1.0
    );
    for (state, expected) in [("closed", 0.0), ("open", 1.0), ("half_open", 0.0)] {
        assert_eq!(
            value(
                &samples,
                "bankgate_bank_breaker_state",
                &[("bank", "acme-bank"), ("state", state)]
            ),
            expected,
            "{state}"
        );
    }
    assert_eq!(value(&samples, "bankgate_bank_calls_in_flight", &bank), 0.0);
    assert_eq!(value(&samples, "bankgate_bank_calls_queued", &bank), 0.0);
    // The bundled banks are there too, closed.
    assert_eq!(
        value(
            &samples,
            "bankgate_bank_breaker_state",
            &[("bank", "demo-bank"), ("state", "closed")]
        ),
        1.0
    );

    // The audit log: every event this instance committed, in batches.
    let (head, _) = gateway
        .app
        .store
        .audit_head()
        .await
        .unwrap()
        .expect("events");
    assert_eq!(
        value(&samples, "bankgate_audit_events_total", &[]),
        head as f64
    );
    let batches = value(&samples, "bankgate_audit_batch_size_count", &[]);
    assert!(batches >= 1.0 && batches <= head as f64, "{batches}");
    assert_eq!(
        value(&samples, "bankgate_audit_batch_size_sum", &[]),
        head as f64
    );
    assert_eq!(
        value(
            &samples,
            "bankgate_audit_commit_duration_seconds_count",
            &[]
        ),
        batches
    );
    assert_eq!(value(&samples, "bankgate_audit_queue_depth", &[]), 0.0);
    let lag = value(&samples, "bankgate_audit_checkpoint_lag_events", &[]);
    assert!((0.0..=head as f64).contains(&lag), "{lag}");

    // State sampled at the scrape: policies in force, consents, webhooks.
    let policy = gateway.app.policies.current();
    let balance_alerts = policy
        .iter()
        .find(|policy| policy.id == "balance-alerts")
        .unwrap();
    assert_eq!(
        value(
            &samples,
            "bankgate_policy_info",
            &[
                ("purpose", "balance-alerts"),
                ("hash", &balance_alerts.hash)
            ]
        ),
        1.0
    );
    assert_eq!(
        value(&samples, "bankgate_consents", &[("state", "authorised")]),
        1.0
    );
    assert_eq!(value(&samples, "bankgate_webhook_backlog", &[]), 0.0);
    // Descriptions and units for every family.
    assert!(text.contains("# TYPE bankgate_http_requests_total counter"));
    assert!(text.contains("# TYPE bankgate_http_request_duration_seconds histogram"));
    assert!(text.contains("# HELP bankgate_audit_commit_duration_seconds"));
}
