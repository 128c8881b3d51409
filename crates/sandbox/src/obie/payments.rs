//! OBIE domestic payments (Read/Write API 3.1 and 4.0) under `/open-banking/{version}/pisp`:
//! `POST /domestic-payment-consents` (a client credentials token with the scope `payments`),
//! `GET /domestic-payment-consents/{ConsentId}` (and its `/funds-confirmation`, with the
//! consent's token), the customer's authorisation through the
//! shared OAuth server (scope `payments`, the consent as `openbanking_intent_id` in the OIDC
//! `claims`), `POST /domestic-payments` with the consent's token, and
//! `GET /domestic-payments/{DomesticPaymentId}`.
//!
//! Both POSTs need an `x-idempotency-key` and an `x-jws-signature` ([`super::jws`]) that the
//! bank verifies against the TPP's registered key over the body bytes as received: a tampered
//! body is refused (`UK.OBIE.Signature.Invalid`) and nothing happens. The same idempotency key
//! with the same body answers what the first request made (nothing twice); with another body
//! it is refused. The payment's `Initiation` must be the consent's, byte for byte as JSON.
//!
//! A consent is `AwaitingAuthorisation` (`AWAU`), `Authorised` (`AUTH`) once the customer
//! approved it (the bank picks the account), `Consumed` (`COND`) once a payment was made
//! under it, or `Rejected` (`RJCT`). The payment executes on the shared ledger when it is
//! posted: `Pending`/`ACTC` → `AcceptedSettlementInProcess`/`ACSP` → `AcceptedSettlement…
//! Completed`/`ACSC` on the sandbox clock (`UK.OBIE.FPS` settles at once), or
//! `Rejected`/`RJCT` with a 4.0 `StatusReason` (`AM04`…).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Bank, ObError, Version, jws, timestamp};
use crate::customers;
use crate::ledger::compact_iban;
use crate::oauth::{BearerError, BindError};
use crate::payments::{
    ConfirmError, Order, Payment, Stage, SubmitError, check_currency, parse_amount,
};
use crate::plumbing::header_text;
use crate::scaffold::ApiError;

/// The OAuth scope of payment initiation.
pub(super) const SCOPE: &str = "payments";
const IDEMPOTENCY_KEY: &str = "x-idempotency-key";
const PRODUCT: &str = "domestic-payment";
/// A consent id is a UUID; the payment made under it is `dp-` and the same UUID.
const PAYMENT_PREFIX: &str = "dp-";

fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> ObError {
    ApiError::coded(status, code, message)
}

fn payment_id(consent_id: &str) -> String {
    format!("{PAYMENT_PREFIX}{consent_id}")
}

fn consent_id(payment_id: &str) -> Option<&str> {
    payment_id.strip_prefix(PAYMENT_PREFIX)
}

#[derive(Deserialize)]
struct Amount {
    #[serde(rename = "Amount")]
    amount: Box<RawValue>,
    #[serde(rename = "Currency")]
    currency: String,
}

#[derive(Deserialize)]
struct Account {
    #[serde(rename = "SchemeName")]
    scheme_name: String,
    #[serde(rename = "Identification")]
    identification: String,
    #[serde(rename = "Name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Lines {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Remittance {
    #[serde(rename = "Reference")]
    reference: Option<String>,
    #[serde(rename = "Unstructured")]
    unstructured: Option<Lines>,
}

#[derive(Deserialize)]
struct Initiation {
    #[serde(rename = "EndToEndIdentification")]
    end_to_end_identification: Option<String>,
    #[serde(rename = "LocalInstrument")]
    local_instrument: Option<String>,
    #[serde(rename = "InstructedAmount")]
    instructed_amount: Amount,
    #[serde(rename = "DebtorAccount")]
    debtor_account: Option<Account>,
    #[serde(rename = "CreditorAccount")]
    creditor_account: Account,
    #[serde(rename = "RemittanceInformation")]
    remittance_information: Option<Remittance>,
}

fn is_iban(account: &Account) -> bool {
    account
        .scheme_name
        .rsplit('.')
        .next()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("IBAN"))
}

