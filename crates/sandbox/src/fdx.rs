//! The FDX (Financial Data Exchange 6.x, US) sandbox bank under `/fdx/v6`, over the synthetic
//! customers of [`super::customers`]: the consent request arrives with the authorization
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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::SandboxConfig;
use super::customers::{self, Account, AccountKind, BalanceKind, Customer, Money};
use super::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use super::plumbing::{parameters, today};

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

/// The sandbox's routes; `origin` is where it listens.
pub fn router(config: &SandboxConfig, origin: &str) -> Router {
    app(Arc::new(Bank {
        auth: AuthServer::new(config, origin, "Sandbox Bank US (FDX)"),
        consents: Mutex::new(HashMap::new()),
    }))
}

fn app(bank: Arc<Bank>) -> Router {
    Router::new()
        .merge(oauth::routes::<Bank>())
        .route(&format!("{BASE}/accounts"), get(accounts))
        .route(&format!("{BASE}/accounts/{{id}}"), get(account))
        .route(
            &format!("{BASE}/accounts/{{id}}/transactions"),
            get(transactions),
        )
        .route(&format!("{BASE}/consents/{{id}}"), get(consent))
        .route(&format!("{BASE}/consents/{{id}}/revocation"), put(revoke))
        .fallback(not_found)
        .with_state(bank)
}

/// The bank: its authorization server and its consent grants.
struct Bank {
    auth: AuthServer,
    consents: Mutex<HashMap<String, Consent>>,
}

impl Bank {
    fn consents(&self) -> MutexGuard<'_, HashMap<String, Consent>> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
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

#[derive(Debug, Clone)]
struct Consent {
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

    fn live(&self) -> bool {
        self.status == Status::Active && self.expires().is_none_or(|end| end > Utc::now())
    }

