//! The UK Open Banking (OBIE Read/Write API) sandbox bank, serving 3.1.x under
//! `/open-banking/v3.1/aisp` and 4.0 under `/open-banking/v4.0/aisp` over the synthetic
//! customers of [`crate::customers`]: account access consents (created with a client
//! credentials token, then authorised through the shared OAuth2 server), accounts, balances
//! and transactions with the shared [`crate::ledger`]'s movements, and domestic payments under
//! `/open-banking/{version}/pisp` ([`payments`], signatures checked by [`jws`]).
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
//! - `x-fapi-interaction-id` is played back on every answer.
//! - Event notifications (a resource update when the ledger moves an account a consent
//!   covers, a revocation made in the bank's app) go as signed SETs to the callback URL the
//!   client registered ([`events`]).

mod events;
mod jws;
mod payments;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::customers::{self, Account, AccountKind, BalanceKind, Customer, Money, Transaction};
use crate::oauth::BindError;
use crate::plumbing::today;
use crate::scaffold::{self, ApiError, Query, Window, page};

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

/// The UK Open Banking standard.
#[derive(Debug)]
pub struct Obie;

type Bank = scaffold::Bank<Obie>;
type ObError = ApiError<Obie>;

impl scaffold::Standard for Obie {
    type Consent = Consent;
    const TITLE: &'static str = "Sandbox Bank UK (Open Banking)";
    const CONSENT_PREFIX: &'static str = "aac-";
    const ECHOED_HEADERS: &'static [&'static str] = &["x-fapi-interaction-id"];

    fn routes() -> Router<Arc<Bank>> {
        const BASE: &str = "/open-banking/{version}/aisp";
        Router::new()
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
            .route(
                "/open-banking/{version}/pisp/domestic-payment-consents",
                post(payments::create_consent),
            )
            .route(
                "/open-banking/{version}/pisp/domestic-payment-consents/{id}",
                get(payments::consent),
            )
            .route(
                "/open-banking/{version}/pisp/domestic-payment-consents/{id}/funds-confirmation",
                get(payments::funds_confirmation),
            )
            .route(
                "/open-banking/{version}/pisp/domestic-payments",
                post(payments::submit),
            )
            .route(
                "/open-banking/{version}/pisp/domestic-payments/{id}",
                get(payments::payment),
            )
            .route(
                "/open-banking/{version}/callback-urls",
                post(events::create_callback),
            )
            .route("/open-banking/jwks", get(events::jwks))
    }

    /// Pushes event notifications to the registered callback URL ([`events`]).
    fn start(bank: &Arc<Bank>) {
        events::start(bank);
    }

    fn revoked_in_app(bank: &Arc<Bank>, id: &str) {
        events::revoked(bank, id);
    }

    fn payment_scope(_: &str) -> String {
        format!("openid {}", payments::SCOPE)
    }

    /// The consent named as `openbanking_intent_id` in the OIDC `claims`: a payment consent
    /// under the scope `payments`, an account access consent under `accounts`.
    fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        if let Some(bound) = payments::bind(bank, parameters) {
            return bound;
        }
        let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
        if !scopes
            .split_ascii_whitespace()
            .any(|scope| scope == "accounts")
        {
            return Err(BindError::invalid_scope("scope must include accounts"));
        }
        let unnamed = || BindError::invalid_request("claims must name the openbanking_intent_id");
        let claims: Value = parameters
            .get("claims")
            .and_then(|claims| serde_json::from_str(claims).ok())
            .ok_or_else(unnamed)?;
        let consent_id = ["id_token", "userinfo"]
            .iter()
            .find_map(|member| claims[member]["openbanking_intent_id"]["value"].as_str())
            .ok_or_else(unnamed)?;
        match bank.consent(consent_id) {
            Some(consent)
                if consent.status == Status::AwaitingAuthorisation && !consent.expired() =>
            {
                Ok(consent_id.to_owned())
            }
            Some(_) => Err(BindError::invalid_request(
                "the consent can no longer be authorised",
            )),
            None => Err(BindError::invalid_request("unknown openbanking_intent_id")),
        }
    }

    /// `accounts` (the default) for account access consents, `payments` for payment
    /// consents and payments, or both.
    fn client_credentials_scope(requested: Option<&str>) -> Option<Result<String, String>> {
        let Some(requested) = requested else {
            return Some(Ok("accounts".into()));
        };
        let scopes: Vec<&str> = requested.split_ascii_whitespace().collect();
        let known = scopes
            .iter()
            .all(|scope| *scope == "accounts" || *scope == payments::SCOPE);
        Some(if known && !scopes.is_empty() {
            Ok(scopes.join(" "))
        } else {
            Err("only the scopes accounts and payments".into())
        })
    }

    fn error_code(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "UK.OBIE.Field.Invalid",
            StatusCode::UNAUTHORIZED => "UK.OBIE.Unauthorized",
            StatusCode::FORBIDDEN => "UK.OBIE.Forbidden",
            StatusCode::NOT_FOUND => "UK.OBIE.Resource.NotFound",
            _ => "UK.OBIE.UnexpectedError",
        }
    }

    /// OBIE's `ErrorResponse`.
    fn error_body(error: &ObError) -> Value {
        json!({
            "Code": format!("{} {}", error.status.as_u16(), error.status.canonical_reason().unwrap_or("")),
            "Id": uuid::Uuid::new_v4().to_string(),
            "Message": error.message,
            "Errors": [{"ErrorCode": error.code, "Message": error.message}],
        })
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
            _ => Err(ApiError::not_found("no such API version")),
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

/// An account access consent.
#[derive(Debug, Clone)]
pub struct Consent {
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

impl scaffold::Consent for Consent {
    fn customer(&self) -> &'static Customer {
        self.customer
    }

    fn approvable(&self) -> bool {
        self.status == Status::AwaitingAuthorisation
    }

    fn approve(&mut self, customer: &'static Customer) {
        self.customer = customer;
        self.status = Status::Authorised;
        self.updated = Utc::now();
    }

    fn reject(&mut self) {
        self.status = Status::Rejected;
        self.updated = Utc::now();
    }

    fn usable(&self) -> bool {
        self.status == Status::Authorised && !self.expired()
    }

    fn end(&mut self, ending: scaffold::Ending) {
        match ending {
            scaffold::Ending::Revoked => self.status = Status::Revoked,
            scaffold::Ending::Expired => self.expires = Some(Utc::now()),
        }
        self.updated = Utc::now();
    }

    fn items(&self) -> Vec<String> {
        self.permissions.clone()
    }

    fn terms(&self) -> String {
        match self.expires {
            Some(expires) => format!("until {}", expires.date_naive()),
            None => "until you withdraw it".into(),
        }
    }

    fn token_fields(&self, _: &str) -> Map<String, Value> {
        Map::from_iter([("scope".into(), "openid accounts".into())])
    }
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

// ---------------------------------------------------------------------------------------------
// Account access consents

/// Checks a client credentials token (for the consent resource).
fn client(bank: &Bank, headers: &HeaderMap) -> Result<(), ObError> {
    match bank.auth.bearer(headers) {
        Ok(grant)
            if grant.consent_id.is_none()
                && grant
                    .scope
                    .split_ascii_whitespace()
                    .any(|s| s == "accounts") =>
        {
            Ok(())
        }
        Ok(_) => Err(ApiError::forbidden(
            "a client credentials token is required",
        )),
        Err(_) => Err(ApiError::unauthorized("a valid access token is required")),
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
            .map_err(|_| {
                ApiError::bad_request(format!("Data.{name} must be an ISO 8601 date-time"))
            })
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
    client(&bank, &headers)?;
    let body: ConsentBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("consent request: {error}")))?;
    if body.risk.is_none() && version == Version::V3 {
        return Err(ApiError::bad_request("Risk is missing"));
    }
    let permissions = body.data.permissions;
    if permissions.is_empty() {
        return Err(ApiError::bad_request("Data.Permissions is empty"));
    }
    if let Some(unknown) = permissions
        .iter()
        .find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown permission {unknown}"
        )));
    }
    let has = |name: &str| permissions.iter().any(|p| p == name);
    let reads = has("ReadTransactionsBasic") || has("ReadTransactionsDetail");
    let directions = has("ReadTransactionsCredits") || has("ReadTransactionsDebits");
    if reads != directions {
        return Err(ApiError::bad_request(
            "ReadTransactionsBasic or Detail goes with ReadTransactionsCredits and/or Debits",
        ));
    }
    let expires = parse_time(
        "ExpirationDateTime",
        body.data.expiration_date_time.as_deref(),
    )?;
    if expires.is_some_and(|expires| expires <= Utc::now()) {
        return Err(ApiError::bad_request(
            "Data.ExpirationDateTime lies in the past",
        ));
    }
    parse_time(
        "TransactionFromDateTime",
        body.data.transaction_from_date_time.as_deref(),
    )?;
    parse_time(
        "TransactionToDateTime",
        body.data.transaction_to_date_time.as_deref(),
    )?;
    let now = Utc::now();
    let consent = Consent {
        customer: customers::default_customer(),
        status: Status::AwaitingAuthorisation,
        permissions,
        expires,
        created: now,
        updated: now,
    };
    let id = bank.file(consent.clone());
    let answer = consent_json(&id, &consent, version, bank.auth.origin());
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn consent(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    client(&bank, &headers)?;
    let consent = bank
        .consent(&id)
        .ok_or_else(|| ApiError::not_found("no such consent"))?;
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
    client(&bank, &headers)?;
    {
        let mut consents = bank.consents();
        let consent = consents
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("no such consent"))?;
        consent.status = Status::Revoked;
        consent.updated = Utc::now();
    }
    bank.auth.revoke_consent(&id);
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Account information