fn order(initiation: &Value) -> Result<Order, ObError> {
    let bad = |message: String| coded(StatusCode::BAD_REQUEST, "UK.OBIE.Field.Invalid", message);
    let initiation: Initiation = serde_json::from_value(initiation.clone())
        .map_err(|error| bad(format!("Data.Initiation: {error}")))?;
    let amount = parse_amount(&initiation.instructed_amount.amount)
        .map_err(|error| bad(format!("InstructedAmount: {error}")))?;
    check_currency(&initiation.instructed_amount.currency)
        .map_err(|error| bad(format!("InstructedAmount: {error}")))?;
    let creditor = &initiation.creditor_account;
    // A creditor by sort code and account number is paid as an external payee.
    let creditor_iban = if is_iban(creditor) {
        compact_iban(&creditor.identification)
    } else {
        creditor.identification.clone()
    };
    if creditor_iban.trim().is_empty() {
        return Err(bad("CreditorAccount.Identification is empty".into()));
    }
    let remittance = initiation.remittance_information.as_ref().and_then(|info| {
        let mut parts: Vec<&str> = info.reference.iter().map(String::as_str).collect();
        match &info.unstructured {
            Some(Lines::One(line)) => parts.push(line),
            Some(Lines::Many(lines)) => parts.extend(lines.iter().map(String::as_str)),
            None => {}
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    Ok(Order {
        end_to_end_id: initiation.end_to_end_identification,
        amount,
        currency: initiation.instructed_amount.currency,
        creditor_iban,
        creditor_name: creditor.name.clone().unwrap_or_else(|| "Payee".to_owned()),
        remittance,
        instant: initiation
            .local_instrument
            .as_deref()
            .is_some_and(|instrument| instrument.ends_with("FPS")),
        debtor_iban: initiation
            .debtor_account
            .filter(is_iban)
            .map(|account| compact_iban(&account.identification)),
    })
}

/// The body's `Data` and `Data.Initiation`, after the signature over the exact bytes.
fn signed_body(bank: &Bank, headers: &HeaderMap, body: &[u8]) -> Result<Value, ObError> {
    jws::verify(
        header_text(headers, jws::HEADER),
        body,
        bank.auth.client_keys(),
        bank.auth.client_id(),
        Utc::now().timestamp(),
    )
    .map_err(|refusal| coded(StatusCode::BAD_REQUEST, refusal.code, refusal.message))?;
    serde_json::from_slice(body).map_err(|error| {
        coded(
            StatusCode::BAD_REQUEST,
            "UK.OBIE.Field.Invalid",
            format!("request body: {error}"),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<&str, ObError> {
    header_text(headers, IDEMPOTENCY_KEY)
        .filter(|key| !key.trim().is_empty() && key.len() <= 40)
        .ok_or_else(|| {
            coded(
                StatusCode::BAD_REQUEST,
                "UK.OBIE.Header.Missing",
                "x-idempotency-key is missing (at most 40 characters)",
            )
        })
}

/// A client credentials token with the scope `payments`.
fn payments_client(bank: &Bank, headers: &HeaderMap) -> Result<(), ObError> {
    match bank.auth.bearer(headers) {
        Ok(grant)
            if grant.consent_id.is_none()
                && grant.scope.split_ascii_whitespace().any(|s| s == SCOPE) =>
        {
            Ok(())
        }
        Ok(_) => Err(ApiError::forbidden(
            "a client credentials token with the scope payments is required",
        )),
        Err(_) => Err(ApiError::unauthorized("a valid access token is required")),
    }
}

fn consent_status(payment: &Payment, version: Version) -> &'static str {
    match payment.stage {
        _ if payment.submitted => version.pick("Consumed", "COND"),
        Stage::Received => version.pick("AwaitingAuthorisation", "AWAU"),
        Stage::Approved { .. } | Stage::Executed { .. } => version.pick("Authorised", "AUTH"),
        Stage::Rejected { .. } | Stage::Cancelled => version.pick("Rejected", "RJCT"),
    }
}

fn base(bank: &Bank, version: Version) -> String {
    format!(
        "{}/open-banking/{}/pisp",
        bank.auth.origin(),
        version.path()
    )
}

fn consent_json(bank: &Bank, id: &str, payment: &Payment, version: Version) -> Value {
    let mut data = Map::new();
    data.insert("ConsentId".into(), id.into());
    data.insert("Status".into(), consent_status(payment, version).into());
    data.insert(
        "CreationDateTime".into(),
        timestamp(payment.created_at).into(),
    );
    data.insert(
        "StatusUpdateDateTime".into(),
        timestamp(bank.payments.now()).into(),
    );
    data.insert("Initiation".into(), payment.wire.clone());
    json!({
        "Data": data,
        "Risk": {},
        "Links": {"Self": format!("{}/domestic-payment-consents/{id}", base(bank, version))},
        "Meta": {"TotalPages": 1},
    })
}

fn payment_json(bank: &Bank, consent: &str, payment: &Payment, version: Version) -> Value {
    let id = payment_id(consent);
    let (code, reason) = payment.status(bank.payments.now());
    let status = match version {
        Version::V4 => code,
        Version::V3 => match code {
            "ACSC" => "AcceptedSettlementCompleted",
            "ACSP" => "AcceptedSettlementInProcess",
            "RJCT" => "Rejected",
            _ => "Pending",
        },
    };
    let mut data = Map::new();
    data.insert("DomesticPaymentId".into(), id.clone().into());
    data.insert("ConsentId".into(), consent.into());
    data.insert(
        "CreationDateTime".into(),
        timestamp(payment.created_at).into(),
    );
    data.insert("Status".into(), status.into());
    data.insert(
        "StatusUpdateDateTime".into(),
        timestamp(bank.payments.now()).into(),
    );
    if let (Version::V4, Some(reason)) = (version, reason) {
        data.insert("StatusReason".into(), json!([{"StatusReasonCode": reason}]));
    }
    data.insert("Initiation".into(), payment.wire.clone());
    if let Some(iban) = payment.debtor().and_then(|account| account.iban.clone()) {
        data.insert(
            "Debtor".into(),
            json!({"SchemeName": "UK.OBIE.IBAN", "Identification": iban, "Name": payment.customer.name}),
        );
    }
    json!({
        "Data": data,
        "Links": {"Self": format!("{}/domestic-payments/{id}", base(bank, version))},
        "Meta": {"TotalPages": 1},
    })
}

/// `POST /domestic-payment-consents`.
pub(super) async fn create_consent(
    State(bank): State<Arc<Bank>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    payments_client(&bank, &headers)?;
    let key = idempotency_key(&headers)?;
    let body = signed_body(&bank, &headers, &body)?;
    if body.get("Risk").is_none() {
        return Err(coded(
            StatusCode::BAD_REQUEST,
            "UK.OBIE.Field.Missing",
            "Risk is missing",
        ));
    }
    let initiation = body["Data"]["Initiation"].clone();
    let order = order(&initiation)?;
    let (id, replayed) = bank
        .payments
        .create(
            Some(key),
            PRODUCT,
            order,
            customers::default_customer(),
            true,
        )
        .map_err(|_| {
            coded(
                StatusCode::BAD_REQUEST,
                "UK.OBIE.Resource.ConsentMismatch",
                "x-idempotency-key was used for another consent",
            )
        })?;
    if !replayed {
        bank.payments
            .annotate(&id, |payment| payment.wire = initiation);
    }
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::internal("the consent vanished"))?;
    Ok((
        StatusCode::CREATED,
        Json(consent_json(&bank, &id, &payment, version)),
    )
        .into_response())
}

/// `GET /domestic-payment-consents/{ConsentId}`.
pub(super) async fn consent(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    payments_client(&bank, &headers)?;
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such consent"))?;
    Ok(Json(consent_json(&bank, &id, &payment, version)))
}

/// `POST /domestic-payments`: with the token of the consent it names.
pub(super) async fn submit(
    State(bank): State<Arc<Bank>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    let grant = bank.auth.bearer(&headers).map_err(|error| {
        ApiError::unauthorized(match error {
            BearerError::Missing => "access token is missing",
            BearerError::Unknown => "unknown access token",
            BearerError::Expired => "access token expired",
        })
    })?;
    let key = idempotency_key(&headers)?;
    let body = signed_body(&bank, &headers, &body)?;
    let consent = body["Data"]["ConsentId"]
        .as_str()
        .ok_or_else(|| {
            coded(
                StatusCode::BAD_REQUEST,
                "UK.OBIE.Field.Missing",
                "Data.ConsentId is missing",
            )
        })?
        .to_owned();
    if grant.consent_id.as_deref() != Some(consent.as_str()) {
        return Err(ApiError::forbidden(
            "the token was not issued for this consent",
        ));
    }
    let payment = bank
        .payments
        .get(&consent)
        .ok_or_else(|| ApiError::not_found("no such consent"))?;
    if body["Data"]["Initiation"] != payment.wire {
        return Err(coded(
            StatusCode::BAD_REQUEST,
            "UK.OBIE.Resource.ConsentMismatch",
            "Data.Initiation differs from the consent's",
        ));
    }
    let (payment, _) = bank
        .payments
        .submit(key, &consent, &body)
        .map_err(|error| match error {
            SubmitError::KeyReused => coded(
                StatusCode::BAD_REQUEST,
                "UK.OBIE.Resource.ConsentMismatch",
                "x-idempotency-key was used for another payment",
            ),
            SubmitError::Confirm(ConfirmError::Unknown) => ApiError::not_found("no such consent"),
            SubmitError::Confirm(ConfirmError::NotApproved | ConfirmError::Final) => coded(
                StatusCode::BAD_REQUEST,
                "UK.OBIE.Resource.InvalidConsentStatus",
                "the consent is not authorised (or was used already)",
            ),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(payment_json(&bank, &consent, &payment, version)),
    )
        .into_response())
}

/// `GET /domestic-payments/{DomesticPaymentId}`: a client credentials token, or the token of
/// the payment's consent.
pub(super) async fn payment(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    let grant = bank
        .auth
        .bearer(&headers)
        .map_err(|_| ApiError::unauthorized("a valid access token is required"))?;
    let consent = consent_id(&id).ok_or_else(|| ApiError::not_found("no such payment"))?;
    if grant
        .consent_id
        .as_deref()
        .is_some_and(|bound| bound != consent)
    {
        return Err(ApiError::forbidden(
            "the token was issued for another consent",
        ));
    }
    let payment = bank
        .payments
        .get(consent)
        .filter(|payment| payment.submitted)
        .ok_or_else(|| ApiError::not_found("no such payment"))?;
    Ok(Json(payment_json(&bank, consent, &payment, version)))
}

/// `GET /domestic-payment-consents/{ConsentId}/funds-confirmation`: with the consent's token,
/// whether the account the customer chose can pay the amount now.
pub(super) async fn funds_confirmation(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    let grant = bank
        .auth
        .bearer(&headers)
        .map_err(|_| ApiError::unauthorized("a valid access token is required"))?;
    if grant.consent_id.as_deref() != Some(id.as_str()) {
        return Err(ApiError::forbidden(
            "the token was not issued for this consent",
        ));
    }
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such consent"))?;
    let (Stage::Approved { debtor }, false) = (payment.stage, payment.submitted) else {
        return Err(coded(
            StatusCode::BAD_REQUEST,
            "UK.OBIE.Resource.InvalidConsentStatus",
            "funds are confirmed for an authorised consent only",
        ));
    };
    let available = bank
        .ledger
        .available(debtor, &payment.order.currency)
        .is_some_and(|available| available >= payment.order.amount);
    Ok(Json(json!({
        "Data": {"FundsAvailableResult": {
            "FundsAvailableDateTime": timestamp(bank.payments.now()),
            "FundsAvailable": available,
        }},
        "Links": {"Self": format!(
            "{}/domestic-payment-consents/{id}/funds-confirmation",
            base(&bank, version)
        )},
        "Meta": {},
    })))
}

/// The payment consent an authorization request with the scope `payments` names as
/// `openbanking_intent_id`; `None` when it does not ask for `payments`.
pub(super) fn bind(
    bank: &Bank,
    parameters: &HashMap<String, String>,
) -> Option<Result<String, BindError>> {
    let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
    if !scopes.split_ascii_whitespace().any(|scope| scope == SCOPE) {
        return None;
    }
    let unnamed = || BindError::invalid_request("claims must name the openbanking_intent_id");
    let Some(claims) = parameters
        .get("claims")
        .and_then(|claims| serde_json::from_str::<Value>(claims).ok())
    else {
        return Some(Err(unnamed()));
    };
    let Some(id) = ["id_token", "userinfo"]
        .iter()
        .find_map(|member| claims[member]["openbanking_intent_id"]["value"].as_str())
    else {
        return Some(Err(unnamed()));
    };
    Some(if bank.payments.approvable(id) {
        Ok(id.to_owned())
    } else if bank.payments.contains(id) {
        Err(BindError::invalid_request(
            "the consent can no longer be authorised",
        ))
    } else {
        Err(BindError::invalid_request("unknown openbanking_intent_id"))
    })
}
