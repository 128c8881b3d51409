//! The operator's metrics endpoint, `GET /metrics` (Prometheus text format), on its own
//! listener (`metrics_listen`): never on the public address, so platforms and banks cannot
//! read it and a firewall can keep it to the monitoring network. Each scrape first samples
//! what the gateway's state holds (the names are `telemetry::metrics`').

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::App;
use crate::telemetry::metrics::{
    AUDIT_CHECKPOINT_LAG, AUDIT_QUEUE_DEPTH, BANK_BREAKER_STATE, BANK_CERTIFICATE_EXPIRY,
    BANK_IN_FLIGHT, BANK_QUEUED, CONSENTS, POLICY_INFO, WEBHOOK_BACKLOG,
};

/// The media type of the Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` over `handle`; anything else is 404.
pub fn router(app: Arc<App>, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((app, handle))
}

async fn scrape(State((app, handle)): State<(Arc<App>, PrometheusHandle)>) -> impl IntoResponse {
    let text = sample(&app, &handle).await;
    ([(http::header::CONTENT_TYPE, EXPOSITION)], text)
}

/// Samples what is cheaper to read at a scrape than to track on every change (queue depth,
/// breakers, in-flight calls, checkpoint lag, policies, consents and webhook backlog from one
/// store query), then renders the exposition text.
pub async fn sample(app: &App, handle: &PrometheusHandle) -> String {
    metrics::gauge!(AUDIT_QUEUE_DEPTH).set(app.auditor.queue_depth() as f64);
    if let Some(lag) = app.auditor.checkpoint_lag() {
        metrics::gauge!(AUDIT_CHECKPOINT_LAG).set(lag as f64);
    }
    for adapter in app.banks.iter() {
        let bank = adapter.bank.manifest.id.clone();
        let outbound = &adapter.bank.outbound;
        let current = outbound.breaker().name();
        for state in ["closed", "open", "half_open"] {
            metrics::gauge!(BANK_BREAKER_STATE, "bank" => bank.clone(), "state" => state)
                .set(if state == current { 1.0 } else { 0.0 });
        }
        metrics::gauge!(BANK_IN_FLIGHT, "bank" => bank.clone()).set(outbound.in_flight() as f64);
        metrics::gauge!(BANK_QUEUED, "bank" => bank.clone()).set(outbound.queued() as f64);
        if let Some(eidas) = &adapter.bank.eidas {
            for certificate in eidas.certificates() {
                metrics::gauge!(BANK_CERTIFICATE_EXPIRY, "bank" => bank.clone(),
                    "certificate" => certificate.usage)
                .set(certificate.not_after.timestamp() as f64);
            }
        }
    }
    // A policy replaced by a reload drops to 0, so one series per purpose is 1.
    {
        static SHOWN: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
        let in_force: BTreeSet<(String, String)> = app
            .policies
            .current()
            .iter()
            .map(|policy| (policy.id.clone(), policy.hash.clone()))
            .collect();
        let mut shown = SHOWN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (purpose, hash) in shown.iter().chain(in_force.iter()) {
            let value = if in_force.contains(&(purpose.clone(), hash.clone())) {
                1.0
            } else {
                0.0
            };
            metrics::gauge!(POLICY_INFO, "purpose" => purpose.clone(), "hash" => hash.clone())
                .set(value);
        }
        shown.extend(in_force);
    }
    match app.store.operational_counts().await {
        Ok(counts) => {
            for (state, n) in counts.consents_by_state {
                metrics::gauge!(CONSENTS, "state" => state).set(n as f64);
            }
            metrics::gauge!(WEBHOOK_BACKLOG).set(counts.webhooks_pending as f64);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read consent and webhook counts"),
    }
    handle.render()
}
