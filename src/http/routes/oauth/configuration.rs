//! The client configuration endpoint (RFC 7592): `GET /register/{client_id}` reads a client's
//! registration, `PUT` replaces its keys (and optionally its name, redirect URIs and webhook
//! URL), authenticated by the registration access token issued at registration. A platform
//! rotates its keys here without the operator; what the operator decided stays as it is
//! (`Registrar::update`).
//!
//! A missing, wrong or other client's token is 401 `invalid_token` with a `Bearer` challenge,
//! the same for a client id that does not exist; invalid metadata is 400
//! `invalid_client_metadata` (RFC 7591 §3.2.2) saying what is wrong.
//!
//! An update is audited before it is answered (`client_updated`, with the request id): an
//! accepted one with the key ids before and after (or the `jwks_uri`; never key material), a
//! refused one as `deny` saying why. A request without the client's token is not
//! authenticated and not audited.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::token::client_event;
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::error::Error;
use crate::http::request_id;
use crate::http::routes::input;
use crate::jose::KeySet;
use crate::oauth::Client;
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
    let mut event = client_event(Action::ClientUpdated, &client);
    event.request_id = request_id(&headers);
    let update: ClientUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            let message = format!("not a client registration: {error}");
            return refuse(&app, event, &message).await;
        }
    };
    let before = keys(&client);
    match app.registrar.update(client, update).await {
        Ok(client) => {
            tracing::info!(client = %client.client_id, jwks_uri = ?client.jwks_uri,
                "client updated its registration (RFC 7592)");
            event.reason = Some(format!("keys {before} -> {}", keys(&client)));
            match app.auditor.record(event).await {
                Ok(_) => answer(client_metadata(&client, &app.config.public_url)),
                Err(error) => Error::AuditUnavailable(error).into_response(),
            }
        }
        Err(RegistrationError::Invalid(message)) => refuse(&app, event, &message).await,
        Err(RegistrationError::Unauthorized | RegistrationError::Unknown) => invalid_token(),
        Err(RegistrationError::Store(error)) => Error::Store(error).into_response(),
    }
}

/// Audits a refused update (`client_updated`, `deny`, the client and the request id in
/// `event`) and answers it with `invalid_client_metadata`.
async fn refuse(app: &App, mut event: Event, message: &str) -> Response {
    event.decision = Decision::Deny;
    event.reason = Some(format!("invalid_client_metadata: {message}"));
    match app.auditor.record(event).await {
        Ok(_) => invalid_metadata(message),
        Err(error) => Error::AuditUnavailable(error).into_response(),
    }
}

/// Which keys a client authenticates with, for the audit log: the key ids of its registered
/// JWK Set (a key without `kid` by its RFC 7638 thumbprint), or its `jwks_uri` — never key
/// material.
fn keys(client: &Client) -> String {
    if let Some(uri) = &client.jwks_uri {
        return format!("at jwks_uri {}", input::quoted(uri));
    }
    let Some(jwks) = &client.jwks else {
        return "none".to_owned();
    };
    match KeySet::parse(jwks) {
        Ok(set) => {
            let ids: Vec<String> = set
                .keys
                .iter()
                .map(|key| match &key.kid {
                    Some(kid) => format!("kid {}", input::quoted(kid)),
                    None => format!("thumbprint {}", key.thumbprint),
                })
                .collect();
            format!("[{}]", ids.join(", "))
        }
        Err(_) => "[unreadable]".to_owned(),
    }
}

/// The client `headers`' registration access token is for, or the refusal.
async fn configured(app: &App, headers: &HeaderMap, client_id: &str) -> Result<Client, Response> {
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
