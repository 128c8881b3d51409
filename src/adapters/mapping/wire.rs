//! The mapping engine: compiled rules ([`super::rules`]) applied to a bank's JSON payload.
//!
//! Payloads are read as [`RawValue`] and walked along each rule's pointer, parsing only the
//! containers on the way; numbers are taken from their text, never through `f64`, and nothing
//! recurses on the payload's depth. None of it panics on bank input (a property test feeds it
//! random payloads).
//!
//! What the engine tolerates and what it refuses ([`AdapterError::Decode`], naming the item
//! and field):
//! - An account without a `bank_ref` is skipped (nothing could read its balances); its id is
//!   derived from its IBAN (checked with its ISO 13616 check digits), else BBAN, sort code
//!   and account number, masked card number, else the bank's reference.
//! - A balance without a type or an amount is skipped (missing stays missing, never 0); an
//!   unknown balance code is kept as `other` with the bank's code.
//! - A transaction without an amount or currency is refused; without an id it gets a
//!   deterministic one; without a status it is booked if it has a booking date, else pending.
//! - An amount in minor units must be a whole number; a sign indicator must be one of the
//!   rule's debit or credit values.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::value::RawValue;

use super::rules::{
    ACCOUNT_STATUSES, ACCOUNT_TYPES, BALANCE_TYPES, Compiled, DateFormat, Endpoint, Exponent,
    Pointer, Source, currency_exponent,
};
use crate::adapters::common::{
    TransactionIds, account_currency, currency, date, date_time, decode, json_scalar_text,
    normalise_iban, parse_decimal, signed,
};
use crate::adapters::{self, AdapterError, BankAccount};
use crate::model::{
    Account, AccountStatus, AccountType, Balance, BalanceType, Transaction, TransactionStatus,
};

// ---------------------------------------------------------------------------------------------
// Reading JSON along pointers

/// The payload as raw JSON (validated, not yet walked).
pub fn parse(body: &[u8]) -> Result<&RawValue, AdapterError> {
    serde_json::from_slice(body).map_err(|error| AdapterError::Decode(error.to_string()))
}

/// The value `pointer` points at, if any (a missing member or index is `None`; walking into a
/// scalar is `None` too).
pub fn lookup<'a>(raw: &'a RawValue, pointer: &Pointer) -> Result<Option<&'a RawValue>, String> {
    let mut current = raw;
    for token in &pointer.tokens {
        let next = match current.get().as_bytes().first() {
            Some(b'{') => {
                let members: BTreeMap<String, &RawValue> = serde_json::from_str(current.get())
                    .map_err(|_| format!("{}: not an object", pointer.text))?;
                members.get(token).copied()
            }
            Some(b'[') => {
                let elements: Vec<&RawValue> = serde_json::from_str(current.get())
                    .map_err(|_| format!("{}: not an array", pointer.text))?;
                array_index(token).and_then(|index| elements.get(index).copied())
            }
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// An RFC 6901 array index: digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits_ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if digits_ok { token.parse().ok() } else { None }
}

/// The text of a scalar (strings unescaped, numbers as written, booleans as `true`/`false`);
/// `null` is `None`; an object or array is an error.
pub fn scalar(raw: &RawValue) -> Result<Option<String>, String> {
    match raw.get() {
        "null" => Ok(None),
        "true" => Ok(Some("true".into())),
        "false" => Ok(Some("false".into())),
        text if text.starts_with(['{', '[']) => Err("is an object or array, not a value".into()),
        _ => json_scalar_text(raw).map(Some),
    }
}

/// The items of the list `pointer` points at (`null` or missing: none).
pub fn items<'a>(body: &'a RawValue, pointer: &Pointer) -> Result<Vec<&'a RawValue>, String> {
    match lookup(body, pointer)? {
        None => Err(format!("no list at {:?}", pointer.text)),
        Some(list) if list.get() == "null" => Ok(Vec::new()),
        Some(list) if list.get().starts_with('[') => serde_json::from_str(list.get())
            .map_err(|_| format!("{:?} is not a list", pointer.text)),
        Some(_) => Err(format!("{:?} is not a list", pointer.text)),
    }
}

/// The next page's link, if the payload has one.
pub fn next_link(body: &RawValue, pointer: &Pointer) -> Option<String> {
    let link = scalar(lookup(body, pointer).ok()??).ok()??;
    let link = link.trim();
    (!link.is_empty()).then(|| link.to_owned())
}

