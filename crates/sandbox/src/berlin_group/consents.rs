//! The Berlin Group consent resource: `POST /v1/consents` (validated into what it lets the
//! TPP read), `GET /v1/consents/{id}` (the `access` echoed byte for byte), its status, its
//! deletion by the TPP, and how an authorization request names it: the scope
//! `AIS:<consentId>`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Bank, PSU_ID, TppError, require_request_id};
use crate::customers::{self, Account, Customer};
use crate::oauth::BindError;
use crate::plumbing::{header_text, today};
use crate::scaffold::{self, ApiError, parse_date};

/// The OAuth scope naming a consent: `AIS:<consentId>`.
pub(super) const SCOPE_PREFIX: &str = "AIS:";

/// Where a consent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConsentStatus {
    Received,
    Valid,
    Rejected,
    TerminatedByTpp,
    RevokedByPsu,
    Expired,
}

impl ConsentStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Received => "received",
            ConsentStatus::Valid => "valid",
            ConsentStatus::Rejected => "rejected",
            ConsentStatus::TerminatedByTpp => "terminatedByTpp",
            ConsentStatus::RevokedByPsu => "revokedByPsu",
            ConsentStatus::Expired => "expired",
        }
    }
}

/// A consent resource.
#[derive(Debug, Clone)]
pub struct Consent {
    /// The PSU it is (or will be) approved as.
    pub(super) customer: &'static Customer,
    pub(super) access: Access,
    /// The `access` object as the TPP sent it, for `GET /v1/consents/{id}`.
    pub(super) access_json: Box<RawValue>,
    pub(super) recurring: bool,
    pub(super) valid_until: NaiveDate,
    pub(super) frequency_per_day: u32,
    pub(super) status: ConsentStatus,
    pub(super) last_action: NaiveDate,
}

impl Consent {
    /// The status as of `today`: a live consent past its `validUntil` has expired.
    pub(super) fn status(&self, today: NaiveDate) -> ConsentStatus {
        match self.status {
            ConsentStatus::Received | ConsentStatus::Valid if today > self.valid_until => {
                ConsentStatus::Expired
            }
            status => status,
        }
    }
}

/// What a consent lets the TPP read.
#[derive(Debug, Clone, Default)]
pub(super) struct Access {
    pub(super) accounts: Coverage,
    pub(super) balances: Coverage,
    pub(super) transactions: Coverage,
    pub(super) owner_name: Coverage,
}

impl Access {
    /// Whether the account shows up in the account list at all.
    pub(super) fn lists(&self, account: &Account) -> bool {
        self.accounts.covers(account)
            || self.balances.covers(account)
            || self.transactions.covers(account)
    }
}

/// Which accounts one kind of access covers.
#[derive(Debug, Clone, Default)]
pub(super) enum Coverage {
    #[default]
    Nothing,
    /// Every account of the customer (global and bank-offered consents).
    All,
    Listed(Vec<AccountReference>),
}

impl Coverage {
    pub(super) fn covers(&self, account: &Account) -> bool {
        match self {
            Coverage::Nothing => false,
            Coverage::All => true,
            Coverage::Listed(references) => references
                .iter()
                .any(|reference| reference.matches(account)),
        }
    }

    fn describe(&self) -> Option<&'static str> {
        match self {
            Coverage::Nothing => None,
            Coverage::All => Some("all accounts"),
            Coverage::Listed(_) => Some("selected accounts"),
        }
    }
}

/// An account reference in a consent request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AccountReference {
    iban: Option<String>,
    bban: Option<String>,
    pan: Option<String>,
    masked_pan: Option<String>,
    msisdn: Option<String>,
    currency: Option<String>,
}

impl AccountReference {
    fn has_identifier(&self) -> bool {
        self.iban.is_some()
            || self.bban.is_some()
            || self.pan.is_some()
            || self.masked_pan.is_some()
            || self.msisdn.is_some()
    }

    fn matches(&self, account: &Account) -> bool {
        let pan = self.masked_pan.as_ref().or(self.pan.as_ref());
        account.is_named_by(
            self.iban.as_deref(),
            pan.map(String::as_str),
            self.currency.as_deref(),
        )
    }
}

