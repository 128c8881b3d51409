//! The canonical model every bank's API is normalised into: accounts, balances, transactions.
//!
//! Invariant: no `f64` here. Amounts are `rust_decimal::Decimal`, serialised as strings.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An enum known by one name on the wire and in the database.
///
/// The names come from strum's derives (`IntoStaticStr`, `EnumString`) with the enum's case
/// rule, the same rule its serde derive follows; a tests module checks the two agree.
pub trait WireName:
    Copy + Into<&'static str> + std::str::FromStr + strum::VariantArray + 'static
{
    /// Every variant, in the order of the declaration.
    const ALL: &'static [Self] = Self::VARIANTS;

    /// The wire and database name.
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire or database name.
    fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// A category of bank data a consent can cover and a policy can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Scope {
    Accounts,
    Balances,
    Transactions,
    Identity,
}

impl WireName for Scope {}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bank account as a platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Stable opaque id, unique per bank.
    pub id: String,
    pub bank_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: AccountType,
    /// ISO 4217 code; `XXX` for a multi-currency account.
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban_masked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    pub status: AccountStatus,
}

/// What kind of account it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Current,
    Savings,
    Card,
    Loan,
    Other,
}

/// Whether the account can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Enabled,
    Blocked,
    Deleted,
}

/// A balance of one account at one point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub account_id: String,
    #[serde(flatten)]
    pub kind: BalanceType,
    /// Signed: negative means the account is in debit.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_limit_included: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
}

/// The canonical balance types; every standard's codes map onto these.
///
/// Serialised as `"type": "closing_booked"`; an unknown code as
/// `"type": "other", "type_original": "<the bank's name>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalanceType {
    ClosingBooked,
    OpeningBooked,
    InterimBooked,
    InterimAvailable,
    Expected,
    ForwardAvailable,
    Authorised,
    CreditLimit,
    /// A code no mapping knows, kept with the bank's original name.
    Other(String),
}

impl BalanceType {
    const KNOWN: [(&'static str, BalanceType); 8] = [
        ("closing_booked", BalanceType::ClosingBooked),
        ("opening_booked", BalanceType::OpeningBooked),
        ("interim_booked", BalanceType::InterimBooked),
        ("interim_available", BalanceType::InterimAvailable),
        ("expected", BalanceType::Expected),
        ("forward_available", BalanceType::ForwardAvailable),
        ("authorised", BalanceType::Authorised),
        ("credit_limit", BalanceType::CreditLimit),
    ];

    /// The canonical name (`"other"` for every unknown code).
    pub fn as_str(&self) -> &str {
        Self::KNOWN
            .iter()
            .find(|(_, kind)| kind == self)
            .map_or("other", |(name, _)| name)
    }
}

#[derive(Serialize, Deserialize)]
struct BalanceTypeRepr {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    type_original: Option<String>,
}

impl Serialize for BalanceType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let type_original = match self {
            BalanceType::Other(raw) => Some(raw.clone()),
            _ => None,
        };
        BalanceTypeRepr {
            kind: self.as_str().to_owned(),
            type_original,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BalanceType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = BalanceTypeRepr::deserialize(deserializer)?;
        if let Some((_, kind)) = Self::KNOWN.iter().find(|(name, _)| *name == repr.kind) {
            return Ok(kind.clone());
        }
        Ok(BalanceType::Other(repr.type_original.unwrap_or(repr.kind)))
    }
}

/// One booked or pending movement of money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Deterministic per bank transaction (stable across requests).
    pub id: String,
    pub account_id: String,
    pub status: TransactionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date: Option<NaiveDate>,
    /// Signed: negative is money out.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_name: Option<String>,
    /// ISO 3166-1 alpha-2 country of the counterparty (the payee of money out, the payer of
    /// money in), where the bank says it: the party's postal address, else its account's
    /// IBAN, else (OBIE) its bank's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_category_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_code: Option<String>,
}

/// Booked or pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Booked,
    Pending,
}

/// The longest part of a caller's identifier a reason quotes.
const QUOTED_CHARS: usize = 64;

/// `Err` naming `field` when `value`, text a caller sent, holds U+0000 (which no store keeps).
pub fn text(field: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        Err(format!(
            "{field} contains U+0000 (NUL), which is not allowed"
        ))
    } else {
        Ok(())
    }
}

/// An identifier a caller chose (not one the gateway knows), as a reason or an audit record
/// quotes it: escaped as a Rust string literal (so in double quotes, with no control character
/// left) and cut after 64 characters.
pub fn quoted(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTED_CHARS).collect();
    let cut = if chars.next().is_some() { "…" } else { "" };
    format!("{head:?}{cut}")
}

/// An IBAN's country and check digits, its last four characters and how many characters lie
/// between them (whitespace left out); `None` for one of eight characters or fewer, of which
/// nothing may be shown.
fn iban_ends(iban: &str) -> Option<(String, String, usize)> {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let n = compact.len();
    (n > 8).then(|| {
        let head = compact[..4].iter().collect();
        let tail = compact[n - 4..].iter().collect();
        (head, tail, n - 8)
    })
}

