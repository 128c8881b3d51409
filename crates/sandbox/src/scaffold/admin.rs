//! The sandbox's own routes, beside the standard's, for tests and people trying payments:
//! what the bank counted of its payments, whether it asks for a confirmation, the sandbox
//! clock, and closing an account. A real bank has none of them; they sit under `/sandbox/`.
//!
//! - `GET /sandbox/payments` → `{"created", "replayed", "confirmations", "executed",
//!   "rejected", "confirmation_required"}`
//! - `POST /sandbox/payments/confirmation?required=true|false`
//! - `GET /sandbox/clock` → `{"now"}`; `POST /sandbox/clock/advance?minutes=N` → `{"now"}`
//! - `POST /sandbox/accounts/{iban}/close`, `POST /sandbox/accounts/{iban}/reopen`
//! - `GET /sandbox/accounts/{iban}/movements` → `{"movements": [{id, amount, currency,
//!   counterparty, description, at, settles_at, status}]}`, oldest first
//! - `POST /sandbox/accounts/{iban}/stream?seed=N` → 204: the account's activity moves from
//!   now on (a seeded stream of card payments, salary, a foreign debit; see
//!   `Ledger::stream`), as the sandbox clock advances
//! - `GET /sandbox/consents` → `{"consents": [{"id", "usable"}]}`, by id
//! - `POST /sandbox/consents/{id}/revoke` (the customer revokes the consent in the bank's app),
//!   `POST /sandbox/consents/{id}/expire` (the bank expires it): 204, or 404 for an unknown id

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, TimeDelta};
use serde_json::{Value, json};

use super::{ApiError, Bank, Consent, Ending, Query, Standard};

pub fn routes<S: Standard>() -> Router<Arc<Bank<S>>> {
    Router::new()
        .route("/sandbox/payments", get(counters::<S>))
        .route("/sandbox/payments/confirmation", post(confirmation::<S>))
        .route("/sandbox/clock", get(clock::<S>))
        .route("/sandbox/clock/advance", post(advance::<S>))
        .route("/sandbox/accounts/{iban}/close", post(close::<S>))
        .route("/sandbox/accounts/{iban}/reopen", post(reopen::<S>))
        .route("/sandbox/accounts/{iban}/movements", get(movements::<S>))
        .route("/sandbox/accounts/{iban}/stream", post(stream::<S>))
        .route("/sandbox/consents", get(consents::<S>))
        .route("/sandbox/consents/{id}/revoke", post(revoke::<S>))
        .route("/sandbox/consents/{id}/expire", post(expire::<S>))
}

async fn stream<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(iban): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError<S>> {
    let seed = Query::parse(query)?.number("seed")?;
    bank.ledger
        .stream(&iban, u64::try_from(seed).unwrap_or_default());
    Ok(StatusCode::NO_CONTENT)
}

async fn consents<S: Standard>(State(bank): State<Arc<Bank<S>>>) -> Json<Value> {
    let mut consents: Vec<(String, bool)> = bank
        .consents()
        .iter()
        .map(|(id, consent)| (id.clone(), consent.usable()))
        .collect();
    consents.sort();
    let consents: Vec<Value> = consents
        .into_iter()
        .map(|(id, usable)| json!({"id": id, "usable": usable}))
        .collect();
    Json(json!({ "consents": consents }))
}

async fn revoke<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
) -> StatusCode {
    let status = end(&bank, &id, Ending::Revoked);
    if status == StatusCode::NO_CONTENT {
        S::revoked_in_app(&bank, &id);
    }
    status
}

async fn expire<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
) -> StatusCode {
    end(&bank, &id, Ending::Expired)
}

fn end<S: Standard>(bank: &Bank<S>, id: &str, ending: Ending) -> StatusCode {
    if bank.end(id, ending) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn movements<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(iban): Path<String>,
) -> Json<Value> {
    let now = bank.ledger.clock().now();
    let stamp =
        |time: chrono::DateTime<chrono::Utc>| time.to_rfc3339_opts(SecondsFormat::Secs, true);
    let movements: Vec<Value> = bank
        .ledger
        .movements(&iban)
        .into_iter()
        .map(|movement| {
            json!({
                "id": movement.id,
                "amount": movement.money.amount.to_string(),
                "currency": movement.money.currency,
                "counterparty": movement.counterparty,
                "description": movement.description,
                "at": stamp(movement.at),
                "settles_at": stamp(movement.settles_at),
                "status": if now >= movement.settles_at { "booked" } else { "pending" },
            })
        })
        .collect();
    Json(json!({ "movements": movements }))
}

async fn counters<S: Standard>(State(bank): State<Arc<Bank<S>>>) -> Json<Value> {
    let mut counts = bank.payments.counters().json();
    counts["confirmation_required"] = bank.payments.confirmation_required().into();
    Json(counts)
}

async fn confirmation<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError<S>> {
    let required = match Query::parse(query)?.get("required") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(ApiError::bad_request("required must be true or false")),
    };
    bank.payments.require_confirmation(required);
    Ok(StatusCode::NO_CONTENT)
}

fn now<S: Standard>(bank: &Bank<S>) -> Json<Value> {
    let now = bank.ledger.clock().now();
    Json(json!({"now": now.to_rfc3339_opts(SecondsFormat::Secs, true)}))
}

async fn clock<S: Standard>(State(bank): State<Arc<Bank<S>>>) -> Json<Value> {
    now(&bank)
}

async fn advance<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError<S>> {
    let minutes = Query::parse(query)?.number("minutes")?;
    let minutes = i64::try_from(minutes)
        .ok()
        .and_then(TimeDelta::try_minutes)
        .ok_or_else(|| ApiError::bad_request("minutes is too large"))?;
    bank.ledger.clock().advance(minutes);
    Ok(now(&bank))
}

async fn close<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(iban): Path<String>,
) -> StatusCode {
    bank.ledger.close(&iban);
    StatusCode::NO_CONTENT
}

async fn reopen<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    Path(iban): Path<String>,
) -> StatusCode {
    bank.ledger.reopen(&iban);
    StatusCode::NO_CONTENT
}