/// `POST /v1/consents` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsentBody {
    /// Kept as sent, to echo it; parsed as [`AccessBody`].
    access: Box<RawValue>,
    recurring_indicator: Flag,
    valid_until: String,
    frequency_per_day: Count,
    combined_service_indicator: Option<Flag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessBody {
    accounts: Option<Vec<AccountReference>>,
    balances: Option<Vec<AccountReference>>,
    transactions: Option<Vec<AccountReference>>,
    available_accounts: Option<String>,
    available_accounts_with_balance: Option<String>,
    all_psd2: Option<String>,
    additional_information: Option<AdditionalInformation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdditionalInformation {
    owner_name: Option<Vec<AccountReference>>,
}

/// A boolean, also accepted as the strings `"true"` and `"false"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn value(&self) -> Option<bool> {
        match self {
            Flag::Bool(value) => Some(*value),
            Flag::Text(text) => match text.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
        }
    }
}

/// A whole number, also accepted as a string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum Count {
    Number(u64),
    Text(String),
}

impl Count {
    fn value(&self) -> Option<u64> {
        match self {
            Count::Number(value) => Some(*value),
            Count::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// Validates a consent request into a new consent for `customer`.
fn parse_consent(
    body: &[u8],
    customer: &'static Customer,
    today: NaiveDate,
) -> Result<Consent, TppError> {
    let body: ConsentBody = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("consent request: {error}")))?;
    let access: AccessBody = serde_json::from_str(body.access.get())
        .map_err(|error| ApiError::bad_request(format!("access: {error}")))?;
    let recurring = body
        .recurring_indicator
        .value()
        .ok_or_else(|| ApiError::bad_request("recurringIndicator must be a boolean"))?;
    let valid_until = parse_date("validUntil", &body.valid_until)?;
    if valid_until < today {
        return Err(ApiError::bad_request("validUntil lies in the past"));
    }
    let frequency_per_day = body
        .frequency_per_day
        .value()
        .and_then(|count| u32::try_from(count).ok())
        .filter(|count| *count >= 1)
        .ok_or_else(|| ApiError::bad_request("frequencyPerDay must be a whole number from 1"))?;
    if !recurring && frequency_per_day != 1 {
        return Err(ApiError::bad_request(
            "frequencyPerDay must be 1 for a one-off consent",
        ));
    }
    let combined = body
        .combined_service_indicator
        .map(|flag| flag.value())
        .unwrap_or(Some(false))
        .ok_or_else(|| ApiError::bad_request("combinedServiceIndicator must be a boolean"))?;
    if combined {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "SESSIONS_NOT_SUPPORTED",
            "combined AIS/PIS sessions are not supported",
        ));
    }
    Ok(Consent {
        customer,
        access: parse_access(access, recurring)?,
        access_json: body.access,
        recurring,
        valid_until,
        frequency_per_day,
        status: ConsentStatus::Received,
        last_action: today,
    })
}

