//! The Berlin Group (NextGenPSD2 1.3.x) sandbox bank: the consent resource, an OAuth2
//! authorization server (authorization code with PKCE S256, refresh, revocation) and the account
//! information endpoints, serving the synthetic customers of [`super::customers`].
//!
//! State lives in memory behind one `std::sync::Mutex`, which no handler holds across an
//! `.await` (handlers do their bookkeeping synchronously, then build the response).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::SandboxConfig;
use super::customers::{
    self, Account, AccountKind, AccountStatus, AsOf, BalanceKind, Customer, Money,
    TransactionStatus,
};
use super::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use super::plumbing::{at_precision, header_text, parameters, today};

const X_REQUEST_ID: &str = "x-request-id";
const CONSENT_ID: &str = "consent-id";
const PSU_ID: &str = "psu-id";
/// The OAuth scope naming a consent: `AIS:<consentId>`.
const SCOPE_PREFIX: &str = "AIS:";
/// Booked transactions per page.
pub const PAGE_SIZE: usize = 10;
/// The most decimal places a Berlin Group amount has (`-?[0-9]{1,14}(\.[0-9]{1,3})?`).
const MAX_DECIMALS: u32 = 3;

/// The sandbox's routes; `origin` is where it listens (`http://127.0.0.1:<port>`).
pub fn router(config: &SandboxConfig, origin: &str) -> Router {
    app(Arc::new(Bank::new(config, origin)))
}

fn app(bank: Arc<Bank>) -> Router {
    Router::new()
        .merge(oauth::routes::<Bank>())
        .route("/v1/consents", post(create_consent))
        .route("/v1/consents/{id}", get(consent).delete(delete_consent))
        .route("/v1/consents/{id}/status", get(consent_status))
        .route("/v1/accounts", get(accounts))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/accounts/{id}/balances", get(balances))
        .route("/v1/accounts/{id}/transactions", get(transactions))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            bank.clone(),
            oauth::sender_constraint::<Bank>,
        ))
        .layer(middleware::from_fn(echo_request_id))
        .with_state(bank)
}

/// The sandbox bank: its authorization server and its consents.
struct Bank {
    auth: AuthServer,
    consents: Mutex<HashMap<String, Consent>>,
}

impl Bank {
    fn new(config: &SandboxConfig, origin: &str) -> Bank {
        Bank {
            auth: AuthServer::new(config, origin, "Sandbox Bank"),
            consents: Mutex::new(HashMap::new()),
        }
    }

    /// The consents; a panic elsewhere while they were held leaves them usable.
    fn consents(&self) -> MutexGuard<'_, HashMap<String, Consent>> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A Berlin Group error: HTTP status and one `tppMessages` entry.
#[derive(Debug)]
struct TppError {
    status: StatusCode,
    code: &'static str,
    text: String,
}

impl TppError {
    fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> TppError {
        TppError {
            status,
            code,
            text: text.into(),
        }
    }

    fn format(text: impl Into<String>) -> TppError {
        TppError::new(StatusCode::BAD_REQUEST, "FORMAT_ERROR", text)
    }

    fn consent_invalid(text: impl Into<String>) -> TppError {
        TppError::new(StatusCode::UNAUTHORIZED, "CONSENT_INVALID", text)
    }

    fn token_invalid(text: impl Into<String>) -> TppError {
        TppError::new(StatusCode::UNAUTHORIZED, "TOKEN_INVALID", text)
    }

    fn resource_unknown() -> TppError {
        TppError::new(StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN", "no such account")
    }

    fn internal(text: impl Into<String>) -> TppError {
        TppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            text,
        )
    }
}

impl IntoResponse for TppError {
    fn into_response(self) -> Response {
        let body = json!({
            "tppMessages": [{"category": "ERROR", "code": self.code, "text": self.text}]
        });
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> TppError {
    TppError::new(
        StatusCode::NOT_FOUND,
        "RESOURCE_UNKNOWN",
        "no such endpoint",
    )
}

/// Every answer carries the caller's `X-Request-ID`, as the standard asks.
async fn echo_request_id(request: Request, next: Next) -> Response {
    let request_id = request.headers().get(X_REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    if let Some(request_id) = request_id {
        response.headers_mut().insert(X_REQUEST_ID, request_id);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Request helpers

/// Checks the mandatory `X-Request-ID` (a UUID).
fn require_request_id(headers: &HeaderMap) -> Result<(), TppError> {
    let value = headers
        .get(X_REQUEST_ID)
        .ok_or_else(|| TppError::format("X-Request-ID header is missing"))?;
    value
        .to_str()
        .ok()
        .and_then(|text| uuid::Uuid::parse_str(text).ok())
        .map(|_| ())
        .ok_or_else(|| TppError::format("X-Request-ID must be a UUID"))
}

fn parse_flag(name: &str, text: Option<&String>) -> Result<bool, TppError> {
    match text.map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(TppError::format(format!("{name} must be true or false"))),
    }
}

fn parse_date(name: &str, text: &str) -> Result<NaiveDate, TppError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| TppError::format(format!("{name} must be a date (YYYY-MM-DD)")))
}

// ---------------------------------------------------------------------------------------------
// Consents

/// Where a consent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsentStatus {
    Received,
    Valid,
    Rejected,
    TerminatedByTpp,
    Expired,
}

impl ConsentStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Received => "received",
            ConsentStatus::Valid => "valid",
            ConsentStatus::Rejected => "rejected",
            ConsentStatus::TerminatedByTpp => "terminatedByTpp",
            ConsentStatus::Expired => "expired",
        }
    }
}

/// A consent resource.
#[derive(Debug, Clone)]
struct Consent {
    /// The PSU it is (or will be) approved as.
    customer: &'static Customer,
    access: Access,
    /// The `access` object as the TPP sent it, for `GET /v1/consents/{id}`.
    access_json: Box<RawValue>,
    recurring: bool,
    valid_until: NaiveDate,
    frequency_per_day: u32,
    status: ConsentStatus,
    last_action: NaiveDate,
}

