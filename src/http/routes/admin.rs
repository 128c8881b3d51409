//! Operator API: client registration (and new secrets), consent revocation and policy
//! reloads. Off unless an admin token is configured.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::app::{App, ReloadError};
use crate::error::Error;
use crate::http::routes::input::{JsonBody, PathParams};
use crate::oauth::registration::{Registered, Registration, RegistrationError};
use crate::policy::Change;
use crate::store::StoreError;

/// The admin routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/admin/clients", post(register_client))
        .route("/admin/clients/{id}/secret", post(reissue_secret))
        .route(
            "/admin/consents/{id}",
            axum::routing::delete(revoke_consent),
        )
        .route("/admin/policies/reload", post(reload_policies))
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
    registration: Result<JsonBody<Registration>, Error>,
) -> Result<(StatusCode, Json<Registered>), Error> {
    // The operator first: a stranger learns nothing from how the body is refused.
    authorize(&app, &headers)?;
    let JsonBody(registration) = registration?;
    let policies = app.policies.current();
    match app.registrar.register(&policies, registration).await {
        Ok(registered) => Ok((StatusCode::CREATED, Json(registered))),
        Err(error) => Err(refused(error)),
    }
}

/// A registration error as the operator sees it.
fn refused(error: RegistrationError) -> Error {
    match error {
        RegistrationError::Invalid(message) => Error::InvalidRequest(message),
        RegistrationError::Unknown => Error::NotFound("no such client".into()),
        RegistrationError::Unauthorized => Error::Unauthenticated(error.to_string()),
        RegistrationError::Store(StoreError::Conflict(_)) => {
            Error::InvalidRequest("client_id is already registered".into())
        }
        RegistrationError::Store(error) => Error::Store(error),
    }
}

/// `POST /admin/clients/{id}/secret`: a new secret for a `client_secret_basic` client, shown
/// once; the previous one stops working (also how a client whose secret an earlier version
/// stored as an Argon2 hash gets one that is accepted).
async fn reissue_secret(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    PathParams(client_id): PathParams<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    authorize(&app, &headers)?;
    let secret = app
        .registrar
        .reissue_secret(&client_id)
        .await
        .map_err(refused)?;
    Ok((
        StatusCode::OK,
        Json(json!({"client_id": client_id, "client_secret": secret})),
    ))
}

/// `POST /admin/policies/reload`: re-reads `policies/` and puts it in force if it is valid;
/// otherwise 400 with every problem (`path:line: message`) and the old set stays in force.
async fn reload_policies(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Error> {
    authorize(&app, &headers)?;
    let changes = match app.reload_policies("operator").await {
        Ok(changes) => changes,
        Err(ReloadError::Invalid(error)) => {
            return Err(Error::InvalidRequest(format!(
                "policy reload rejected; the policies in force are unchanged:\n{error}"
            )));
        }
        Err(ReloadError::Audit(error)) => return Err(Error::AuditUnavailable(error)),
    };
    let changed: Vec<serde_json::Value> = changes
        .iter()
        .map(|change| match change {
            Change::Added(policy) => {
                json!({"id": policy.id, "change": "added", "hash": policy.hash})
            }
            Change::Changed { policy, previous } => json!({
                "id": policy.id, "change": "changed", "hash": policy.hash, "previous": previous,
            }),
            Change::Removed { id, hash } => {
                json!({"id": id, "change": "removed", "previous": hash})
            }
        })
        .collect();
    let in_force: Vec<serde_json::Value> = app
        .policies
        .current()
        .iter()
        .map(|policy| json!({"id": policy.id, "hash": policy.hash}))
        .collect();
    Ok(Json(json!({ "changed": changed, "in_force": in_force })))
}

/// `DELETE /admin/consents/{id}`: an operator revokes a consent (audited with actor
/// `operator`; the platform's tokens and the bank grant are revoked, its webhook notified).
async fn revoke_consent(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Error> {
    authorize(&app, &headers)?;
    let consent = app
        .store
        .consent(&id)
        .await?
        .ok_or_else(|| Error::NotFound("no such consent".into()))?;
    crate::lifecycle::revoke(
        &app.lifecycle(),
        &consent,
        "operator",
        "revoked by an operator",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
