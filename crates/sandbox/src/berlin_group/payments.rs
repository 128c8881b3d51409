//! Berlin Group payment initiation (NextGenPSD2 1.3.x): `POST /v1/payments/{product}` for
//! `sepa-credit-transfers` and `instant-sepa-credit-transfers`, the payment and its status
//! (`GET …/{paymentId}`, `GET …/{paymentId}/status`), cancellation before approval
//! (`DELETE`), and how an authorization request names a payment: the scope
//! `PIS:<paymentId>`.
//!
//! SCA: the creation answer links `scaOAuth` (the bank's OAuth metadata: the TPP sends the
//! customer to its authorization endpoint with the scope `PIS:<paymentId>`) and, when the TPP
//! gave a `TPP-Redirect-URI`, `scaRedirect` (the bank's own approval page for that payment,
//! which sends the customer back to that URI, or to `TPP-Nok-Redirect-URI` on a refusal).
//! Approving executes the payment on the shared ledger at once: `RCVD` → `ACTC` → `ACSP` →
//! `ACSC` on the sandbox clock (an instant payment is `ACSC` at once), or `RJCT` when the
//! bank refuses it. NextGenPSD2 1.3 status answers have no reason field: the sandbox gives
//! the ISO 20022 reason code as the code of a `WARNING` entry of `tppMessages` (and words in
//! `psuMessage`, which TPPs must not parse).
//!
//! Bank-side idempotency: a creation request with an `X-Request-ID` the bank has seen, for the
//! same product and body, answers the payment created then (nothing is created twice); with
//! another body it is refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Bank, PSU_ID, TppError, X_REQUEST_ID, require_request_id};
use crate::customers::{self, Customer};
use crate::ledger::compact_iban;
use crate::oauth::BindError;
use crate::payments::{Order, Payment, Stage, check_currency, parse_amount};
use crate::plumbing::{escape_html, found, header_text, no_store, parameters};
use crate::scaffold::ApiError;

/// The OAuth scope naming a payment: `PIS:<paymentId>`.
pub(super) const SCOPE_PREFIX: &str = "PIS:";
/// The SEPA credit transfer product.
const SCT: &str = "sepa-credit-transfers";
/// The SEPA instant credit transfer product.
const INSTANT_SCT: &str = "instant-sepa-credit-transfers";
const TPP_REDIRECT_URI: &str = "tpp-redirect-uri";
const TPP_NOK_REDIRECT_URI: &str = "tpp-nok-redirect-uri";

