//! Operator API: client registration. Off unless an admin token is configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::post;
use axum::{Json, Router};

use crate::app::App;
use crate::error::Error;
use crate::oauth::registration::{self, Registered, Registration, RegistrationError};
use crate::store::StoreError;

/// The admin routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/admin/clients", post(register_client))
        .with_state(app)
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Error> {
    let Some(expected) = &app.config.admin_token else {
        return Err(Error::NotFound("the admin API is disabled".into()));
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if crate::crypto::constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Unauthenticated("operator token required".into()))
    }
}

async fn register_client(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Json(registration): Json<Registration>,
) -> Result<(StatusCode, Json<Registered>), Error> {
    authorize(&app, &headers)?;
    match registration::register(app.store.as_ref(), &app.policies, registration).await {
        Ok(registered) => Ok((StatusCode::CREATED, Json(registered))),
        Err(RegistrationError::Invalid(message)) => Err(Error::InvalidRequest(message)),
        Err(RegistrationError::Store(StoreError::Conflict(_))) => Err(Error::InvalidRequest(
            "client_id is already registered".into(),
        )),
        Err(RegistrationError::Store(error)) => Err(Error::Store(error)),
    }
}
