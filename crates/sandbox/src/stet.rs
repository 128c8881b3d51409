//! The STET (PSD2 API v1.4, France) sandbox bank: the scope `aisp` on the shared OAuth2
//! authorization server, the account information endpoints and the optional
//! `PUT /v1/consents`, over the synthetic customers of [`crate::customers`] with the movements
//! of the shared [`crate::ledger`], and payment requests ([`payments`], the scope `pisp`).
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

mod payments;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::customers::{self, Account, AccountKind, BalanceKind, Customer, Money, Transaction};
use crate::oauth::BindError;
use crate::plumbing::{header_text, today};
use crate::scaffold::{self, ApiError, Query, Window, page};

/// The OAuth2 scope of account information.
const SCOPE: &str = "aisp";
/// Accounts per page.
pub const ACCOUNTS_PAGE_SIZE: usize = 2;
/// Transactions per page.
pub const PAGE_SIZE: usize = 10;
/// STET amounts have at most two decimals.
const MAX_DECIMALS: u32 = 2;

/// The STET standard.
#[derive(Debug)]
pub struct Stet;

type Bank = scaffold::Bank<Stet>;
type StetError = ApiError<Stet>;

impl scaffold::Standard for Stet {
    type Consent = Consent;
    const TITLE: &'static str = "Banque Sandbox (STET)";

    fn routes() -> Router<Arc<Bank>> {
        Router::new()
            .route("/v1/accounts", get(accounts))
            .route("/v1/accounts/{id}/balances", get(balances))
            .route("/v1/accounts/{id}/transactions", get(transactions))
            .route("/v1/consents", put(put_consents))
            .route("/v1/end-user-identity", get(identity))
            .route("/v1/payment-requests", post(payments::create))
            .route("/v1/payment-requests/{id}", get(payments::read))
            .route(
                "/v1/payment-requests/{id}/confirmation",
                post(payments::confirm),
            )
    }

