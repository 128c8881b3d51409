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
//! answered exactly like a missing one (404): ids of other tenants are not confirmed. Every
//! refusal is audited (`consent_queried` or `consent_revoked`, `deny`, with the request id).
//!
//! A bank revokes consents at its own bank with `DELETE /v1/banks/{bank_id}/consents/{id}`
//! and the management token of its `bank` client (client credentials, bound to that bank):
//! another bank's consent is a 403, and every refusal is audited.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{Consent, ConsentStatus};
use crate::error::Error;
use crate::http::authn::{Caller, Principal};
use crate::http::request_id;
use crate::http::routes::input::{self, PathParams, QueryParams};
use crate::lifecycle::consent_event;
use crate::model::WireName;
use crate::oauth::Role;

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

fn not_found() -> Error {
    Error::NotFound("no such consent".into())
}

/// A consent looked up for a caller.
enum Lookup {
    /// The caller may see it.
    Visible(Consent),
    /// Another platform's, or another consent than a consent-bound token's own: answered as
    /// missing.
    Hidden(Consent),
    Missing,
}

/// Consent `id` as the caller may see it.
async fn lookup(app: &App, principal: &Principal, id: &str) -> Result<Lookup, Error> {
    input::checked("the consent id", id)?;
    let Some(consent) = app.store.consent(id).await? else {
        return Ok(Lookup::Missing);
    };
    let allowed = match principal.caller() {
        Caller::Platform { client_id } => consent.client_id == client_id,
        Caller::Consent {
            client_id,
            consent_id,
        } => consent.client_id == client_id && consent.id == consent_id,
    };
    Ok(if allowed {
        Lookup::Visible(consent)
    } else {
        Lookup::Hidden(consent)
    })
}

/// The answer to revoking a consent still awaiting authorisation, audited as a refused
/// revocation first.
async fn still_awaiting(
    app: &App,
    actor: &str,
    consent: &Consent,
    request_id: Option<String>,
) -> Error {
    let reason = "the consent is still awaiting authorisation";
    let refused = refuse(
        app,
        Action::ConsentRevoked,
        actor,
        Some(consent),
        reason.into(),
        request_id,
    );
    match refused.await {
        Ok(()) => Error::InvalidRequest(reason.into()),
        Err(error) => error,
    }
}

/// Audits the refusal of an authenticated request: `action`, `deny`, by `actor`, with the
/// request's id and `reason`; with the consent's columns when it is one the gateway holds
/// (never an id the caller made up: the reason quotes that).
async fn refuse(
    app: &App,
    action: Action,
    actor: &str,
    consent: Option<&Consent>,
    reason: String,
    request_id: Option<String>,
) -> Result<(), Error> {
    let mut event = match consent {
        Some(consent) => consent_event(action, actor, consent),
        None => Event::new(action, actor, Decision::Deny),
    };
    event.decision = Decision::Deny;
    event.reason = Some(reason);
    event.request_id = request_id;
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(())
}

/// The consent `id` if the caller may see it; otherwise 404, the refusal audited as `action`.
async fn visible(
    app: &App,
    principal: &Principal,
    id: &str,
    action: Action,
    request_id: Option<String>,
) -> Result<Consent, Error> {
    let (consent, reason) = match lookup(app, principal, id).await? {
        Lookup::Visible(consent) => return Ok(consent),
        Lookup::Hidden(consent) => {
            let reason = match principal.caller() {
                Caller::Platform { .. } => "the consent belongs to another platform",
                Caller::Consent { .. } => "a consent-bound token reaches only its own consent",
            };
            (Some(consent), reason.to_owned())
        }
        Lookup::Missing => (None, format!("no consent {}", input::quoted(id))),
    };
    refuse(
        app,
        action,
        principal.client_id(),
        consent.as_ref(),
        reason,
        request_id,
    )
    .await?;
    Err(not_found())
}

/// A refusal of a caller without a management token, audited as `consent_queried`.
async fn needs_management_token(
    app: &App,
    principal: &Principal,
    what: &str,
    request_id: Option<String>,
) -> Error {
    let reason = format!("{what} needs a management token (client_credentials, consents:manage)");
    match refuse(
        app,
        Action::ConsentQueried,
        principal.client_id(),
        None,
        reason.clone(),
        request_id,
    )
    .await
    {
        Ok(()) => Error::Forbidden(reason),
        Err(error) => error,
    }
}

