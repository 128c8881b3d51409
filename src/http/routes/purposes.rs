//! Transparency: the purposes bankgate offers and their limits, in the words of the policy files,
//! for platforms, for consent screens and for anyone who asks (public, no token). Prohibited
//! purposes are listed separately, with the reason.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::Error;
use crate::http::routes::input::PathParams;
use crate::model::WireName;
use crate::policy::{Policy, Prohibited};

/// The purpose routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/purposes", get(list))
        .route("/v1/purposes/{id}", get(one))
        .with_state(app)
}

/// A policy as platforms and users see it.
pub fn policy_view(policy: &Policy) -> Value {
    let fields: serde_json::Map<String, Value> = policy
        .fields
        .iter()
        .map(|(object, fields)| (object.as_str().to_owned(), json!(fields)))
        .collect();
    let mut view = json!({
        "id": policy.id,
        "status": "offered",
        "title": policy.title,
        "description": policy.description,
        "legal_basis": policy.legal_basis.as_str(),
        "legal_basis_article": policy.legal_basis.article(),
        "legal_reference": policy.legal_reference,
        "scopes": policy.scopes,
        "fields": fields,
        "limits": {
            "max_consent_days": policy.max_consent_days,
            "max_history_days": policy.max_history_days,
            "max_unattended_per_day": policy.max_unattended_per_day,
        },
        "regions": policy.regions,
        "retention_days": policy.retention_days,
        "onward_sharing": policy.onward_sharing,
        "hash": policy.hash,
    });
    // The fraud rules, as written (a compliance officer and a platform read the same).
    if !policy.signals.is_empty()
        && let Some(map) = view.as_object_mut()
    {
        map.insert("signals".to_owned(), json!(policy.signals));
    }
    // A payment purpose's limits; amounts as strings, exact.
    if let (Some(limits), Some(map)) = (&policy.payment, view.as_object_mut()) {
        map.insert(
            "payment".to_owned(),
            json!({
                "max_amount_per_payment": limits.max_amount_per_payment.to_string(),
                "max_amount_per_day": limits.max_amount_per_day.to_string(),
                "currencies": limits.currencies,
                "instant_allowed": limits.instant_allowed,
            }),
        );
    }
    view
}

fn prohibited_view(prohibited: &Prohibited) -> Value {
    json!({
        "id": prohibited.id,
        "status": "prohibited",
        "title": prohibited.title,
        "reason": prohibited.reason,
    })
}

async fn list(State(app): State<Arc<App>>) -> Json<Value> {
    let policies = app.policies.current();
    let purposes: Vec<Value> = policies.iter().map(|policy| policy_view(policy)).collect();
    let prohibited: Vec<Value> = policies
        .prohibited()
        .map(|entry| prohibited_view(entry))
        .collect();
    Json(json!({ "purposes": purposes, "prohibited": prohibited }))
}

async fn one(
    State(app): State<Arc<App>>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, Error> {
    let policies = app.policies.current();
    if let Some(policy) = policies.get(&id) {
        return Ok(Json(policy_view(&policy)));
    }
    if let Some(prohibited) = policies.prohibition(&id) {
        return Ok(Json(prohibited_view(prohibited)));
    }
    Err(Error::NotFound(format!("no purpose {id:?}")))
}
