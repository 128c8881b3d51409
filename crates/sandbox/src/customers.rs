//! Deterministic synthetic customers shared by every sandbox bank: the data of
//! `customers.toml`, bundled into the crate and read once, in types named after what they mean
//! rather than after one standard's codes.
//!
//! Three customers (`alice`, `bob`, `carol`), each with two to four accounts in EUR, GBP, USD
//! or several currencies, balances of many types and about a year of history. Nothing here is
//! specific to one standard: every sandbox maps these rows onto its own wire format.
//!
//! Amounts are exact decimals from their text (never `f64`), in cents except one interest
//! accrual with five decimals, which each sandbox presents at its standard's precision. Dates
//! are "N days before today", so that history windows can be tested against any date.

use std::sync::LazyLock;

use chrono::{Days, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

/// The customer a consent is approved as when nobody says otherwise.
pub const DEFAULT_CUSTOMER: &str = "alice";

/// One bank customer (a PSU in Berlin Group terms).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Login id at the sandbox bank (`PSU-ID` in Berlin Group).
    pub id: String,
    /// Full name, as the bank knows its account owner.
    pub name: String,
    #[serde(rename = "account")]
    pub accounts: Vec<Account>,
}

/// What kind of account it is, independent of any standard's code list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Current,
    Savings,
    Card,
}

/// Whether the account can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Enabled,
    Blocked,
}

/// One account of a customer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The bank's stable resource id for the account.
    pub id: String,
    pub kind: AccountKind,
    /// ISO 4217; `XXX` for a multi-currency account whose balances and transactions carry
    /// their own currencies.
    pub currency: String,
    /// Valid IBAN (check digits computed), absent for card accounts.
    pub iban: Option<String>,
    /// Masked card number, for card accounts.
    pub masked_pan: Option<String>,
    /// BIC of the sandbox bank.
    pub bic: String,
    /// The name the customer gave the account.
    pub name: String,
    /// The bank's product name.
    pub product: String,
    pub status: AccountStatus,
    /// The credit line of a card or an overdraft, if any.
    pub credit_limit: Option<Money>,
    pub balances: Vec<Balance>,
    /// Most recent first.
    pub transactions: Vec<Transaction>,
}

/// An exact amount with its ISO 4217 currency, written `"-12.30 EUR"` in the data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Money {
    /// Signed; keeps the scale of its text (`-12.30`).
    pub amount: Decimal,
    pub currency: String,
}

impl TryFrom<String> for Money {
    type Error = String;

    fn try_from(text: String) -> Result<Money, String> {
        let (amount, currency) = text
            .split_once(' ')
            .ok_or_else(|| format!("{text:?}: expected an amount and a currency"))?;
        let amount =
            Decimal::from_str_exact(amount).map_err(|error| format!("{text:?}: {error}"))?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("{text:?}: the currency is three capital letters"));
        }
        Ok(Money {
            amount,
            currency: currency.to_owned(),
        })
    }
}

impl Money {
    /// Money out of the account.
    pub fn is_debit(&self) -> bool {
        self.amount.is_sign_negative()
    }

    /// The amount with at most `max_decimals` places, as a bank whose API allows no more would
    /// present it (rounded half away from zero); amounts with fewer places keep their scale.
    pub fn at_precision(&self, max_decimals: u32) -> Decimal {
        if self.amount.scale() <= max_decimals {
            return self.amount;
        }
        self.amount
            .round_dp_with_strategy(max_decimals, RoundingStrategy::MidpointAwayFromZero)
    }
}

/// Balance types, named after what they mean rather than after one standard's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceKind {
    /// Booked balance at the end of a past day.
    ClosingBooked,
    /// Booked balance at the start of the reporting period.
    OpeningBooked,
    /// Booked balance during the day.
    InterimBooked,
    /// Available balance during the day (may include the credit line).
    InterimAvailable,
    /// Booked balance plus pending items.
    Expected,
    /// Balance available at a future date.
    ForwardAvailable,
    /// Expected balance plus the pre-approved credit line.
    Authorised,
    /// Card spending not yet invoiced: a code most standards lack (Berlin Group `nonInvoiced`).
    NonInvoiced,
}

/// When a balance was taken: `days_ago` in the data, or now when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "Option<u64>")]
pub enum AsOf {
    /// At the end of the day `days_ago` days before today.
    EndOfDay { days_ago: u64 },
    /// Now, during today.
    #[default]
    Intraday,
}