fn parse_access(body: AccessBody, recurring: bool) -> Result<Access, TppError> {
    let all_accounts = |name: &str, value: &str| -> Result<bool, TppError> {
        match value {
            "allAccounts" => Ok(false),
            "allAccountsWithOwnerName" => Ok(true),
            _ => Err(ApiError::bad_request(format!(
                "{name} must be allAccounts or allAccountsWithOwnerName"
            ))),
        }
    };
    let owner = |with_owner: bool| {
        if with_owner {
            Coverage::All
        } else {
            Coverage::Nothing
        }
    };
    let detailed = body.accounts.is_some()
        || body.balances.is_some()
        || body.transactions.is_some()
        || body.additional_information.is_some();
    let global = [
        &body.available_accounts,
        &body.available_accounts_with_balance,
        &body.all_psd2,
    ];
    match (
        global.iter().filter(|value| value.is_some()).count(),
        detailed,
    ) {
        (0, false) => return Err(ApiError::bad_request("access names nothing")),
        (0, true) => {}
        (1, false) => {}
        _ => {
            return Err(ApiError::bad_request(
                "access combines availableAccounts, allPsd2 or account lists",
            ));
        }
    }
    if let Some(value) = &body.all_psd2 {
        return Ok(Access {
            accounts: Coverage::All,
            balances: Coverage::All,
            transactions: Coverage::All,
            owner_name: owner(all_accounts("allPsd2", value)?),
        });
    }
    let one_off = |name: &str| {
        if recurring {
            Err(ApiError::bad_request(format!(
                "{name} consents are one-off: recurringIndicator must be false"
            )))
        } else {
            Ok(())
        }
    };
    if let Some(value) = &body.available_accounts {
        one_off("availableAccounts")?;
        return Ok(Access {
            accounts: Coverage::All,
            owner_name: owner(all_accounts("availableAccounts", value)?),
            ..Access::default()
        });
    }
    if let Some(value) = &body.available_accounts_with_balance {
        one_off("availableAccountsWithBalance")?;
        return Ok(Access {
            accounts: Coverage::All,
            balances: Coverage::All,
            owner_name: owner(all_accounts("availableAccountsWithBalance", value)?),
            ..Access::default()
        });
    }
    let coverage = |name: &str, list: Option<Vec<AccountReference>>| match list {
        None => Ok(Coverage::Nothing),
        Some(list) if list.is_empty() => Ok(Coverage::All),
        Some(list) if list.iter().all(AccountReference::has_identifier) => {
            Ok(Coverage::Listed(list))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "{name}: every account reference needs an identifier"
        ))),
    };
    Ok(Access {
        accounts: coverage("accounts", body.accounts)?,
        balances: coverage("balances", body.balances)?,
        transactions: coverage("transactions", body.transactions)?,
        owner_name: coverage(
            "additionalInformation.ownerName",
            body.additional_information
                .and_then(|information| information.owner_name),
        )?,
    })
}

/// `POST /v1/consents`: a consent for the PSU of `PSU-ID` (the default customer without one).
pub(super) async fn create(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TppError> {
    require_request_id(&headers)?;
    let customer = match header_text(&headers, PSU_ID) {
        None => Some(customers::default_customer()),
        Some(psu_id) => customers::find(psu_id),
    }
    .ok_or_else(|| {
        ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
            "unknown PSU-ID",
        )
    })?;
    let consent = parse_consent(&body, customer, today())?;
    let id = bank.file(consent);
    let location = format!("/v1/consents/{id}");
    let body = json!({
        "consentStatus": ConsentStatus::Received.as_str(),
        "consentId": id,
        "_links": {
            "scaOAuth": {"href": format!("{}/.well-known/oauth-authorization-server", bank.auth.origin())},
            "self": {"href": location},
            "status": {"href": format!("{location}/status")},
        }
    });
    let location = HeaderValue::from_str(&location)
        .map_err(|_| ApiError::internal("consent id is not a header value"))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

fn consent_unknown() -> TppError {
    ApiError::forbidden("no such consent")
}

/// `GET /v1/consents/{id}` answer; `access` is echoed byte for byte.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConsentInformation {
    access: Box<RawValue>,
    recurring_indicator: bool,
    valid_until: NaiveDate,
    frequency_per_day: u32,
    last_action_date: NaiveDate,
    consent_status: &'static str,
    #[serde(rename = "_links")]
    links: Value,
}

