//! STET 1.4 payment initiation: `POST /v1/payment-requests` (one SEPA credit transfer,
//! `localInstrument` `INST` for an instant one), the customer's approval at the bank under the
//! scope `pisp` with the authorization request's `paymentRequestResourceId` (the
//! `consentApproval` link names it), `POST /v1/payment-requests/{id}/confirmation` when the
//! bank asks for it, and `GET /v1/payment-requests/{id}` with its status over time.
//!
//! The sandbox asks for a confirmation by default (`/sandbox/payments/confirmation` turns it
//! off for new payments): after the approval the payment is `ACCP` and moves no money until
//! the TPP confirms it; a confirmation executes it on the shared ledger, once (a second one
//! is a 409). Without a confirmation the approval executes it. Then `ACTC` → `ACSP` → `ACSC`
//! on the sandbox clock (an instant payment is `ACSC` at once), or `RJCT` with its reason in
//! `statusReasonInformation`.
//!
//! Bank-side idempotency: a creation request with an `X-Request-ID` the bank has seen, for the
//! same body, answers the payment created then; with another body it is refused (409).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Bank, StetError};
use crate::customers;
use crate::ledger::compact_iban;
use crate::oauth::{BearerError, BindError};
use crate::payments::{ConfirmError, Order, Payment, check_currency, parse_amount};
use crate::plumbing::header_text;
use crate::scaffold::ApiError;

/// The OAuth2 scope of payment initiation.
pub(super) const SCOPE: &str = "pisp";
/// The authorization request parameter naming the payment request to approve.
pub(super) const RESOURCE_PARAM: &str = "paymentRequestResourceId";
/// STET's kind of payment (the sandbox offers single SEPA credit transfers).
const PRODUCT: &str = "payment-request";
const INSTANT: &str = "INST";

#[derive(Deserialize)]
struct Iban {
    iban: Option<String>,
}

