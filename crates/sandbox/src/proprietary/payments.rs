//! Nova Bank's payments, in its own API: `POST /api/v2/payments` creates a transfer for the
//! customer to authorise (bank-side idempotency by `X-Request-ID`), the customer authorises it
//! at the bank's OAuth server under the scope `payments:write` with the parameter
//! `payment_ref`, which executes it on the shared ledger at once, and
//! `GET /api/v2/payments/{ref}` reads it with a token issued for it.
//!
//! Its own shapes: the amount in minor units (`amountMinor`, a JSON integer), the payee under
//! `payee`, and states of its own — `NEW` (waiting for the customer), `BOOKING` (executed,
//! settling), `DONE` (settled), `FAILED` (with an ISO 20022 `reasonCode`), `CANCELLED`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Bank, MINOR_UNIT_EXPONENT, NovaError, Proprietary, envelope};
use crate::customers;
use crate::ledger::compact_iban;
use crate::oauth::{BearerError, BindError};
use crate::payments::{Order, Payment, Stage, check_currency};
use crate::plumbing::header_text;
use crate::scaffold::{ApiError, Standard};

/// The scope under which a customer authorises a payment.
pub const SCOPE: &str = "payments:write";
/// The authorization request parameter naming the payment to authorise.
pub const PARAM: &str = "payment_ref";
/// The kind of every payment it keeps.
const PRODUCT: &str = "nova-transfer";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayeeBody {
    iban: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    end_to_end_id: Option<String>,
    amount_minor: i64,
    ccy: String,
    payee: PayeeBody,
    reference: Option<String>,
    #[serde(default)]
    instant: bool,
}

fn order(body: &[u8]) -> Result<Order, NovaError> {
    let body: CreateBody = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("payment body: {error}")))?;
    if body.amount_minor <= 0 {
        return Err(ApiError::bad_request("amountMinor must be positive"));
    }
    check_currency(&body.ccy).map_err(ApiError::bad_request)?;
    let creditor_iban = compact_iban(&body.payee.iban);
    if creditor_iban.len() < 15 {
        return Err(ApiError::bad_request("payee.iban is not an IBAN"));
    }
    if body.payee.name.trim().is_empty() {
        return Err(ApiError::bad_request("payee.name is empty"));
    }
    Ok(Order {
        end_to_end_id: body.end_to_end_id,
        amount: Decimal::new(body.amount_minor, MINOR_UNIT_EXPONENT),
        currency: body.ccy,
        creditor_iban,
        creditor_name: body.payee.name,
        remittance: body.reference,
        instant: body.instant,
        debtor_iban: None,
    })
}

/// Nova's state of a payment, and the reason of a failure.
fn state(bank: &Bank, payment: &Payment) -> (&'static str, Option<&'static str>) {
    match payment.stage {
        Stage::Received | Stage::Approved { .. } => ("NEW", None),
        Stage::Executed { execution, .. } => match execution.status(bank.payments.now()) {
            "ACSC" => ("DONE", None),
            _ => ("BOOKING", None),
        },
        Stage::Rejected { reason, .. } => ("FAILED", reason),
        Stage::Cancelled => ("CANCELLED", None),
    }
}

fn payment_json(bank: &Bank, id: &str, payment: &Payment) -> Value {
    let (state, reason) = state(bank, payment);
    let order = &payment.order;
    let mut amount = order.amount;
    amount.rescale(MINOR_UNIT_EXPONENT);
    let mut result = json!({
        "paymentRef": id,
        "state": state,
        "endToEndId": order.end_to_end_id,
        "amountMinor": i64::try_from(amount.mantissa()).unwrap_or(i64::MAX),
        "ccy": order.currency,
        "payee": {"iban": order.creditor_iban, "name": order.creditor_name},
    });
    if let Some(reason) = reason {
        result["reasonCode"] = reason.into();
    }
    if let Some(iban) = payment.debtor().and_then(|account| account.iban.clone()) {
        result["debtorIban"] = iban.into();
    }
    result
}

/// `POST /api/v2/payments`.
pub(super) async fn create(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NovaError> {
    Proprietary::admit(&headers)?;
    let order = order(&body)?;
    let key = header_text(&headers, "x-request-id");
    let (id, replayed) = bank
        .payments
        .create(key, PRODUCT, order, customers::default_customer(), false)
        .map_err(|_| ApiError::bad_request("X-Request-ID was used for another payment"))?;
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::internal("the payment vanished"))?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, envelope(payment_json(&bank, &id, &payment))).into_response())
}

/// `GET /api/v2/payments/{ref}`: with a token issued for that payment.
pub(super) async fn read(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, NovaError> {
    Proprietary::admit(&headers)?;
    let grant = bank.auth.bearer(&headers).map_err(|error| {
        ApiError::unauthorized(match error {
            BearerError::Missing => "access token is missing",
            BearerError::Unknown => "unknown access token",
            BearerError::Expired => "access token expired",
        })
    })?;
    if grant.consent_id.as_deref() != Some(id.as_str()) {
        return Err(ApiError::forbidden(
            "the token was not issued for this payment",
        ));
    }
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such payment"))?;
    Ok(envelope(payment_json(&bank, &id, &payment)))
}

/// The payment an authorization request names with `payment_ref` under the scope
/// `payments:write`; `None` when it does not ask for that scope.
pub(super) fn bind(
    bank: &Bank,
    parameters: &HashMap<String, String>,
) -> Option<Result<String, BindError>> {
    let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
    if !scopes.split_ascii_whitespace().any(|scope| scope == SCOPE) {
        return None;
    }
    let Some(id) = parameters.get(PARAM) else {
        return Some(Err(BindError::invalid_request("payment_ref is missing")));
    };
    Some(if bank.payments.approvable(id) {
        Ok(id.clone())
    } else if bank.payments.contains(id) {
        Err(BindError::invalid_scope(
            "the payment can no longer be authorised",
        ))
    } else {
        Err(BindError::invalid_scope("unknown payment"))
    })
}
