//! The STET (PSD2 API v1.4, France) sandbox bank: the shared OAuth2 authorization server with
//! the scope `aisp`, the account information endpoints and the optional `PUT /v1/consents`,
//! serving the synthetic customers of [`super::customers`].
//!
//! Where the standard leaves a choice, the sandbox takes these:
//! - STET has no consent resource before the redirect: an authorization request with the scope
//!   `aisp` creates the consent, which the customer approves at the bank ("ASPSP-managed": it
//!   covers balances and transactions of every account). `PUT /v1/consents` replaces those
//!   accesses with the accounts it names ("AISP-managed"); the account list stays readable.
//! - Lists are paged (accounts two, transactions ten to a page) and linked by `_links.next`,
//!   written relative to the API root (`v1/accounts?page=1`) as the STET examples write them.
//! - Balance types: booked → `CLBD`, expected → `XPCD`, interim booked → `VALU`, everything
//!   else → `OTHR` with a French `name`. Amounts have at most two decimals (rounded half away
//!   from zero); transaction amounts are unsigned with `creditDebitIndicator`.
//! - STET knows `CACC` and `CARD` only: savings accounts are `CACC`.
//! - HTTP message signatures (QSealC) are not checked; `X-Request-ID` is required.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::SandboxConfig;
use super::customers::{self, Account, AccountKind, AsOf, BalanceKind, Customer, Money};
use super::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use super::plumbing::{at_precision, header_text, parameters, today};

const X_REQUEST_ID: &str = "x-request-id";
/// The OAuth2 scope of account information.
const SCOPE: &str = "aisp";
/// Accounts per page.
pub const ACCOUNTS_PAGE_SIZE: usize = 2;
/// Transactions per page.
pub const PAGE_SIZE: usize = 10;
/// STET amounts have at most two decimals.
const MAX_DECIMALS: u32 = 2;

/// The sandbox's routes; `origin` is where it listens.
pub fn router(config: &SandboxConfig, origin: &str) -> Router {
    app(Arc::new(Bank {
        auth: AuthServer::new(config, origin, "Banque Sandbox (STET)"),
        consents: Mutex::new(HashMap::new()),
    }))
}

fn app(bank: Arc<Bank>) -> Router {
    Router::new()
        .merge(oauth::routes::<Bank>())
        .route("/v1/accounts", get(accounts))
        .route("/v1/accounts/{id}/balances", get(balances))
        .route("/v1/accounts/{id}/transactions", get(transactions))
        .route("/v1/consents", put(put_consents))
        .route("/v1/end-user-identity", get(identity))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Received,
    Valid,
    Rejected,
}

/// Which accounts one kind of access covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Coverage {
    All,
    /// Account resource ids.
    Listed(Vec<&'static str>),
}

impl Coverage {
    fn covers(&self, account: &Account) -> bool {
        match self {
            Coverage::All => true,
            Coverage::Listed(ids) => ids.contains(&account.id),
        }
    }
}