/// The classification hook of a mapping: a success body whose `error_pointer` points at
/// anything but `null` is an error body.
pub fn error_in_body(pointer: &Pointer, body: &[u8]) -> Option<String> {
    let raw = parse(body).ok()?;
    let error = lookup(raw, pointer).ok()??;
    match error.get() {
        "null" | "false" | "\"\"" | "{}" | "[]" => None,
        text => Some(text.chars().take(200).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// One field

impl Compiled {
    /// The value before the table: the constant, or the scalar at the pointer.
    fn source_text(&self, item: &RawValue) -> Result<Option<String>, String> {
        let text = match &self.source {
            Source::Constant(value) => Some(value.clone()),
            Source::Pointer(pointer) => match lookup(item, pointer)? {
                Some(raw) => scalar(raw)?,
                None => None,
            },
        };
        Ok(text
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty()))
    }

    /// The value after the table and the default, with the bank's own code.
    fn coded(&self, item: &RawValue) -> Result<Option<(String, Option<String>)>, String> {
        let raw = self.source_text(item)?;
        Ok(match (raw, &self.values) {
            (None, _) => self.default.clone().map(|value| (value, None)),
            (Some(raw), Some(values)) => {
                let value = values
                    .get(&raw)
                    .or(self.default.as_ref())
                    .cloned()
                    .unwrap_or_else(|| raw.clone());
                Some((value, Some(raw)))
            }
            (Some(raw), None) => Some((raw.clone(), Some(raw))),
        })
    }

    /// A text field.
    pub fn text(&self, item: &RawValue) -> Result<Option<String>, String> {
        Ok(self.coded(item)?.map(|(value, _)| value))
    }

    /// An amount: minor units scaled by the exponent, the sign from the indicator.
    pub fn amount(
        &self,
        item: &RawValue,
        record_currency: Option<&str>,
    ) -> Result<Option<Decimal>, String> {
        let Some(text) = self.source_text(item)? else {
            return Ok(None);
        };
        let mut amount = parse_decimal(&text)?;
        if let Some(exponent) = self.minor_units {
            let exponent = match exponent {
                Exponent::Fixed(exponent) => exponent,
                Exponent::Currency => record_currency
                    .and_then(currency_exponent)
                    .ok_or("the record's currency has no minor unit")?,
            };
            if !amount.fract().is_zero() {
                return Err("an amount in minor units must be a whole number".into());
            }
            amount = amount.trunc();
            amount
                .set_scale(exponent)
                .map_err(|_| "amount out of range".to_owned())?;
        }
        if let Some(sign) = &self.sign {
            let indicator = match lookup(item, &sign.pointer)? {
                Some(raw) => scalar(raw)?,
                None => None,
            };
            let indicator = indicator.as_deref().map(str::trim);
            let debit = match indicator {
                Some(value) if sign.debit.iter().any(|debit| debit == value) => true,
                Some(value) if sign.credit.iter().any(|credit| credit == value) => false,
                Some(value) => {
                    return Err(format!(
                        "sign indicator {value:?} is neither debit nor credit"
                    ));
                }
                None => return Err("the sign indicator is missing".into()),
            };
            amount = signed(amount, debit);
        }
        if amount.is_zero() {
            amount.set_sign_positive(true);
        }
        Ok(Some(amount))
    }

    /// A date.
    pub fn date(&self, item: &RawValue) -> Result<Option<NaiveDate>, String> {
        self.source_text(item)?
            .map(|text| parse_date(&self.format, &text))
            .transpose()
    }

    /// A date-time (one without zone is UTC; a bare date is its midnight, UTC).
    pub fn date_time(&self, item: &RawValue) -> Result<Option<DateTime<Utc>>, String> {
        self.source_text(item)?
            .map(|text| parse_date_time(&self.format, &text))
            .transpose()
    }

    /// A boolean (after the table: `true` or `false`).
    pub fn boolean(&self, item: &RawValue) -> Result<Option<bool>, String> {
        match self.text(item)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err("not true or false".into()),
        }
    }
}

fn epoch(text: &str, millis: bool) -> Result<DateTime<Utc>, String> {
    let value: i64 = text
        .parse()
        .map_err(|_| "not a whole number of seconds".to_owned())?;
    let time = if millis {
        DateTime::from_timestamp_millis(value)
    } else {
        DateTime::from_timestamp(value, 0)
    };
    time.ok_or_else(|| "timestamp out of range".into())
}

fn parse_date(format: &DateFormat, text: &str) -> Result<NaiveDate, String> {
    match format {
        DateFormat::Iso => date(Some(text))?.ok_or_else(|| "not an ISO date".into()),
        DateFormat::Unix => epoch(text, false).map(|time| time.date_naive()),
        DateFormat::UnixMillis => epoch(text, true).map(|time| time.date_naive()),
        DateFormat::Strftime(pattern) => NaiveDate::parse_from_str(text, pattern)
            .or_else(|_| NaiveDateTime::parse_from_str(text, pattern).map(|time| time.date()))
            .map_err(|_| format!("not a date in the format {pattern:?}")),
    }
}

fn parse_date_time(format: &DateFormat, text: &str) -> Result<DateTime<Utc>, String> {
    let midnight = |day: NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
    match format {
        DateFormat::Iso => match date_time(Some(text)) {
            Ok(time) => time.ok_or_else(|| "not an ISO date-time".into()),
            Err(error) => date(Some(text))
                .ok()
                .flatten()
                .filter(|_| !text.contains('T'))
                .map(midnight)
                .ok_or(error),
        },
        DateFormat::Unix => epoch(text, false),
        DateFormat::UnixMillis => epoch(text, true),
        DateFormat::Strftime(pattern) => DateTime::parse_from_str(text, pattern)
            .map(|time| time.with_timezone(&Utc))
            .or_else(|_| NaiveDateTime::parse_from_str(text, pattern).map(|time| time.and_utc()))
            .or_else(|_| NaiveDate::parse_from_str(text, pattern).map(midnight))
            .map_err(|_| format!("not a date-time in the format {pattern:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// One item's field values, each error naming the item and field.
struct Fields<'a> {
    endpoint: &'a Endpoint,
    item: &'a RawValue,
    context: String,
}

impl Fields<'_> {
    fn error(&self, field: &str, message: impl std::fmt::Display) -> AdapterError {
        decode(format!("{}.{field}", self.context), message)
    }

    fn text(&self, field: &str) -> Result<Option<String>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .text(self.item)
                .map_err(|message| self.error(field, message)),
        }
    }

    fn coded(&self, field: &str) -> Result<Option<(String, Option<String>)>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .coded(self.item)
                .map_err(|message| self.error(field, message)),
        }
    }

    fn currency(&self, field: &str) -> Result<Option<String>, AdapterError> {
        self.text(field)?
            .map(|code| currency(Some(&code)).map_err(|message| self.error(field, message)))
            .transpose()
    }

    fn amount(&self, field: &str, currency: Option<&str>) -> Result<Option<Decimal>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .amount(self.item, currency)
                .map_err(|message| self.error(field, message)),
        }
    }

    fn date(&self, field: &str) -> Result<Option<NaiveDate>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .date(self.item)
                .map_err(|message| self.error(field, message)),
        }
    }

    fn date_time(&self, field: &str) -> Result<Option<DateTime<Utc>>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .date_time(self.item)
                .map_err(|message| self.error(field, message)),
        }
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, AdapterError> {
        match self.endpoint.field(field) {
            None => Ok(None),
            Some(rule) => rule
                .boolean(self.item)
                .map_err(|message| self.error(field, message)),
        }
    }
}