    fn has(&self, cluster: &str) -> bool {
        self.clusters.iter().any(|granted| granted == cluster)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An FDX `Error` answer.
#[derive(Debug)]
struct FdxError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl FdxError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> FdxError {
        FdxError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> FdxError {
        FdxError::new(StatusCode::BAD_REQUEST, "500", message)
    }

    fn unauthorized(message: impl Into<String>) -> FdxError {
        FdxError::new(StatusCode::UNAUTHORIZED, "603", message)
    }

    fn forbidden(message: impl Into<String>) -> FdxError {
        FdxError::new(StatusCode::FORBIDDEN, "602", message)
    }

    fn not_found(message: impl Into<String>) -> FdxError {
        FdxError::new(StatusCode::NOT_FOUND, "701", message)
    }

    fn internal() -> FdxError {
        FdxError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500",
            "sandbox data has a bad amount",
        )
    }
}

impl IntoResponse for FdxError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> FdxError {
    FdxError::not_found("no such endpoint")
}

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// The consent request in `authorization_details`

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
    let details: Vec<Value> = parameters
        .get("authorization_details")
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| BindError {
            error: "invalid_authorization_details",
            description: "authorization_details must be a JSON array".into(),
        })?;
    let detail = details
        .into_iter()
        .find(|detail| detail["type"] == "fdx_v1.0")
        .ok_or_else(|| BindError {
            error: "invalid_authorization_details",
            description: "no authorization detail of type fdx_v1.0".into(),
        })?;
    let request: ConsentRequestBody = serde_json::from_value(detail["consentRequest"].clone())
        .map_err(|error| BindError {
            error: "invalid_authorization_details",
            description: format!("consentRequest: {error}"),
        })?;
    let invalid = |description: String| BindError {
        error: "invalid_authorization_details",
        description,
    };
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

impl ConsentBinding for Bank {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let request = parse_request(parameters)?;
        let customer = customers::find(customers::DEFAULT_CUSTOMER)
            .ok_or_else(|| BindError::invalid_request("no default customer"))?;
        let mut clusters: Vec<String> = Vec::new();
        for resource in request.resources {
            for cluster in resource.data_clusters {
                if !clusters.contains(&cluster) {
                    clusters.push(cluster);
                }
            }
        }
        let id = format!("cg-{}", uuid::Uuid::new_v4());
        self.consents().insert(
            id.clone(),
            Consent {
                customer,
                status: Status::Pending,
                duration_type: request.duration_type,
                duration_days: request.duration_period,
                lookback_days: request.lookback_period,
                clusters,
                created: Utc::now(),
            },
        );
        Ok(id)
    }

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        let consent = self.consents().get(consent_id).cloned()?;
        Some(ApprovalView {
            customer: consent.customer,
            items: consent.clusters.clone(),
            terms: match consent.expires() {
                Some(end) => format!("until {}", end.date_naive()),
                None => consent.duration_type.to_lowercase(),
            },
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        match self.consents().get_mut(consent_id) {
            Some(consent) if consent.status == Status::Pending => {
                consent.customer = customer;
                consent.status = Status::Active;
                consent.created = Utc::now();
                true
            }
            _ => false,
        }
    }

    fn deny(&self, consent_id: &str) {
        if let Some(consent) = self.consents().get_mut(consent_id) {
            consent.status = Status::Rejected;
        }
    }

    fn usable(&self, consent_id: &str) -> bool {
        self.consents().get(consent_id).is_some_and(Consent::live)
    }

    fn token_fields(&self, consent_id: &str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("scope".into(), "openid offline_access".into());
        fields.insert("grant_id".into(), consent_id.into());
        fields
    }
}

impl Bank {
    /// Checks the bearer token; returns the live consent and its id.
    fn authorise(&self, headers: &HeaderMap) -> Result<(String, Consent), FdxError> {
        let grant = self.auth.bearer(headers).map_err(|error| match error {
            BearerError::Missing => FdxError::unauthorized("access token is missing"),
            BearerError::Unknown => FdxError::unauthorized("unknown access token"),
            BearerError::Expired => FdxError::unauthorized("access token expired"),
        })?;
        let consent_id = grant
            .consent_id
            .ok_or_else(|| FdxError::forbidden("the token is not bound to a consent"))?;
        let consent = self
            .consents()
            .get(&consent_id)
            .cloned()
            .filter(Consent::live)
            .ok_or_else(|| FdxError::forbidden("the consent is not active"))?;
        Ok((consent_id, consent))
    }
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
        .map_err(|_| FdxError::unauthorized("a valid access token is required"))?;
    if grant.consent_id.as_deref() != Some(id.as_str()) {
        return Err(FdxError::not_found("no such consent"));
    }
    let consent = bank
        .consents()
        .get(&id)
        .cloned()
        .ok_or_else(|| FdxError::not_found("no such consent"))?;
    Ok(Json(consent_json(&id, &consent)))
}

async fn revoke(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, FdxError> {
    let (consent_id, _) = bank.authorise(&headers)?;
    if consent_id != id {
        return Err(FdxError::not_found("no such consent"));
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
fn number(text: &str) -> Result<Box<RawValue>, FdxError> {
    RawValue::from_string(text.to_owned()).map_err(|_| FdxError::internal())
}

fn magnitude(money: &Money) -> Result<Box<RawValue>, FdxError> {
    let amount = money.decimal().map_err(|_| FdxError::internal())?;
    number(&amount.abs().to_string())
}

fn signed_number(money: &Money) -> Result<Box<RawValue>, FdxError> {
    let amount = money.decimal().map_err(|_| FdxError::internal())?;
    number(&amount.to_string())
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

fn find_balance(account: &Account, kinds: &[BalanceKind]) -> Option<&'static customers::Balance> {
    kinds.iter().find_map(|kind| {
        account
            .balances
            .iter()
            .find(|balance| balance.kind == *kind)
    })
}

fn account_json(account: &'static Account, detailed: bool) -> Result<AccountJson, FdxError> {
    let card = account.kind == AccountKind::Card;
    let current = find_balance(
        account,
        &[BalanceKind::InterimBooked, BalanceKind::ClosingBooked],
    );
    let currency = if account.currency == "XXX" {
        current.map_or(account.currency, |balance| balance.money.currency)
    } else {
        account.currency
    };
    let digits: String = account
        .iban
        .or(account.masked_pan)
        .unwrap_or(account.id)
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut json = AccountJson {
        account_category: if card {
            "LOC_ACCOUNT"
        } else {
            "DEPOSIT_ACCOUNT"
        },
        account_id: account.id,
        account_type: match account.kind {
            AccountKind::Current => "CHECKING",
            AccountKind::Savings => "SAVINGS",
            AccountKind::Card => "CREDITCARD",
        },
        account_number_display: format!("...{digits}"),
        product_name: account.product,
        nickname: account.name,
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
    let same_currency = |balance: &&customers::Balance| balance.money.currency == currency;
    if card {
        // What is owed, as a positive number.
        json.current_balance = current
            .map(|balance| {
                let owed = balance.money.decimal().map_err(|_| FdxError::internal())?;
                number(&(-owed).to_string())
            })
            .transpose()?;
        json.available_credit = find_balance(
            account,
            &[BalanceKind::Authorised, BalanceKind::InterimAvailable],
        )
        .map(|balance| signed_number(&balance.money))
        .transpose()?;
        json.credit_line = account
            .credit_limit
            .map(|limit| magnitude(&limit))
            .transpose()?;
    } else {
        json.current_balance = current
            .filter(same_currency)
            .map(|balance| signed_number(&balance.money))
            .transpose()?;
        json.available_balance = find_balance(account, &[BalanceKind::InterimAvailable])
            .filter(same_currency)
            .map(|balance| signed_number(&balance.money))
            .transpose()?;
    }
    Ok(json)
}

async fn accounts(State(bank): State<Arc<Bank>>, headers: HeaderMap) -> Result<Response, FdxError> {
    let (_, consent) = bank.authorise(&headers)?;
    if !consent.has("ACCOUNT_BASIC") && !consent.has("ACCOUNT_DETAILED") {
        return Err(FdxError::forbidden(
            "the consent does not cover ACCOUNT_BASIC",
        ));
    }
    let accounts = consent
        .customer
        .accounts
        .iter()
        .map(|account| account_json(account, false))
        .collect::<Result<Vec<_>, _>>()?;
    // Serialised as a struct: a `Value` would read the numbers through `f64`.
    Ok(Json(ListJson {
        page: json!({"totalElements": accounts.len()}),
        links: None,
        accounts: Some(accounts),
        transactions: None,
    })
    .into_response())
}

async fn account(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, FdxError> {
    let (_, consent) = bank.authorise(&headers)?;
    let account = consent
        .customer
        .account(&id)
        .ok_or_else(|| FdxError::not_found("no such account"))?;
    let detailed = consent.has("ACCOUNT_DETAILED");
    if !detailed && !consent.has("ACCOUNT_BASIC") {
        return Err(FdxError::forbidden(
            "the consent does not cover this account",
        ));
    }
    Ok(Json(account_json(account, detailed)?).into_response())
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
    transaction_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    posted_timestamp: Option<String>,
    transaction_timestamp: String,
    description: &'static str,
    debit_credit_memo: &'static str,
    status: &'static str,
    amount: Box<RawValue>,
    payee: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    merchant_category_code: Option<Box<RawValue>>,
}

fn transaction_json(
    transaction: &'static customers::Transaction,
    account: &Account,
    today: NaiveDate,
) -> Result<TransactionJson, FdxError> {
    let debit = transaction.money.amount.starts_with('-');
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
    Ok(TransactionJson {
        account_category: if account.kind == AccountKind::Card {
            "LOC_ACCOUNT"
        } else {
            "DEPOSIT_ACCOUNT"
        },
        transaction_id: transaction.id,
        posted_timestamp: posted,
        transaction_timestamp: midnight(transaction.value_date(today)),
        description: transaction.description,
        debit_credit_memo: memo,
        status,
        amount: magnitude(&transaction.money)?,
        payee: transaction.counterparty,
        // A JSON number, as many FDX implementations send it.
        merchant_category_code: transaction
            .mcc
            .map(|mcc| number(mcc.trim_start_matches('0')))
            .transpose()?,
    })
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, FdxError> {
    let (_, consent) = bank.authorise(&headers)?;
    if !consent.has("TRANSACTIONS") {
        return Err(FdxError::forbidden(
            "the consent does not cover TRANSACTIONS",
        ));
    }
    let account = consent
        .customer
        .account(&id)
        .ok_or_else(|| FdxError::not_found("no such account"))?;
    let query = parameters(query.unwrap_or_default().as_bytes()).map_err(FdxError::bad_request)?;
    let day = |name: &str| -> Result<Option<NaiveDate>, FdxError> {
        query
            .get(name)
            .map(|text| {
                let day = text.split_once('T').map_or(text.as_str(), |(day, _)| day);
                NaiveDate::parse_from_str(day, "%Y-%m-%d")
                    .map_err(|_| FdxError::bad_request(format!("{name} must be an ISO date")))
            })
            .transpose()
    };
    let today = today();
    let lookback = consent
        .lookback_days
        .map(|days| customers::days_before(today, days));
    let from = match (day("startTime")?, lookback) {
        (Some(from), Some(limit)) => Some(from.max(limit)),
        (from, limit) => from.or(limit),
    };
    let to = day("endTime")?;
    let offset: usize = match query.get("offset") {
        None => 0,
        Some(offset) => offset
            .parse()
            .map_err(|_| FdxError::bad_request("offset must be a whole number"))?,
    };
    let selected: Vec<&'static customers::Transaction> = account
        .transactions
        .iter()
        .filter(|transaction| {
            let day = transaction.value_date(today);
            from.is_none_or(|from| day >= from) && to.is_none_or(|to| day <= to)
        })
        .collect();
    let start = offset.min(selected.len());
    let end = start.saturating_add(PAGE_SIZE).min(selected.len());
    let list = selected[start..end]
        .iter()
        .map(|transaction| transaction_json(transaction, account, today))
        .collect::<Result<Vec<_>, _>>()?;
    let mut page = Map::new();
    page.insert("totalElements".into(), selected.len().into());
    let mut links = None;
    if end < selected.len() {
        page.insert("nextPageKey".into(), end.to_string().into());
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for name in ["startTime", "endTime"] {
            if let Some(value) = query.get(name) {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair("offset", &end.to_string());
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
    })
    .into_response())
}