/// `GET /v1/consents/{id}`.
pub(super) async fn read(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ConsentInformation>, TppError> {
    require_request_id(&headers)?;
    let consent = bank.consent(&id).ok_or_else(consent_unknown)?;
    Ok(Json(ConsentInformation {
        consent_status: consent.status(today()).as_str(),
        access: consent.access_json,
        recurring_indicator: consent.recurring,
        valid_until: consent.valid_until,
        frequency_per_day: consent.frequency_per_day,
        last_action_date: consent.last_action,
        links: json!({"account": {"href": "/v1/accounts"}}),
    }))
}

/// `GET /v1/consents/{id}/status`.
pub(super) async fn status(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, TppError> {
    require_request_id(&headers)?;
    let status = bank
        .consents()
        .get(&id)
        .map(|consent| consent.status(today()))
        .ok_or_else(consent_unknown)?;
    Ok(Json(json!({"consentStatus": status.as_str()})))
}

/// `DELETE /v1/consents/{id}`: terminated by the TPP.
pub(super) async fn delete(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, TppError> {
    require_request_id(&headers)?;
    {
        let mut consents = bank.consents();
        let consent = consents.get_mut(&id).ok_or_else(consent_unknown)?;
        consent.status = ConsentStatus::TerminatedByTpp;
        consent.last_action = today();
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Authorization requests name the consent as the scope `AIS:<consentId>`

/// The consent the scope names (or, at a bank that takes it so, the RFC 9396
/// `authorization_details`), if it can still be authorised.
pub(super) fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
    let in_scope: Vec<String> = parameters
        .get("scope")
        .map(String::as_str)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|scope| scope.strip_prefix(SCOPE_PREFIX))
        .map(str::to_owned)
        .collect();
    let consent_ids = match bank.auth.consent_detail_type() {
        None => in_scope,
        Some(_) if !in_scope.is_empty() => {
            return Err(BindError::invalid_scope(
                "this bank takes the consent in authorization_details, not as a scope",
            ));
        }
        Some(kind) => in_details(parameters, kind)?,
    };
    let [consent_id] = &consent_ids[..] else {
        return Err(BindError::invalid_scope(
            "the request must name exactly one consent",
        ));
    };
    let status = bank
        .consents()
        .get(consent_id)
        .map(|consent| consent.status(today()));
    match status {
        Some(ConsentStatus::Received | ConsentStatus::Valid) => Ok(consent_id.to_owned()),
        Some(_) => Err(BindError::invalid_scope(
            "the consent can no longer be authorised",
        )),
        None => Err(BindError::invalid_scope("unknown consent")),
    }
}

/// The consent ids RFC 9396 `authorization_details` of type `kind` name
/// (`[{"type": kind, "consentId": …}]`).
fn in_details(parameters: &HashMap<String, String>, kind: &str) -> Result<Vec<String>, BindError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Detail {
        #[serde(rename = "type")]
        kind: String,
        consent_id: Option<String>,
    }
    let text = parameters
        .get("authorization_details")
        .ok_or_else(|| BindError::invalid_request("authorization_details must name the consent"))?;
    let details: Vec<Detail> = serde_json::from_str(text).map_err(|_| BindError {
        error: "invalid_authorization_details",
        description: "authorization_details must be a JSON array of objects with a type".into(),
    })?;
    Ok(details
        .into_iter()
        .filter(|detail| detail.kind == kind)
        .filter_map(|detail| detail.consent_id)
        .collect())
}

impl scaffold::Consent for Consent {
    fn customer(&self) -> &'static Customer {
        self.customer
    }

    fn approvable(&self) -> bool {
        matches!(
            self.status(today()),
            ConsentStatus::Received | ConsentStatus::Valid
        )
    }

    fn approve(&mut self, customer: &'static Customer) {
        self.customer = customer;
        self.status = ConsentStatus::Valid;
        self.last_action = today();
    }

    fn reject(&mut self) {
        self.status = ConsentStatus::Rejected;
        self.last_action = today();
    }

    fn usable(&self) -> bool {
        self.status(today()) == ConsentStatus::Valid
    }

    fn end(&mut self, ending: scaffold::Ending) {
        self.status = match ending {
            scaffold::Ending::Revoked => ConsentStatus::RevokedByPsu,
            scaffold::Ending::Expired => ConsentStatus::Expired,
        };
    }

    fn items(&self) -> Vec<String> {
        let access = &self.access;
        [
            ("the list of your accounts", access.accounts.describe()),
            ("balances", access.balances.describe()),
            ("transactions", access.transactions.describe()),
            ("the account owner's name", access.owner_name.describe()),
        ]
        .iter()
        .filter_map(|(what, coverage)| coverage.map(|coverage| format!("{what} ({coverage})")))
        .collect()
    }

    fn terms(&self) -> String {
        if self.recurring {
            format!(
                "until {}, up to {} times a day",
                self.valid_until, self.frequency_per_day
            )
        } else {
            format!("until {}, once", self.valid_until)
        }
    }

    fn token_fields(&self, id: &str) -> Map<String, Value> {
        Map::from_iter([("scope".into(), format!("{SCOPE_PREFIX}{id}").into())])
    }
}