impl From<Option<u64>> for AsOf {
    fn from(days_ago: Option<u64>) -> AsOf {
        days_ago.map_or(AsOf::Intraday, |days_ago| AsOf::EndOfDay { days_ago })
    }
}

impl AsOf {
    /// The day that ended, for an end-of-day balance.
    pub fn day(self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            AsOf::EndOfDay { days_ago } => Some(days_before(today, days_ago)),
            AsOf::Intraday => None,
        }
    }
}

/// One balance of an account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balance {
    pub kind: BalanceKind,
    #[serde(rename = "amount")]
    pub money: Money,
    /// Whether the amount includes the credit line; `None` when the bank does not say.
    pub credit_limit_included: Option<bool>,
    #[serde(rename = "days_ago", default)]
    pub as_of: AsOf,
}

/// Booked or pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Booked,
    Pending,
}

/// One movement of money: negative amounts leave the account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// The bank's transaction id, unique within the bank.
    pub id: String,
    pub status: TransactionStatus,
    /// Booked: the booking (and value) date is today minus this; pending: the value date.
    pub days_ago: u64,
    #[serde(rename = "amount")]
    pub money: Money,
    /// Payee of money out, payer of money in.
    pub counterparty: String,
    pub description: String,
    /// ISO 18245 merchant category code, for card payments.
    pub mcc: Option<String>,
    /// ISO 3166-1 alpha-2 country of the counterparty, where the bank knows it.
    #[serde(default)]
    pub country: Option<String>,
    /// ISO 20022 bank transaction code (domain-family-subfamily).
    #[serde(rename = "code")]
    pub bank_code: String,
}

impl Transaction {
    /// The booking date; pending transactions have none.
    pub fn booking_date(&self, today: NaiveDate) -> Option<NaiveDate> {
        match self.status {
            TransactionStatus::Booked => Some(days_before(today, self.days_ago)),
            TransactionStatus::Pending => None,
        }
    }

    /// The value date (for pending transactions, the date the card was used).
    pub fn value_date(&self, today: NaiveDate) -> NaiveDate {
        days_before(today, self.days_ago)
    }
}

/// `today` minus `days` (the earliest representable date if that underflows).
pub fn days_before(today: NaiveDate, days: u64) -> NaiveDate {
    today
        .checked_sub_days(Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}

/// Every customer, in the order of `customers.toml`.
///
/// Panics on first use if the bundled file does not load, which the tests rule out.
pub static CUSTOMERS: LazyLock<Vec<Customer>> = LazyLock::new(|| {
    load(include_str!("../customers.toml"))
        .unwrap_or_else(|error| panic!("customers.toml does not load: {error}"))
});

/// Reads the customers of `text` (TOML); they must include [`DEFAULT_CUSTOMER`].
fn load(text: &str) -> Result<Vec<Customer>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        customer: Vec<Customer>,
    }
    let file: File = toml::from_str(text).map_err(|error| error.to_string())?;
    if !file.customer.iter().any(|c| c.id == DEFAULT_CUSTOMER) {
        return Err(format!("no customer {DEFAULT_CUSTOMER:?}"));
    }
    Ok(file.customer)
}

/// The customer with this id.
pub fn find(id: &str) -> Option<&'static Customer> {
    CUSTOMERS.iter().find(|customer| customer.id == id)
}

/// The customer a consent is approved as when nobody says otherwise.
pub fn default_customer() -> &'static Customer {
    find(DEFAULT_CUSTOMER).unwrap_or_else(|| unreachable!("`load` refuses data without it"))
}

impl Customer {
    /// The customer's account with this resource id.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|account| account.id == id)
    }
}

impl Account {
    /// Whether a reference by IBAN (spaces and case aside) or by card number names this
    /// account, in `currency` when the reference gives one.
    pub fn is_named_by(
        &self,
        iban: Option<&str>,
        pan: Option<&str>,
        currency: Option<&str>,
    ) -> bool {
        let compact = |text: &str| -> String {
            text.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase()
        };
        let by_iban = iban
            .zip(self.iban.as_deref())
            .is_some_and(|(wanted, iban)| compact(wanted) == iban);
        let by_pan = pan
            .zip(self.masked_pan.as_deref())
            .is_some_and(|(wanted, pan)| wanted.trim() == pan);
        let in_currency =
            currency.is_none_or(|currency| currency.eq_ignore_ascii_case(&self.currency));
        (by_iban || by_pan) && in_currency
    }
}

#[cfg(test)]
mod tests;
