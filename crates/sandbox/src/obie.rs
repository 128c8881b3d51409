//! The UK Open Banking (OBIE Read/Write API) sandbox bank, serving 3.1.x under
//! `/open-banking/v3.1/aisp` and 4.0 under `/open-banking/v4.0/aisp` over the synthetic
//! customers of [`super::customers`]: account access consents (created with a client
//! credentials token, then authorised through the shared OAuth2 server), accounts, balances
//! and transactions.
//!
//! Where the standard leaves a choice, the sandbox takes these:
//! - The authorization request names the consent as `openbanking_intent_id` in an OIDC
//!   `claims` parameter (what a signed request object would carry; request objects are not
//!   required) and must ask for the scope `accounts`.
//! - Permissions are enforced: the account list needs `ReadAccountsBasic` or
//!   `ReadAccountsDetail` (identifiers and holder names only with the latter), balances
//!   `ReadBalances`, transactions `ReadTransactionsBasic` or `…Detail` (descriptions and
//!   merchants only with the latter) together with `…Credits` and/or `…Debits`, which filter.
//! - v3 speaks names (`InterimAvailable`, `Booked`, `AwaitingAuthorisation`), v4 ISO codes
//!   (`ITAV`, `BOOK`, `AWAU`). Amounts are unsigned with up to five decimals and a
//!   `CreditDebitIndicator`; GB accounts carry their sort code and account number besides the
//!   IBAN. Balance kinds OBIE lacks (authorised, card spending not invoiced) are `Information`.
//! - Transactions come ten to a page, linked by absolute `Links.Next` URLs, filtered by
//!   `fromBookingDateTime`/`toBookingDateTime` on their value date.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::SandboxConfig;
use super::customers::{self, Account, AccountKind, AsOf, BalanceKind, Customer, Money};
use super::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use super::plumbing::{at_precision, parameters, today};

const INTERACTION_ID: &str = "x-fapi-interaction-id";
/// Transactions per page.
pub const PAGE_SIZE: usize = 10;
/// OBIE amounts have at most five decimals.
const MAX_DECIMALS: u32 = 5;
const PERMISSIONS: &[&str] = &[
    "ReadAccountsBasic",
    "ReadAccountsDetail",
    "ReadBalances",
    "ReadBeneficiariesBasic",
    "ReadBeneficiariesDetail",
    "ReadDirectDebits",
    "ReadOffers",
    "ReadPAN",
    "ReadParty",
    "ReadPartyPSU",
    "ReadProducts",
    "ReadScheduledPaymentsBasic",
    "ReadScheduledPaymentsDetail",
    "ReadStandingOrdersBasic",
    "ReadStandingOrdersDetail",
    "ReadStatementsBasic",
    "ReadStatementsDetail",
    "ReadTransactionsBasic",
    "ReadTransactionsCredits",
    "ReadTransactionsDebits",
    "ReadTransactionsDetail",
];

/// The sandbox's routes; `origin` is where it listens.
pub fn router(config: &SandboxConfig, origin: &str) -> Router {
    app(Arc::new(Bank {
        auth: AuthServer::new(config, origin, "Sandbox Bank UK (Open Banking)"),
        consents: Mutex::new(HashMap::new()),
    }))
}

fn app(bank: Arc<Bank>) -> Router {
    const BASE: &str = "/open-banking/{version}/aisp";
    Router::new()
        .merge(oauth::routes::<Bank>())
        .route(
            &format!("{BASE}/account-access-consents"),
            post(create_consent),
        )
        .route(
            &format!("{BASE}/account-access-consents/{{id}}"),
            get(consent).delete(delete_consent),
        )
        .route(&format!("{BASE}/accounts"), get(accounts))
        .route(&format!("{BASE}/accounts/{{id}}/balances"), get(balances))
        .route(
            &format!("{BASE}/accounts/{{id}}/transactions"),
            get(transactions),
        )
        .fallback(not_found)
        .with_state(bank)
}

/// The bank: its authorization server and its consents.
struct Bank {
    auth: AuthServer,
    consents: Mutex<HashMap<String, Consent>>,
}

impl Bank {
    fn consents(&self) -> MutexGuard<'_, HashMap<String, Consent>> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The API version a request was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V3,
    V4,
}