fn instant(product: &str) -> Result<bool, TppError> {
    match product {
        SCT => Ok(false),
        INSTANT_SCT => Ok(true),
        _ => Err(ApiError::coded(
            StatusCode::NOT_FOUND,
            "PRODUCT_UNKNOWN",
            "this bank offers sepa-credit-transfers and instant-sepa-credit-transfers",
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountReference {
    iban: Option<String>,
}

#[derive(Deserialize)]
struct Amount {
    currency: String,
    /// A string in the standard; its text is read exactly either way.
    amount: Box<RawValue>,
}

/// `paymentInitiation_json` of the SEPA products.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Initiation {
    end_to_end_identification: Option<String>,
    debtor_account: Option<AccountReference>,
    instructed_amount: Amount,
    creditor_account: AccountReference,
    creditor_name: String,
    remittance_information_unstructured: Option<String>,
}

fn parse_order(body: &[u8], instant: bool) -> Result<Order, TppError> {
    let body: Initiation = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("payment initiation: {error}")))?;
    let amount = parse_amount(&body.instructed_amount.amount)
        .map_err(|error| ApiError::bad_request(format!("instructedAmount: {error}")))?;
    check_currency(&body.instructed_amount.currency)
        .map_err(|error| ApiError::bad_request(format!("instructedAmount: {error}")))?;
    let creditor_iban = body
        .creditor_account
        .iban
        .as_deref()
        .map(compact_iban)
        .filter(|iban| iban.len() >= 15)
        .ok_or_else(|| ApiError::bad_request("creditorAccount must name an IBAN"))?;
    if body.creditor_name.trim().is_empty() {
        return Err(ApiError::bad_request("creditorName is empty"));
    }
    Ok(Order {
        end_to_end_id: body.end_to_end_identification,
        amount,
        currency: body.instructed_amount.currency,
        creditor_iban,
        creditor_name: body.creditor_name,
        remittance: body.remittance_information_unstructured,
        instant,
        debtor_iban: body
            .debtor_account
            .and_then(|account| account.iban)
            .map(|iban| compact_iban(&iban)),
    })
}

/// `POST /v1/payments/{product}`.
pub(super) async fn create(
    State(bank): State<Arc<Bank>>,
    Path(product): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TppError> {
    require_request_id(&headers)?;
    let instant = instant(&product)?;
    let order = parse_order(&body, instant)?;
    let customer = match header_text(&headers, PSU_ID) {
        Some(id) => customers::find(id).ok_or_else(|| {
            ApiError::coded(
                StatusCode::BAD_REQUEST,
                "PSU_CREDENTIALS_INVALID",
                "unknown PSU-ID",
            )
        })?,
        None => customers::default_customer(),
    };
    let key = header_text(&headers, X_REQUEST_ID);
    let (id, _) = bank
        .payments
        .create(key, &product, order, customer, false)
        .map_err(|_| {
            ApiError::coded(
                StatusCode::BAD_REQUEST,
                "FORMAT_ERROR",
                "X-Request-ID was used for another payment",
            )
        })?;
    remember_redirects(&bank, &id, &headers);
    let payment = bank
        .payments
        .get(&id)
        .ok_or_else(|| ApiError::internal("the payment vanished"))?;
    let (status, _) = payment.status(bank.payments.now());
    let origin = bank.auth.origin();
    let self_href = format!("/v1/payments/{product}/{id}");
    let mut links = Map::new();
    links.insert(
        "scaOAuth".into(),
        json!({"href": format!("{origin}/.well-known/oauth-authorization-server")}),
    );
    if redirects(&bank, &id).is_some() {
        links.insert(
            "scaRedirect".into(),
            json!({"href": format!("{origin}{self_href}/sca")}),
        );
    }
    links.insert("self".into(), json!({"href": self_href}));
    links.insert(
        "status".into(),
        json!({"href": format!("{self_href}/status")}),
    );
    let body = json!({
        "transactionStatus": status,
        "paymentId": id,
        "_links": links,
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let response_headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("{origin}{self_href}")) {
        response_headers.insert(header::LOCATION, location);
    }
    response_headers.insert(
        "aspsp-sca-approach",
        HeaderValue::from_static(if redirects(&bank, &id).is_some() {
            "REDIRECT"
        } else {
            "OAUTH"
        }),
    );
    Ok(response)
}

/// The payment `id` of `product`; a payment of another product is not found under this one.
fn find(bank: &Bank, product: &str, id: &str) -> Result<Payment, TppError> {
    instant(product)?;
    bank.payments
        .get(id)
        .filter(|payment| payment.product == product)
        .ok_or_else(|| {
            ApiError::coded(StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN", "no such payment")
        })
}

fn status_json(bank: &Bank, payment: &Payment) -> Map<String, Value> {
    let (status, reason) = payment.status(bank.payments.now());
    let mut object = Map::new();
    object.insert("transactionStatus".into(), status.into());
    if let Some(reason) = reason {
        object.insert(
            "psuMessage".into(),
            format!("the payment was rejected ({reason})").into(),
        );
        // NextGenPSD2 status answers have no reason field: the ISO 20022 reason code goes in
        // a message of category WARNING (an ERROR entry would make the answer an error).
        object.insert(
            "tppMessages".into(),
            json!([{
                "category": "WARNING",
                "code": reason,
                "text": "the payment was rejected",
            }]),
        );
    }
    object
}

/// `GET /v1/payments/{product}/{paymentId}/status`.
pub(super) async fn status(
    State(bank): State<Arc<Bank>>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, TppError> {
    require_request_id(&headers)?;
    let payment = find(&bank, &product, &id)?;
    let mut object = status_json(&bank, &payment);
    if let Some(iban) = payment.debtor().and_then(|account| account.iban.clone()) {
        object.insert("debtorAccount".into(), json!({ "iban": iban }));
    }
    Ok(Json(Value::Object(object)))
}

/// `GET /v1/payments/{product}/{paymentId}`.
pub(super) async fn read(
    State(bank): State<Arc<Bank>>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, TppError> {
    require_request_id(&headers)?;
    let payment = find(&bank, &product, &id)?;
    let order = &payment.order;
    let mut object = Map::new();
    if let Some(end_to_end) = &order.end_to_end_id {
        object.insert("endToEndIdentification".into(), end_to_end.clone().into());
    }
    if let Some(iban) = payment
        .debtor()
        .and_then(|account| account.iban.clone())
        .or_else(|| order.debtor_iban.clone())
    {
        object.insert("debtorAccount".into(), json!({ "iban": iban }));
    }
    object.insert(
        "instructedAmount".into(),
        json!({"currency": order.currency, "amount": order.amount.to_string()}),
    );
    object.insert(
        "creditorAccount".into(),
        json!({"iban": order.creditor_iban}),
    );
    object.insert("creditorName".into(), order.creditor_name.clone().into());
    if let Some(remittance) = &order.remittance {
        object.insert(
            "remittanceInformationUnstructured".into(),
            remittance.clone().into(),
        );
    }
    object.insert(
        "requestedExecutionTime".into(),
        payment
            .created_at
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .into(),
    );
    object.extend(status_json(&bank, &payment));
    Ok(Json(Value::Object(object)))
}

/// `DELETE /v1/payments/{product}/{paymentId}`: cancels a payment not yet approved.
pub(super) async fn cancel(
    State(bank): State<Arc<Bank>>,
    Path((product, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, TppError> {
    require_request_id(&headers)?;
    find(&bank, &product, &id)?;
    match bank.payments.cancel(&id) {
        Some(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "CANCELLATION_INVALID",
            "the payment can no longer be cancelled",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The redirect approach: the bank's own approval page for one payment

/// The TPP's redirect URIs of payment `id`, when it gave them at creation.
fn redirects(bank: &Bank, id: &str) -> Option<(String, Option<String>)> {
    bank.payments.get(id)?.redirect_uris
}

fn remember_redirects(bank: &Bank, id: &str, headers: &HeaderMap) {
    let Some(ok) = header_text(headers, TPP_REDIRECT_URI).filter(|uri| is_http_url(uri)) else {
        return;
    };
    let nok = header_text(headers, TPP_NOK_REDIRECT_URI)
        .filter(|uri| is_http_url(uri))
        .map(str::to_owned);
    bank.payments.annotate(id, |payment| {
        payment.redirect_uris = Some((ok.to_owned(), nok));
    });
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"))
}

/// `GET /v1/payments/{product}/{paymentId}/sca`: the approval page of the redirect approach.
pub(super) async fn sca_page(
    State(bank): State<Arc<Bank>>,
    Path((product, id)): Path<(String, String)>,
) -> Result<Response, TppError> {
    let payment = find(&bank, &product, &id)?;
    if redirects(&bank, &id).is_none() || !matches!(payment.stage, Stage::Received) {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "STATUS_INVALID",
            "the payment cannot be approved here",
        ));
    }
    let options: String = customers::CUSTOMERS
        .iter()
        .map(|customer| {
            let selected = if customer.id == payment.customer.id {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                escape_html(&customer.id),
                escape_html(&customer.name)
            )
        })
        .collect();
    let items: String = payment
        .items()
        .iter()
        .map(|item| format!("<li>{}</li>", escape_html(item)))
        .collect();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sandbox Bank: approve a payment</title></head><body>\n\
         <h1>Sandbox Bank</h1>\n<p>A third party asks to make a payment, once:</p>\
         <ul>{items}</ul>\n<form method=\"post\">\n\
         <p><label>Signed in as <select name=\"customer\">{options}</select></label></p>\n\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form></body></html>\n"
    );
    Ok((no_store(), Html(page)).into_response())
}

/// `POST /v1/payments/{product}/{paymentId}/sca`: the customer's decision; back to the TPP.
pub(super) async fn sca_decision(
    State(bank): State<Arc<Bank>>,
    Path((product, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, TppError> {
    find(&bank, &product, &id)?;
    let (ok, nok) = redirects(&bank, &id).ok_or_else(|| {
        ApiError::coded(
            StatusCode::BAD_REQUEST,
            "STATUS_INVALID",
            "the payment has no redirect approach",
        )
    })?;
    let form: HashMap<String, String> = parameters(&body).map_err(ApiError::bad_request)?;
    let customer: &'static Customer = form
        .get("customer")
        .and_then(|id| customers::find(id))
        .unwrap_or_else(customers::default_customer);
    let target = match form.get("decision").map(String::as_str) {
        Some("approve") => {
            if !bank.payments.approve(&id, customer) {
                return Err(ApiError::coded(
                    StatusCode::BAD_REQUEST,
                    "STATUS_INVALID",
                    "the payment can no longer be approved",
                ));
            }
            ok
        }
        Some("deny") => {
            bank.payments.deny(&id);
            nok.unwrap_or(ok)
        }
        _ => return Err(ApiError::bad_request("decide: approve or deny")),
    };
    let target = url::Url::parse(&target)
        .map_err(|_| ApiError::bad_request("the TPP's redirect URI is not usable"))?;
    Ok(found(&target))
}

// ---------------------------------------------------------------------------------------------
// Authorization requests name the payment as the scope `PIS:<paymentId>`

/// The payment the scope names, if the customer can still approve it; `None` when the scope
/// names no payment.
pub(super) fn bind(
    bank: &Bank,
    parameters: &HashMap<String, String>,
) -> Option<Result<String, BindError>> {
    let payment_ids: Vec<&str> = parameters
        .get("scope")
        .map(String::as_str)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|scope| scope.strip_prefix(SCOPE_PREFIX))
        .collect();
    match payment_ids[..] {
        [] => None,
        [id] if bank.payments.approvable(id) => Some(Ok(id.to_owned())),
        [id] if bank.payments.contains(id) => Some(Err(BindError::invalid_scope(
            "the payment can no longer be authorised",
        ))),
        [_] => Some(Err(BindError::invalid_scope("unknown payment"))),
        _ => Some(Err(BindError::invalid_scope(
            "scope must name exactly one payment as PIS:<paymentId>",
        ))),
    }
}
