//! The payee directory for platforms, with a payee consent's own token (purpose
//! `p2p-payments-payee-check`, authorised and not expired):
//!
//! - `PUT /v1/payees/{handle}` with `{"account_id": …}` registers the handle on the
//!   platform for the consent, pointing at one of the consent's accounts by the id the
//!   platform was given when it listed them (`201`; `200` when the consent already held it and
//!   it is re-pointed). A handle another alive consent holds is `409 payee-handle-taken`.
//! - `GET /v1/payees` lists the consent's handles.
//! - `DELETE /v1/payees/{handle}` deletes one of them (`204`; `404` if the consent does not
//!   hold it).
//!
//! Each registration, refusal and deletion is audited (`payee_registered`, `payee_removed`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;

use crate::access::Denial;
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{AccessRefusal, Consent, ConsentStatus, Unusable};
use crate::error::Error;
use crate::http::authn::Principal;
use crate::http::request_id;
use crate::http::routes::input::{JsonBody, PathParams};
use crate::model::Scope;
use crate::oauth::Role;
use crate::payments::payees::{Handle, PAYEE_PURPOSE, PayeeEntry, Registered};

/// The audit category of the directory.
const CATEGORY: &str = "payee_directory";

/// The directory's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/payees", get(list))
        .route("/v1/payees/{handle}", put(register).delete(remove))
        .with_state(app)
}

#[derive(Deserialize)]
struct HandlePath {
    handle: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    /// The platform-private id of the consent's account that receives money.
    account_id: String,
}

fn view(entry: &PayeeEntry) -> serde_json::Value {
    serde_json::json!({
        "handle": entry.handle,
        "account_id": entry.account_id,
        "created_at": entry.created_at,
    })
}

fn handle_of(raw: &str) -> Result<Handle, Error> {
    Handle::parse(raw).map_err(|invalid| Error::InvalidRequest(invalid.to_string()))
}

/// The payee consent the token is for: the platform's own, under the payee purpose, authorised
/// and not expired.
async fn payee_consent(app: &App, principal: &Principal) -> Result<Consent, Error> {
    let refused = || {
        Error::Forbidden(format!(
            "the payee directory needs the token of a {PAYEE_PURPOSE} consent"
        ))
    };
    if principal.role != Role::Platform || principal.subject() == principal.client_id() {
        return Err(refused());
    }
    let consent = app
        .store
        .consent(principal.subject())
        .await?
        .filter(|consent| consent.client_id == principal.client_id())
        .ok_or_else(refused)?;
    if consent.purpose != PAYEE_PURPOSE {
        return Err(refused());
    }
    consent
        .check_access(Scope::Accounts, Utc::now())
        .map_err(|refusal| {
            Error::Denied(match refusal {
                AccessRefusal::NotAuthorised(ConsentStatus::Revoked) => {
                    Denial::Consent(Unusable::Revoked)
                }
                AccessRefusal::NotAuthorised(status) => {
                    Denial::Consent(Unusable::NotAuthorised(status))
                }
                AccessRefusal::Expired => Denial::Consent(Unusable::Expired),
                AccessRefusal::ScopeNotGranted(scope) => Denial::ScopeNotGranted(scope),
            })
        })?;
    Ok(consent)
}

fn event(action: Action, consent: &Consent, headers: &HeaderMap, handle: &Handle) -> Event {
    let mut event = Event::new(action, consent.client_id.clone(), Decision::Allow);
    event.platform = Some(consent.client_id.clone());
    event.bank = Some(consent.bank_id.clone());
    event.consent = Some(consent.id.clone());
    event.user_ref = Some(consent.user_ref.clone());
    event.purpose = Some(consent.purpose.clone());
    event.categories = vec![CATEGORY.to_owned()];
    event.fields = vec![format!("handle:{handle}")];
    event.request_id = request_id(headers);
    event
}

/// `PUT /v1/payees/{handle}`.
async fn register(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    PathParams(path): PathParams<HandlePath>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response, Error> {
    let consent = payee_consent(&app, &principal).await?;
    let handle = handle_of(&path.handle)?;
    // The account must be one the platform was shown under this consent.
    if app
        .store
        .account_ref(&consent.id, &body.account_id)
        .await?
        .is_none()
    {
        return Err(Error::Denied(Denial::AccountNotInConsent));
    }
    let now = Utc::now();
    let entry = PayeeEntry {
        client_id: consent.client_id.clone(),
        handle: handle.clone(),
        consent_id: consent.id.clone(),
        account_id: body.account_id,
        created_at: now,
    };
    let registered = app.store.put_payee(&entry, now).await?;
    let mut event = event(Action::PayeeRegistered, &consent, &headers, &handle);
    if registered == Registered::Taken {
        event.decision = Decision::Deny;
        event.reason = Some("payee-handle-taken".into());
    }
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    let status = match registered {
        Registered::Taken => return Err(Error::PayeeHandleTaken(handle.to_string())),
        Registered::Created => StatusCode::CREATED,
        Registered::Updated => StatusCode::OK,
    };
    let stored = app
        .store
        .payee(&consent.client_id, &handle, now)
        .await?
        .unwrap_or(entry);
    Ok((status, Json(view(&stored))).into_response())
}

/// `GET /v1/payees`.
async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, Error> {
    let consent = payee_consent(&app, &principal).await?;
    let entries = app.store.payees_of(&consent.id).await?;
    let payees: Vec<_> = entries.iter().map(view).collect();
    Ok(Json(serde_json::json!({ "payees": payees })))
}

/// `DELETE /v1/payees/{handle}`.
async fn remove(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    PathParams(path): PathParams<HandlePath>,
) -> Result<StatusCode, Error> {
    let consent = payee_consent(&app, &principal).await?;
    let handle = handle_of(&path.handle)?;
    let deleted = app
        .store
        .delete_payee(&consent.client_id, &handle, &consent.id)
        .await?;
    if !deleted {
        return Err(Error::NotFound(format!(
            "this consent holds no handle {handle}"
        )));
    }
    app.auditor
        .record(event(Action::PayeeRemoved, &consent, &headers, &handle))
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(StatusCode::NO_CONTENT)
}
