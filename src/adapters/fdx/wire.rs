//! Financial Data Exchange (FDX, US) 6.x wire types (serde) and their conversion into the
//! canonical model.
//!
//! What the conversions tolerate, and what they refuse ([`AdapterError::Decode`]); none of them
//! panics on bank input:
//! - Amounts are JSON numbers: they are read from their text (`2311.5` stays `2311.5`,
//!   `1.23456` keeps five places), never through `f64`; strings are accepted too.
//! - Transaction signs come from `debitCreditMemo`: `DEBIT` is money out, `CREDIT` money in,
//!   whatever sign the amount carries. `MEMO` says nothing about the direction: a memo-posted
//!   `PENDING` or `AUTHORIZATION` entry is a hold, taken as a pending debit; any other memo
//!   does not move money and is skipped. Without `debitCreditMemo` only a negative amount is
//!   clear (a debit).
//! - Accounts come flat with `accountCategory` (FDX 6) or wrapped by category
//!   (`{"depositAccount": {...}}`, FDX 4/5): both are read. `accountId` is FDX's long-term
//!   persistent identity of the account (never an account number) and keys the stable id.
//! - Balances: a deposit account's `currentBalance` is its interim booked balance and
//!   `availableBalance` its interim available one. On line-of-credit and loan accounts the
//!   balance is what the customer owes, so `currentBalance`/`principalBalance` become negative;
//!   `availableCredit` is available, `creditLine` the credit limit. Absent fields are absent
//!   balances, never 0.
//! - Transaction status `POSTED` → booked; `PENDING`, `AUTHORIZATION`, `MEMO` → pending. The
//!   booking date is the `postedTimestamp` of a posted entry; the value date is the
//!   `transactionTimestamp` (or, pending, the posted one). Transactions carry no currency:
//!   they take the account's unless they name one.
//! - `merchantCategoryCode` may be a number: leading zeros are put back.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::adapters::common::{
    TransactionIds, account_currency, currency, date, date_time, decimal, decode, json_scalar_text,
    non_empty, signed,
};
use crate::adapters::{self, AdapterError, BankAccount};
use crate::model::{
    Account, AccountStatus, AccountType, Balance, BalanceType, Scope, Transaction,
    TransactionStatus,
};

// ---------------------------------------------------------------------------------------------
// Paging

/// `page` of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub next_page_key: Option<String>,
}

/// `links` of a list.
pub type Links = crate::adapters::common::NextLink;

/// Where the next page is: a link, or the key to pass as `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Link(String),
    Key(String),
}

fn next_of(page: Option<&Page>, links: Option<&Links>) -> Option<Next> {
    let link = links.and_then(Links::href);
    match link {
        Some(link) => Some(Next::Link(link.to_owned())),
        None => page
            .and_then(|page| page.next_page_key.as_deref())
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(|key| Next::Key(key.to_owned())),
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// `GET /accounts` answer: each element flat or wrapped by category.
#[derive(Debug, Deserialize)]
pub struct AccountsResponse {
    pub page: Option<Page>,
    pub links: Option<Links>,
    #[serde(default)]
    pub accounts: Vec<Box<RawValue>>,
}

impl AccountsResponse {
    /// The next page, if any.
    pub fn next(&self) -> Option<Next> {
        next_of(self.page.as_ref(), self.links.as_ref())
    }
}

/// One account with its balances (deposit, line of credit, loan and others).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdxAccount {
    pub account_category: Option<String>,
    pub account_id: Option<String>,
    pub account_type: Option<String>,
    pub account_number_display: Option<String>,
    pub product_name: Option<String>,
    pub nickname: Option<String>,
    pub status: Option<String>,
    pub currency: Option<CurrencyCode>,
    pub balance_as_of: Option<String>,
    pub current_balance: Option<Box<RawValue>>,
    pub available_balance: Option<Box<RawValue>>,
    pub available_credit: Option<Box<RawValue>>,
    pub credit_line: Option<Box<RawValue>>,
    pub principal_balance: Option<Box<RawValue>>,
}

/// `{"currencyCode": "USD"}`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyCode {
    pub currency_code: Option<String>,
}

