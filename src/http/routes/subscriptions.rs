//! Notification subscriptions for platforms: `POST /v1/subscriptions`,
//! `GET /v1/subscriptions`, `DELETE /v1/subscriptions/{id}` (the domain is `notify`).
//!
//! Like consent management, two kinds of token may call them (behind the authentication
//! layer): a platform's **management token** subscribes one of its consents (`consent_id`) or
//! every consent of one of its purposes (`purpose`, present and future), lists and deletes
//! all its subscriptions; a **consent-bound token** subscribes, lists and deletes only its own
//! consent's. Only events whose data the purpose allows are accepted (`balance.changed`
//! needs balances, `transactions.created` transactions), and for one consent only what the
//! consent covers. A consent of another platform is answered as missing (404). The platform
//! must have registered a webhook: that is where events go.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::consent::ConsentStatus;
use crate::error::Error;
use crate::http::authn::{Caller, Principal};
use crate::http::routes::input::{self, JsonBody, PathParams};
use crate::model::WireName;
use crate::notify::{Mode, Subscription, SubscriptionRefusal, check_events};

/// The subscription routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/subscriptions", get(list).post(create))
        .route("/v1/subscriptions/{id}", delete(remove))
        .with_state(app)
}

fn refusal(refusal: SubscriptionRefusal) -> Error {
    match refusal {
        SubscriptionRefusal::NoEvents | SubscriptionRefusal::UnknownEvent(_) => {
            Error::InvalidRequest(refusal.to_string())
        }
        SubscriptionRefusal::EventNotAllowed { .. } | SubscriptionRefusal::ScopeNotGranted(_) => {
            Error::Forbidden(refusal.to_string())
        }
    }
}

/// `POST /v1/subscriptions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    consent_id: Option<String>,
    purpose: Option<String>,
    events: Vec<String>,
    #[serde(default)]
    mode: Option<String>,
}

async fn create(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<NewSubscription>,
) -> Result<Response, Error> {
    let caller = principal.caller();
    let client_id = caller.client_id().to_owned();
    let mode = match body.mode.as_deref() {
        None => Mode::Thin,
        Some(name) => Mode::parse(name).ok_or_else(|| {
            Error::InvalidRequest(format!("mode is thin or data, not {}", input::quoted(name)))
        })?,
    };
    for name in &body.events {
        input::checked("events", name)?;
    }
    let client = app
        .store
        .client(&client_id)
        .await?
        .ok_or_else(|| Error::Forbidden("unknown client".into()))?;
    if client.webhook_url.is_none() {
        return Err(Error::InvalidRequest(
            "register a webhook_url first: notifications are delivered there".into(),
        ));
    }
    let consent_id = match (&caller, body.consent_id, body.purpose) {
        (Caller::Consent { consent_id, .. }, named, None) => {
            if named.as_deref().is_some_and(|named| named != *consent_id) {
                return Err(Error::NotFound("no such consent".into()));
            }
            Some((*consent_id).to_owned())
        }
        (Caller::Consent { .. }, _, Some(_)) => {
            return Err(Error::Forbidden(
                "a purpose-wide subscription needs a management token".into(),
            ));
        }
        (Caller::Platform { .. }, Some(consent_id), None) => Some(consent_id),
        (Caller::Platform { .. }, None, Some(purpose)) => {
            input::checked("purpose", &purpose)?;
            let policy = app
                .policies
                .get(&purpose)
                .filter(|_| client.allowed_purposes.contains(&purpose))
                .ok_or_else(|| {
                    Error::Forbidden(format!(
                        "the platform is not approved for the purpose {}",
                        input::quoted(&purpose)
                    ))
                })?;
            let events = check_events(&body.events, &policy, None).map_err(refusal)?;
            return stored(&app, &client_id, None, purpose, events, mode).await;
        }
        (Caller::Platform { .. }, _, _) => {
            return Err(Error::InvalidRequest(
                "name either consent_id or purpose".into(),
            ));
        }
    };
    let consent_id = consent_id.unwrap_or_default();
    input::checked("consent_id", &consent_id)?;
    let consent = app
        .store
        .consent(&consent_id)
        .await?
        .filter(|consent| consent.client_id == client_id)
        .ok_or_else(|| Error::NotFound("no such consent".into()))?;
    if consent.status != ConsentStatus::Authorised {
        return Err(Error::InvalidRequest(format!(
            "the consent is {}, not authorised",
            consent.status.as_str()
        )));
    }
    let policy = app
        .policies
        .get(&consent.purpose)
        .ok_or_else(|| Error::Forbidden("the consent's purpose is withdrawn".into()))?;
    let events = check_events(&body.events, &policy, Some(&consent.scopes)).map_err(refusal)?;
    stored(
        &app,
        &client_id,
        Some(consent.id),
        consent.purpose,
        events,
        mode,
    )
    .await
}

async fn stored(
    app: &App,
    client_id: &str,
    consent_id: Option<String>,
    purpose: String,
    events: Vec<crate::notify::EventType>,
    mode: Mode,
) -> Result<Response, Error> {
    let subscription = Subscription {
        id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
        client_id: client_id.to_owned(),
        consent_id,
        purpose,
        events,
        mode,
        created_at: Utc::now(),
    };
    app.store.insert_subscription(&subscription).await?;
    Ok((StatusCode::CREATED, Json(subscription.view())).into_response())
}

/// The caller's subscriptions (a consent-bound token: its consent's).
async fn visible(app: &App, caller: &Caller<'_>) -> Result<Vec<Subscription>, Error> {
    let all = app.store.subscriptions_of(caller.client_id()).await?;
    Ok(match caller {
        Caller::Platform { .. } => all,
        Caller::Consent { consent_id, .. } => all
            .into_iter()
            .filter(|subscription| subscription.consent_id.as_deref() == Some(*consent_id))
            .collect(),
    })
}

async fn list(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, Error> {
    let subscriptions = visible(&app, &principal.caller()).await?;
    Ok(Json(json!({
        "subscriptions": subscriptions.iter().map(Subscription::view).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

async fn remove(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    PathParams(IdPath { id }): PathParams<IdPath>,
) -> Result<Response, Error> {
    input::checked("the subscription id", &id)?;
    let caller = principal.caller();
    let found = visible(&app, &caller)
        .await?
        .into_iter()
        .any(|subscription| subscription.id == id);
    if !found
        || !app
            .store
            .delete_subscription(caller.client_id(), &id)
            .await?
    {
        return Err(Error::NotFound("no such subscription".into()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
