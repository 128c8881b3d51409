//! Berlin Group account information: the account list and details, balances, and
//! transaction reports (booked in pages, pending on the first), each bounded by what the
//! consent named in `Consent-ID` covers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::consents::{Access, ConsentStatus};
use super::{Bank, CONSENT_ID, PAGE_SIZE, TppError, consent_invalid, require_request_id};
use crate::customers::{
    Account, AccountKind, AccountStatus, BalanceKind, Customer, Money, Transaction,
    TransactionStatus,
};
use crate::oauth::BearerError;
use crate::plumbing::{header_text, today};
use crate::scaffold::{ApiError, BadRequest, Query, Window, page};

/// The most decimal places a Berlin Group amount has (`-?[0-9]{1,14}(\.[0-9]{1,3})?`).
const MAX_DECIMALS: u32 = 3;

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
            .ok_or_else(|| ApiError::not_found("no such account"))?;
        if self.access.lists(account) {
            Ok(account)
        } else {
            Err(consent_invalid("the consent does not cover this account"))
        }
    }
}

/// Checks `X-Request-ID`, `Consent-ID` and the bearer token of a data request.
fn authorise(bank: &Bank, headers: &HeaderMap) -> Result<Grant, TppError> {
    require_request_id(headers)?;
    let consent_id = header_text(headers, CONSENT_ID)
        .ok_or_else(|| ApiError::bad_request("Consent-ID header is missing"))?;
    let token = bank.auth.bearer(headers).map_err(|error| match error {
        BearerError::Missing => ApiError::unauthorized("bearer token is missing"),
        BearerError::Unknown => ApiError::unauthorized("unknown access token"),
        BearerError::Expired => ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "TOKEN_EXPIRED",
            "access token expired",
        ),
    })?;
    let consent = bank.consent(consent_id).ok_or_else(|| {
        ApiError::coded(
            StatusCode::BAD_REQUEST,
            "CONSENT_UNKNOWN",
            "no such consent",
        )
    })?;
    if token.consent_id.as_deref() != Some(consent_id) {
        return Err(ApiError::unauthorized(
            "the token was not issued for this consent",
        ));
    }
    match consent.status(today()) {
        ConsentStatus::Valid => Ok(Grant {
            customer: consent.customer,
            access: consent.access,
        }),
        ConsentStatus::Expired => Err(ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "CONSENT_EXPIRED",
            "the consent has expired",
        )),
        status => Err(consent_invalid(format!(
            "the consent is {}",
            status.as_str()
        ))),
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
fn amount_json(money: &Money) -> Value {
    let amount = money.at_precision(MAX_DECIMALS);
    json!({"currency": money.currency, "amount": amount.to_string()})
}

/// The account reference echoed in balance and transaction reports.
fn reference_json(account: &Account) -> Value {
    match (&account.iban, &account.masked_pan) {
        (Some(iban), _) => json!({"iban": iban, "currency": account.currency}),
        (None, Some(pan)) => json!({"maskedPan": pan, "currency": account.currency}),
        (None, None) => json!({"currency": account.currency}),
    }
}

/// The account's balances, with the ledger's movements.
fn balances_json(bank: &Bank, account: &Account) -> Vec<Value> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let today = today();
    bank.ledger
        .balances(account)
        .iter()
        .map(|balance| {
            let mut object = Map::new();
            object.insert("balanceAmount".into(), amount_json(&balance.money));
            object.insert("balanceType".into(), balance_type(balance.kind).into());
            if let Some(included) = balance.credit_limit_included {
                object.insert("creditLimitIncluded".into(), included.into());
            }
            match balance.as_of.day(today) {
                Some(day) => object.insert("referenceDate".into(), day.to_string().into()),
                None => object.insert("lastChangeDateTime".into(), now.clone().into()),
            };
            Value::Object(object)
        })
        .collect()
}

fn account_json(bank: &Bank, account: &Account, grant: &Grant, with_balance: bool) -> Value {
    let mut object = Map::new();
    object.insert("resourceId".into(), account.id.clone().into());
    if let Some(iban) = &account.iban {
        object.insert("iban".into(), iban.clone().into());
    }
    if let Some(pan) = &account.masked_pan {
        object.insert("maskedPan".into(), pan.clone().into());
    }
    object.insert("currency".into(), account.currency.clone().into());
    object.insert("name".into(), account.name.clone().into());
    object.insert("product".into(), account.product.clone().into());
    object.insert(
        "cashAccountType".into(),
        cash_account_type(account.kind).into(),
    );
    let status = match account.status {
        AccountStatus::Enabled => "enabled",
        AccountStatus::Blocked => "blocked",
    };
    object.insert("status".into(), status.into());
    object.insert("bic".into(), account.bic.clone().into());
    object.insert("usage".into(), "PRIV".into());
    if grant.access.owner_name.covers(account) {
        object.insert("ownerName".into(), grant.customer.name.clone().into());
    }
    let balances_granted = grant.access.balances.covers(account);
    if with_balance && balances_granted {
        object.insert("balances".into(), balances_json(bank, account).into());
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
    Value::Object(object)
}

/// The `withBalance` flag of a query: `true` or `false` (the default).
fn with_balance(query: &Query) -> Result<bool, BadRequest> {
    match query.get("withBalance") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(BadRequest("withBalance must be true or false".into())),
    }
}

/// `GET /v1/accounts`: the accounts the consent lists.
pub(super) async fn list(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = authorise(&bank, &headers)?;
    let with_balance = with_balance(&Query::parse(query)?)?;
    let accounts: Vec<Value> = grant
        .customer
        .accounts
        .iter()
        .filter(|account| grant.access.lists(account))
        .map(|account| account_json(&bank, account, &grant, with_balance))
        .collect();
    Ok(Json(json!({ "accounts": accounts })))
}