#[derive(Debug, Clone)]
struct Consent {
    customer: &'static Customer,
    status: Status,
    balances: Coverage,
    transactions: Coverage,
    psu_identity: bool,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A STET `ErrorModel` answer.
#[derive(Debug)]
struct StetError {
    status: StatusCode,
    message: String,
}

impl StetError {
    fn new(status: StatusCode, message: impl Into<String>) -> StetError {
        StetError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> StetError {
        StetError::new(StatusCode::BAD_REQUEST, message)
    }

    fn unauthorized(message: impl Into<String>) -> StetError {
        StetError::new(StatusCode::UNAUTHORIZED, message)
    }

    fn forbidden(message: impl Into<String>) -> StetError {
        StetError::new(StatusCode::FORBIDDEN, message)
    }

    fn not_found() -> StetError {
        StetError::new(StatusCode::NOT_FOUND, "no such account")
    }

    fn internal() -> StetError {
        StetError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sandbox data has a bad amount",
        )
    }
}

impl IntoResponse for StetError {
    fn into_response(self) -> Response {
        let body = json!({
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> StetError {
    StetError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

// ---------------------------------------------------------------------------------------------
// The consent: created by the authorization request

impl ConsentBinding for Bank {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
        if !scopes.split_ascii_whitespace().any(|scope| scope == SCOPE) {
            return Err(BindError::invalid_scope("scope must include aisp"));
        }
        let customer = customers::find(customers::DEFAULT_CUSTOMER)
            .ok_or_else(|| BindError::invalid_request("no default customer"))?;
        let id = uuid::Uuid::new_v4().to_string();
        self.consents().insert(
            id.clone(),
            Consent {
                customer,
                status: Status::Received,
                balances: Coverage::All,
                transactions: Coverage::All,
                psu_identity: false,
            },
        );
        Ok(id)
    }

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        let consent = self.consents().get(consent_id).cloned()?;
        Some(ApprovalView {
            customer: consent.customer,
            items: vec![
                "the list of your accounts".into(),
                "balances (the accounts you choose)".into(),
                "transactions (the accounts you choose)".into(),
            ],
            terms: "for 180 days".into(),
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        let mut consents = self.consents();
        match consents.get_mut(consent_id) {
            Some(consent) if consent.status != Status::Rejected => {
                consent.customer = customer;
                consent.status = Status::Valid;
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
        self.consents()
            .get(consent_id)
            .is_some_and(|consent| consent.status == Status::Valid)
    }

    fn token_fields(&self, _consent_id: &str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("scope".into(), SCOPE.into());
        fields
    }
}

impl Bank {
    /// Checks `X-Request-ID` and the bearer token; returns the consent's id and state.
    fn authorise(&self, headers: &HeaderMap) -> Result<(String, Consent), StetError> {
        if header_text(headers, X_REQUEST_ID).is_none_or(|id| id.trim().is_empty()) {
            return Err(StetError::bad_request("X-Request-ID header is missing"));
        }
        let grant = self.auth.bearer(headers).map_err(|error| match error {
            BearerError::Missing => StetError::unauthorized("bearer token is missing"),
            BearerError::Unknown => StetError::unauthorized("unknown access token"),
            BearerError::Expired => StetError::unauthorized("access token expired"),
        })?;
        let consent_id = grant
            .consent_id
            .ok_or_else(|| StetError::forbidden("the token grants no account access"))?;
        let consent = self
            .consents()
            .get(&consent_id)
            .cloned()
            .filter(|consent| consent.status == Status::Valid)
            .ok_or_else(|| StetError::forbidden("the consent is no longer valid"))?;
        Ok((consent_id, consent))
    }
}

// ---------------------------------------------------------------------------------------------
// Account information

fn page_of(query: &HashMap<String, String>) -> Result<usize, StetError> {
    query.get("page").map_or(Ok(0), |page| {
        page.parse()
            .map_err(|_| StetError::bad_request("page must be a whole number"))
    })
}

fn amount_json(money: &Money, magnitude: bool) -> Result<Value, StetError> {
    let mut amount = at_precision(money, MAX_DECIMALS).map_err(|_| StetError::internal())?;
    if magnitude {
        amount = amount.abs();
    }
    Ok(json!({"currency": money.currency, "amount": amount.to_string()}))
}

fn account_identification(account: &Account) -> Value {
    match (account.iban, account.masked_pan) {
        (Some(iban), _) => json!({"iban": iban, "currency": account.currency}),
        (None, Some(pan)) => json!({
            "other": {"identification": pan, "schemeName": "CPAN", "issuer": "BKGT"},
            "currency": account.currency,
        }),
        (None, None) => json!({"currency": account.currency}),
    }
}

fn account_json(account: &Account, consent: &Consent) -> Value {
    let mut links = Map::new();
    if consent.balances.covers(account) {
        links.insert(
            "balances".into(),
            json!({"href": format!("v1/accounts/{}/balances", account.id)}),
        );
    }
    if consent.transactions.covers(account) {
        links.insert(
            "transactions".into(),
            json!({"href": format!("v1/accounts/{}/transactions", account.id)}),
        );
    }
    json!({
        "resourceId": account.id,
        "bicFi": account.bic,
        "accountId": account_identification(account),
        "name": account.name,
        "product": account.product,
        "usage": "PRIV",
        "cashAccountType": if account.kind == AccountKind::Card { "CARD" } else { "CACC" },
        "psuStatus": "Account Holder",
        "_links": links,
    })
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.authorise(&headers)?;
    let query = parameters(query.unwrap_or_default().as_bytes()).map_err(StetError::bad_request)?;
    let page = page_of(&query)?;
    let all = consent.customer.accounts;
    let start = page.saturating_mul(ACCOUNTS_PAGE_SIZE).min(all.len());
    let end = start.saturating_add(ACCOUNTS_PAGE_SIZE).min(all.len());
    let listed: Vec<Value> = all[start..end]
        .iter()
        .map(|account| account_json(account, &consent))
        .collect();
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!({"href": format!("v1/accounts?page={page}")}),
    );
    if end < all.len() {
        links.insert(
            "next".into(),
            json!({"href": format!("v1/accounts?page={}", page + 1)}),
        );
    }
    Ok(Json(json!({"accounts": listed, "_links": links})))
}

fn balance_code(kind: BalanceKind) -> (&'static str, &'static str) {
    match kind {
        BalanceKind::ClosingBooked => ("CLBD", "Solde comptable"),
        BalanceKind::Expected => ("XPCD", "Solde instantané"),
        BalanceKind::InterimBooked => ("VALU", "Solde en date de valeur"),
        BalanceKind::OpeningBooked => ("OTHR", "Solde d'ouverture"),
        BalanceKind::InterimAvailable => ("OTHR", "Solde disponible"),
        BalanceKind::ForwardAvailable => ("OTHR", "Solde prévisionnel"),
        BalanceKind::Authorised => ("OTHR", "Solde autorisé"),
        BalanceKind::NonInvoiced => ("OTHR", "Encours carte non facturé"),
    }
}

/// One of the customer's accounts; `covered` says whether the consent reaches it.
fn account_of(
    consent: &Consent,
    id: &str,
    coverage: &Coverage,
) -> Result<&'static Account, StetError> {
    let account = consent
        .customer
        .account(id)
        .ok_or_else(StetError::not_found)?;
    if coverage.covers(account) {
        Ok(account)
    } else {
        Err(StetError::forbidden(
            "the consent does not cover this account",
        ))
    }
}

async fn balances(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.authorise(&headers)?;
    let account = account_of(&consent, &id, &consent.balances)?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let balances = account
        .balances
        .iter()
        .map(|balance| {
            let (code, name) = balance_code(balance.kind);
            let mut object = Map::new();
            object.insert("name".into(), name.into());
            object.insert("balanceAmount".into(), amount_json(&balance.money, false)?);
            object.insert("balanceType".into(), code.into());
            match balance.as_of {
                AsOf::EndOfDay { days_ago } => {
                    let day = customers::days_before(today(), days_ago);
                    object.insert("referenceDate".into(), day.to_string().into());
                }
                AsOf::Intraday => {
                    object.insert("lastChangeDateTime".into(), now.clone().into());
                }
            }
            Ok(Value::Object(object))
        })
        .collect::<Result<Vec<_>, StetError>>()?;
    Ok(Json(json!({
        "balances": balances,
        "_links": {
            "self": {"href": format!("v1/accounts/{}/balances", account.id)},
            "parent-list": {"href": "v1/accounts"},
        },
    })))
}

fn transaction_json(
    transaction: &customers::Transaction,
    today: NaiveDate,
) -> Result<Value, StetError> {
    let debit = transaction.money.amount.starts_with('-');
    let mut object = Map::new();
    object.insert("entryReference".into(), transaction.id.into());
    object.insert(
        "transactionAmount".into(),
        amount_json(&transaction.money, true)?,
    );
    object.insert(
        "creditDebitIndicator".into(),
        if debit { "DBIT" } else { "CRDT" }.into(),
    );
    let status = match transaction.status {
        customers::TransactionStatus::Booked => "BOOK",
        customers::TransactionStatus::Pending => "PDNG",
    };
    object.insert("status".into(), status.into());
    if let Some(day) = transaction.booking_date(today) {
        object.insert("bookingDate".into(), day.to_string().into());
        object.insert(
            "valueDate".into(),
            transaction.value_date(today).to_string().into(),
        );
    }
    object.insert(
        "transactionDate".into(),
        transaction.value_date(today).to_string().into(),
    );
    object.insert(
        "remittanceInformation".into(),
        json!({"unstructured": [transaction.description]}),
    );
    let party = if debit { "creditor" } else { "debtor" };
    object.insert(
        "relatedParties".into(),
        json!({ party: {"name": transaction.counterparty} }),
    );
    let mut code = transaction.bank_code.splitn(3, '-');
    object.insert(
        "bankTransactionCode".into(),
        json!({
            "domain": code.next().unwrap_or_default(),
            "family": code.next().unwrap_or_default(),
            "subFamily": code.next().unwrap_or_default(),
        }),
    );
    Ok(Value::Object(object))
}

fn parse_date(name: &str, text: &str) -> Result<NaiveDate, StetError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StetError::bad_request(format!("{name} must be a date (YYYY-MM-DD)")))
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.authorise(&headers)?;
    let account = account_of(&consent, &id, &consent.transactions)?;
    let query = parameters(query.unwrap_or_default().as_bytes()).map_err(StetError::bad_request)?;
    let date = |name: &str| {
        query
            .get(name)
            .map(|text| parse_date(name, text))
            .transpose()
    };
    let (from, to) = (date("dateFrom")?, date("dateTo")?);
    let page = page_of(&query)?;
    let today = today();
    let selected: Vec<&customers::Transaction> = account
        .transactions
        .iter()
        .filter(|transaction| {
            let day = transaction.value_date(today);
            from.is_none_or(|from| day >= from) && to.is_none_or(|to| day <= to)
        })
        .collect();
    let start = page.saturating_mul(PAGE_SIZE).min(selected.len());
    let end = start.saturating_add(PAGE_SIZE).min(selected.len());
    let listed = selected[start..end]
        .iter()
        .map(|transaction| transaction_json(transaction, today))
        .collect::<Result<Vec<_>, _>>()?;
    let href = |page: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(from) = from {
            query.append_pair("dateFrom", &from.to_string());
        }
        if let Some(to) = to {
            query.append_pair("dateTo", &to.to_string());
        }
        query.append_pair("page", &page.to_string());
        format!("v1/accounts/{}/transactions?{}", account.id, query.finish())
    };
    let mut links = Map::new();
    links.insert("self".into(), json!({"href": href(page)}));
    links.insert(
        "balances".into(),
        json!({"href": format!("v1/accounts/{}/balances", account.id)}),
    );
    if end < selected.len() {
        links.insert("next".into(), json!({"href": href(page + 1)}));
    }
    Ok(Json(json!({"transactions": listed, "_links": links})))
}

/// `PUT /v1/consents` body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConsentsBody {
    #[serde(default)]
    balances: Vec<AccountIdentification>,
    #[serde(default)]
    transactions: Vec<AccountIdentification>,
    trusted_beneficiaries: Option<bool>,
    psu_identity: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountIdentification {
    iban: Option<String>,
    other: Option<OtherIdentification>,
    currency: Option<String>,
}

#[derive(Deserialize)]
struct OtherIdentification {
    identification: Option<String>,
}

impl AccountIdentification {
    fn matches(&self, account: &Account) -> bool {
        let compact = |text: &str| -> String {
            text.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase()
        };
        let by_iban = matches!((&self.iban, account.iban), (Some(wanted), Some(iban)) if compact(wanted) == iban);
        let by_pan = matches!(
            (self.other.as_ref().and_then(|o| o.identification.as_deref()), account.masked_pan),
            (Some(wanted), Some(pan)) if wanted.trim() == pan
        );
        let currency = self
            .currency
            .as_deref()
            .is_none_or(|currency| currency.eq_ignore_ascii_case(account.currency));
        (by_iban || by_pan) && currency
    }
}

fn resolve(
    customer: &'static Customer,
    list: &[AccountIdentification],
    name: &str,
) -> Result<Coverage, StetError> {
    let mut ids = Vec::with_capacity(list.len());
    for (index, wanted) in list.iter().enumerate() {
        let account = customer
            .accounts
            .iter()
            .find(|account| wanted.matches(account))
            .ok_or_else(|| {
                StetError::bad_request(format!("{name}[{index}]: no such account of the PSU"))
            })?;
        ids.push(account.id);
    }
    Ok(Coverage::Listed(ids))
}

async fn put_consents(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, StetError> {
    let (consent_id, consent) = bank.authorise(&headers)?;
    let body: ConsentsBody = serde_json::from_slice(&body)
        .map_err(|error| StetError::bad_request(format!("consents: {error}")))?;
    let balances = resolve(consent.customer, &body.balances, "balances")?;
    let transactions = resolve(consent.customer, &body.transactions, "transactions")?;
    if body.trusted_beneficiaries == Some(true) {
        tracing::debug!("sandbox has no trusted beneficiaries to grant");
    }
    if let Some(consent) = bank.consents().get_mut(&consent_id) {
        consent.balances = balances;
        consent.transactions = transactions;
        consent.psu_identity = body.psu_identity.unwrap_or(false);
    }
    Ok(StatusCode::CREATED)
}

async fn identity(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.authorise(&headers)?;
    if !consent.psu_identity {
        return Err(StetError::forbidden(
            "the consent does not cover the PSU's identity",
        ));
    }
    Ok(Json(json!({
        "connectedPsu": consent.customer.name,
        "_links": {"self": {"href": uri.path()}},
    })))
}