/// Reads an account, flat (FDX 6) or wrapped by category (`{"depositAccount": {...}}`).
pub fn account_entity(raw: &RawValue) -> Result<FdxAccount, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw.get()).map_err(|_| "an account is not an object".to_owned())?;
    let wrapped = object.len() == 1
        && object
            .iter()
            .next()
            .is_some_and(|(key, value)| key.ends_with("Account") && value.is_object());
    if wrapped {
        let (key, _) = object.iter().next().ok_or("empty account")?;
        let inner: std::collections::HashMap<String, Box<RawValue>> =
            serde_json::from_str(raw.get()).map_err(|error| error.to_string())?;
        let inner = inner.get(key).ok_or("empty account")?;
        let mut account: FdxAccount =
            serde_json::from_str(inner.get()).map_err(|error| error.to_string())?;
        if account.account_category.is_none() {
            account.account_category = Some(category_of_wrapper(key));
        }
        return Ok(account);
    }
    serde_json::from_str(raw.get()).map_err(|error| error.to_string())
}

fn category_of_wrapper(key: &str) -> String {
    // depositAccount → DEPOSIT_ACCOUNT, locAccount → LOC_ACCOUNT
    let mut category = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            category.push('_');
        }
        category.push(c.to_ascii_uppercase());
    }
    category
}

/// Whether balances of this category are amounts owed (line of credit, loan).
fn is_liability(category: Option<&str>) -> bool {
    matches!(
        category.map(|c| c.trim().to_ascii_uppercase()).as_deref(),
        Some("LOC_ACCOUNT" | "LOAN_ACCOUNT")
    )
}

/// The canonical type of an FDX account.
pub fn account_type(category: Option<&str>, kind: Option<&str>) -> AccountType {
    match kind.map(|kind| kind.trim().to_ascii_uppercase()).as_deref() {
        Some("CHECKING" | "COMMERCIALDEPOSIT") => return AccountType::Current,
        Some("SAVINGS" | "CD" | "MONEYMARKET" | "ESCROW") => return AccountType::Savings,
        Some("CREDITCARD" | "CHARGE") => return AccountType::Card,
        Some(
            "LOAN" | "MORTGAGE" | "AUTOLOAN" | "STUDENTLOAN" | "HOMEEQUITYLOAN" | "LINEOFCREDIT"
            | "INSTALLMENT" | "PERSONALLOAN",
        ) => return AccountType::Loan,
        _ => {}
    }
    match category.map(|c| c.trim().to_ascii_uppercase()).as_deref() {
        Some("LOAN_ACCOUNT") => AccountType::Loan,
        _ => AccountType::Other,
    }
}

/// The canonical account (`None`: nothing identifies it).
pub fn account(
    bank_id: &str,
    entity: &FdxAccount,
    context: &str,
) -> Result<Option<BankAccount>, AdapterError> {
    let Some(account_id) = non_empty(entity.account_id.clone()) else {
        tracing::warn!(context, "account has no accountId; skipped");
        return Ok(None);
    };
    let currency = account_currency(
        entity
            .currency
            .as_ref()
            .and_then(|code| code.currency_code.as_deref()),
    )
    .map_err(|message| decode(format!("{context}.currency"), message))?;
    let kind = account_type(
        entity.account_category.as_deref(),
        entity.account_type.as_deref(),
    );
    let status = match entity
        .status
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase())
        .as_deref()
    {
        None | Some("OPEN" | "DELINQUENT" | "NEGATIVECURRENTBALANCE") => AccountStatus::Enabled,
        Some("CLOSED" | "PAID") => AccountStatus::Deleted,
        Some(_) => AccountStatus::Blocked,
    };
    let display = non_empty(entity.account_number_display.clone());
    Ok(Some(BankAccount {
        account: Account {
            id: adapters::account_id(bank_id, &format!("accountId:{account_id}")),
            bank_id: bank_id.to_owned(),
            display_name: non_empty(entity.nickname.clone())
                .or_else(|| non_empty(entity.product_name.clone())),
            kind,
            currency,
            iban: None,
            iban_masked: None,
            bban: None,
            sort_code: None,
            account_number: None,
            pan_masked: display.filter(|_| kind == AccountType::Card),
            holder_name: None,
            status,
        },
        bank_ref: account_id,
    }))
}