/// Masks an IBAN for display: country and check digits, then the last four characters.
pub fn mask_iban(iban: &str) -> String {
    match iban_ends(iban) {
        Some((head, tail, hidden)) => format!("{head}{}{tail}", "*".repeat(hidden)),
        None => "*".repeat(iban.chars().filter(|c| !c.is_whitespace()).count()),
    }
}

/// An IBAN as a person is shown it: country and check digits, then the last four
/// (`DE89 •••• 3000`); never more.
pub fn show_iban(iban: &str) -> String {
    match iban_ends(iban) {
        Some((head, tail, _)) => format!("{head} •••• {tail}"),
        None => "••••".to_owned(),
    }
}

/// Escapes text for an HTML page bankgate renders (the consent screen, the subject report).
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's name parses back to it and is the name serde writes.
    fn check_names<T>(expected: &[&str])
    where
        T: WireName + Serialize + PartialEq + std::fmt::Debug,
    {
        let names: Vec<&str> = T::ALL.iter().map(|variant| variant.as_str()).collect();
        assert_eq!(names, expected, "{}", std::any::type_name::<T>());
        for &variant in T::ALL {
            assert_eq!(T::parse(variant.as_str()), Some(variant));
            assert_eq!(
                serde_json::to_value(variant).unwrap(),
                serde_json::Value::from(variant.as_str()),
                "serde and the wire name disagree on {variant:?}"
            );
        }
        assert_eq!(T::parse(""), None);
        assert_eq!(
            T::parse(&expected[0].to_uppercase()),
            None,
            "names are exact"
        );
    }

    #[test]
    fn wire_names_are_the_serde_names_and_parse_back() {
        use crate::audit::{Action, Decision};
        use crate::consent::ConsentStatus;
        use crate::jose::AuthMethod;
        use crate::lifecycle::webhooks::DeliveryStatus;
        use crate::notify::{EventType, Mode};
        use crate::oauth::Role;
        use crate::payments::Submission;
        use crate::payments::payee_match::NameMatch;
        use crate::payments::status::RejectionReason;
        use crate::policy::{LegalBasis, Object};

        check_names::<Scope>(&["accounts", "balances", "transactions", "identity"]);
        check_names::<ConsentStatus>(&[
            "awaiting_authorisation",
            "authorised",
            "rejected",
            "revoked",
            "expired",
        ]);
        check_names::<Action>(&[
            "consent_created",
            "consent_authorised",
            "consent_rejected",
            "consent_revoked",
            "consent_expired",
            "consent_queried",
            "data_access",
            "token_issued",
            "adapter_registered",
            "client_updated",
            "policy_loaded",
            "audit_queried",
            "audit_archived",
            "payment_submitted",
            "payment_status_changed",
            "payee_verified",
            "payee_registered",
            "payee_removed",
            "subject_erased",
        ]);
        check_names::<Decision>(&["allow", "deny", "error"]);
        check_names::<AuthMethod>(&["client_secret_basic", "private_key_jwt"]);
        check_names::<DeliveryStatus>(&["pending", "delivered", "failed"]);
        check_names::<EventType>(&["balance.changed", "transactions.created", "fraud.signal"]);
        check_names::<Mode>(&["thin", "data"]);
        check_names::<Role>(&["platform", "compliance", "bank"]);
        check_names::<Submission>(&["recorded", "in_doubt", "submitted", "refused"]);
        check_names::<NameMatch>(&["match", "close_match", "no_match"]);
        check_names::<RejectionReason>(&[
            "insufficient_funds",
            "account_closed",
            "account_blocked",
            "invalid_creditor_account",
            "amount_not_allowed",
            "duplicate",
            "regulatory",
            "other",
        ]);
        check_names::<LegalBasis>(&[
            "consent",
            "contract",
            "legal-obligation",
            "vital-interests",
            "public-task",
            "legitimate-interests",
        ]);
        check_names::<Object>(&["account", "balance", "transaction", "identity"]);
    }

    #[test]
    fn iban_masking_keeps_country_and_last_four() {
        assert_eq!(
            mask_iban("DE89 3704 0044 0532 0130 00"),
            "DE89**************3000"
        );
        assert_eq!(mask_iban("short"), "*****");
        assert_eq!(mask_iban("ÄÖ12345678901234"), "ÄÖ12********1234");
    }

    #[test]
    fn balance_serialises_amount_as_string_and_unknown_type_with_original_name() {
        let balance = Balance {
            account_id: "a1".into(),
            kind: BalanceType::Other("nonInvoiced".into()),
            amount: "-12.30".parse().unwrap(),
            currency: "EUR".into(),
            credit_limit_included: None,
            as_of: None,
        };
        let json = serde_json::to_value(&balance).unwrap();
        assert_eq!(json["amount"], "-12.30");
        assert_eq!(json["type"], "other");
        assert_eq!(json["type_original"], "nonInvoiced");
        let back: Balance = serde_json::from_value(json).unwrap();
        assert_eq!(back, balance);
    }

    #[test]
    fn known_balance_type_round_trips_without_original() {
        let json = serde_json::to_value(BalanceType::InterimAvailable).unwrap();
        assert_eq!(json, serde_json::json!({"type": "interim_available"}));
        let back: BalanceType = serde_json::from_value(json).unwrap();
        assert_eq!(back, BalanceType::InterimAvailable);
    }
}
