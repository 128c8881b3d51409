//! The client configuration endpoint (RFC 7592): `GET /register/{client_id}` reads a client's
//! registration, `PUT` replaces its keys (and optionally its name, redirect URIs and webhook
//! URL), authenticated by the registration access token issued at registration. A platform
//! rotates its keys here without the operator; what the operator decided stays as it is
//! (`Registrar::update`).
//!
//! A missing, wrong or other client's token is 401 `invalid_token` with a `Bearer` challenge,
//! the same for a client id that does not exist; invalid metadata is 400
//! `invalid_client_metadata` (RFC 7591 §3.2.2) saying what is wrong.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::error::Error;
use crate::oauth::registration::{ClientUpdate, RegistrationError, client_metadata};

/// `GET /register/{client_id}`.
pub(super) async fn read(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    match configured(&app, &headers, &client_id).await {
        Ok(client) => answer(client_metadata(&client, &app.config.public_url)),
        Err(refusal) => refusal,
    }
}

/// `PUT /register/{client_id}`.
pub(super) async fn update(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let client = match configured(&app, &headers, &client_id).await {
        Ok(client) => client,
        Err(refusal) => return refusal,
    };
    let update: ClientUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => return invalid_metadata(&format!("not a client registration: {error}")),
    };
    match app.registrar.update(client, update).await {
        Ok(client) => {
            tracing::info!(client = %client.client_id, jwks_uri = ?client.jwks_uri,
                "client updated its registration (RFC 7592)");
            answer(client_metadata(&client, &app.config.public_url))
        }
        Err(RegistrationError::Invalid(message)) => invalid_metadata(&message),
        Err(RegistrationError::Unauthorized | RegistrationError::Unknown) => invalid_token(),
        Err(RegistrationError::Store(error)) => Error::Store(error).into_response(),
    }
}

/// The client `headers`' registration access token is for, or the refusal.
async fn configured(
    app: &App,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<crate::store::Client, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "error": "invalid_token",
                "error_description": "the registration access token is required (Bearer)",
            })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(response);
    };
    match app.registrar.configured(client_id, token).await {
        Ok(client) => Ok(client),
        Err(RegistrationError::Store(error)) => Err(Error::Store(error).into_response()),
        Err(_) => Err(invalid_token()),
    }
}

fn answer(metadata: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(metadata)).into_response()
}

fn invalid_token() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({
            "error": "invalid_token",
            "error_description": "the registration access token is not valid for this client",
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

fn invalid_metadata(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": "invalid_client_metadata",
            "error_description": description,
        })),
    )
        .into_response()
}