impl Version {
    fn parse(text: &str) -> Result<Version, ObError> {
        match text {
            "v3.1" => Ok(Version::V3),
            "v4.0" => Ok(Version::V4),
            _ => Err(ObError::not_found("no such API version")),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Version::V3 => "v3.1",
            Version::V4 => "v4.0",
        }
    }

    /// The v3 name or the v4 code.
    fn pick(self, v3: &'static str, v4: &'static str) -> &'static str {
        match self {
            Version::V3 => v3,
            Version::V4 => v4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    AwaitingAuthorisation,
    Authorised,
    Rejected,
    Revoked,
}

impl Status {
    fn name(self, version: Version) -> &'static str {
        match self {
            Status::AwaitingAuthorisation => version.pick("AwaitingAuthorisation", "AWAU"),
            Status::Authorised => version.pick("Authorised", "AUTH"),
            Status::Rejected => version.pick("Rejected", "RJCT"),
            Status::Revoked => version.pick("Revoked", "CANC"),
        }
    }
}

#[derive(Debug, Clone)]
struct Consent {
    customer: &'static Customer,
    status: Status,
    permissions: Vec<String>,
    expires: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl Consent {
    fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|granted| granted == permission)
    }

    fn expired(&self) -> bool {
        self.expires.is_some_and(|expires| expires <= Utc::now())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An OBIE `ErrorResponse`.
#[derive(Debug)]
struct ObError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ObError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ObError {
        ObError {
            status,
            code,
            message: message.into(),
        }
    }

    fn field(message: impl Into<String>) -> ObError {
        ObError::new(StatusCode::BAD_REQUEST, "UK.OBIE.Field.Invalid", message)
    }

    fn unauthorized(message: impl Into<String>) -> ObError {
        ObError::new(StatusCode::UNAUTHORIZED, "UK.OBIE.Unauthorized", message)
    }

    fn forbidden(message: impl Into<String>) -> ObError {
        ObError::new(StatusCode::FORBIDDEN, "UK.OBIE.Forbidden", message)
    }

    fn not_found(message: impl Into<String>) -> ObError {
        ObError::new(StatusCode::NOT_FOUND, "UK.OBIE.Resource.NotFound", message)
    }

    fn internal() -> ObError {
        ObError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UK.OBIE.UnexpectedError",
            "sandbox data has a bad amount",
        )
    }
}

