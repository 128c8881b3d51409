//! Consent management for platforms: `GET /v1/consents?user_ref=…`, `GET /v1/consents/{id}`,
//! `DELETE /v1/consents/{id}` (revocation), and the webhook delivery log
//! `GET /v1/webhooks/deliveries`.
//!
//! Two kinds of token may call them (behind the authentication layer):
//! - a **management token**: `client_credentials` of a platform client, scope `consents:manage`,
//!   subject = the client id. It lists, reads and revokes any consent *of that platform*;
//! - a **consent-bound token** (from the authorization code or a refresh): it reads and revokes
//!   only its own consent (the user withdrawing through the platform's app).
//!
//! A consent of another platform, or another consent than a consent-bound token's own, is
//! answered exactly like a missing one (404): ids of other tenants are not confirmed.
//!
//! A bank revokes consents at its own bank with `DELETE /v1/banks/{bank_id}/consents/{id}`
//! and the management token of its `bank` client (client credentials, bound to that bank):
//! another bank's consent is a 403, and the refusal is audited.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::audit::{Action, Decision};
use crate::consent::{Consent, ConsentStatus};
use crate::error::Error;
use crate::http::authn::Principal;
use crate::lifecycle::consent_event;
use crate::oauth::CONSENTS_MANAGE;
use crate::store::Role;

/// The consent management routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/consents", get(list))
        .route("/v1/consents/{id}", get(show).delete(revoke))
        .route("/v1/webhooks/deliveries", get(deliveries))
        .route(
            "/v1/banks/{bank_id}/consents/{consent_id}",
            axum::routing::delete(revoke_for_bank),
        )
        .with_state(app)
}

/// What a token may do here.
enum Caller<'a> {
    /// A platform's management token.
    Platform { client_id: &'a str },
    /// A token bound to one consent.
    Consent {
        client_id: &'a str,
        consent_id: &'a str,
    },
}

fn caller(principal: &Principal) -> Caller<'_> {
    if principal.has_scope(CONSENTS_MANAGE) && principal.subject() == principal.client_id() {
        Caller::Platform {
            client_id: principal.client_id(),
        }
    } else {
        Caller::Consent {
            client_id: principal.client_id(),
            consent_id: principal.subject(),
        }
    }
}

fn not_found() -> Error {
    Error::NotFound("no such consent".into())
}

/// The consent `id` if the caller may see it; 404 otherwise.
async fn visible(app: &App, principal: &Principal, id: &str) -> Result<Consent, Error> {
    let consent = app.store.consent(id).await?.ok_or_else(not_found)?;
    let allowed = match caller(principal) {
        Caller::Platform { client_id } => consent.client_id == client_id,
        Caller::Consent {
            client_id,
            consent_id,
        } => consent.client_id == client_id && consent.id == consent_id,
    };
    if allowed {
        Ok(consent)
    } else {
        Err(not_found())
    }
}

/// A consent as platforms see it.
fn view(consent: &Consent) -> serde_json::Value {
    json!({
        "id": consent.id,
        "status": consent.status.as_str(),
        "bank": consent.bank_id,
        "purpose": consent.purpose,
        "scopes": consent.scopes,
        "history_days": consent.history_days,
        "user_ref": consent.user_ref,
        "created_at": consent.created_at,
        "expires_at": consent.expires_at,
        "authorization_details": [consent.granted_details()],
    })
}

/// The `{id}` of the path. A struct, not `Path<String>`: behind `route_service` the outer
/// router's `{*rest}` is a path parameter too.
#[derive(Deserialize)]
struct IdPath {
    id: String,
}

