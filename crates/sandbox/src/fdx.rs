//! The FDX (Financial Data Exchange 6.x, US) sandbox bank under `/fdx/v6`, over the synthetic
//! customers of [`crate::customers`]: the consent request arrives with the authorization
//! request as RFC 9396 `authorization_details` (`fdx_v1.0`), the customer's approval creates
//! the consent grant (`GET /consents/{consentId}`, `PUT /consents/{consentId}/revocation`), and
//! the data clusters it grants bound what `/accounts`, `/accounts/{accountId}` and
//! `/accounts/{accountId}/transactions` serve.
//!
//! Where the standard leaves a choice, the sandbox takes these:
//! - Amounts are JSON numbers written from the exact decimal (never through `f64`), at full
//!   precision, unsigned with `debitCreditMemo`; pending card payments are memo-posted holds
//!   (`MEMO`, `PENDING`).
//! - Current and savings accounts are `DEPOSIT_ACCOUNT`s with `currentBalance` (interim
//!   booked, else closing booked) and `availableBalance`; cards are `LOC_ACCOUNT`s whose
//!   `currentBalance` is what is owed, with `availableCredit` and `creditLine`. FDX has one
//!   currency per account: a multi-currency account shows its first balance's currency.
//! - Balances need `ACCOUNT_DETAILED`, transactions `TRANSACTIONS`; `lookbackPeriod` (days)
//!   bounds the history. Transactions come ten to a page (`page.nextPageKey` and `links.next`,
//!   `offset` to follow), filtered by `startTime`/`endTime` on their transaction date.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::customers::{self, Account, AccountKind, Balance, BalanceKind, Customer, Transaction};
use crate::ledger::Ledger;
use crate::oauth::BindError;
use crate::plumbing::today;
use crate::scaffold::{self, ApiError, Query, Window, page};

const BASE: &str = "/fdx/v6";
/// Transactions per page.
pub const PAGE_SIZE: usize = 10;
const CLUSTERS: &[&str] = &[
    "ACCOUNT_BASIC",
    "ACCOUNT_DETAILED",
    "ACCOUNT_PAYMENTS",
    "INVESTMENTS",
    "TRANSACTIONS",
    "STATEMENTS",
    "CUSTOMER_CONTACT",
    "CUSTOMER_PERSONAL",
    "BILLS",
    "IMAGES",
    "REWARDS",
    "TAX",
];

/// The FDX standard.
#[derive(Debug)]
pub struct Fdx;

type Bank = scaffold::Bank<Fdx>;
type FdxError = ApiError<Fdx>;

impl scaffold::Standard for Fdx {
    type Consent = Consent;
    const TITLE: &'static str = "Sandbox Bank US (FDX)";
    const CONSENT_PREFIX: &'static str = "cg-";

    fn routes() -> Router<Arc<Bank>> {
        Router::new()
            .route(&format!("{BASE}/accounts"), get(accounts))
            .route(&format!("{BASE}/accounts/{{id}}"), get(account))
            .route(
                &format!("{BASE}/accounts/{{id}}/transactions"),
                get(transactions),
            )
            .route(&format!("{BASE}/consents/{{id}}"), get(consent))
            .route(&format!("{BASE}/consents/{{id}}/revocation"), put(revoke))
    }

    /// The consent request in `authorization_details` becomes a pending consent grant.
    fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let request = parse_request(parameters)?;
        let mut clusters: Vec<String> = Vec::new();
        for resource in request.resources {
            for cluster in resource.data_clusters {
                if !clusters.contains(&cluster) {
                    clusters.push(cluster);
                }
            }
        }
        Ok(bank.file(Consent {
            customer: customers::default_customer(),
            status: Status::Pending,
            duration_type: request.duration_type,
            duration_days: request.duration_period,
            lookback_days: request.lookback_period,
            clusters,
            created: Utc::now(),
        }))
    }

    fn error_code(status: StatusCode) -> &'static str {
        match status {
            StatusCode::UNAUTHORIZED => "603",
            StatusCode::FORBIDDEN => "602",
            StatusCode::NOT_FOUND => "701",
            _ => "500",
        }
    }

    /// FDX's `Error`.
    fn error_body(error: &FdxError) -> Value {
        json!({"code": error.code, "message": error.message})
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Active,
    Rejected,
    Revoked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Active => "ACTIVE",
            Status::Rejected => "REJECTED",
            Status::Revoked => "REVOKED",
        }
    }
}

/// A consent grant.
#[derive(Debug, Clone)]
pub struct Consent {
    customer: &'static Customer,
    status: Status,
    duration_type: String,
    duration_days: Option<i64>,
    lookback_days: Option<u64>,
    clusters: Vec<String>,
    created: DateTime<Utc>,
}

