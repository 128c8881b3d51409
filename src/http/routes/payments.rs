//! Payments for platforms: `POST /v1/payments` submits the payment of the token's consent
//! (an `Idempotency-Key` header required) and `GET /v1/payments/{id}` reads one of the
//! platform's payments. Behind the authentication layer; the workflow is
//! `payments::submit::Submitter`: these handlers parse, load the consent and the bank's
//! credentials, and render.
//!
//! Answers: `201` with the payment (the bank's status with its raw code, amounts as strings)
//! when the bank answered, `202` while the bank's answer is in doubt (the status job settles
//! it); a retry with the same key and body gets the same status and body again.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;

use crate::adapters::paying::Paying;
use crate::app::App;
use crate::error::Error;
use crate::http::authn::Principal;
use crate::http::request_id;
use crate::http::routes::input::PathParams;
use crate::payments::idempotency::{IDEMPOTENCY_KEY, IdempotencyKey, StoredResponse};
use crate::payments::submit::{
    Refusal, SubmitBody, SubmitError, SubmitRequest, Submitted, Submitter,
};
use crate::payments::{Payment, Submission};

/// The scope of a payment consent's token.
const PAYMENT_SCOPE: &str = "payment";

/// The payment routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/payments", post(submit))
        .route("/v1/payments/{id}", get(show))
        .with_state(app)
}

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

fn submitter(app: &App) -> Submitter<'_> {
    Submitter {
        payments: app.store.as_ref(),
        auditor: &app.auditor,
    }
}

fn refused(refusal: Refusal) -> Error {
    Error::Payment(refusal)
}

impl From<SubmitError> for Error {
    fn from(error: SubmitError) -> Error {
        match error {
            SubmitError::Refused(refusal) => Error::Payment(refusal),
            SubmitError::Store(error) => Error::Store(error),
            SubmitError::Audit(error) => Error::AuditUnavailable(error),
        }
    }
}

/// `POST /v1/payments`.
async fn submit(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    if !principal.has_scope(PAYMENT_SCOPE) {
        return Err(refused(Refusal::NotAPaymentConsent));
    }
    let key = IdempotencyKey::parse(
        headers
            .get(IDEMPOTENCY_KEY)
            .map(|value| value.to_str().unwrap_or("\u{1}")),
    )
    .map_err(|error| Error::IdempotencyKey(error.to_string()))?;
    let raw_body: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| Error::InvalidRequest(format!("body: {error}")))?
    };
    let parsed: SubmitBody = serde_json::from_value(raw_body.clone())
        .map_err(|error| Error::InvalidRequest(format!("body: {error}")))?;
    let consent = app
        .store
        .consent(principal.subject())
        .await?
        .filter(|consent| consent.client_id == principal.client_id())
        .ok_or(refused(Refusal::NotAPaymentConsent))?;
    let policy = app.policies.get(&consent.purpose);
    let adapter = app
        .banks
        .get(&consent.bank_id)
        .ok_or_else(|| Error::Internal("bank not loaded".into()))?;
    let grant = app.store.grant(&consent.id).await?;
    let bank_grant = app.bank_tokens.current(adapter.clone(), grant).await?;
    let bank = Paying {
        adapter: &adapter,
        grant: bank_grant,
    };
    let submitter = submitter(&app);
    let broker = app.broker();
    let submitted = submitter
        .submit(
            SubmitRequest {
                client_id: principal.client_id(),
                consent: &consent,
                key: key.clone(),
                raw_body: &raw_body,
                body: parsed,
                limits: policy.as_ref().and_then(|policy| policy.payment.as_ref()),
                request_id: request_id(&headers),
                payee: &broker,
            },
            &bank,
            Utc::now(),
        )
        .await?;
    let stored = match submitted {
        Submitted::Replay(stored) => return Ok(replay(stored)),
        Submitted::Payment(payment) => StoredResponse {
            status: status_of(&payment).as_u16(),
            body: payment.view(),
        },
        Submitted::Refused(refusal) => {
            let error = refused(refusal);
            StoredResponse {
                status: error.status().as_u16(),
                body: serde_json::to_value(crate::http::problem::Problem::of(&error))
                    .map_err(|error| Error::Internal(error.to_string()))?,
            }
        }
    };
    submitter
        .complete(principal.client_id(), &key, &stored)
        .await?;
    Ok(replay(stored))
}

/// `201` once the bank answered (whatever it said), `202` while in doubt.
fn status_of(payment: &Payment) -> StatusCode {
    match payment.submission {
        Submission::InDoubt => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    }
}

/// A stored answer as a response: the same status and body every time.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let problem = status.is_client_error() || status.is_server_error();
    let mut response = (status, Json(stored.body)).into_response();
    if problem {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
    }
    response
}

/// `GET /v1/payments/{id}`: one of the platform's payments (another platform's is a 404).
async fn show(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    PathParams(IdPath { id }): PathParams<IdPath>,
) -> Result<Json<serde_json::Value>, Error> {
    let payment = app
        .store
        .payment(principal.client_id(), &id)
        .await?
        // A consent-bound token reads its own consent's payment only.
        .filter(|payment| {
            payment.consent_id == principal.subject()
                || principal.subject() == principal.client_id()
        })
        .ok_or_else(|| Error::NotFound("no such payment".into()))?;
    Ok(Json(payment.view()))
}