/// Each item of the endpoint's list with its field reader.
fn each_item<'a>(
    endpoint: &'a Endpoint,
    body: &'a RawValue,
    name: &str,
) -> Result<Vec<Fields<'a>>, AdapterError> {
    let listed = items(body, &endpoint.items).map_err(|message| decode(name, message))?;
    Ok(listed
        .into_iter()
        .enumerate()
        .map(|(index, item)| Fields {
            endpoint,
            item,
            context: format!("{name}[{index}]"),
        })
        .collect())
}

/// The canonical accounts of an account list.
pub fn accounts(
    endpoint: &Endpoint,
    bank_id: &str,
    body: &RawValue,
) -> Result<Vec<BankAccount>, AdapterError> {
    let mut accounts = Vec::new();
    for fields in each_item(endpoint, body, "accounts")? {
        let Some(bank_ref) = fields.text("bank_ref")? else {
            tracing::warn!(context = %fields.context, "account has no bank reference; skipped");
            continue;
        };
        let iban_text = fields.text("iban")?;
        let iban = iban_text.as_deref().and_then(normalise_iban);
        if iban_text.is_some() && iban.is_none() {
            tracing::warn!(context = %fields.context,
                "bank sent an IBAN that fails its check digits; dropped");
        }
        let bban = fields.text("bban")?;
        let sort_code = fields.text("sort_code")?;
        let account_number = fields.text("account_number")?;
        let pan_masked = fields.text("pan_masked")?;
        let identifier = match (&iban, &bban, &sort_code, &account_number, &pan_masked) {
            (Some(iban), ..) => iban.clone(),
            (None, Some(bban), ..) => format!("BBAN:{bban}"),
            (None, None, Some(sort_code), Some(number), _) => format!("SCAN:{sort_code}{number}"),
            (None, None, _, _, Some(pan)) => format!("PAN:{pan}"),
            _ => bank_ref.clone(),
        };
        let currency = account_currency(fields.text("currency")?.as_deref())
            .map_err(|message| fields.error("currency", message))?;
        let kind = match fields.coded("type")?.map(|(code, _)| code).as_deref() {
            Some("current") => AccountType::Current,
            Some("savings") => AccountType::Savings,
            Some("card") => AccountType::Card,
            Some("loan") => AccountType::Loan,
            _ if pan_masked.is_some() && iban.is_none() => AccountType::Card,
            _ => AccountType::Other,
        };
        let status = match fields.coded("status")? {
            None => AccountStatus::Enabled,
            Some((code, raw)) => match code.as_str() {
                "enabled" => AccountStatus::Enabled,
                "blocked" => AccountStatus::Blocked,
                "deleted" => AccountStatus::Deleted,
                _ => {
                    tracing::warn!(context = %fields.context, code = ?raw,
                        "unknown account status; taken as enabled");
                    AccountStatus::Enabled
                }
            },
        };
        debug_assert!(ACCOUNT_TYPES.contains(&"other") && ACCOUNT_STATUSES.len() == 3);
        accounts.push(BankAccount {
            account: Account {
                id: adapters::account_id(bank_id, &identifier),
                bank_id: bank_id.to_owned(),
                display_name: fields.text("display_name")?,
                kind,
                currency,
                iban_masked: iban.as_deref().map(crate::model::mask_iban),
                iban,
                bban,
                sort_code,
                account_number,
                pan_masked,
                holder_name: fields.text("holder_name")?,
                status,
            },
            bank_ref,
        });
    }
    Ok(accounts)
}