impl Consent {
    fn expires(&self) -> Option<DateTime<Utc>> {
        self.duration_days
            .filter(|_| self.duration_type == "TIME_BOUND")
            .map(|days| self.created + Duration::days(days))
    }

    fn has(&self, cluster: &str) -> bool {
        self.clusters.iter().any(|granted| granted == cluster)
    }
}

impl scaffold::Consent for Consent {
    fn customer(&self) -> &'static Customer {
        self.customer
    }

    fn approvable(&self) -> bool {
        self.status == Status::Pending
    }

    /// The grant starts when the customer approves it.
    fn approve(&mut self, customer: &'static Customer) {
        self.customer = customer;
        self.status = Status::Active;
        self.created = Utc::now();
    }

    fn reject(&mut self) {
        self.status = Status::Rejected;
    }

    fn usable(&self) -> bool {
        self.status == Status::Active && self.expires().is_none_or(|end| end > Utc::now())
    }

    fn end(&mut self, _: scaffold::Ending) {
        self.status = Status::Revoked;
    }

    fn items(&self) -> Vec<String> {
        self.clusters.clone()
    }

    fn terms(&self) -> String {
        match self.expires() {
            Some(end) => format!("until {}", end.date_naive()),
            None => self.duration_type.to_lowercase(),
        }
    }

    fn token_fields(&self, id: &str) -> Map<String, Value> {
        Map::from_iter([
            ("scope".into(), "openid offline_access".into()),
            ("grant_id".into(), id.into()),
        ])
    }
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// The consent request in `authorization_details`, and the consent grant

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsentRequestBody {
    duration_type: String,
    duration_period: Option<i64>,
    lookback_period: Option<u64>,
    resources: Vec<ResourceRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceRequest {
    resource_type: String,
    data_clusters: Vec<String>,
}

fn parse_request(parameters: &HashMap<String, String>) -> Result<ConsentRequestBody, BindError> {
    let invalid = |description: String| BindError {
        error: "invalid_authorization_details",
        description,
    };
    let details: Vec<Value> = parameters
        .get("authorization_details")
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| invalid("authorization_details must be a JSON array".into()))?;
    let detail = details
        .into_iter()
        .find(|detail| detail["type"] == "fdx_v1.0")
        .ok_or_else(|| invalid("no authorization detail of type fdx_v1.0".into()))?;
    let request: ConsentRequestBody = serde_json::from_value(detail["consentRequest"].clone())
        .map_err(|error| invalid(format!("consentRequest: {error}")))?;
    match request.duration_type.as_str() {
        "ONE_TIME" | "PERSISTENT" => {}
        "TIME_BOUND" if request.duration_period.is_some_and(|days| days > 0) => {}
        "TIME_BOUND" => return Err(invalid("TIME_BOUND needs a positive durationPeriod".into())),
        other => return Err(invalid(format!("unknown durationType {other}"))),
    }
    if request.resources.is_empty() {
        return Err(invalid("resources is empty".into()));
    }
    for resource in &request.resources {
        if resource.resource_type != "ACCOUNT" {
            return Err(invalid(format!(
                "resourceType {} is not offered",
                resource.resource_type
            )));
        }
        if let Some(unknown) = resource
            .data_clusters
            .iter()
            .find(|cluster| !CLUSTERS.contains(&cluster.as_str()))
        {
            return Err(invalid(format!("unknown data cluster {unknown}")));
        }
    }
    Ok(request)
}

fn consent_json(id: &str, consent: &Consent) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), id.into());
    object.insert("status".into(), consent.status.as_str().into());
    object.insert(
        "parties".into(),
        json!([{"name": "Sandbox Bank US", "type": "DATA_PROVIDER", "homeUri": "https://sandbox.invalid"}]),
    );
    object.insert("createdTime".into(), timestamp(consent.created).into());
    if let Some(end) = consent.expires() {
        object.insert("expirationTime".into(), timestamp(end).into());
    }
    object.insert("durationType".into(), consent.duration_type.clone().into());
    if let Some(days) = consent.duration_days {
        object.insert("durationPeriod".into(), days.into());
    }
    if let Some(days) = consent.lookback_days {
        object.insert("lookbackPeriod".into(), days.into());
    }
    let resources: Vec<Value> = consent
        .customer
        .accounts
        .iter()
        .map(|account| {
            json!({"resourceType": "ACCOUNT", "resourceId": account.id, "dataClusters": consent.clusters})
        })
        .collect();
    object.insert("resources".into(), resources.into());
    Value::Object(object)
}