/// `GET /v1/accounts/{id}`.
pub(super) async fn one(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = authorise(&bank, &headers)?;
    let with_balance = with_balance(&Query::parse(query)?)?;
    let account = grant.account(&id)?;
    Ok(Json(
        json!({ "account": account_json(&bank, account, &grant, with_balance) }),
    ))
}

/// `GET /v1/accounts/{id}/balances`.
pub(super) async fn balances(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, TppError> {
    let grant = authorise(&bank, &headers)?;
    let account = grant.account(&id)?;
    if !grant.access.balances.covers(account) {
        return Err(consent_invalid(
            "the consent does not cover balances of this account",
        ));
    }
    Ok(Json(json!({
        "account": reference_json(account),
        "balances": balances_json(&bank, account),
    })))
}

/// The query of a transaction report request.
struct ReportQuery {
    booked: bool,
    pending: bool,
    booking_status: String,
    window: Window,
    with_balance: bool,
    page: usize,
}

impl ReportQuery {
    fn parse(query: Option<String>) -> Result<ReportQuery, TppError> {
        let query = Query::parse(query)?;
        let not_supported = |what: &str| {
            ApiError::coded(
                StatusCode::BAD_REQUEST,
                "PARAMETER_NOT_SUPPORTED",
                format!("{what} is not supported"),
            )
        };
        for name in ["deltaList", "entryReferenceFrom"] {
            if query.get(name).is_some() {
                return Err(not_supported(name));
            }
        }
        let booking_status = query
            .get("bookingStatus")
            .ok_or_else(|| ApiError::bad_request("bookingStatus is missing"))?;
        let (booked, pending) = match booking_status {
            "booked" => (true, false),
            "pending" => (false, true),
            "both" => (true, true),
            "information" | "all" => return Err(not_supported("bookingStatus=information")),
            _ => {
                return Err(ApiError::bad_request(
                    "bookingStatus must be booked, pending or both",
                ));
            }
        };
        let window = Window {
            from: query.date("dateFrom")?,
            to: query.date("dateTo")?,
        };
        if let (Some(from), Some(to)) = (window.from, window.to)
            && to < from
        {
            return Err(ApiError::coded(
                StatusCode::BAD_REQUEST,
                "PERIOD_INVALID",
                "dateTo lies before dateFrom",
            ));
        }
        Ok(ReportQuery {
            booked,
            pending,
            booking_status: booking_status.to_owned(),
            window,
            with_balance: with_balance(&query)?,
            page: query.number("page")?,
        })
    }

    /// The link to page `page` of the same report.
    fn href(&self, account: &Account, page: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("bookingStatus", &self.booking_status);
        if let Some(from) = self.window.from {
            query.append_pair("dateFrom", &from.to_string());
        }
        if let Some(to) = self.window.to {
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

fn transaction_json(transaction: &Transaction, today: NaiveDate) -> Value {
    let mut object = Map::new();
    object.insert("transactionId".into(), transaction.id.clone().into());
    if let Some(date) = transaction.booking_date(today) {
        object.insert("bookingDate".into(), date.to_string().into());
    }
    object.insert(
        "valueDate".into(),
        transaction.value_date(today).to_string().into(),
    );
    object.insert("transactionAmount".into(), amount_json(&transaction.money));
    let party = if transaction
        .money
        .at_precision(MAX_DECIMALS)
        .is_sign_negative()
    {
        "creditorName"
    } else {
        "debtorName"
    };
    object.insert(party.into(), transaction.counterparty.clone().into());
    if let Some(country) = &transaction.country {
        let address = if party == "creditorName" {
            "creditorAddress"
        } else {
            "debtorAddress"
        };
        object.insert(address.into(), json!({ "country": country }));
    }
    object.insert(
        "remittanceInformationUnstructured".into(),
        transaction.description.clone().into(),
    );
    if let Some(mcc) = &transaction.mcc {
        object.insert("merchantCategoryCode".into(), mcc.clone().into());
    }
    object.insert(
        "bankTransactionCode".into(),
        transaction.bank_code.clone().into(),
    );
    Value::Object(object)
}

/// `GET /v1/accounts/{id}/transactions`: booked transactions in pages, pending ones on the
/// first.
pub(super) async fn transactions(
    State(bank): State<Arc<Bank>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, TppError> {
    let grant = authorise(&bank, &headers)?;
    let account = grant.account(&id)?;
    if !grant.access.transactions.covers(account) {
        return Err(consent_invalid(
            "the consent does not cover transactions of this account",
        ));
    }
    let query = ReportQuery::parse(query)?;
    let today = today();
    let all = bank.ledger.transactions(account);
    let select = |wanted: bool, status: TransactionStatus| -> Vec<&Transaction> {
        let in_window = query.window.select(&all, today);
        in_window
            .filter(|transaction| wanted && transaction.status == status)
            .collect()
    };
    let booked = select(query.booked, TransactionStatus::Booked);
    let pending = select(query.pending && query.page == 0, TransactionStatus::Pending);
    let (booked_page, next) = page(&booked, query.page.saturating_mul(PAGE_SIZE), PAGE_SIZE);
    let to_json = |list: &[&Transaction]| -> Vec<Value> {
        list.iter()
            .map(|transaction| transaction_json(transaction, today))
            .collect()
    };
    let mut links = Map::new();
    links.insert(
        "account".into(),
        json!({"href": format!("/v1/accounts/{}", account.id)}),
    );
    if next.is_some() {
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
            "booked": to_json(booked_page),
            "pending": to_json(&pending),
            "_links": links,
        },
    });
    if query.with_balance && grant.access.balances.covers(account) {
        report["balances"] = balances_json(&bank, account).into();
    }
    Ok(Json(report))
}