/// The consent of a data request, if it grants one of the permissions it `needs`.
fn reader(bank: &Bank, headers: &HeaderMap, needs: &[&str]) -> Result<Consent, ObError> {
    let (_, consent) = bank.reader(headers)?;
    if !needs.iter().any(|permission| consent.has(permission)) {
        return Err(ApiError::forbidden(format!(
            "the consent lacks {}",
            needs.join(" or ")
        )));
    }
    Ok(consent)
}

fn envelope(data: Value, self_link: String, next: Option<String>) -> Json<Value> {
    let mut links = Map::new();
    links.insert("Self".into(), self_link.into());
    if let Some(next) = next {
        links.insert("Next".into(), next.into());
    }
    Json(json!({"Data": data, "Links": links, "Meta": {"TotalPages": 1}}))
}

fn api(bank: &Bank, version: Version) -> String {
    format!(
        "{}/open-banking/{}/aisp",
        bank.auth.origin(),
        version.path()
    )
}

/// The magnitude at OBIE's precision.
fn amount_json(money: &Money) -> Value {
    let amount = money.at_precision(MAX_DECIMALS).abs();
    json!({"Amount": amount.to_string(), "Currency": money.currency})
}

/// `Credit` or `Debit` (both versions name them alike).
fn indicator(money: &Money) -> &'static str {
    if money.is_debit() { "Debit" } else { "Credit" }
}