async fn consent(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, FdxError> {
    let grant = bank
        .auth
        .bearer(&headers)
        .map_err(|_| ApiError::unauthorized("a valid access token is required"))?;
    let consent = bank
        .consent(&id)
        .filter(|_| grant.consent_id.as_deref() == Some(id.as_str()))
        .ok_or_else(|| ApiError::not_found("no such consent"))?;
    Ok(Json(consent_json(&id, &consent)))
}

async fn revoke(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, FdxError> {
    let (consent_id, _) = bank.reader(&headers)?;
    if consent_id != id {
        return Err(ApiError::not_found("no such consent"));
    }
    if let Some(consent) = bank.consents().get_mut(&id) {
        consent.status = Status::Revoked;
    }
    bank.auth.revoke_consent(&id);
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Account information

/// An exact decimal as a JSON number.
fn number(amount: Decimal) -> Result<Box<RawValue>, FdxError> {
    RawValue::from_string(amount.to_string())
        .map_err(|_| ApiError::internal("sandbox data has a bad amount"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountJson {
    account_category: &'static str,
    account_id: &'static str,
    account_type: &'static str,
    account_number_display: String,
    product_name: &'static str,
    nickname: &'static str,
    status: &'static str,
    currency: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    balance_as_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_balance: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    available_balance: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    available_credit: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credit_line: Option<Box<RawValue>>,
}

/// The account's first balance of the first of `kinds` it has.
fn find_balance<'b>(balances: &'b [Balance], kinds: &[BalanceKind]) -> Option<&'b Balance> {
    kinds
        .iter()
        .find_map(|kind| balances.iter().find(|balance| balance.kind == *kind))
}

fn category(account: &Account) -> &'static str {
    if account.kind == AccountKind::Card {
        "LOC_ACCOUNT"
    } else {
        "DEPOSIT_ACCOUNT"
    }
}

/// An account, with its balances as the ledger has them when `detailed`.
fn account_json(
    ledger: &Ledger,
    account: &'static Account,
    detailed: bool,
) -> Result<AccountJson, FdxError> {
    let balances = ledger.balances(account);
    let current = find_balance(
        &balances,
        &[BalanceKind::InterimBooked, BalanceKind::ClosingBooked],
    );
    let currency = match current {
        Some(balance) if account.currency == "XXX" => &balance.money.currency,
        _ => &account.currency,
    };
    let number_text = account
        .iban
        .as_deref()
        .or(account.masked_pan.as_deref())
        .unwrap_or(&account.id);
    let digits = number_text
        .char_indices()
        .rev()
        .nth(3)
        .map_or(number_text, |(start, _)| &number_text[start..]);
    let mut json = AccountJson {
        account_category: category(account),
        account_id: &account.id,
        account_type: match account.kind {
            AccountKind::Current => "CHECKING",
            AccountKind::Savings => "SAVINGS",
            AccountKind::Card => "CREDITCARD",
        },
        account_number_display: format!("...{digits}"),
        product_name: &account.product,
        nickname: &account.name,
        status: match account.status {
            customers::AccountStatus::Enabled => "OPEN",
            customers::AccountStatus::Blocked => "RESTRICTED",
        },
        currency: json!({"currencyCode": currency}),
        balance_as_of: None,
        current_balance: None,
        available_balance: None,
        available_credit: None,
        credit_line: None,
    };
    if !detailed {
        return Ok(json);
    }
    json.balance_as_of = Some(timestamp(Utc::now()));
    let same_currency = |balance: &&Balance| balance.money.currency == *currency;
    let signed = |balance: &Balance| number(balance.money.amount);
    if account.kind == AccountKind::Card {
        // What is owed, as a positive number.
        json.current_balance = current
            .map(|balance| number(-balance.money.amount))
            .transpose()?;
        json.available_credit = find_balance(
            &balances,
            &[BalanceKind::Authorised, BalanceKind::InterimAvailable],
        )
        .map(signed)
        .transpose()?;
        json.credit_line = account
            .credit_limit
            .as_ref()
            .map(|limit| number(limit.amount.abs()))
            .transpose()?;
    } else {
        json.current_balance = current.filter(same_currency).map(signed).transpose()?;
        json.available_balance = find_balance(&balances, &[BalanceKind::InterimAvailable])
            .filter(same_currency)
            .map(signed)
            .transpose()?;
    }
    Ok(json)
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
) -> Result<Json<ListJson>, FdxError> {
    let (_, consent) = bank.reader(&headers)?;
    if !consent.has("ACCOUNT_BASIC") && !consent.has("ACCOUNT_DETAILED") {
        return Err(ApiError::forbidden(
            "the consent does not cover ACCOUNT_BASIC",
        ));
    }
    let accounts = consent
        .customer
        .accounts
        .iter()
        .map(|account| account_json(&bank.ledger, account, false))
        .collect::<Result<Vec<_>, _>>()?;
    // Serialised as a struct: a `Value` would read the numbers through `f64`.
    Ok(Json(ListJson {
        page: json!({"totalElements": accounts.len()}),
        links: None,
        accounts: Some(accounts),
        transactions: None,
    }))
}

async fn account(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<AccountJson>, FdxError> {
    let (_, consent) = bank.reader(&headers)?;
    let account = consent
        .customer
        .account(&id)
        .ok_or_else(|| ApiError::not_found("no such account"))?;
    let detailed = consent.has("ACCOUNT_DETAILED");
    if !detailed && !consent.has("ACCOUNT_BASIC") {
        return Err(ApiError::forbidden(
            "the consent does not cover this account",
        ));
    }
    Ok(Json(account_json(&bank.ledger, account, detailed)?))
}

/// A list answer (accounts or transactions).
#[derive(Serialize)]
struct ListJson {
    page: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<AccountJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<Vec<TransactionJson>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionJson {
    account_category: &'static str,
    transaction_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    posted_timestamp: Option<String>,
    transaction_timestamp: String,
    description: String,
    debit_credit_memo: &'static str,
    status: &'static str,
    amount: Box<RawValue>,
    payee: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_category_code: Option<Box<RawValue>>,
}

fn transaction_json(
    transaction: &Transaction,
    account: &Account,
    today: NaiveDate,
) -> Result<TransactionJson, FdxError> {
    let debit = transaction.money.is_debit();
    let midnight = |day: NaiveDate| format!("{day}T00:00:00.000Z");
    let (status, memo, posted) = match transaction.status {
        customers::TransactionStatus::Booked => (
            "POSTED",
            if debit { "DEBIT" } else { "CREDIT" },
            transaction.booking_date(today).map(midnight),
        ),
        customers::TransactionStatus::Pending if debit => ("PENDING", "MEMO", None),
        customers::TransactionStatus::Pending => ("PENDING", "CREDIT", None),
    };
    // A JSON number, as many FDX implementations send it.
    let merchant_category_code = transaction
        .mcc
        .as_deref()
        .map(|mcc| {
            RawValue::from_string(mcc.trim_start_matches('0').to_owned())
                .map_err(|_| ApiError::internal("sandbox data has a bad merchant category"))
        })
        .transpose()?;
    Ok(TransactionJson {
        account_category: category(account),
        transaction_id: transaction.id.clone(),
        posted_timestamp: posted,
        transaction_timestamp: midnight(transaction.value_date(today)),
        description: transaction.description.clone(),
        debit_credit_memo: memo,
        status,
        amount: number(transaction.money.amount.abs())?,
        payee: transaction.counterparty.clone(),
        merchant_category_code,
    })
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<ListJson>, FdxError> {
    let (_, consent) = bank.reader(&headers)?;
    if !consent.has("TRANSACTIONS") {
        return Err(ApiError::forbidden(
            "the consent does not cover TRANSACTIONS",
        ));
    }
    let account = consent
        .customer
        .account(&id)
        .ok_or_else(|| ApiError::not_found("no such account"))?;
    let query = Query::parse(query)?;
    let today = today();
    let lookback = consent
        .lookback_days
        .map(|days| customers::days_before(today, days));
    let window = Window {
        from: match (query.day("startTime")?, lookback) {
            (Some(from), Some(limit)) => Some(from.max(limit)),
            (from, limit) => from.or(limit),
        },
        to: query.day("endTime")?,
    };
    let offset = query.number("offset")?;
    let all = bank.ledger.transactions(account);
    let selected: Vec<&Transaction> = window.select(&all, today).collect();
    let (listed, next) = page(&selected, offset, PAGE_SIZE);
    let list = listed
        .iter()
        .map(|transaction| transaction_json(transaction, account, today))
        .collect::<Result<Vec<_>, _>>()?;
    let mut page = Map::new();
    page.insert("totalElements".into(), selected.len().into());
    let mut links = None;
    if let Some(next) = next {
        page.insert("nextPageKey".into(), next.to_string().into());
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for name in ["startTime", "endTime"] {
            if let Some(value) = query.get(name) {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair("offset", &next.to_string());
        links = Some(json!({"next": {"href": format!(
            "{BASE}/accounts/{}/transactions?{}",
            account.id,
            serializer.finish()
        )}}));
    }
    Ok(Json(ListJson {
        page: Value::Object(page),
        links,
        accounts: None,
        transactions: Some(list),
    }))
}
