//! The Berlin Group (NextGenPSD2 1.3.x) sandbox bank: the consent resource ([`consents`]),
//! the account information endpoints ([`accounts`]) and payment initiation ([`payments`]) on
//! the scaffold's OAuth2 authorization server, serving the synthetic customers of
//! [`crate::customers`] with the movements of the shared [`crate::ledger`].
//!
//! Where the standard leaves a choice, the sandbox takes these:
//! - `recurringIndicator` and `frequencyPerDay` are also accepted as strings (`"true"`, `"4"`),
//!   as the Berlin Group's own examples write them.
//! - A bank-offered consent (`"balances": []`) covers every account of the customer; the
//!   approval page does not ask which accounts.
//! - `availableAccounts` consents are one-off (`recurringIndicator: false`, one access a day).
//! - Card accounts are listed under `/v1/accounts` with `cashAccountType: "CARD"` and a
//!   `maskedPan`; there is no `/v1/card-accounts`.
//! - `dateFrom` is optional (all history when absent); booked transactions come in pages of
//!   [`PAGE_SIZE`], linked by `_links.next` (with a `page` query parameter).
//! - `frequencyPerDay` is recorded but not enforced, and the TPP is not authenticated on the
//!   consent endpoints (a real bank would use its eIDAS certificate).
//! - Every answer plays back the caller's `X-Request-ID`.

mod accounts;
mod consents;
mod payments;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::oauth::BindError;
use crate::scaffold::{self, ApiError};

const X_REQUEST_ID: &str = "x-request-id";
const CONSENT_ID: &str = "consent-id";
const PSU_ID: &str = "psu-id";
/// Booked transactions per page.
pub const PAGE_SIZE: usize = 10;

/// The Berlin Group NextGenPSD2 standard.
#[derive(Debug)]
pub struct BerlinGroup;

type Bank = scaffold::Bank<BerlinGroup>;
type TppError = ApiError<BerlinGroup>;

impl scaffold::Standard for BerlinGroup {
    type Consent = consents::Consent;
    const TITLE: &'static str = "Sandbox Bank";
    const ECHOED_HEADERS: &'static [&'static str] = &[X_REQUEST_ID];

    fn routes() -> Router<Arc<Bank>> {
        Router::new()
            .route("/v1/consents", post(consents::create))
            .route(
                "/v1/consents/{id}",
                get(consents::read).delete(consents::delete),
            )
            .route("/v1/consents/{id}/status", get(consents::status))
            .route("/v1/accounts", get(accounts::list))
            .route("/v1/accounts/{id}", get(accounts::one))
            .route("/v1/accounts/{id}/balances", get(accounts::balances))
            .route(
                "/v1/accounts/{id}/transactions",
                get(accounts::transactions),
            )
            .route("/v1/payments/{product}", post(payments::create))
            .route(
                "/v1/payments/{product}/{id}",
                get(payments::read).delete(payments::cancel),
            )
            .route("/v1/payments/{product}/{id}/status", get(payments::status))
            .route(
                "/v1/payments/{product}/{id}/sca",
                get(payments::sca_page).post(payments::sca_decision),
            )
    }

    /// `PIS:<paymentId>` names a payment, `AIS:<consentId>` a consent.
    fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        payments::bind(bank, parameters).unwrap_or_else(|| consents::bind(bank, parameters))
    }

    fn payment_scope(id: &str) -> String {
        format!("{}{id}", payments::SCOPE_PREFIX)
    }

    /// Data calls name their consent (`Consent-ID`): an ended one is answered
    /// `CONSENT_INVALID` or `CONSENT_EXPIRED`, its tokens left as they are.
    const ENDING_REVOKES_TOKENS: bool = false;

    fn error_code(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "FORMAT_ERROR",
            StatusCode::UNAUTHORIZED => "TOKEN_INVALID",
            StatusCode::FORBIDDEN => "CONSENT_UNKNOWN",
            StatusCode::NOT_FOUND => "RESOURCE_UNKNOWN",
            _ => "INTERNAL_SERVER_ERROR",
        }
    }

    /// One `tppMessages` entry.
    fn error_body(error: &TppError) -> Value {
        json!({
            "tppMessages": [{"category": "ERROR", "code": error.code, "text": error.message}]
        })
    }
}

/// Checks the mandatory `X-Request-ID` (a UUID).
fn require_request_id(headers: &HeaderMap) -> Result<(), TppError> {
    let value = headers
        .get(X_REQUEST_ID)
        .ok_or_else(|| ApiError::bad_request("X-Request-ID header is missing"))?;
    value
        .to_str()
        .ok()
        .and_then(|text| uuid::Uuid::parse_str(text).ok())
        .map(|_| ())
        .ok_or_else(|| ApiError::bad_request("X-Request-ID must be a UUID"))
}

fn consent_invalid(text: impl Into<String>) -> TppError {
    ApiError::coded(StatusCode::UNAUTHORIZED, "CONSENT_INVALID", text)
}

#[cfg(test)]
mod tests;