fn identifications(account: &Account, customer: &Customer) -> Vec<Value> {
    let mut list = Vec::new();
    if let Some(iban) = &account.iban {
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
    if let Some(pan) = &account.masked_pan {
        list.push(
            json!({"SchemeName": "UK.OBIE.PAN", "Identification": pan, "Name": customer.name}),
        );
    }
    list
}

fn account_json(account: &Account, consent: &Consent, version: Version) -> Value {
    let mut object = Map::new();
    object.insert("AccountId".into(), account.id.clone().into());
    let status = match account.status {
        customers::AccountStatus::Enabled => "Enabled",
        customers::AccountStatus::Blocked => "Disabled",
    };
    object.insert("Status".into(), status.into());
    object.insert("StatusUpdateDateTime".into(), timestamp(Utc::now()).into());
    object.insert("Currency".into(), account.currency.clone().into());
    let (category, kind) = match version {
        Version::V3 => ("AccountType", "AccountSubType"),
        Version::V4 => ("AccountCategory", "AccountTypeCode"),
    };
    object.insert(category.into(), "Personal".into());
    let kind_name = match account.kind {
        AccountKind::Current => version.pick("CurrentAccount", "CACC"),
        AccountKind::Savings => version.pick("Savings", "SVGS"),
        AccountKind::Card => version.pick("CreditCard", "CARD"),
    };
    object.insert(kind.into(), kind_name.into());
    object.insert("Nickname".into(), account.name.clone().into());
    object.insert("Description".into(), account.product.clone().into());
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
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    let consent = reader(
        &bank,
        &headers,
        &["ReadAccountsBasic", "ReadAccountsDetail"],
    )?;
    let accounts: Vec<Value> = consent
        .customer
        .accounts
        .iter()
        .map(|account| account_json(account, &consent, version))
        .collect();
    Ok(envelope(
        json!({"Account": accounts}),
        format!("{}/accounts", api(&bank, version)),
        None,
    ))
}

fn account_of(consent: &Consent, id: &str) -> Result<&'static Account, ObError> {
    consent
        .customer
        .account(id)
        .ok_or_else(|| ApiError::not_found("no such account"))
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
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    let consent = reader(&bank, &headers, &["ReadBalances"])?;
    let account = account_of(&consent, &id)?;
    let now = Utc::now();
    let list: Vec<Value> = bank
        .ledger
        .balances(account)
        .iter()
        .map(|balance| {
            let mut object = Map::new();
            object.insert("AccountId".into(), account.id.clone().into());
            object.insert("Amount".into(), amount_json(&balance.money));
            object.insert(
                "CreditDebitIndicator".into(),
                indicator(&balance.money).into(),
            );
            object.insert("Type".into(), balance_type(balance.kind, version).into());
            let when = balance
                .as_of
                .day(today())
                .and_then(|day| day.and_hms_opt(23, 59, 59))
                .map_or(now, |time| time.and_utc());
            object.insert("DateTime".into(), timestamp(when).into());
            if let (Some(limit), Some(included)) =
                (&account.credit_limit, balance.credit_limit_included)
            {
                object.insert(
                    "CreditLine".into(),
                    json!([{"Included": included, "Amount": amount_json(limit), "Type": "Pre-Agreed"}]),
                );
            }
            Value::Object(object)
        })
        .collect();
    Ok(envelope(
        json!({"Balance": list}),
        format!("{}/accounts/{}/balances", api(&bank, version), account.id),
        None,
    ))
}