/// The canonical accounts of an account list.
pub fn accounts(bank_id: &str, list: &AccountsResponse) -> Result<Vec<BankAccount>, AdapterError> {
    let mut accounts = Vec::with_capacity(list.accounts.len());
    for (index, raw) in list.accounts.iter().enumerate() {
        let context = format!("accounts[{index}]");
        let entity = account_entity(raw).map_err(|message| decode(&context, message))?;
        if let Some(account) = account(bank_id, &entity, &context)? {
            accounts.push(account);
        }
    }
    Ok(accounts)
}

/// The canonical balances of an account's details.
pub fn balances(account_id: &str, entity: &FdxAccount) -> Result<Vec<Balance>, AdapterError> {
    let currency = currency(
        entity
            .currency
            .as_ref()
            .and_then(|code| code.currency_code.as_deref()),
    )
    .map_err(|message| decode("currency", message))?;
    let as_of = date_time(entity.balance_as_of.as_deref())
        .map_err(|message| decode("balanceAsOf", message))?;
    let owed = is_liability(entity.account_category.as_deref());
    let fields: [(&str, &Option<Box<RawValue>>, BalanceType, bool); 5] = [
        (
            "currentBalance",
            &entity.current_balance,
            BalanceType::InterimBooked,
            owed,
        ),
        (
            "principalBalance",
            &entity.principal_balance,
            BalanceType::InterimBooked,
            true,
        ),
        (
            "availableBalance",
            &entity.available_balance,
            BalanceType::InterimAvailable,
            false,
        ),
        (
            "availableCredit",
            &entity.available_credit,
            BalanceType::InterimAvailable,
            false,
        ),
        (
            "creditLine",
            &entity.credit_line,
            BalanceType::CreditLimit,
            false,
        ),
    ];
    let mut converted = Vec::new();
    for (name, raw, kind, negate) in fields {
        let Some(raw) = raw else { continue };
        if raw.get().trim() == "null" {
            continue;
        }
        let amount = decimal(raw).map_err(|message| decode(name, message))?;
        let amount = if negate && !amount.is_zero() {
            -amount
        } else {
            amount
        };
        if converted
            .iter()
            .any(|balance: &Balance| balance.kind == kind)
        {
            continue;
        }
        converted.push(Balance {
            account_id: account_id.to_owned(),
            kind,
            amount,
            currency: currency.clone(),
            credit_limit_included: None,
            as_of,
        });
    }
    Ok(converted)
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// `GET /accounts/{accountId}/transactions` answer.
#[derive(Debug, Deserialize)]
pub struct TransactionsResponse {
    pub page: Option<Page>,
    pub links: Option<Links>,
    #[serde(default)]
    pub transactions: Vec<Box<RawValue>>,
}

impl TransactionsResponse {
    /// The next page, if any.
    pub fn next(&self) -> Option<Next> {
        next_of(self.page.as_ref(), self.links.as_ref())
    }
}

/// One transaction (any category).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FdxTransaction {
    pub transaction_id: Option<String>,
    pub posted_timestamp: Option<String>,
    pub transaction_timestamp: Option<String>,
    pub description: Option<String>,
    pub memo: Option<String>,
    pub debit_credit_memo: Option<String>,
    pub status: Option<String>,
    pub amount: Option<Box<RawValue>>,
    pub currency: Option<CurrencyCode>,
    pub payee: Option<String>,
    pub merchant_category_code: Option<Box<RawValue>>,
    pub category: Option<String>,
}

fn transaction_entity(raw: &RawValue) -> Result<FdxTransaction, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw.get()).map_err(|_| "a transaction is not an object".to_owned())?;
    if object.len() == 1
        && let Some((key, value)) = object.iter().next()
        && key.ends_with("Transaction")
        && value.is_object()
    {
        return serde_json::from_value(value.clone()).map_err(|error| error.to_string());
    }
    serde_json::from_str(raw.get()).map_err(|error| error.to_string())
}

/// The canonical transactions of a list in `account_currency` (entries that move no money
/// skipped).
pub fn transactions(
    account_id: &str,
    account_currency: &str,
    list: &[Box<RawValue>],
) -> Result<Vec<Transaction>, AdapterError> {
    let mut ids = TransactionIds::default();
    let mut converted = Vec::with_capacity(list.len());
    for (index, raw) in list.iter().enumerate() {
        let context = format!("transactions[{index}]");
        let entity = transaction_entity(raw).map_err(|message| decode(&context, message))?;
        if let Some(transaction) =
            transaction(account_id, account_currency, entity, &mut ids, &context)?
        {
            converted.push(transaction);
        }
    }
    Ok(converted)
}