impl Consent {
    /// The status as of `today`: a live consent past its `validUntil` has expired.
    fn status(&self, today: NaiveDate) -> ConsentStatus {
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
struct Access {
    accounts: Coverage,
    balances: Coverage,
    transactions: Coverage,
    owner_name: Coverage,
}

impl Access {
    /// Whether the account shows up in the account list at all.
    fn lists(&self, account: &Account) -> bool {
        self.accounts.covers(account)
            || self.balances.covers(account)
            || self.transactions.covers(account)
    }
}

/// Which accounts one kind of access covers.
#[derive(Debug, Clone, Default)]
enum Coverage {
    #[default]
    Nothing,
    /// Every account of the customer (global and bank-offered consents).
    All,
    Listed(Vec<AccountReference>),
}

impl Coverage {
    fn covers(&self, account: &Account) -> bool {
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
struct AccountReference {
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
        let compact = |text: &str| -> String {
            text.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase()
        };
        let iban = match (&self.iban, account.iban) {
            (Some(wanted), Some(iban)) => compact(wanted) == iban,
            _ => false,
        };
        let pan = match (
            self.masked_pan.as_ref().or(self.pan.as_ref()),
            account.masked_pan,
        ) {
            (Some(wanted), Some(pan)) => wanted.trim() == pan,
            _ => false,
        };
        let currency = self
            .currency
            .as_ref()
            .is_none_or(|currency| currency.eq_ignore_ascii_case(account.currency));
        (iban || pan) && currency
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
        .map_err(|error| TppError::format(format!("consent request: {error}")))?;
    let access: AccessBody = serde_json::from_str(body.access.get())
        .map_err(|error| TppError::format(format!("access: {error}")))?;
    let recurring = body
        .recurring_indicator
        .value()
        .ok_or_else(|| TppError::format("recurringIndicator must be a boolean"))?;
    let valid_until = parse_date("validUntil", &body.valid_until)?;
    if valid_until < today {
        return Err(TppError::format("validUntil lies in the past"));
    }
    let frequency_per_day = body
        .frequency_per_day
        .value()
        .and_then(|count| u32::try_from(count).ok())
        .filter(|count| *count >= 1)
        .ok_or_else(|| TppError::format("frequencyPerDay must be a whole number from 1"))?;
    if !recurring && frequency_per_day != 1 {
        return Err(TppError::format(
            "frequencyPerDay must be 1 for a one-off consent",
        ));
    }
    let combined = body
        .combined_service_indicator
        .map(|flag| flag.value())
        .unwrap_or(Some(false))
        .ok_or_else(|| TppError::format("combinedServiceIndicator must be a boolean"))?;
    if combined {
        return Err(TppError::new(
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
            _ => Err(TppError::format(format!(
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
        (0, false) => return Err(TppError::format("access names nothing")),
        (0, true) => {}
        (1, false) => {}
        _ => {
            return Err(TppError::format(
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
            Err(TppError::format(format!(
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
        Some(_) => Err(TppError::format(format!(
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

async fn create_consent(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, TppError> {
    require_request_id(&headers)?;
    let customer = match header_text(&headers, PSU_ID) {
        None => customers::find(customers::DEFAULT_CUSTOMER),
        Some(psu_id) => customers::find(psu_id),
    }
    .ok_or_else(|| {
        TppError::new(
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
            "unknown PSU-ID",
        )
    })?;
    let consent = parse_consent(&body, customer, today())?;
    let id = uuid::Uuid::new_v4().to_string();
    bank.consents().insert(id.clone(), consent);
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
    let location = axum::http::HeaderValue::from_str(&location)
        .map_err(|_| TppError::internal("consent id is not a header value"))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

fn consent_unknown() -> TppError {
    TppError::new(StatusCode::FORBIDDEN, "CONSENT_UNKNOWN", "no such consent")
}

/// `GET /v1/consents/{id}` answer; `access` is echoed byte for byte.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConsentInformation {
    access: Box<RawValue>,
    recurring_indicator: bool,
    valid_until: NaiveDate,
    frequency_per_day: u32,
    last_action_date: NaiveDate,
    consent_status: &'static str,
    #[serde(rename = "_links")]
    links: Value,
}

async fn consent(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ConsentInformation>, TppError> {
    require_request_id(&headers)?;
    let consent = bank
        .consents()
        .get(&id)
        .cloned()
        .ok_or_else(consent_unknown)?;
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

async fn consent_status(
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

async fn delete_consent(
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
// Binding authorization requests to consents: the scope `AIS:<consentId>`

impl ConsentBinding for Bank {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let consent_ids: Vec<&str> = parameters
            .get("scope")
            .map(String::as_str)
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|scope| scope.strip_prefix(SCOPE_PREFIX))
            .collect();
        let [consent_id] = consent_ids[..] else {
            return Err(BindError::invalid_scope(
                "scope must name exactly one consent as AIS:<consentId>",
            ));
        };
        let status = self
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

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        let consent = self.consents().get(consent_id).cloned()?;
        let access = &consent.access;
        let items = [
            ("the list of your accounts", access.accounts.describe()),
            ("balances", access.balances.describe()),
            ("transactions", access.transactions.describe()),
            ("the account owner's name", access.owner_name.describe()),
        ]
        .iter()
        .filter_map(|(what, coverage)| coverage.map(|coverage| format!("{what} ({coverage})")))
        .collect();
        let terms = if consent.recurring {
            format!(
                "until {}, up to {} times a day",
                consent.valid_until, consent.frequency_per_day
            )
        } else {
            format!("until {}, once", consent.valid_until)
        };
        Some(ApprovalView {
            customer: consent.customer,
            items,
            terms,
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        let mut consents = self.consents();
        let Some(consent) = consents.get_mut(consent_id) else {
            return false;
        };
        if !matches!(
            consent.status(today()),
            ConsentStatus::Received | ConsentStatus::Valid
        ) {
            return false;
        }
        consent.customer = customer;
        consent.status = ConsentStatus::Valid;
        consent.last_action = today();
        true
    }

    fn deny(&self, consent_id: &str) {
        if let Some(consent) = self.consents().get_mut(consent_id) {
            consent.status = ConsentStatus::Rejected;
            consent.last_action = today();
        }
    }

    fn usable(&self, consent_id: &str) -> bool {
        self.consents()
            .get(consent_id)
            .is_some_and(|consent| consent.status(today()) == ConsentStatus::Valid)
    }

    fn token_fields(&self, consent_id: &str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("scope".into(), format!("{SCOPE_PREFIX}{consent_id}").into());
        fields
    }
}

// ---------------------------------------------------------------------------------------------
// Account information

/// What a data request may read: the consent's customer and access, checked just now.
struct Grant {
    customer: &'static Customer,
    access: Access,
}

impl Grant {
    /// One of the customer's accounts that the consent lists.
    fn account(&self, id: &str) -> Result<&'static Account, TppError> {
        let account = self
            .customer
            .account(id)
            .ok_or_else(TppError::resource_unknown)?;
        if self.access.lists(account) {
            Ok(account)
        } else {
            Err(TppError::consent_invalid(
                "the consent does not cover this account",
            ))
        }
    }
}

impl Bank {
    /// Checks `X-Request-ID`, `Consent-ID` and the bearer token of a data request.
    fn authorise(&self, headers: &HeaderMap) -> Result<Grant, TppError> {
        require_request_id(headers)?;
        let consent_id = header_text(headers, CONSENT_ID)
            .ok_or_else(|| TppError::format("Consent-ID header is missing"))?;
        let token = match self.auth.bearer(headers) {
            Ok(token) => token,
            Err(BearerError::Missing) => {
                return Err(TppError::token_invalid("bearer token is missing"));
            }
            Err(BearerError::Unknown) => {
                return Err(TppError::token_invalid("unknown access token"));
            }
            Err(BearerError::Expired) => {
                return Err(TppError::new(
                    StatusCode::UNAUTHORIZED,
                    "TOKEN_EXPIRED",
                    "access token expired",
                ));
            }
        };
        let consents = self.consents();
        let consent = consents.get(consent_id).ok_or_else(|| {
            TppError::new(
                StatusCode::BAD_REQUEST,
                "CONSENT_UNKNOWN",
                "no such consent",
            )
        })?;
        if token.consent_id.as_deref() != Some(consent_id) {
            return Err(TppError::token_invalid(
                "the token was not issued for this consent",
            ));
        }
        match consent.status(today()) {
            ConsentStatus::Valid => Ok(Grant {
                customer: consent.customer,
                access: consent.access.clone(),
            }),
            ConsentStatus::Expired => Err(TppError::new(
                StatusCode::UNAUTHORIZED,
                "CONSENT_EXPIRED",
                "the consent has expired",
            )),
            status => Err(TppError::consent_invalid(format!(
                "the consent is {}",
                status.as_str()
            ))),
        }
    }
}

fn cash_account_type(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::Current => "CACC",
        AccountKind::Savings => "SVGS",
        AccountKind::Card => "CARD",
    }
}

fn balance_type(kind: BalanceKind) -> &'static str {
    match kind {
        BalanceKind::ClosingBooked => "closingBooked",
        BalanceKind::OpeningBooked => "openingBooked",
        BalanceKind::InterimBooked => "interimBooked",
        BalanceKind::InterimAvailable => "interimAvailable",
        BalanceKind::Expected => "expected",
        BalanceKind::ForwardAvailable => "forwardAvailable",
        BalanceKind::Authorised => "authorised",
        BalanceKind::NonInvoiced => "nonInvoiced",
    }
}

/// An amount at the standard's precision (at most three decimals).
fn amount_json(money: &Money) -> Result<Value, TppError> {
    let amount = at_precision(money, MAX_DECIMALS)
        .map_err(|_| TppError::internal("sandbox data has a bad amount"))?;
    Ok(json!({"currency": money.currency, "amount": amount.to_string()}))
}

/// The account reference echoed in balance and transaction reports.
fn reference_json(account: &Account) -> Value {
    match (account.iban, account.masked_pan) {
        (Some(iban), _) => json!({"iban": iban, "currency": account.currency}),
        (None, Some(pan)) => json!({"maskedPan": pan, "currency": account.currency}),
        (None, None) => json!({"currency": account.currency}),
    }
}

fn balances_json(account: &Account) -> Result<Vec<Value>, TppError> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let today = today();
    account
        .balances
        .iter()
        .map(|balance| {
            let mut object = Map::new();
            object.insert("balanceAmount".into(), amount_json(&balance.money)?);
            object.insert("balanceType".into(), balance_type(balance.kind).into());
            if let Some(included) = balance.credit_limit_included {
                object.insert("creditLimitIncluded".into(), included.into());
            }
            match balance.as_of {
                AsOf::EndOfDay { days_ago } => {
                    let date = customers::days_before(today, days_ago);
                    object.insert("referenceDate".into(), date.to_string().into());
                }
                AsOf::Intraday => {
                    object.insert("lastChangeDateTime".into(), now.clone().into());
                }
            }
            Ok(Value::Object(object))
        })
        .collect()
}

fn account_json(account: &Account, grant: &Grant, with_balance: bool) -> Result<Value, TppError> {
    let mut object = Map::new();
    object.insert("resourceId".into(), account.id.into());
    if let Some(iban) = account.iban {
        object.insert("iban".into(), iban.into());
    }
    if let Some(pan) = account.masked_pan {
        object.insert("maskedPan".into(), pan.into());
    }
    object.insert("currency".into(), account.currency.into());
    object.insert("name".into(), account.name.into());
    object.insert("product".into(), account.product.into());
    object.insert(
        "cashAccountType".into(),
        cash_account_type(account.kind).into(),
    );
    let status = match account.status {
        AccountStatus::Enabled => "enabled",
        AccountStatus::Blocked => "blocked",
    };
    object.insert("status".into(), status.into());
    object.insert("bic".into(), account.bic.into());
    object.insert("usage".into(), "PRIV".into());
    if grant.access.owner_name.covers(account) {
        object.insert("ownerName".into(), grant.customer.name.into());
    }
    let balances_granted = grant.access.balances.covers(account);
    if with_balance && balances_granted {
        object.insert("balances".into(), balances_json(account)?.into());
    }
    let mut links = Map::new();
    if balances_granted {
        let href = format!("/v1/accounts/{}/balances", account.id);
        links.insert("balances".into(), json!({ "href": href }));
    }
    if grant.access.transactions.covers(account) {
        let href = format!("/v1/accounts/{}/transactions", account.id);
        links.insert("transactions".into(), json!({ "href": href }));
    }
    object.insert("_links".into(), links.into());
    Ok(Value::Object(object))
}

fn with_balance(query: Option<String>) -> Result<bool, TppError> {
    let parameters = parameters(query.unwrap_or_default().as_bytes()).map_err(TppError::format)?;
    parse_flag("withBalance", parameters.get("withBalance"))
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = bank.authorise(&headers)?;
    let with_balance = with_balance(query)?;
    let accounts = grant
        .customer
        .accounts
        .iter()
        .filter(|account| grant.access.lists(account))
        .map(|account| account_json(account, &grant, with_balance))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "accounts": accounts })))
}

async fn account(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = bank.authorise(&headers)?;
    let with_balance = with_balance(query)?;
    let account = grant.account(&id)?;
    Ok(Json(
        json!({ "account": account_json(account, &grant, with_balance)? }),
    ))
}

async fn balances(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, TppError> {
    let grant = bank.authorise(&headers)?;
    let account = grant.account(&id)?;
    if !grant.access.balances.covers(account) {
        return Err(TppError::consent_invalid(
            "the consent does not cover balances of this account",
        ));
    }
    Ok(Json(json!({
        "account": reference_json(account),
        "balances": balances_json(account)?,
    })))
}

/// The query of a transaction report request.
struct ReportQuery {
    booked: bool,
    pending: bool,
    booking_status: String,
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
    with_balance: bool,
    page: usize,
}

impl ReportQuery {
    fn parse(query: Option<String>) -> Result<ReportQuery, TppError> {
        let parameters =
            parameters(query.unwrap_or_default().as_bytes()).map_err(TppError::format)?;
        let not_supported = |what: &str| {
            TppError::new(
                StatusCode::BAD_REQUEST,
                "PARAMETER_NOT_SUPPORTED",
                format!("{what} is not supported"),
            )
        };
        for name in ["deltaList", "entryReferenceFrom"] {
            if parameters.contains_key(name) {
                return Err(not_supported(name));
            }
        }
        let booking_status = parameters
            .get("bookingStatus")
            .ok_or_else(|| TppError::format("bookingStatus is missing"))?;
        let (booked, pending) = match booking_status.as_str() {
            "booked" => (true, false),
            "pending" => (false, true),
            "both" => (true, true),
            "information" | "all" => return Err(not_supported("bookingStatus=information")),
            _ => {
                return Err(TppError::format(
                    "bookingStatus must be booked, pending or both",
                ));
            }
        };
        let date = |name: &str| {
            parameters
                .get(name)
                .map(|text| parse_date(name, text))
                .transpose()
        };
        let (date_from, date_to) = (date("dateFrom")?, date("dateTo")?);
        if let (Some(from), Some(to)) = (date_from, date_to)
            && to < from
        {
            return Err(TppError::new(
                StatusCode::BAD_REQUEST,
                "PERIOD_INVALID",
                "dateTo lies before dateFrom",
            ));
        }
        let page = match parameters.get("page") {
            None => 0,
            Some(page) => page
                .parse()
                .map_err(|_| TppError::format("page must be a whole number"))?,
        };
        Ok(ReportQuery {
            booked,
            pending,
            booking_status: booking_status.clone(),
            date_from,
            date_to,
            with_balance: parse_flag("withBalance", parameters.get("withBalance"))?,
            page,
        })
    }

    fn in_window(&self, date: NaiveDate) -> bool {
        self.date_from.is_none_or(|from| date >= from) && self.date_to.is_none_or(|to| date <= to)
    }

    /// The link to page `page` of the same report.
    fn href(&self, account: &Account, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("bookingStatus", &self.booking_status);
        if let Some(from) = self.date_from {
            query.append_pair("dateFrom", &from.to_string());
        }
        if let Some(to) = self.date_to {
            query.append_pair("dateTo", &to.to_string());
        }
        if self.with_balance {
            query.append_pair("withBalance", "true");
        }
        query.append_pair("page", &page.to_string());
        format!(
            "/v1/accounts/{}/transactions?{}",
            account.id,
            query.finish()
        )
    }
}

fn transaction_json(
    transaction: &customers::Transaction,
    today: NaiveDate,
) -> Result<Value, TppError> {
    let amount = at_precision(&transaction.money, MAX_DECIMALS)
        .map_err(|_| TppError::internal("sandbox data has a bad amount"))?;
    let mut object = Map::new();
    object.insert("transactionId".into(), transaction.id.into());
    if let Some(date) = transaction.booking_date(today) {
        object.insert("bookingDate".into(), date.to_string().into());
    }
    object.insert(
        "valueDate".into(),
        transaction.value_date(today).to_string().into(),
    );
    object.insert("transactionAmount".into(), amount_json(&transaction.money)?);
    let party = if amount.is_sign_negative() {
        "creditorName"
    } else {
        "debtorName"
    };
    object.insert(party.into(), transaction.counterparty.into());
    object.insert(
        "remittanceInformationUnstructured".into(),
        transaction.description.into(),
    );
    if let Some(mcc) = transaction.mcc {
        object.insert("merchantCategoryCode".into(), mcc.into());
    }
    object.insert("bankTransactionCode".into(), transaction.bank_code.into());
    Ok(Value::Object(object))
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = bank.authorise(&headers)?;
    let account = grant.account(&id)?;
    if !grant.access.transactions.covers(account) {
        return Err(TppError::consent_invalid(
            "the consent does not cover transactions of this account",
        ));
    }
    let query = ReportQuery::parse(query)?;
    let today = today();
    let window = &query;
    let select = |status: TransactionStatus| {
        account.transactions.iter().filter(move |transaction| {
            transaction.status == status && window.in_window(transaction.value_date(today))
        })
    };
    let booked: Vec<_> = if query.booked {
        select(TransactionStatus::Booked).collect()
    } else {
        Vec::new()
    };
    let pending: Vec<_> = if query.pending && query.page == 0 {
        select(TransactionStatus::Pending).collect()
    } else {
        Vec::new()
    };
    let start = query.page.saturating_mul(PAGE_SIZE).min(booked.len());
    let end = start.saturating_add(PAGE_SIZE).min(booked.len());
    let to_json = |list: &[&customers::Transaction]| {
        list.iter()
            .map(|transaction| transaction_json(transaction, today))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut links = Map::new();
    links.insert(
        "account".into(),
        json!({"href": format!("/v1/accounts/{}", account.id)}),
    );
    if end < booked.len() {
        links.insert(
            "next".into(),
            json!({"href": query.href(account, query.page + 1)}),
        );
    }
    if query.page > 0 {
        links.insert("first".into(), json!({"href": query.href(account, 0)}));
    }
    let mut report = json!({
        "account": reference_json(account),
        "transactions": {
            "booked": to_json(&booked[start..end])?,
            "pending": to_json(&pending)?,
            "_links": links,
        },
    });
    if query.with_balance && grant.access.balances.covers(account) {
        report["balances"] = balances_json(account)?.into();
    }
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use std::time::{Duration, Instant};

    use axum::http::HeaderMap;
    use base64::Engine;
    use tower::ServiceExt;

    use super::oauth::{CODE_LIFETIME, pkce_s256};
    use super::*;
    use crate::Approval;

    const CLIENT_ID: &str = "bankgate";
    const CLIENT_SECRET: &str = "s3cret-s3cret";
    const ORIGIN: &str = "http://127.0.0.1:9999";
    const REDIRECT_URI: &str = "http://127.0.0.1:8080/oauth/callback";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn sandbox(approval: Approval) -> (Arc<Bank>, Router) {
        let config = SandboxConfig {
            profile: "berlin-group".into(),
            addr: ([127, 0, 0, 1], 0).into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            approval,
            fapi: Default::default(),
        };
        let bank = Arc::new(Bank::new(&config, ORIGIN));
        (bank.clone(), app(bank))
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        text: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.text).unwrap()
        }

        fn tpp_code(&self) -> String {
            self.json()["tppMessages"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        }

        fn location(&self) -> url::Url {
            let location = self.headers[header::LOCATION].to_str().unwrap();
            url::Url::parse(location).unwrap()
        }

        fn location_parameter(&self, name: &str) -> Option<String> {
            self.location()
                .query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        }
    }

    async fn call(app: &Router, request: Request<Body>) -> Answer {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    fn request_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    async fn post_consent(app: &Router, body: Value, psu: Option<&str>) -> Answer {
        let mut request = Request::post("/v1/consents")
            .header(X_REQUEST_ID, request_id())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(psu) = psu {
            request = request.header(PSU_ID, psu);
        }
        call(app, request.body(Body::from(body.to_string())).unwrap()).await
    }

    fn consent_body(access: Value) -> Value {
        json!({
            "access": access,
            "recurringIndicator": true,
            "validUntil": "9999-12-31",
            "frequencyPerDay": 4,
            "combinedServiceIndicator": false,
        })
    }

    fn all_psd2() -> Value {
        consent_body(json!({"allPsd2": "allAccounts"}))
    }

    fn authorize_uri(consent_id: &str, challenge: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("state", "st-1")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", &format!("AIS:{consent_id}"))
            .finish();
        format!("/oauth/authorize?{query}")
    }

    async fn get(app: &Router, uri: &str) -> Answer {
        call(app, Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(app: &Router, uri: &str, form: &[(&str, &str)], basic: bool) -> Answer {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if basic {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {credentials}"));
        }
        call(app, request.body(Body::from(body.finish())).unwrap()).await
    }

    async fn exchange(app: &Router, code: &str, verifier: &str) -> Answer {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ];
        post_form(app, "/oauth/token", &form, true).await
    }

    /// Creates a consent, approves it automatically and returns (consent id, access token).
    async fn authorised(app: &Router, body: Value, psu: Option<&str>) -> (String, String) {
        let created = post_consent(app, body, psu).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let consent_id = created.json()["consentId"].as_str().unwrap().to_owned();
        let redirect = get(app, &authorize_uri(&consent_id, &pkce_s256(VERIFIER))).await;
        assert_eq!(redirect.status, StatusCode::FOUND, "{}", redirect.text);
        let code = redirect.location_parameter("code").unwrap();
        let token = exchange(app, &code, VERIFIER).await;
        assert_eq!(token.status, StatusCode::OK, "{}", token.text);
        let access_token = token.json()["access_token"].as_str().unwrap().to_owned();
        (consent_id, access_token)
    }

    async fn data(app: &Router, uri: &str, consent_id: &str, token: &str) -> Answer {
        let request = Request::get(uri)
            .header(X_REQUEST_ID, request_id())
            .header(CONSENT_ID, consent_id)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        call(app, request).await
    }

    #[tokio::test]
    async fn metadata_names_the_origin_as_issuer() {
        let (_, app) = sandbox(Approval::Auto);
        let answer = get(&app, "/.well-known/oauth-authorization-server").await;
        let metadata = answer.json();
        assert_eq!(metadata["issuer"], ORIGIN);
        assert_eq!(metadata["token_endpoint"], format!("{ORIGIN}/oauth/token"));
        assert_eq!(
            metadata["code_challenge_methods_supported"],
            json!(["S256"])
        );
    }

    #[tokio::test]
    async fn consent_creation_answers_received_with_links_and_echoes_request_id() {
        let (_, app) = sandbox(Approval::Auto);
        let request = Request::post("/v1/consents")
            .header(X_REQUEST_ID, "6f1a1f8e-3b5c-4a5e-9f6f-0d8c7a1b2c3d")
            .body(Body::from(all_psd2().to_string()))
            .unwrap();
        let answer = call(&app, request).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(
            answer.headers[X_REQUEST_ID],
            "6f1a1f8e-3b5c-4a5e-9f6f-0d8c7a1b2c3d"
        );
        let body = answer.json();
        assert_eq!(body["consentStatus"], "received");
        let id = body["consentId"].as_str().unwrap();
        assert_eq!(
            body["_links"]["scaOAuth"]["href"],
            format!("{ORIGIN}/.well-known/oauth-authorization-server")
        );
        assert_eq!(
            body["_links"]["status"]["href"],
            format!("/v1/consents/{id}/status")
        );

        let status = call(
            &app,
            Request::get(format!("/v1/consents/{id}/status"))
                .header(X_REQUEST_ID, request_id())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status.json(), json!({"consentStatus": "received"}));
    }

    #[track_caller]
    fn check_rejected(answer: &Answer, status: StatusCode, code: &str) {
        assert_eq!(answer.status, status, "{}", answer.text);
        assert_eq!(answer.tpp_code(), code, "{}", answer.text);
        assert_eq!(answer.json()["tppMessages"][0]["category"], "ERROR");
    }

    #[tokio::test]
    async fn bad_consent_requests_are_rejected_in_tpp_messages_format() {
        let (_, app) = sandbox(Approval::Auto);
        let no_request_id = call(
            &app,
            Request::post("/v1/consents")
                .body(Body::from(all_psd2().to_string()))
                .unwrap(),
        )
        .await;
        check_rejected(&no_request_id, StatusCode::BAD_REQUEST, "FORMAT_ERROR");

        let cases = [
            (json!("not json"), "FORMAT_ERROR"),
            (consent_body(json!({})), "FORMAT_ERROR"),
            (
                json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": "yes",
                       "validUntil": "9999-12-31", "frequencyPerDay": 4}),
                "FORMAT_ERROR",
            ),
            (
                json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true,
                       "validUntil": "2017-11-01", "frequencyPerDay": 4}),
                "FORMAT_ERROR",
            ),
            (
                consent_body(json!({"availableAccounts": "allAccounts"})),
                "FORMAT_ERROR",
            ),
            (
                consent_body(json!({"allPsd2": "allAccounts", "balances": []})),
                "FORMAT_ERROR",
            ),
            (
                consent_body(json!({"balances": [{"currency": "EUR"}]})),
                "FORMAT_ERROR",
            ),
            (
                json!({"access": {"allPsd2": "allAccounts"}, "recurringIndicator": true,
                       "validUntil": "9999-12-31", "frequencyPerDay": 4,
                       "combinedServiceIndicator": true}),
                "SESSIONS_NOT_SUPPORTED",
            ),
        ];
        for (body, code) in cases {
            let answer = post_consent(&app, body.clone(), None).await;
            assert_eq!(answer.tpp_code(), code, "{body}: {}", answer.text);
        }
        let unknown_psu = post_consent(&app, all_psd2(), Some("mallory")).await;
        check_rejected(
            &unknown_psu,
            StatusCode::UNAUTHORIZED,
            "PSU_CREDENTIALS_INVALID",
        );
    }

    #[tokio::test]
    async fn string_flags_of_the_official_examples_are_accepted() {
        let (_, app) = sandbox(Approval::Auto);
        let body = json!({
            "access": {"availableAccounts": "allAccounts"},
            "recurringIndicator": "false",
            "validUntil": "9999-12-31",
            "frequencyPerDay": "1",
        });
        let answer = post_consent(&app, body, None).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        let id = answer.json()["consentId"].as_str().unwrap().to_owned();
        let consent = call(
            &app,
            Request::get(format!("/v1/consents/{id}"))
                .header(X_REQUEST_ID, request_id())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .json();
        assert_eq!(consent["recurringIndicator"], false);
        assert_eq!(consent["frequencyPerDay"], 1);
        assert_eq!(
            consent["access"],
            json!({"availableAccounts": "allAccounts"})
        );
    }

    #[tokio::test]
    async fn unknown_consents_are_forbidden() {
        let (_, app) = sandbox(Approval::Auto);
        let answer = call(
            &app,
            Request::get("/v1/consents/nope")
                .header(X_REQUEST_ID, request_id())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        check_rejected(&answer, StatusCode::FORBIDDEN, "CONSENT_UNKNOWN");
    }

    #[tokio::test]
    async fn auto_approval_redirects_with_code_state_and_issuer() {
        let (_, app) = sandbox(Approval::Auto);
        let (consent_id, _) = authorised(&app, all_psd2(), Some("bob")).await;
        let status = call(
            &app,
            Request::get(format!("/v1/consents/{consent_id}/status"))
                .header(X_REQUEST_ID, request_id())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status.json()["consentStatus"], "valid");

        let created = post_consent(&app, all_psd2(), None).await;
        let id = created.json()["consentId"].as_str().unwrap().to_owned();
        let redirect = get(&app, &authorize_uri(&id, &pkce_s256(VERIFIER))).await;
        assert_eq!(redirect.status, StatusCode::FOUND);
        assert!(redirect.location().as_str().starts_with(REDIRECT_URI));
        assert_eq!(
            redirect.location_parameter("state").as_deref(),
            Some("st-1")
        );
        assert_eq!(redirect.location_parameter("iss").as_deref(), Some(ORIGIN));
        assert_eq!(redirect.location_parameter("code").unwrap().len(), 43);
    }

    #[tokio::test]
    async fn bad_authorization_requests_never_redirect_to_untrusted_places() {
        let (_, app) = sandbox(Approval::Auto);
        let created = post_consent(&app, all_psd2(), None).await;
        let id = created.json()["consentId"].as_str().unwrap().to_owned();
        let good = authorize_uri(&id, &pkce_s256(VERIFIER));

        let unknown_client = get(&app, &good.replace("client_id=bankgate", "client_id=evil")).await;
        assert_eq!(unknown_client.status, StatusCode::BAD_REQUEST);
        assert!(!unknown_client.headers.contains_key(header::LOCATION));

        let cases = [
            (good.replace("S256", "plain"), "invalid_request"),
            (
                good.replace("response_type=code", "response_type=token"),
                "unsupported_response_type",
            ),
            (
                good.replace(&format!("AIS%3A{id}"), "AIS%3Anope"),
                "invalid_scope",
            ),
            (
                good.replace(&format!("AIS%3A{id}"), "openid"),
                "invalid_scope",
            ),
        ];
        for (uri, error) in cases {
            let answer = get(&app, &uri).await;
            assert_eq!(answer.status, StatusCode::FOUND, "{uri}");
            assert_eq!(
                answer.location_parameter("error").as_deref(),
                Some(error),
                "{uri}"
            );
            assert_eq!(answer.location_parameter("iss").as_deref(), Some(ORIGIN));
        }
    }

    fn ticket_of(page: &str) -> String {
        let start = page.find("name=\"ticket\" value=\"").unwrap() + 21;
        let end = start + page[start..].find('"').unwrap();
        page[start..end].to_owned()
    }

    #[tokio::test]
    async fn approval_page_approves_as_the_chosen_customer_or_denies() {
        let (bank, app) = sandbox(Approval::Page);
        let challenge = pkce_s256(VERIFIER);

        let created = post_consent(&app, all_psd2(), Some("bob")).await;
        let id = created.json()["consentId"].as_str().unwrap().to_owned();
        let page = get(&app, &authorize_uri(&id, &challenge)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.text.contains("<option value=\"bob\" selected>"),
            "{}",
            page.text
        );
        assert!(page.text.contains("value=\"approve\"") && page.text.contains("value=\"deny\""));
        let ticket = ticket_of(&page.text);
        let form = [
            ("ticket", ticket.as_str()),
            ("customer", "carol"),
            ("decision", "approve"),
        ];
        let approved = post_form(&app, "/oauth/authorize", &form, false).await;
        assert_eq!(approved.status, StatusCode::FOUND);
        assert!(approved.location_parameter("code").is_some());
        assert_eq!(approved.location_parameter("iss").as_deref(), Some(ORIGIN));
        assert_eq!(bank.consents()[&id].customer.id, "carol");
        assert_eq!(bank.consents()[&id].status, ConsentStatus::Valid);
        let replayed = post_form(&app, "/oauth/authorize", &form, false).await;
        assert_eq!(replayed.status, StatusCode::BAD_REQUEST);

        let created = post_consent(&app, all_psd2(), None).await;
        let id = created.json()["consentId"].as_str().unwrap().to_owned();
        let page = get(&app, &authorize_uri(&id, &challenge)).await;
        let ticket = ticket_of(&page.text);
        let form = [
            ("ticket", ticket.as_str()),
            ("customer", "alice"),
            ("decision", "deny"),
        ];
        let denied = post_form(&app, "/oauth/authorize", &form, false).await;
        assert_eq!(
            denied.location_parameter("error").as_deref(),
            Some("access_denied")
        );
        assert_eq!(denied.location_parameter("state").as_deref(), Some("st-1"));
        assert_eq!(bank.consents()[&id].status, ConsentStatus::Rejected);
    }

    async fn fresh_code(app: &Router) -> String {
        let created = post_consent(app, all_psd2(), None).await;
        let id = created.json()["consentId"].as_str().unwrap().to_owned();
        let redirect = get(app, &authorize_uri(&id, &pkce_s256(VERIFIER))).await;
        redirect.location_parameter("code").unwrap()
    }

    #[tokio::test]
    async fn token_endpoint_checks_client_pkce_redirect_and_single_use() {
        let (bank, app) = sandbox(Approval::Auto);

        let code = fresh_code(&app).await;
        let wrong_verifier = exchange(&app, &code, &"x".repeat(43)).await;
        assert_eq!(wrong_verifier.status, StatusCode::BAD_REQUEST);
        assert_eq!(wrong_verifier.json()["error"], "invalid_grant");
        // The failed attempt used the code up.
        assert_eq!(
            exchange(&app, &code, VERIFIER).await.json()["error"],
            "invalid_grant"
        );

        let code = fresh_code(&app).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            ("code_verifier", VERIFIER),
        ];
        let wrong_redirect = post_form(&app, "/oauth/token", &form, true).await;
        assert_eq!(wrong_redirect.json()["error"], "invalid_grant");

        let code = fresh_code(&app).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
        ];
        let wrong_secret = post_form(&app, "/oauth/token", &form, false).await;
        assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong_secret.json()["error"], "invalid_client");
        let no_auth = post_form(&app, "/oauth/token", &form[..4], false).await;
        assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
        assert!(no_auth.headers.contains_key(header::WWW_AUTHENTICATE));

        // client_secret_post works, and the answer is not cacheable.
        let code = fresh_code(&app).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ];
        let issued = post_form(&app, "/oauth/token", &form, false).await;
        assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
        assert_eq!(issued.headers[header::CACHE_CONTROL], "no-store");
        let tokens = issued.json();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        let access_token = tokens["access_token"].as_str().unwrap().to_owned();
        assert!(bank.auth.books().access_tokens.contains_key(&access_token));
        // A replayed code fails and revokes what it issued.
        let replay = post_form(&app, "/oauth/token", &form, false).await;
        assert_eq!(replay.json()["error"], "invalid_grant");
        assert!(!bank.auth.books().access_tokens.contains_key(&access_token));

        // An expired code fails.
        let code = fresh_code(&app).await;
        if let Some(entry) = bank.auth.books().codes.get_mut(&code) {
            entry.issued_at = Instant::now()
                .checked_sub(CODE_LIFETIME + Duration::from_secs(1))
                .unwrap();
        }
        assert_eq!(
            exchange(&app, &code, VERIFIER).await.json()["error"],
            "invalid_grant"
        );
    }

    #[tokio::test]
    async fn refresh_works_until_the_consent_is_deleted() {
        let (_, app) = sandbox(Approval::Auto);
        let code = fresh_code(&app).await;
        let tokens = exchange(&app, &code, VERIFIER).await.json();
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let consent_id = tokens["scope"]
            .as_str()
            .unwrap()
            .strip_prefix("AIS:")
            .unwrap();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let refreshed = post_form(&app, "/oauth/token", &form, true).await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
        let access_token = refreshed.json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(access_token, tokens["access_token"].as_str().unwrap());
        let accounts = data(&app, "/v1/accounts", consent_id, &access_token).await;
        assert_eq!(accounts.status, StatusCode::OK);

        let deleted = call(
            &app,
            Request::builder()
                .method(Method::DELETE)
                .uri(format!("/v1/consents/{consent_id}"))
                .header(X_REQUEST_ID, request_id())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        let refused = post_form(&app, "/oauth/token", &form, true).await;
        assert_eq!(refused.json()["error"], "invalid_grant");
        let accounts = data(&app, "/v1/accounts", consent_id, &access_token).await;
        check_rejected(&accounts, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
    }

    #[tokio::test]
    async fn revocation_ends_a_refresh_token_and_its_access_tokens() {
        let (_, app) = sandbox(Approval::Auto);
        let code = fresh_code(&app).await;
        let tokens = exchange(&app, &code, VERIFIER).await.json();
        let consent_id = tokens["scope"]
            .as_str()
            .unwrap()
            .strip_prefix("AIS:")
            .unwrap();
        let access_token = tokens["access_token"].as_str().unwrap();
        let form = [("token", tokens["refresh_token"].as_str().unwrap())];
        assert_eq!(
            post_form(&app, "/oauth/revoke", &form, true).await.status,
            StatusCode::OK
        );
        let accounts = data(&app, "/v1/accounts", consent_id, access_token).await;
        check_rejected(&accounts, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
    }

    #[tokio::test]
    async fn data_requests_need_a_token_of_a_valid_unexpired_consent() {
        let (bank, app) = sandbox(Approval::Auto);
        let (consent_id, token) = authorised(&app, all_psd2(), None).await;
        let (other_consent, other_token) = authorised(&app, all_psd2(), None).await;

        let missing_request_id = call(
            &app,
            Request::get("/v1/accounts")
                .header(CONSENT_ID, consent_id.as_str())
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        check_rejected(&missing_request_id, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
        let wrong_token = data(&app, "/v1/accounts", &consent_id, "forged").await;
        check_rejected(&wrong_token, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
        let crossed = data(&app, "/v1/accounts", &consent_id, &other_token).await;
        check_rejected(&crossed, StatusCode::UNAUTHORIZED, "TOKEN_INVALID");
        let unknown = data(&app, "/v1/accounts", "nope", &token).await;
        check_rejected(&unknown, StatusCode::BAD_REQUEST, "CONSENT_UNKNOWN");

        if let Some(consent) = bank.consents().get_mut(&other_consent) {
            consent.valid_until = today().pred_opt().unwrap();
        }
        let expired = data(&app, "/v1/accounts", &other_consent, &other_token).await;
        check_rejected(&expired, StatusCode::UNAUTHORIZED, "CONSENT_EXPIRED");

        let ok = data(&app, "/v1/accounts", &consent_id, &token).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    }

    #[tokio::test]
    async fn accounts_are_the_consent_customers_only() {
        let (_, app) = sandbox(Approval::Auto);
        let (consent_id, token) = authorised(&app, all_psd2(), Some("bob")).await;
        let list = data(&app, "/v1/accounts?withBalance=true", &consent_id, &token).await;
        let list = list.json();
        let ids: Vec<&str> = list["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|account| account["resourceId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["bob-current", "bob-wallet", "bob-card"]);
        let wallet = &list["accounts"][1];
        assert_eq!(wallet["currency"], "XXX");
        assert_eq!(wallet["cashAccountType"], "CACC");
        assert!(
            wallet.get("ownerName").is_none(),
            "owner name was not consented"
        );
        assert_eq!(
            wallet["balances"][2]["balanceAmount"],
            json!({"currency": "USD", "amount": "-18.40"})
        );
        assert_eq!(list["accounts"][2]["cashAccountType"], "CARD");
        assert_eq!(list["accounts"][2]["maskedPan"], "535522******0087");

        let alice_account = data(&app, "/v1/accounts/alice-giro", &consent_id, &token).await;
        check_rejected(&alice_account, StatusCode::NOT_FOUND, "RESOURCE_UNKNOWN");
        let detail = data(&app, "/v1/accounts/bob-card", &consent_id, &token).await;
        assert_eq!(detail.json()["account"]["product"], "Mastercard Platinum");
    }

    #[tokio::test]
    async fn dedicated_consents_cover_only_what_they_name() {
        let (_, app) = sandbox(Approval::Auto);
        let body = consent_body(json!({
            "balances": [{"iban": "DE92 9999 0000 0012 3456 01"}],
            "transactions": [{"maskedPan": "489537******7421"}],
            "additionalInformation": {"ownerName": [{"iban": "DE92999900000012345601"}]},
        }));
        let (consent_id, token) = authorised(&app, body, None).await;
        let list = data(&app, "/v1/accounts", &consent_id, &token).await.json();
        let accounts = list["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0]["ownerName"], "Alice Schmidt");
        assert!(accounts[0]["_links"].get("transactions").is_none());
        assert!(accounts[1].get("ownerName").is_none());

        let giro_tx = data(
            &app,
            "/v1/accounts/alice-giro/transactions?bookingStatus=both",
            &consent_id,
            &token,
        )
        .await;
        check_rejected(&giro_tx, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
        let card_balances = data(
            &app,
            "/v1/accounts/alice-card/balances",
            &consent_id,
            &token,
        )
        .await;
        check_rejected(&card_balances, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
        let savings = data(&app, "/v1/accounts/alice-savings", &consent_id, &token).await;
        check_rejected(&savings, StatusCode::UNAUTHORIZED, "CONSENT_INVALID");
        let giro_balances = data(
            &app,
            "/v1/accounts/alice-giro/balances",
            &consent_id,
            &token,
        )
        .await
        .json();
        assert_eq!(giro_balances["account"]["iban"], "DE92999900000012345601");
        assert_eq!(
            giro_balances["balances"][0]["balanceAmount"]["amount"],
            "-152.37"
        );
        assert_eq!(giro_balances["balances"][0]["balanceType"], "closingBooked");
        assert_eq!(giro_balances["balances"][0]["creditLimitIncluded"], false);
    }

    #[tokio::test]
    async fn transaction_reports_filter_page_and_validate() {
        let (_, app) = sandbox(Approval::Auto);
        let (consent_id, token) = authorised(&app, all_psd2(), None).await;
        let report = |query: String| {
            let app = app.clone();
            let consent_id = consent_id.clone();
            let token = token.clone();
            async move {
                let uri = format!("/v1/accounts/alice-giro/transactions?{query}");
                data(&app, &uri, &consent_id, &token).await
            }
        };

        let first = report("bookingStatus=both".into()).await.json();
        let booked = first["transactions"]["booked"].as_array().unwrap();
        assert_eq!(booked.len(), PAGE_SIZE);
        assert_eq!(
            first["transactions"]["pending"].as_array().unwrap().len(),
            2
        );
        assert!(
            first["transactions"]["pending"][0]
                .get("bookingDate")
                .is_none()
        );
        assert_eq!(booked[0]["creditorName"], "Café Einstein");
        assert_eq!(booked[0]["merchantCategoryCode"], "5812");
        let next = first["transactions"]["_links"]["next"]["href"]
            .as_str()
            .unwrap();
        let second = report(next.split_once('?').unwrap().1.to_owned())
            .await
            .json();
        assert_eq!(
            second["transactions"]["booked"].as_array().unwrap().len(),
            4
        );
        assert!(
            second["transactions"]["pending"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(second["transactions"]["_links"].get("next").is_none());

        let from = customers::days_before(today(), 10);
        let recent = report(format!("bookingStatus=booked&dateFrom={from}"))
            .await
            .json();
        let dates: Vec<&str> = recent["transactions"]["booked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tx| tx["bookingDate"].as_str().unwrap())
            .collect();
        assert_eq!(dates.len(), 5);
        assert!(dates.iter().all(|date| *date >= from.to_string().as_str()));
        assert!(
            recent["transactions"]["pending"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        let missing = report(String::new()).await;
        check_rejected(&missing, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
        let information = report("bookingStatus=information".into()).await;
        check_rejected(
            &information,
            StatusCode::BAD_REQUEST,
            "PARAMETER_NOT_SUPPORTED",
        );
        let bad_date = report("bookingStatus=both&dateFrom=01.02.2024".into()).await;
        check_rejected(&bad_date, StatusCode::BAD_REQUEST, "FORMAT_ERROR");
        let backwards =
            report("bookingStatus=both&dateFrom=2024-02-01&dateTo=2024-01-01".into()).await;
        check_rejected(&backwards, StatusCode::BAD_REQUEST, "PERIOD_INVALID");
    }
}