#[derive(Deserialize)]
struct ListQuery {
    user_ref: Option<String>,
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    let Caller::Platform { client_id } = caller(&principal) else {
        return Err(Error::Forbidden(
            "listing consents needs a management token (client_credentials, consents:manage)"
                .into(),
        ));
    };
    let user_ref = query
        .user_ref
        .filter(|user_ref| !user_ref.is_empty())
        .ok_or_else(|| Error::InvalidRequest("user_ref is required".into()))?;
    let consents = app.store.consents_of(client_id, &user_ref).await?;
    Ok(Json(json!({
        "consents": consents.iter().map(view).collect::<Vec<_>>(),
    })))
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<serde_json::Value>, Error> {
    Ok(Json(view(&visible(&app, &principal, &id).await?)))
}

/// Revokes the consent: 204, also when it was already revoked or expired (idempotent);
/// 409-like 400 while it still awaits authorisation (there is nothing to revoke yet).
async fn revoke(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Response, Error> {
    let consent = visible(&app, &principal, &id).await?;
    match consent.status {
        ConsentStatus::Authorised => {
            crate::lifecycle::revoke(
                &app,
                &consent,
                principal.client_id(),
                "revoked by the platform",
            )
            .await?;
        }
        ConsentStatus::Revoked | ConsentStatus::Expired | ConsentStatus::Rejected => {}
        ConsentStatus::AwaitingAuthorisation => {
            return Err(Error::InvalidRequest(
                "the consent is still awaiting authorisation".into(),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A bank revokes a consent at its own bank (the user withdrew it there, or the bank ended
/// it): 204, also when it was already revoked or expired. The caller must be a `bank` client
/// bound to `bank_id` with its management token; a consent at another bank is a 403 (audited
/// as a refused revocation). The consent is revoked as by a platform (tokens, webhook, audit
/// with actor `bank:<id>`), except that the bank is not called back.
async fn revoke_for_bank(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    // A map: behind `route_service` the outer router's parameters are there too.
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, Error> {
    let (Some(bank_id), Some(consent_id)) = (params.get("bank_id"), params.get("consent_id"))
    else {
        return Err(not_found());
    };
    let management_token = principal.has_scope(crate::oauth::ADAPTER_MANAGE)
        && principal.subject() == principal.client_id();
    let client = app.store.client(principal.client_id()).await?;
    let bound = client.as_ref().is_some_and(|client| {
        client.role == Role::Bank && client.bank_id.as_deref() == Some(bank_id.as_str())
    });
    if !management_token || !bound {
        return Err(Error::Forbidden(
            "a bank client's management token revokes consents at its own bank only".into(),
        ));
    }
    let consent = app.store.consent(consent_id).await?.ok_or_else(not_found)?;
    let actor = format!("bank:{bank_id}");
    if consent.bank_id != *bank_id {
        let mut event = consent_event(Action::ConsentRevoked, &actor, &consent);
        event.decision = Decision::Deny;
        event.reason = Some(format!(
            "client {} of {bank_id} may not revoke a consent at another bank",
            principal.client_id()
        ));
        app.auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)?;
        return Err(Error::Forbidden("this consent is not at your bank".into()));
    }
    match consent.status {
        ConsentStatus::Authorised => {
            crate::lifecycle::revoke_by_bank(&app, &consent, &actor, "revoked by the bank").await?;
        }
        ConsentStatus::Revoked | ConsentStatus::Expired | ConsentStatus::Rejected => {}
        ConsentStatus::AwaitingAuthorisation => {
            return Err(Error::InvalidRequest(
                "the consent is still awaiting authorisation".into(),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn deliveries(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, Error> {
    let Caller::Platform { client_id } = caller(&principal) else {
        return Err(Error::Forbidden(
            "the delivery log needs a management token (client_credentials, consents:manage)"
                .into(),
        ));
    };
    let deliveries = app.store.webhook_deliveries(client_id).await?;
    let log: Vec<serde_json::Value> = deliveries
        .iter()
        .map(|delivery| {
            json!({
                "id": delivery.id,
                "event": delivery.event,
                "consent_id": delivery.consent_id,
                "status": delivery.status,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
                "created_at": delivery.created_at,
                "delivered_at": delivery.delivered_at,
                "next_attempt_at": delivery.next_attempt_at,
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": log })))
}