fn day_of(text: Option<&str>) -> Result<Option<NaiveDate>, String> {
    date(text)
}

fn transaction(
    account_id: &str,
    account_currency: &str,
    entity: FdxTransaction,
    ids: &mut TransactionIds,
    context: &str,
) -> Result<Option<Transaction>, AdapterError> {
    let status_code = entity
        .status
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase());
    let status = match status_code.as_deref() {
        Some("POSTED") => TransactionStatus::Booked,
        Some("PENDING" | "AUTHORIZATION" | "MEMO") => TransactionStatus::Pending,
        None if entity.posted_timestamp.is_some() => TransactionStatus::Booked,
        None => TransactionStatus::Pending,
        Some(_) => {
            tracing::warn!(context, "transaction status unknown; skipped");
            return Ok(None);
        }
    };
    let raw = entity
        .amount
        .as_deref()
        .ok_or_else(|| decode(context, "amount is missing"))?;
    let amount = decimal(raw).map_err(|message| decode(format!("{context}.amount"), message))?;
    let amount = match entity
        .debit_credit_memo
        .as_deref()
        .map(|code| code.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("DEBIT") => signed(amount, true),
        Some("CREDIT") => signed(amount, false),
        Some("MEMO") if status == TransactionStatus::Pending => signed(amount, true),
        Some("MEMO") => {
            tracing::debug!(context, "memo entry moves no money; skipped");
            return Ok(None);
        }
        None if amount.is_sign_negative() => amount,
        None => {
            return Err(decode(
                context,
                "debitCreditMemo is missing and the amount is unsigned",
            ));
        }
        Some(_) => {
            return Err(decode(
                format!("{context}.debitCreditMemo"),
                "neither DEBIT, CREDIT nor MEMO",
            ));
        }
    };
    let currency = match entity
        .currency
        .as_ref()
        .and_then(|code| code.currency_code.as_deref())
    {
        Some(code) => currency(Some(code))
            .map_err(|message| decode(format!("{context}.currency"), message))?,
        None => account_currency.to_owned(),
    };
    let posted = day_of(entity.posted_timestamp.as_deref())
        .map_err(|message| decode(format!("{context}.postedTimestamp"), message))?;
    let happened = day_of(entity.transaction_timestamp.as_deref())
        .map_err(|message| decode(format!("{context}.transactionTimestamp"), message))?;
    let (booking_date, value_date) = match status {
        TransactionStatus::Booked => (posted, happened),
        TransactionStatus::Pending => (None, happened.or(posted)),
    };
    let description = non_empty(entity.description).or_else(|| non_empty(entity.memo));
    let merchant_category_code = entity
        .merchant_category_code
        .as_deref()
        .map(|raw| {
            let is_number = !raw.get().trim_start().starts_with('"');
            json_scalar_text(raw).map(|code| {
                let code = code.trim().to_owned();
                if is_number && code.len() < 4 && code.bytes().all(|b| b.is_ascii_digit()) {
                    format!("{code:0>4}")
                } else {
                    code
                }
            })
        })
        .transpose()
        .map_err(|message| decode(format!("{context}.merchantCategoryCode"), message))?
        .filter(|code| !code.is_empty());
    let id = ids.id_or_derived(
        non_empty(entity.transaction_id),
        account_id,
        posted.or(happened),
        amount,
        &currency,
        description.as_deref(),
    );
    Ok(Some(Transaction {
        id,
        account_id: account_id.to_owned(),
        status,
        booking_date,
        value_date,
        amount,
        currency,
        description,
        counterparty_name: non_empty(entity.payee),
        counterparty_country: None,
        merchant_category_code,
        bank_code: non_empty(entity.category),
    }))
}

// ---------------------------------------------------------------------------------------------
// Consent