impl IntoResponse for ObError {
    fn into_response(self) -> Response {
        let body = json!({
            "Code": format!("{} {}", self.status.as_u16(), self.status.canonical_reason().unwrap_or("")),
            "Id": uuid::Uuid::new_v4().to_string(),
            "Message": self.message,
            "Errors": [{"ErrorCode": self.code, "Message": self.message}],
        });
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> ObError {
    ObError::not_found("no such endpoint")
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

// ---------------------------------------------------------------------------------------------
// Account access consents

impl ConsentBinding for Bank {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
        if !scopes
            .split_ascii_whitespace()
            .any(|scope| scope == "accounts")
        {
            return Err(BindError::invalid_scope("scope must include accounts"));
        }
        let claims: Value = parameters
            .get("claims")
            .and_then(|claims| serde_json::from_str(claims).ok())
            .ok_or_else(|| {
                BindError::invalid_request("claims must name the openbanking_intent_id")
            })?;
        let intent = ["id_token", "userinfo"].iter().find_map(|member| {
            claims[member]["openbanking_intent_id"]["value"]
                .as_str()
                .map(str::to_owned)
        });
        let Some(consent_id) = intent else {
            return Err(BindError::invalid_request(
                "claims must name the openbanking_intent_id",
            ));
        };
        match self.consents().get(&consent_id) {
            Some(consent)
                if consent.status == Status::AwaitingAuthorisation && !consent.expired() =>
            {
                Ok(consent_id)
            }
            Some(_) => Err(BindError::invalid_request(
                "the consent can no longer be authorised",
            )),
            None => Err(BindError::invalid_request("unknown openbanking_intent_id")),
        }
    }

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        let consent = self.consents().get(consent_id).cloned()?;
        Some(ApprovalView {
            customer: consent.customer,
            items: consent.permissions.clone(),
            terms: match consent.expires {
                Some(expires) => format!("until {}", expires.date_naive()),
                None => "until you withdraw it".into(),
            },
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        let mut consents = self.consents();
        match consents.get_mut(consent_id) {
            Some(consent) if consent.status == Status::AwaitingAuthorisation => {
                consent.customer = customer;
                consent.status = Status::Authorised;
                consent.updated = Utc::now();
                true
            }
            _ => false,
        }
    }

    fn deny(&self, consent_id: &str) {
        if let Some(consent) = self.consents().get_mut(consent_id) {
            consent.status = Status::Rejected;
            consent.updated = Utc::now();
        }
    }

    fn usable(&self, consent_id: &str) -> bool {
        self.consents()
            .get(consent_id)
            .is_some_and(|consent| consent.status == Status::Authorised && !consent.expired())
    }

    fn token_fields(&self, _consent_id: &str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("scope".into(), "openid accounts".into());
        fields
    }

    fn client_credentials_scope(&self, requested: Option<&str>) -> Option<Result<String, String>> {
        Some(match requested {
            None => Ok("accounts".into()),
            Some(scopes)
                if scopes
                    .split_ascii_whitespace()
                    .all(|scope| scope == "accounts") =>
            {
                Ok("accounts".into())
            }
            Some(_) => Err("only the scope accounts".into()),
        })
    }
}

impl Bank {
    /// Checks a client credentials token (for the consent resource).
    fn client(&self, headers: &HeaderMap) -> Result<(), ObError> {
        match self.auth.bearer(headers) {
            Ok(grant) if grant.consent_id.is_none() && grant.scope == "accounts" => Ok(()),
            Ok(_) => Err(ObError::forbidden("a client credentials token is required")),
            Err(_) => Err(ObError::unauthorized("a valid access token is required")),
        }
    }

    /// Checks the bearer token of a data request and the permission it needs.
    fn authorise(&self, headers: &HeaderMap, needs: &[&str]) -> Result<Consent, ObError> {
        let grant = self.auth.bearer(headers).map_err(|error| match error {
            BearerError::Missing => ObError::unauthorized("access token is missing"),
            BearerError::Unknown => ObError::unauthorized("unknown access token"),
            BearerError::Expired => ObError::unauthorized("access token expired"),
        })?;
        let consent_id = grant
            .consent_id
            .ok_or_else(|| ObError::forbidden("the token is not bound to a consent"))?;
        let consent = self
            .consents()
            .get(&consent_id)
            .cloned()
            .filter(|consent| consent.status == Status::Authorised && !consent.expired())
            .ok_or_else(|| ObError::forbidden("the consent is not authorised"))?;
        if !needs.is_empty() && !needs.iter().any(|permission| consent.has(permission)) {
            return Err(ObError::forbidden(format!(
                "the consent lacks {}",
                needs.join(" or ")
            )));
        }
        Ok(consent)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsentBody {
    data: ConsentBodyData,
    risk: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsentBodyData {
    permissions: Vec<String>,
    expiration_date_time: Option<String>,
    transaction_from_date_time: Option<String>,
    transaction_to_date_time: Option<String>,
}

fn parse_time(name: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ObError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| ObError::field(format!("Data.{name} must be an ISO 8601 date-time")))
    })
    .transpose()
}

fn consent_json(id: &str, consent: &Consent, version: Version, origin: &str) -> Value {
    let mut data = Map::new();
    data.insert("ConsentId".into(), id.into());
    data.insert("Status".into(), consent.status.name(version).into());
    data.insert(
        "StatusUpdateDateTime".into(),
        timestamp(consent.updated).into(),
    );
    data.insert("CreationDateTime".into(), timestamp(consent.created).into());
    data.insert("Permissions".into(), json!(consent.permissions));
    if let Some(expires) = consent.expires {
        data.insert("ExpirationDateTime".into(), timestamp(expires).into());
    }
    json!({
        "Data": data,
        "Risk": {},
        "Links": {"Self": format!("{origin}/open-banking/{}/aisp/account-access-consents/{id}", version.path())},
        "Meta": {"TotalPages": 1},
    })
}

async fn create_consent(
    State(bank): State<Arc<Bank>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    bank.client(&headers)?;
    let body: ConsentBody = serde_json::from_slice(&body)
        .map_err(|error| ObError::field(format!("consent request: {error}")))?;
    if body.risk.is_none() && version == Version::V3 {
        return Err(ObError::field("Risk is missing"));
    }
    let permissions = body.data.permissions;
    if permissions.is_empty() {
        return Err(ObError::field("Data.Permissions is empty"));
    }
    if let Some(unknown) = permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(ObError::field(format!("unknown permission {unknown}")));
    }
    let has = |name: &str| permissions.iter().any(|p| p == name);
    let reads = has("ReadTransactionsBasic") || has("ReadTransactionsDetail");
    let directions = has("ReadTransactionsCredits") || has("ReadTransactionsDebits");
    if reads != directions {
        return Err(ObError::field(
            "ReadTransactionsBasic or Detail goes with ReadTransactionsCredits and/or Debits",
        ));
    }
    let expires = parse_time(
        "ExpirationDateTime",
        body.data.expiration_date_time.as_deref(),
    )?;
    if expires.is_some_and(|expires| expires <= Utc::now()) {
        return Err(ObError::field("Data.ExpirationDateTime lies in the past"));
    }
    parse_time(
        "TransactionFromDateTime",
        body.data.transaction_from_date_time.as_deref(),
    )?;
    parse_time(
        "TransactionToDateTime",
        body.data.transaction_to_date_time.as_deref(),
    )?;
    let customer = customers::find(customers::DEFAULT_CUSTOMER).ok_or_else(ObError::internal)?;
    let now = Utc::now();
    let consent = Consent {
        customer,
        status: Status::AwaitingAuthorisation,
        permissions,
        expires,
        created: now,
        updated: now,
    };
    let id = format!("aac-{}", uuid::Uuid::new_v4());
    let answer = consent_json(&id, &consent, version, bank.auth.origin());
    bank.consents().insert(id, consent);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn consent(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    bank.client(&headers)?;
    let consent = bank
        .consents()
        .get(&id)
        .cloned()
        .ok_or_else(|| ObError::not_found("no such consent"))?;
    Ok(Json(consent_json(
        &id,
        &consent,
        version,
        bank.auth.origin(),
    )))
}

async fn delete_consent(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ObError> {
    Version::parse(&version)?;
    bank.client(&headers)?;
    {
        let mut consents = bank.consents();
        let consent = consents
            .get_mut(&id)
            .ok_or_else(|| ObError::not_found("no such consent"))?;
        consent.status = Status::Revoked;
        consent.updated = Utc::now();
    }
    bank.auth.revoke_consent(&id);
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Account information

fn envelope(data: Value, self_link: String, next: Option<String>) -> Value {
    let mut links = Map::new();
    links.insert("Self".into(), self_link.into());
    if let Some(next) = next {
        links.insert("Next".into(), next.into());
    }
    json!({"Data": data, "Links": links, "Meta": {"TotalPages": 1}})
}

fn api(bank: &Bank, version: Version) -> String {
    format!(
        "{}/open-banking/{}/aisp",
        bank.auth.origin(),
        version.path()
    )
}

/// The magnitude at OBIE's precision.
fn amount_json(money: &Money) -> Result<Value, ObError> {
    let amount = at_precision(money, MAX_DECIMALS).map_err(|_| ObError::internal())?;
    Ok(json!({"Amount": amount.abs().to_string(), "Currency": money.currency}))
}

/// `Credit` or `Debit` (both versions name them alike).
fn indicator(money: &Money, _version: Version) -> &'static str {
    if money.amount.starts_with('-') {
        "Debit"
    } else {
        "Credit"
    }
}

fn identifications(account: &Account, customer: &Customer) -> Vec<Value> {
    let mut list = Vec::new();
    if let Some(iban) = account.iban {
        if let Some(bban) = iban.strip_prefix("GB").map(|rest| &rest[2..])
            && bban.len() == 18
        {
            // GB IBAN: check digits, bank code (4), sort code (6), account number (8).
            list.push(json!({
                "SchemeName": "UK.OBIE.SortCodeAccountNumber",
                "Identification": &bban[4..],
                "Name": customer.name,
            }));
        }
        list.push(
            json!({"SchemeName": "UK.OBIE.IBAN", "Identification": iban, "Name": customer.name}),
        );
    }
    if let Some(pan) = account.masked_pan {
        list.push(
            json!({"SchemeName": "UK.OBIE.PAN", "Identification": pan, "Name": customer.name}),
        );
    }
    list
}

fn account_json(account: &Account, consent: &Consent, version: Version) -> Value {
    let mut object = Map::new();
    object.insert("AccountId".into(), account.id.into());
    let status = match account.status {
        customers::AccountStatus::Enabled => "Enabled",
        customers::AccountStatus::Blocked => "Disabled",
    };
    object.insert("Status".into(), status.into());
    object.insert("StatusUpdateDateTime".into(), timestamp(Utc::now()).into());
    object.insert("Currency".into(), account.currency.into());
    match version {
        Version::V3 => {
            object.insert("AccountType".into(), "Personal".into());
            let sub_type = match account.kind {
                AccountKind::Current => "CurrentAccount",
                AccountKind::Savings => "Savings",
                AccountKind::Card => "CreditCard",
            };
            object.insert("AccountSubType".into(), sub_type.into());
        }
        Version::V4 => {
            object.insert("AccountCategory".into(), "Personal".into());
            let code = match account.kind {
                AccountKind::Current => "CACC",
                AccountKind::Savings => "SVGS",
                AccountKind::Card => "CARD",
            };
            object.insert("AccountTypeCode".into(), code.into());
        }
    }
    object.insert("Nickname".into(), account.name.into());
    object.insert("Description".into(), account.product.into());
    if consent.has("ReadAccountsDetail") {
        object.insert(
            "Account".into(),
            identifications(account, consent.customer).into(),
        );
    }
    Value::Object(object)
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    let consent = bank.authorise(&headers, &["ReadAccountsBasic", "ReadAccountsDetail"])?;
    let accounts: Vec<Value> = consent
        .customer
        .accounts
        .iter()
        .map(|account| account_json(account, &consent, version))
        .collect();
    let body = envelope(
        json!({"Account": accounts}),
        format!("{}/accounts", api(&bank, version)),
        None,
    );
    Ok(with_interaction_id(&headers, Json(body)))
}

fn with_interaction_id(headers: &HeaderMap, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Some(id) = headers.get(INTERACTION_ID) {
        response.headers_mut().insert(INTERACTION_ID, id.clone());
    }
    response
}

fn account_of(consent: &Consent, id: &str) -> Result<&'static Account, ObError> {
    consent
        .customer
        .account(id)
        .ok_or_else(|| ObError::not_found("no such account"))
}

fn balance_type(kind: BalanceKind, version: Version) -> &'static str {
    match kind {
        BalanceKind::ClosingBooked => version.pick("ClosingBooked", "CLBD"),
        BalanceKind::OpeningBooked => version.pick("OpeningBooked", "OPBD"),
        BalanceKind::InterimBooked => version.pick("InterimBooked", "ITBD"),
        BalanceKind::InterimAvailable => version.pick("InterimAvailable", "ITAV"),
        BalanceKind::Expected => version.pick("Expected", "XPCD"),
        BalanceKind::ForwardAvailable => version.pick("ForwardAvailable", "FWAV"),
        BalanceKind::Authorised | BalanceKind::NonInvoiced => version.pick("Information", "INFO"),
    }
}

async fn balances(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    let consent = bank.authorise(&headers, &["ReadBalances"])?;
    let account = account_of(&consent, &id)?;
    let now = Utc::now();
    let list = account
        .balances
        .iter()
        .map(|balance| {
            let mut object = Map::new();
            object.insert("AccountId".into(), account.id.into());
            object.insert("Amount".into(), amount_json(&balance.money)?);
            object.insert(
                "CreditDebitIndicator".into(),
                indicator(&balance.money, version).into(),
            );
            object.insert("Type".into(), balance_type(balance.kind, version).into());
            let when = match balance.as_of {
                AsOf::EndOfDay { days_ago } => customers::days_before(today(), days_ago)
                    .and_hms_opt(23, 59, 59)
                    .map_or(now, |time| time.and_utc()),
                AsOf::Intraday => now,
            };
            object.insert("DateTime".into(), timestamp(when).into());
            if let (Some(limit), Some(included)) =
                (account.credit_limit, balance.credit_limit_included)
            {
                object.insert(
                    "CreditLine".into(),
                    json!([{"Included": included, "Amount": amount_json(&limit)?, "Type": "Pre-Agreed"}]),
                );
            }
            Ok(Value::Object(object))
        })
        .collect::<Result<Vec<_>, ObError>>()?;
    let body = envelope(
        json!({"Balance": list}),
        format!("{}/accounts/{}/balances", api(&bank, version), account.id),
        None,
    );
    Ok(with_interaction_id(&headers, Json(body)))
}

fn transaction_json(
    transaction: &customers::Transaction,
    account: &Account,
    consent: &Consent,
    version: Version,
    today: NaiveDate,
) -> Result<Value, ObError> {
    let debit = transaction.money.amount.starts_with('-');
    let mut object = Map::new();
    object.insert("AccountId".into(), account.id.into());
    object.insert("TransactionId".into(), transaction.id.into());
    object.insert("Amount".into(), amount_json(&transaction.money)?);
    object.insert(
        "CreditDebitIndicator".into(),
        indicator(&transaction.money, version).into(),
    );
    let (status, booked_on) = match transaction.status {
        customers::TransactionStatus::Booked => (
            version.pick("Booked", "BOOK"),
            transaction.booking_date(today),
        ),
        customers::TransactionStatus::Pending => (version.pick("Pending", "PDNG"), None),
    };
    object.insert("Status".into(), status.into());
    let midnight = |day: NaiveDate| format!("{day}T00:00:00+00:00");
    // BookingDateTime is mandatory: a pending entry carries the day it was processed.
    object.insert(
        "BookingDateTime".into(),
        midnight(booked_on.unwrap_or_else(|| transaction.value_date(today))).into(),
    );
    if booked_on.is_some() {
        object.insert(
            "ValueDateTime".into(),
            midnight(transaction.value_date(today)).into(),
        );
    }
    object.insert(
        "ProprietaryBankTransactionCode".into(),
        json!({"Code": transaction.bank_code, "Issuer": "BKGT"}),
    );
    if consent.has("ReadTransactionsDetail") {
        object.insert(
            "TransactionInformation".into(),
            transaction.description.into(),
        );
        match transaction.mcc {
            Some(mcc) => {
                object.insert(
                    "MerchantDetails".into(),
                    json!({"MerchantName": transaction.counterparty, "MerchantCategoryCode": mcc}),
                );
            }
            None => {
                let party = if debit {
                    "CreditorAccount"
                } else {
                    "DebtorAccount"
                };
                object.insert(party.into(), json!({"Name": transaction.counterparty}));
            }
        }
    }
    Ok(Value::Object(object))
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    let consent = bank.authorise(
        &headers,
        &["ReadTransactionsBasic", "ReadTransactionsDetail"],
    )?;
    let account = account_of(&consent, &id)?;
    let query = parameters(query.unwrap_or_default().as_bytes()).map_err(ObError::field)?;
    let day = |name: &str| -> Result<Option<NaiveDate>, ObError> {
        query
            .get(name)
            .map(|text| {
                let day = text.split_once('T').map_or(text.as_str(), |(day, _)| day);
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| ObError::field(format!("{name} must be an ISO 8601 date-time")))
            })
            .transpose()
    };
    let (from, to) = (day("fromBookingDateTime")?, day("toBookingDateTime")?);
    let page: usize = match query.get("page") {
        None => 0,
        Some(page) => page
            .parse()
            .map_err(|_| ObError::field("page must be a whole number"))?,
    };
    let (credits, debits) = (
        consent.has("ReadTransactionsCredits"),
        consent.has("ReadTransactionsDebits"),
    );
    let today = today();
    let selected: Vec<&customers::Transaction> = account
        .transactions
        .iter()
        .filter(|transaction| {
            let day = transaction.value_date(today);
            let debit = transaction.money.amount.starts_with('-');
            from.is_none_or(|from| day >= from)
                && to.is_none_or(|to| day <= to)
                && if debit { debits } else { credits }
        })
        .collect();
    let start = page.saturating_mul(PAGE_SIZE).min(selected.len());
    let end = start.saturating_add(PAGE_SIZE).min(selected.len());
    let list = selected[start..end]
        .iter()
        .map(|transaction| transaction_json(transaction, account, &consent, version, today))
        .collect::<Result<Vec<_>, _>>()?;
    let link = |page: usize| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for name in ["fromBookingDateTime", "toBookingDateTime"] {
            if let Some(value) = query.get(name) {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair("page", &page.to_string());
        format!(
            "{}/accounts/{}/transactions?{}",
            api(&bank, version),
            account.id,
            serializer.finish()
        )
    };
    let next = (end < selected.len()).then(|| link(page + 1));
    let body = envelope(json!({"Transaction": list}), link(page), next);
    Ok(with_interaction_id(&headers, Json(body)))
}
