//! Liveness, readiness and a landing page.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;
use crate::error::Error;

/// The meta routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "store": app.store.kind() }))
}

/// `GET /readyz`: 200 with every part's state when the instance can serve; otherwise 503
/// `not-ready` naming the parts that are not (a load balancer takes it out of rotation).
async fn ready(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, Error> {
    let readiness = crate::app::readiness::check(&app).await;
    if readiness.ready() {
        Ok(Json(
            json!({ "status": "ready", "checks": readiness.checks }),
        ))
    } else {
        Err(Error::NotReady(readiness.failing()))
    }
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    let banks: Vec<String> = app
        .banks
        .iter()
        .map(|adapter| {
            format!(
                "<li>{} ({})</li>",
                adapter.bank.manifest.name, adapter.bank.manifest.profile
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>bankgate</title></head><body>\
         <h1>bankgate</h1><p>Open-banking gateway. OAuth metadata: \
         <a href=\"/.well-known/oauth-authorization-server\">/.well-known/oauth-authorization-server</a></p>\
         <h2>Banks</h2><ul>{}</ul></body></html>",
        banks.join("")
    ))
}
