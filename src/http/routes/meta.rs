//! Health and a landing page.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::App;

/// The meta routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(health))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "store": app.store.kind() }))
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
