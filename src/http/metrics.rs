//! The operator's metrics endpoint, `GET /metrics` (Prometheus text format), on its own
//! listener (`metrics_listen`): never on the public address, so platforms and banks cannot
//! read it and a firewall can keep it to the monitoring network.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::App;

/// The media type of the Prometheus text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` over `handle`; anything else is 404.
pub fn router(app: Arc<App>, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((app, handle))
}

async fn scrape(State((app, handle)): State<(Arc<App>, PrometheusHandle)>) -> impl IntoResponse {
    let text = crate::telemetry::metrics::scrape(&app, &handle).await;
    ([(http::header::CONTENT_TYPE, EXPOSITION)], text)
}