    /// `pisp` with `paymentRequestResourceId` names a payment request; otherwise the
    /// authorization request creates the consent, for every account.
    fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        if let Some(bound) = payments::bind(bank, parameters) {
            return bound;
        }
        let scopes = parameters.get("scope").map(String::as_str).unwrap_or("");
        if !scopes.split_ascii_whitespace().any(|scope| scope == SCOPE) {
            return Err(BindError::invalid_scope("scope must include aisp"));
        }
        Ok(bank.file(Consent {
            customer: customers::default_customer(),
            status: Status::Received,
            balances: Coverage::All,
            transactions: Coverage::All,
            psu_identity: false,
        }))
    }

    fn payment_scope(_: &str) -> String {
        payments::SCOPE.into()
    }

    fn admit(headers: &HeaderMap) -> Result<(), StetError> {
        if header_text(headers, "x-request-id").is_none_or(|id| id.trim().is_empty()) {
            return Err(ApiError::bad_request("X-Request-ID header is missing"));
        }
        Ok(())
    }

    fn error_code(_: StatusCode) -> &'static str {
        ""
    }

    /// STET's `ErrorModel`.
    fn error_body(error: &StetError) -> Value {
        json!({
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "status": error.status.as_u16(),
            "error": error.status.canonical_reason().unwrap_or("Error"),
            "message": error.message,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Received,
    Valid,
    Rejected,
    /// Revoked by the customer or expired by the bank.
    Ended,
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
            Coverage::Listed(ids) => ids.contains(&account.id.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Consent {
    customer: &'static Customer,
    status: Status,
    balances: Coverage,
    transactions: Coverage,
    psu_identity: bool,
}

impl scaffold::Consent for Consent {
    fn customer(&self) -> &'static Customer {
        self.customer
    }

    fn approvable(&self) -> bool {
        matches!(self.status, Status::Received | Status::Valid)
    }

    fn approve(&mut self, customer: &'static Customer) {
        self.customer = customer;
        self.status = Status::Valid;
    }

    fn reject(&mut self) {
        self.status = Status::Rejected;
    }

    fn usable(&self) -> bool {
        self.status == Status::Valid
    }

    fn end(&mut self, _: scaffold::Ending) {
        self.status = Status::Ended;
    }

    fn items(&self) -> Vec<String> {
        vec![
            "the list of your accounts".into(),
            "balances (the accounts you choose)".into(),
            "transactions (the accounts you choose)".into(),
        ]
    }

    fn terms(&self) -> String {
        "for 180 days".into()
    }

    fn token_fields(&self, _: &str) -> Map<String, Value> {
        Map::from_iter([("scope".into(), SCOPE.into())])
    }
}

// ---------------------------------------------------------------------------------------------
// Account information

fn amount_json(money: &Money, magnitude: bool) -> Value {
    let mut amount = money.at_precision(MAX_DECIMALS);
    if magnitude {
        amount = amount.abs();
    }
    json!({"currency": money.currency, "amount": amount.to_string()})
}

fn account_identification(account: &Account) -> Value {
    match (&account.iban, &account.masked_pan) {
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
    let (_, consent) = bank.reader(&headers)?;
    let page_number = Query::parse(query)?.number("page")?;
    let all = &consent.customer.accounts;
    let start = page_number.saturating_mul(ACCOUNTS_PAGE_SIZE);
    let (listed, next) = page(all, start, ACCOUNTS_PAGE_SIZE);
    let listed: Vec<Value> = listed
        .iter()
        .map(|account| account_json(account, &consent))
        .collect();
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!({"href": format!("v1/accounts?page={page_number}")}),
    );
    if next.is_some() {
        links.insert(
            "next".into(),
            json!({"href": format!("v1/accounts?page={}", page_number + 1)}),
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

/// One of the customer's accounts, if `coverage` reaches it.
fn account_of(
    consent: &Consent,
    id: &str,
    coverage: &Coverage,
) -> Result<&'static Account, StetError> {
    let account = consent
        .customer
        .account(id)
        .ok_or_else(|| ApiError::not_found("no such account"))?;
    if coverage.covers(account) {
        Ok(account)
    } else {
        Err(ApiError::forbidden(
            "the consent does not cover this account",
        ))
    }
}

async fn balances(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.reader(&headers)?;
    let account = account_of(&consent, &id, &consent.balances)?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let balances: Vec<Value> = bank
        .ledger
        .balances(account)
        .iter()
        .map(|balance| {
            let (code, name) = balance_code(balance.kind);
            let mut object = Map::new();
            object.insert("name".into(), name.into());
            object.insert("balanceAmount".into(), amount_json(&balance.money, false));
            object.insert("balanceType".into(), code.into());
            match balance.as_of.day(today()) {
                Some(day) => object.insert("referenceDate".into(), day.to_string().into()),
                None => object.insert("lastChangeDateTime".into(), now.clone().into()),
            };
            Value::Object(object)
        })
        .collect();
    Ok(Json(json!({
        "balances": balances,
        "_links": {
            "self": {"href": format!("v1/accounts/{}/balances", account.id)},
            "parent-list": {"href": "v1/accounts"},
        },
    })))
}

fn transaction_json(transaction: &Transaction, today: NaiveDate) -> Value {
    let debit = transaction.money.is_debit();
    let mut object = Map::new();
    object.insert("entryReference".into(), transaction.id.clone().into());
    object.insert(
        "transactionAmount".into(),
        amount_json(&transaction.money, true),
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
    let value_date = transaction.value_date(today).to_string();
    if let Some(day) = transaction.booking_date(today) {
        object.insert("bookingDate".into(), day.to_string().into());
        object.insert("valueDate".into(), value_date.clone().into());
    }
    object.insert("transactionDate".into(), value_date.into());
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
    Value::Object(object)
}

async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, StetError> {
    let (_, consent) = bank.reader(&headers)?;
    let account = account_of(&consent, &id, &consent.transactions)?;
    let query = Query::parse(query)?;
    let window = Window {
        from: query.date("dateFrom")?,
        to: query.date("dateTo")?,
    };
    let page_number = query.number("page")?;
    let today = today();
    let all = bank.ledger.transactions(account);
    let selected: Vec<&Transaction> = window.select(&all, today).collect();
    let (listed, next) = page(&selected, page_number.saturating_mul(PAGE_SIZE), PAGE_SIZE);
    let listed: Vec<Value> = listed
        .iter()
        .map(|transaction| transaction_json(transaction, today))
        .collect();
    let href = |page: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(from) = window.from {
            query.append_pair("dateFrom", &from.to_string());
        }
        if let Some(to) = window.to {
            query.append_pair("dateTo", &to.to_string());
        }
        query.append_pair("page", &page.to_string());
        format!("v1/accounts/{}/transactions?{}", account.id, query.finish())
    };
    let mut links = Map::new();
    links.insert("self".into(), json!({"href": href(page_number)}));
    links.insert(
        "balances".into(),
        json!({"href": format!("v1/accounts/{}/balances", account.id)}),
    );
    if next.is_some() {
        links.insert("next".into(), json!({"href": href(page_number + 1)}));
    }
    Ok(Json(json!({"transactions": listed, "_links": links})))
}

// ---------------------------------------------------------------------------------------------
// `PUT /v1/consents`: the AISP names the accounts

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
    fn names(&self, account: &Account) -> bool {
        let pan = self
            .other
            .as_ref()
            .and_then(|o| o.identification.as_deref());
        account.is_named_by(self.iban.as_deref(), pan, self.currency.as_deref())
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
            .find(|account| wanted.names(account))
            .ok_or_else(|| {
                ApiError::bad_request(format!("{name}[{index}]: no such account of the PSU"))
            })?;
        ids.push(account.id.as_str());
    }
    Ok(Coverage::Listed(ids))
}

async fn put_consents(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, StetError> {
    let (consent_id, consent) = bank.reader(&headers)?;
    let body: ConsentsBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("consents: {error}")))?;
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
    let (_, consent) = bank.reader(&headers)?;
    if !consent.psu_identity {
        return Err(ApiError::forbidden(
            "the consent does not cover the PSU's identity",
        ));
    }
    Ok(Json(json!({
        "connectedPsu": consent.customer.name,
        "_links": {"self": {"href": uri.path()}},
    })))
}