/// The canonical balance type of a (mapped) code; unknown codes keep the bank's name.
fn balance_type(code: &str, raw: Option<&str>) -> BalanceType {
    match code {
        "closing_booked" => BalanceType::ClosingBooked,
        "opening_booked" => BalanceType::OpeningBooked,
        "interim_booked" => BalanceType::InterimBooked,
        "interim_available" => BalanceType::InterimAvailable,
        "expected" => BalanceType::Expected,
        "forward_available" => BalanceType::ForwardAvailable,
        "authorised" => BalanceType::Authorised,
        "credit_limit" => BalanceType::CreditLimit,
        other => BalanceType::Other(raw.unwrap_or(other).to_owned()),
    }
}

/// The canonical balances of one account's balance list.
pub fn balances(
    endpoint: &Endpoint,
    account_id: &str,
    body: &RawValue,
) -> Result<Vec<Balance>, AdapterError> {
    let mut balances = Vec::new();
    for fields in each_item(endpoint, body, "balances")? {
        let Some((code, raw)) = fields.coded("type")? else {
            tracing::warn!(context = %fields.context, "balance has no type; skipped");
            continue;
        };
        debug_assert!(BALANCE_TYPES.contains(&"other"));
        let currency = fields
            .currency("currency")?
            .ok_or_else(|| fields.error("currency", "is missing"))?;
        let Some(amount) = fields.amount("amount", Some(&currency))? else {
            tracing::warn!(context = %fields.context, "balance has no amount; skipped");
            continue;
        };
        balances.push(Balance {
            account_id: account_id.to_owned(),
            kind: balance_type(&code, raw.as_deref()),
            amount,
            currency,
            credit_limit_included: fields.boolean("credit_limit_included")?,
            as_of: fields.date_time("as_of")?,
        });
    }
    Ok(balances)
}

/// The canonical transactions of one account's transaction list; `ids` derives the ids of
/// entries without one (shared across the pages of one report).
pub fn transactions(
    endpoint: &Endpoint,
    account_id: &str,
    body: &RawValue,
    ids: &mut TransactionIds,
) -> Result<Vec<Transaction>, AdapterError> {
    let mut transactions = Vec::new();
    for fields in each_item(endpoint, body, "transactions")? {
        let currency = fields
            .currency("currency")?
            .ok_or_else(|| fields.error("currency", "is missing"))?;
        let amount = fields
            .amount("amount", Some(&currency))?
            .ok_or_else(|| fields.error("amount", "is missing"))?;
        let booking_date = fields.date("booking_date")?;
        let value_date = fields.date("value_date")?;
        let status = match fields.coded("status")?.map(|(code, _)| code).as_deref() {
            Some("booked") => TransactionStatus::Booked,
            Some("pending") => TransactionStatus::Pending,
            Some(_) => return Err(fields.error("status", "is neither booked nor pending")),
            None if booking_date.is_some() => TransactionStatus::Booked,
            None => TransactionStatus::Pending,
        };
        let description = fields.text("description")?;
        let id = ids.id_or_derived(
            fields.text("id")?,
            account_id,
            booking_date.or(value_date),
            amount,
            &currency,
            description.as_deref(),
        );
        transactions.push(Transaction {
            id,
            account_id: account_id.to_owned(),
            status,
            booking_date,
            value_date,
            amount,
            currency,
            description,
            counterparty_name: fields.text("counterparty_name")?,
            counterparty_country: None,
            merchant_category_code: fields.text("merchant_category_code")?,
            bank_code: fields.text("bank_code")?,
        });
    }
    Ok(transactions)
}
