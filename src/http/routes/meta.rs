//! Liveness, readiness, a landing page and the API's description (`GET /openapi.json`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::header;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::Error;

/// The OpenAPI 3.1 description of the API, kept beside the code. `tests/api/openapi.rs`
/// holds it to the router ([`crate::http::templates::ALL`]) and `.ci/run` holds it to the
/// running gateway (schemathesis).
pub const OPENAPI: &str = include_str!("../../../openapi/bankgate.json");

/// The extension that marks an operation documented ahead of its route.
pub const PLANNED: &str = "x-bankgate-planned";

/// The meta routes.
pub fn router(app: Arc<App>) -> Router {
    let openapi = served_openapi(&app.config.public_url)
        .map(Bytes::from)
        .map_err(|error| error.to_string());
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { openapi_response(openapi) }
            }),
        )
        .with_state(app)
}

/// The document `/openapi.json` serves: [`OPENAPI`] with `servers` naming `public_url`, less
/// the operations documented ahead of their route ([`PLANNED`]) that the router does not
/// serve yet — so the document and the router always agree.
pub fn served_openapi(public_url: &str) -> Result<String, serde_json::Error> {
    let mut document: Value = serde_json::from_str(OPENAPI)?;
    document["servers"] = json!([{ "url": public_url }]);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let served = crate::http::templates::ALL
                .iter()
                .find(|route| route.path == path)
                .map(|route| route.methods)
                .unwrap_or_default();
            if let Some(operations) = item.as_object_mut() {
                operations.retain(|method, _| {
                    served
                        .iter()
                        .any(|served| served.eq_ignore_ascii_case(method))
                });
            }
        }
        paths.retain(|_, item| item.as_object().is_some_and(|item| !item.is_empty()));
    }
    serde_json::to_string(&document)
}

fn openapi_response(openapi: Result<Bytes, String>) -> Response {
    match openapi {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // The file is parsed by a test; this cannot happen in a released build.
        Err(error) => Error::Internal(format!("openapi/bankgate.json: {error}")).into_response(),
    }
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