/// A consent as platforms see it.
fn view(app: &App, consent: &Consent) -> serde_json::Value {
    let mut view = json!({
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
    });
    // Where the platform may send its user to see and end this consent themselves: their
    // connected-apps page at the bank, opened on it (banks people can sign in with only).
    if crate::broker::sign_in::offered(&app.banks, &consent.bank_id) {
        view["manage_url"] = json!(format!(
            "{}/me/{}?consent={}",
            app.config.public_url, consent.bank_id, consent.id
        ));
    }
    view
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
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, Error> {
    let Caller::Platform { client_id } = principal.caller() else {
        return Err(needs_management_token(
            &app,
            &principal,
            "listing consents",
            request_id(&headers),
        )
        .await);
    };
    let user_ref = query
        .user_ref
        .filter(|user_ref| !user_ref.is_empty())
        .ok_or_else(|| Error::InvalidRequest("user_ref is required".into()))?;
    input::checked("user_ref", &user_ref)?;
    let consents = app.store.consents_of(client_id, &user_ref).await?;
    Ok(Json(json!({
        "consents": consents.iter().map(|consent| view(&app, consent)).collect::<Vec<_>>(),
    })))
}

async fn show(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    PathParams(IdPath { id }): PathParams<IdPath>,
) -> Result<Json<serde_json::Value>, Error> {
    let consent = visible(
        &app,
        &principal,
        &id,
        Action::ConsentQueried,
        request_id(&headers),
    )
    .await?;
    Ok(Json(view(&app, &consent)))
}

/// Revokes the consent: 204, also when it was already revoked or expired (idempotent);
/// 400 while it still awaits authorisation (there is nothing to revoke yet). Refusals are
/// audited as refused revocations.
async fn revoke(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    PathParams(IdPath { id }): PathParams<IdPath>,
) -> Result<Response, Error> {
    let request_id = request_id(&headers);
    let consent = visible(
        &app,
        &principal,
        &id,
        Action::ConsentRevoked,
        request_id.clone(),
    )
    .await?;
    match consent.status {
        ConsentStatus::Authorised => {
            crate::lifecycle::revoke(
                &app.lifecycle(),
                &consent,
                principal.client_id(),
                "revoked by the platform",
            )
            .await?;
        }
        ConsentStatus::Revoked | ConsentStatus::Expired | ConsentStatus::Rejected => {}
        ConsentStatus::AwaitingAuthorisation => {
            return Err(still_awaiting(&app, principal.client_id(), &consent, request_id).await);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A bank revokes a consent at its own bank (the user withdrew it there, or the bank ended
/// it): 204, also when it was already revoked or expired. The caller must be a `bank` client
/// bound to `bank_id` with its management token; a consent at another bank is a 403. Every
/// refusal — another bank's path, a platform's or compliance token, an unknown consent,
/// another bank's consent — is audited as a refused revocation with its request id. The consent
/// is revoked as by a platform (tokens, webhook, audit with actor `bank:<id>`), except that the
/// bank is not called back.
async fn revoke_for_bank(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    // A map: behind `route_service` the outer router's parameters are there too.
    PathParams(params): PathParams<HashMap<String, String>>,
) -> Result<Response, Error> {
    let (Some(bank_id), Some(consent_id)) = (params.get("bank_id"), params.get("consent_id"))
    else {
        return Err(not_found());
    };
    input::checked("the bank id", bank_id)?;
    input::checked("the consent id", consent_id)?;
    let request_id = request_id(&headers);
    let client = app.store.client(principal.client_id()).await?;
    // The caller as the log names it: its bank, for a bank client.
    let own_bank = client
        .as_ref()
        .filter(|client| client.role == Role::Bank)
        .and_then(|client| client.bank_id.clone());
    let actor = match &own_bank {
        Some(own) => format!("bank:{own}"),
        None => principal.client_id().to_owned(),
    };
    let management_token = principal.has_scope(crate::oauth::ADAPTER_MANAGE)
        && principal.subject() == principal.client_id();
    let consent = app.store.consent(consent_id).await?;
    let refusal = if !management_token || own_bank.is_none() {
        Some((
            Error::Forbidden(
                "a bank client's management token revokes consents at its own bank only".into(),
            ),
            format!(
                "client {} may not revoke consents for a bank: only a bank client's management \
                 token may",
                principal.client_id()
            ),
        ))
    } else if own_bank.as_deref() != Some(bank_id.as_str()) {
        Some((
            Error::Forbidden("a bank client revokes consents at its own bank only".into()),
            format!(
                "client {} of {actor} may not act for the bank {}",
                principal.client_id(),
                input::quoted(bank_id)
            ),
        ))
    } else {
        match &consent {
            None => Some((
                not_found(),
                format!("no consent {}", input::quoted(consent_id)),
            )),
            Some(consent) if consent.bank_id != *bank_id => Some((
                Error::Forbidden("this consent is not at your bank".into()),
                format!(
                    "client {} of {bank_id} may not revoke a consent at another bank",
                    principal.client_id()
                ),
            )),
            Some(_) => None,
        }
    };
    if let Some((error, reason)) = refusal {
        refuse(
            &app,
            Action::ConsentRevoked,
            &actor,
            consent.as_ref(),
            reason,
            request_id,
        )
        .await?;
        return Err(error);
    }
    let Some(consent) = consent else {
        return Err(not_found());
    };
    match consent.status {
        ConsentStatus::Authorised => {
            crate::lifecycle::revoke_by_bank(
                &app.lifecycle(),
                &consent,
                &actor,
                "revoked by the bank",
            )
            .await?;
        }
        ConsentStatus::Revoked | ConsentStatus::Expired | ConsentStatus::Rejected => {}
        ConsentStatus::AwaitingAuthorisation => {
            return Err(still_awaiting(&app, &actor, &consent, request_id).await);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn deliveries(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Error> {
    let Caller::Platform { client_id } = principal.caller() else {
        return Err(needs_management_token(
            &app,
            &principal,
            "the webhook delivery log",
            request_id(&headers),
        )
        .await);
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