fn transaction_json(
    transaction: &Transaction,
    account: &Account,
    consent: &Consent,
    version: Version,
    today: NaiveDate,
) -> Value {
    let mut object = Map::new();
    object.insert("AccountId".into(), account.id.clone().into());
    object.insert("TransactionId".into(), transaction.id.clone().into());
    object.insert("Amount".into(), amount_json(&transaction.money));
    object.insert(
        "CreditDebitIndicator".into(),
        indicator(&transaction.money).into(),
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
            transaction.description.clone().into(),
        );
        if let Some(country) = &transaction.country {
            let party = if transaction.money.is_debit() {
                "UltimateCreditor"
            } else {
                "UltimateDebtor"
            };
            object.insert(
                party.into(),
                json!({"Name": transaction.counterparty, "PostalAddress": {"Country": country}}),
            );
        }
        match &transaction.mcc {
            Some(mcc) => {
                object.insert(
                    "MerchantDetails".into(),
                    json!({"MerchantName": transaction.counterparty, "MerchantCategoryCode": mcc}),
                );
            }
            None => {
                let party = if transaction.money.is_debit() {
                    "CreditorAccount"
                } else {
                    "DebtorAccount"
                };
                object.insert(party.into(), json!({"Name": transaction.counterparty}));
            }
        }
    }
    Value::Object(object)
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ObError> {
    let version = Version::parse(&version)?;
    let consent = reader(
        &bank,
        &headers,
        &["ReadTransactionsBasic", "ReadTransactionsDetail"],
    )?;
    let account = account_of(&consent, &id)?;
    let query = Query::parse(query)?;
    let window = Window {
        from: query.day("fromBookingDateTime")?,
        to: query.day("toBookingDateTime")?,
    };
    let page_number = query.number("page")?;
    let (credits, debits) = (
        consent.has("ReadTransactionsCredits"),
        consent.has("ReadTransactionsDebits"),
    );
    let today = today();
    let all = bank.ledger.transactions(account);
    let selected: Vec<&Transaction> = window
        .select(&all, today)
        .filter(|transaction| {
            if transaction.money.is_debit() {
                debits
            } else {
                credits
            }
        })
        .collect();
    let (listed, next) = page(&selected, page_number.saturating_mul(PAGE_SIZE), PAGE_SIZE);
    let list: Vec<Value> = listed
        .iter()
        .map(|transaction| transaction_json(transaction, account, &consent, version, today))
        .collect();
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
    let next = next.map(|_| link(page_number + 1));
    Ok(envelope(
        json!({"Transaction": list}),
        link(page_number),
        next,
    ))
}