/// The FDX data clusters a set of scopes needs.
pub fn data_clusters(scopes: &[Scope]) -> Vec<&'static str> {
    let mut clusters = vec!["ACCOUNT_BASIC"];
    for scope in scopes {
        let cluster = match scope {
            Scope::Accounts => continue,
            Scope::Balances => "ACCOUNT_DETAILED",
            Scope::Transactions => "TRANSACTIONS",
            Scope::Identity => "CUSTOMER_CONTACT",
        };
        if !clusters.contains(&cluster) {
            clusters.push(cluster);
        }
    }
    clusters
}

/// The RFC 9396 `authorization_details` of an FDX consent request.
pub fn authorization_details(scopes: &[Scope], duration_days: i64) -> String {
    serde_json::json!([{
        "type": "fdx_v1.0",
        "consentRequest": {
            "durationType": "TIME_BOUND",
            "durationPeriod": duration_days.max(1),
            "resources": [{"resourceType": "ACCOUNT", "dataClusters": data_clusters(scopes)}],
        },
    }])
    .to_string()
}

/// `GET /consents/{consentId}` answer (a consent grant), the parts bankgate reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentGrant {
    pub id: Option<String>,
    pub status: Option<String>,
    pub created_time: Option<String>,
    pub expiration_time: Option<String>,
    pub duration_type: Option<String>,
    pub duration_period: Option<Box<RawValue>>,
    pub lookback_period: Option<Box<RawValue>>,
    #[serde(default)]
    pub resources: Vec<GrantResource>,
}

/// One resource of a consent grant.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantResource {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    #[serde(default)]
    pub data_clusters: Vec<String>,
}

/// A consent grant as bankgate reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    pub id: String,
    /// `ACTIVE`, `EXPIRED`, `REVOKED`, …
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub duration_type: Option<String>,
    pub duration_days: Option<u32>,
    pub lookback_days: Option<u32>,
    /// `(resource type, resource id, data clusters)`.
    pub resources: Vec<(String, Option<String>, Vec<String>)>,
}

fn days(raw: Option<&RawValue>, name: &str) -> Result<Option<u32>, AdapterError> {
    raw.map(|raw| {
        let value: Decimal = decimal(raw)
            .map_err(|message| decode(name, message))?
            .normalize();
        (value.scale() == 0)
            .then(|| u32::try_from(value.mantissa()).ok())
            .flatten()
            .ok_or_else(|| decode(name, "not a whole number of days"))
    })
    .transpose()
}

impl TryFrom<ConsentGrant> for ConsentState {
    type Error = AdapterError;

    fn try_from(grant: ConsentGrant) -> Result<ConsentState, AdapterError> {
        let id = non_empty(grant.id).ok_or_else(|| decode("consent", "id is missing"))?;
        let status =
            non_empty(grant.status).ok_or_else(|| decode("consent", "status is missing"))?;
        let when = |name: &str, text: Option<String>| {
            date_time(text.as_deref()).map_err(|message| decode(name, message))
        };
        Ok(ConsentState {
            id,
            status: status.to_ascii_uppercase(),
            created_at: when("createdTime", grant.created_time)?,
            expires_at: when("expirationTime", grant.expiration_time)?,
            duration_type: non_empty(grant.duration_type),
            duration_days: days(grant.duration_period.as_deref(), "durationPeriod")?,
            lookback_days: days(grant.lookback_period.as_deref(), "lookbackPeriod")?,
            resources: grant
                .resources
                .into_iter()
                .map(|resource| {
                    (
                        non_empty(resource.resource_type).unwrap_or_default(),
                        non_empty(resource.resource_id),
                        resource.data_clusters,
                    )
                })
                .collect(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors in 2xx answers

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorProbe {
    code: Option<serde_json::Value>,
    message: Option<serde_json::Value>,
    accounts: Option<serde::de::IgnoredAny>,
    transactions: Option<serde::de::IgnoredAny>,
    account_id: Option<serde::de::IgnoredAny>,
}

/// The code of an FDX `Error` body (`code` and `message`, and no data); `None` otherwise.
pub fn error_in_body(body: &[u8]) -> Option<String> {
    let probe: ErrorProbe = serde_json::from_slice(body).ok()?;
    let data =
        probe.accounts.is_some() || probe.transactions.is_some() || probe.account_id.is_some();
    match (probe.code, probe.message, data) {
        (Some(code), Some(_), false) => Some(match code {
            serde_json::Value::String(code) => code,
            other => other.to_string(),
        }),
        _ => None,
    }
}