#[derive(Deserialize)]
struct Party {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentTypeInformation {
    local_instrument: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentId {
    end_to_end_id: Option<String>,
}

#[derive(Deserialize)]
struct Amount {
    currency: String,
    amount: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Remittance {
    Lines(Vec<String>),
    Structured { unstructured: Option<Vec<String>> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    payment_id: Option<PaymentId>,
    instructed_amount: Amount,
    remittance_information: Option<Remittance>,
}

/// A `PaymentRequestResource` as a PISP sends it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentRequest {
    payment_information_id: Option<String>,
    payment_type_information: Option<PaymentTypeInformation>,
    creditor: Option<Party>,
    creditor_account: Option<Iban>,
    debtor_account: Option<Iban>,
    credit_transfer_transaction: Vec<Transaction>,
}

fn parse_order(body: &[u8]) -> Result<(Order, Option<String>), StetError> {
    let bad = |what: String| ApiError::bad_request(format!("payment request: {what}"));
    let body: PaymentRequest =
        serde_json::from_slice(body).map_err(|error| bad(error.to_string()))?;
    let [transaction] = body.credit_transfer_transaction.as_slice() else {
        return Err(bad("the sandbox accepts exactly one transaction".into()));
    };
    let amount = parse_amount(&transaction.instructed_amount.amount)
        .map_err(|error| bad(format!("instructedAmount: {error}")))?;
    check_currency(&transaction.instructed_amount.currency)
        .map_err(|error| bad(format!("instructedAmount: {error}")))?;
    let creditor_iban = body
        .creditor_account
        .and_then(|account| account.iban)
        .map(|iban| compact_iban(&iban))
        .filter(|iban| iban.len() >= 15)
        .ok_or_else(|| bad("creditorAccount must name an IBAN".into()))?;
    let creditor_name = body
        .creditor
        .and_then(|party| party.name)
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| bad("creditor must have a name".into()))?;
    let remittance = match &transaction.remittance_information {
        Some(Remittance::Lines(lines)) => Some(lines.join(" ")),
        Some(Remittance::Structured {
            unstructured: Some(lines),
        }) => Some(lines.join(" ")),
        _ => None,
    }
    .filter(|text| !text.is_empty());
    let instant = body
        .payment_type_information
        .and_then(|info| info.local_instrument)
        .as_deref()
        == Some(INSTANT);
    let end_to_end_id = transaction
        .payment_id
        .as_ref()
        .and_then(|id| id.end_to_end_id.clone());
    Ok((
        Order {
            end_to_end_id,
            amount,
            currency: transaction.instructed_amount.currency.clone(),
            creditor_iban,
            creditor_name,
            remittance,
            instant,
            debtor_iban: body
                .debtor_account
                .and_then(|account| account.iban)
                .map(|iban| compact_iban(&iban)),
        },
        body.payment_information_id,
    ))
}

fn require_request_id(headers: &HeaderMap) -> Result<&str, StetError> {
    header_text(headers, "x-request-id")
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("X-Request-ID header is missing"))
}

/// `POST /v1/payment-requests`.
pub(super) async fn create(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, StetError> {
    let key = require_request_id(&headers)?;
    let (order, _) = parse_order(&body)?;
    let confirms = bank.payments.confirmation_required();
    let (id, _) = bank
        .payments
        .create(
            Some(key),
            PRODUCT,
            order,
            customers::default_customer(),
            confirms,
        )
        .map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                "X-Request-ID was used for another payment request",
            )
        })?;
    let origin = bank.auth.origin();
    let approval = format!("{origin}/oauth/authorize?{RESOURCE_PARAM}={id}");
    let body = json!({
        "appliedAuthenticationApproach": "REDIRECT",
        "_links": {"consentApproval": {"href": approval}},
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/payment-requests/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The payment request `id`, for a request whose token may see it: one issued for that
/// payment, or a client credentials token.
fn readable(bank: &Bank, headers: &HeaderMap, id: &str) -> Result<Payment, StetError> {
    require_request_id(headers)?;
    let grant = bank.auth.bearer(headers).map_err(|error| {
        ApiError::unauthorized(match error {
            BearerError::Missing => "access token is missing",
            BearerError::Unknown => "unknown access token",
            BearerError::Expired => "access token expired",
        })
    })?;
    if grant.consent_id.as_deref().is_some_and(|bound| bound != id) {
        return Err(ApiError::forbidden(
            "the token was issued for another payment request",
        ));
    }
    bank.payments
        .get(id)
        .ok_or_else(|| ApiError::not_found("no such payment request"))
}

fn resource_json(bank: &Bank, id: &str, payment: &Payment) -> Value {
    let order = &payment.order;
    let (status, reason) = payment.status(bank.payments.now());
    let mut payment_type = json!({"serviceLevel": "SEPA"});
    if order.instant {
        payment_type["localInstrument"] = INSTANT.into();
    }
    let mut transaction = Map::new();
    let mut payment_id = json!({ "resourceId": format!("{id}-1") });
    if let Some(end_to_end) = &order.end_to_end_id {
        payment_id["instructionId"] = end_to_end.clone().into();
        payment_id["endToEndId"] = end_to_end.clone().into();
    }
    transaction.insert("paymentId".into(), payment_id);
    transaction.insert(
        "instructedAmount".into(),
        json!({"currency": order.currency, "amount": order.amount.to_string()}),
    );
    if let Some(remittance) = &order.remittance {
        transaction.insert("remittanceInformation".into(), json!([remittance]));
    }
    transaction.insert("transactionStatus".into(), status.into());
    let mut request = Map::new();
    request.insert("resourceId".into(), id.into());
    if let Some(end_to_end) = &order.end_to_end_id {
        request.insert("paymentInformationId".into(), end_to_end.clone().into());
    }
    request.insert(
        "creationDateTime".into(),
        payment
            .created_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
            .into(),
    );
    request.insert("numberOfTransactions".into(), 1.into());
    request.insert("paymentTypeInformation".into(), payment_type);
    if let Some(debtor) = payment.debtor() {
        request.insert("debtor".into(), json!({"name": payment.customer.name}));
        if let Some(iban) = &debtor.iban {
            request.insert("debtorAccount".into(), json!({ "iban": iban }));
        }
    }
    request.insert("creditor".into(), json!({"name": order.creditor_name}));
    request.insert(
        "creditorAccount".into(),
        json!({"iban": order.creditor_iban}),
    );
    request.insert("chargeBearer".into(), "SLEV".into());
    request.insert("paymentInformationStatus".into(), status.into());
    if let Some(reason) = reason {
        request.insert("statusReasonInformation".into(), reason.into());
        transaction.insert("statusReasonInformation".into(), reason.into());
    }
    request.insert(
        "creditTransferTransaction".into(),
        json!([Value::Object(transaction)]),
    );
    json!({
        "paymentRequest": request,
        "_links": {
            "request": {"href": format!("/v1/payment-requests/{id}")},
            "confirmation": {"href": format!("/v1/payment-requests/{id}/confirmation")},
        },
    })
}

/// `GET /v1/payment-requests/{id}`.
pub(super) async fn read(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, StetError> {
    let payment = readable(&bank, &headers, &id)?;
    Ok(Json(resource_json(&bank, &id, &payment)))
}

/// `POST /v1/payment-requests/{id}/confirmation`: executes an approved payment, once.
pub(super) async fn confirm(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, StetError> {
    readable(&bank, &headers, &id)?;
    match bank.payments.confirm(&id) {
        Ok(payment) => Ok(Json(resource_json(&bank, &id, &payment))),
        Err(ConfirmError::Unknown) => Err(ApiError::not_found("no such payment request")),
        Err(ConfirmError::NotApproved) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the customer has not approved the payment request",
        )),
        Err(ConfirmError::Final) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the payment request was already executed, rejected or cancelled",
        )),
    }
}

/// The payment request an authorization request with the scope `pisp` names in
/// `paymentRequestResourceId`; `None` when the scope does not ask for `pisp`.
pub(super) fn bind(
    bank: &Bank,
    parameters: &HashMap<String, String>,
) -> Option<Result<String, BindError>> {
    let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
    if !scopes.split_ascii_whitespace().any(|scope| scope == SCOPE) {
        return None;
    }
    let Some(id) = parameters.get(RESOURCE_PARAM) else {
        return Some(Err(BindError::invalid_request(
            "paymentRequestResourceId is missing",
        )));
    };
    Some(if bank.payments.approvable(id) {
        Ok(id.clone())
    } else if bank.payments.contains(id) {
        Err(BindError::invalid_scope(
            "the payment request can no longer be approved",
        ))
    } else {
        Err(BindError::invalid_scope("unknown payment request"))
    })
}
