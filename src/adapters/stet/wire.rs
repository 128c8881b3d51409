//! STET PSD2 API v1.4 wire types (serde) and their conversion into the canonical model.
//!
//! What the conversions tolerate, and what they refuse ([`AdapterError::Decode`]); none of them
//! panics on bank input:
//! - Amounts are unsigned text with a `creditDebitIndicator` (`CRDT`/`DBIT`): the sign comes
//!   from the indicator. An amount the bank signed anyway counts by its magnitude; without an
//!   indicator, only a negative amount is clear (a debit), anything else is refused.
//!   Amounts keep the bank's precision and are read from the JSON text, never through `f64`.
//! - Balance types: `CLBD` → closing booked, `XPCD` (instant balance) → expected; `VALU`
//!   (value-date balance) has no canonical equivalent and is kept as `other`/`VALU`; `OTHR` is
//!   kept as `other` under the balance's `name`, which is how STET tells other balances apart;
//!   any other code is kept as `other` with the code. A balance without amount or type is
//!   skipped (missing stays missing, never 0).
//! - Transaction status: `BOOK` → booked, `PDNG` (and `FUTR`) → pending; `OTHR` and `RJCT`
//!   entries are not movements and are skipped. A missing status means booked when there is a
//!   booking date, pending otherwise.
//! - `remittanceInformation` is an object with `unstructured` lines in the STET text but a bare
//!   array of lines in the published examples: both are read.
//! - An account's identification is `accountId.iban` (checked with its ISO 13616 check
//!   digits), else `accountId.other` (scheme and identification, e.g. a masked card number
//!   under `CPAN`), else the `resourceId` (the published account example has no `accountId`
//!   at all). Its currency is `accountId.currency`, a top-level `currency` (as in the examples),
//!   or `XXX`.
//! - STET knows two cash account types, `CACC` and `CARD`.
//! - A transaction without `entryReference` or `resourceId` gets a deterministic id.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::adapters::berlin_group::wire::account_type;
pub use crate::adapters::common::Amount;
use crate::adapters::common::{
    TransactionIds, account_currency, balance_amount, date, decode, non_empty, normalise_iban,
    signed,
};
use crate::adapters::{self, AdapterError, BankAccount};
use crate::model::{
    Account, AccountStatus, AccountType, Balance, BalanceType, Transaction, TransactionStatus,
};

// ---------------------------------------------------------------------------------------------
// Hypermedia

/// `_links` of a STET answer (the parts bankgate follows).
pub type Links = crate::adapters::common::NextLink;

/// The `_links.next.href` of an answer, if any.
pub fn next_href(links: Option<&Links>) -> Option<&str> {
    links.and_then(Links::href)
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// `GET /v1/accounts` answer.
#[derive(Debug, Deserialize)]
pub struct AccountsResponse {
    pub accounts: Vec<AccountResource>,
    #[serde(rename = "_links")]
    pub links: Option<Links>,
}

/// One account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountResource {
    pub resource_id: Option<String>,
    pub bic_fi: Option<String>,
    pub account_id: Option<AccountIdentification>,
    pub name: Option<String>,
    pub details: Option<String>,
    pub product: Option<String>,
    pub cash_account_type: Option<String>,
    /// Not in the STET text, but in its published examples.
    pub currency: Option<String>,
}

/// `accountId`: an IBAN, or another identification, and the currency.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountIdentification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<GenericIdentification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `accountId.other`, e.g. `{"identification": "489537******7421", "schemeName": "CPAN"}`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericIdentification {
    pub identification: Option<String>,
    pub scheme_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// The canonical accounts of an account list (accounts nothing identifies are skipped).
pub fn accounts(bank_id: &str, list: AccountsResponse) -> Result<Vec<BankAccount>, AdapterError> {
    let mut accounts = Vec::with_capacity(list.accounts.len());
    for (index, resource) in list.accounts.into_iter().enumerate() {
        let context = format!("accounts[{index}]");
        if let Some(account) = account(bank_id, resource, &context)? {
            accounts.push(account);
        }
    }
    Ok(accounts)
}

fn account(
    bank_id: &str,
    resource: AccountResource,
    context: &str,
) -> Result<Option<BankAccount>, AdapterError> {
    let identification = resource.account_id.unwrap_or_default();
    let iban = identification.iban.as_deref().and_then(normalise_iban);
    if identification.iban.is_some() && iban.is_none() {
        tracing::warn!(
            context,
            "bank sent an IBAN that fails its check digits; dropped"
        );
    }
    let currency = account_currency(
        identification
            .currency
            .as_deref()
            .or(resource.currency.as_deref()),
    )
    .map_err(|message| decode(format!("{context}.accountId.currency"), message))?;
    let other = identification.other.and_then(|other| {
        let id = non_empty(other.identification)?;
        Some((non_empty(other.scheme_name).unwrap_or_default(), id))
    });
    let resource_id = non_empty(resource.resource_id);
    let identifier = match (&iban, &other, &resource_id) {
        (Some(iban), ..) => iban.clone(),
        (None, Some((scheme, id)), _) => format!("{scheme}:{id}"),
        (None, None, Some(resource_id)) => resource_id.clone(),
        (None, None, None) => {
            tracing::warn!(context, "account has no identifier; skipped");
            return Ok(None);
        }
    };
    let pan_masked = other
        .as_ref()
        .filter(|(scheme, _)| matches!(scheme.to_ascii_uppercase().as_str(), "CPAN" | "TPAN"))
        .map(|(_, id)| id.clone());
    let kind = match resource.cash_account_type.as_deref() {
        None if pan_masked.is_some() => AccountType::Card,
        code => account_type(code),
    };
    Ok(Some(BankAccount {
        bank_ref: resource_id.unwrap_or_default(),
        account: Account {
            id: adapters::account_id(bank_id, &identifier),
            bank_id: bank_id.to_owned(),
            display_name: non_empty(resource.name)
                .or_else(|| non_empty(resource.product))
                .or_else(|| non_empty(resource.details)),
            kind,
            currency,
            iban_masked: iban.as_deref().map(crate::model::mask_iban),
            iban,
            bban: None,
            sort_code: None,
            account_number: None,
            pan_masked,
            holder_name: None,
            status: AccountStatus::Enabled,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Balances

/// `GET /v1/accounts/{id}/balances` answer.
#[derive(Debug, Deserialize)]
pub struct BalancesResponse {
    pub balances: Vec<BalanceResource>,
}

/// One balance; every field optional so that incomplete ones can be skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceResource {
    pub name: Option<String>,
    pub balance_amount: Option<Amount>,
    pub balance_type: Option<String>,
    pub last_change_date_time: Option<String>,
    pub reference_date: Option<String>,
}

/// The canonical balances of `account_id`.
pub fn balances(
    account_id: &str,
    response: BalancesResponse,
) -> Result<Vec<Balance>, AdapterError> {
    let mut converted = Vec::with_capacity(response.balances.len());
    for (index, wire) in response.balances.into_iter().enumerate() {
        let context = format!("balances[{index}]");
        let (Some(amount), Some(code)) = (wire.balance_amount, non_empty(wire.balance_type)) else {
            tracing::warn!(%context, "balance without an amount or a type; skipped");
            continue;
        };
        let (amount, currency, as_of) = balance_amount(
            &context,
            &amount,
            wire.last_change_date_time.as_deref(),
            wire.reference_date.as_deref(),
        )?;
        converted.push(Balance {
            account_id: account_id.to_owned(),
            kind: balance_type(&code, wire.name.as_deref()),
            amount,
            currency,
            credit_limit_included: None,
            as_of,
        });
    }
    Ok(converted)
}

/// A STET `balanceType` as a canonical type (`name` identifies an `OTHR` balance).
pub fn balance_type(code: &str, name: Option<&str>) -> BalanceType {
    match code.trim().to_ascii_uppercase().as_str() {
        "CLBD" => BalanceType::ClosingBooked,
        "XPCD" => BalanceType::Expected,
        "OTHR" => BalanceType::Other(
            name.map(str::trim)
                .filter(|name| !name.is_empty())
                .unwrap_or("OTHR")
                .to_owned(),
        ),
        _ => BalanceType::Other(code.trim().to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// `GET /v1/accounts/{id}/transactions` answer.
#[derive(Debug, Deserialize)]
pub struct TransactionsResponse {
    #[serde(default)]
    pub transactions: Vec<TransactionResource>,
    #[serde(rename = "_links")]
    pub links: Option<Links>,
}

/// One transaction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResource {
    pub resource_id: Option<String>,
    pub entry_reference: Option<String>,
    pub transaction_amount: Option<Amount>,
    pub credit_debit_indicator: Option<String>,
    pub status: Option<String>,
    pub booking_date: Option<String>,
    pub value_date: Option<String>,
    pub transaction_date: Option<String>,
    /// `{"unstructured": [...]}` in the STET text, a bare array in its examples.
    pub remittance_information: Option<Box<RawValue>>,
    pub related_parties: Option<RelatedParties>,
    /// `{"domain", "family", "subFamily"}`, `{"code", "issuer"}` or plain text.
    pub bank_transaction_code: Option<Box<RawValue>>,
}

/// The parties of a transaction.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedParties {
    pub debtor: Option<Party>,
    pub creditor: Option<Party>,
    pub ultimate_debtor: Option<Party>,
    pub ultimate_creditor: Option<Party>,
}

/// `{"name": "..."}`
#[derive(Debug, Deserialize)]
pub struct Party {
    pub name: Option<String>,
}

fn party(party: Option<Party>) -> Option<String> {
    party.and_then(|party| non_empty(party.name))
}

/// The canonical transactions of a report, in the bank's order (entries that are not
/// movements skipped).
pub fn transactions(
    account_id: &str,
    list: Vec<TransactionResource>,
) -> Result<Vec<Transaction>, AdapterError> {
    let mut ids = TransactionIds::default();
    let mut converted = Vec::with_capacity(list.len());
    for (index, resource) in list.into_iter().enumerate() {
        let context = format!("transactions[{index}]");
        if let Some(transaction) = transaction(account_id, resource, &mut ids, &context)? {
            converted.push(transaction);
        }
    }
    Ok(converted)
}

fn transaction(
    account_id: &str,
    resource: TransactionResource,
    ids: &mut TransactionIds,
    context: &str,
) -> Result<Option<Transaction>, AdapterError> {
    let booking_date = date(resource.booking_date.as_deref())
        .map_err(|message| decode(format!("{context}.bookingDate"), message))?;
    let value_date = date(resource.value_date.as_deref())
        .map_err(|message| decode(format!("{context}.valueDate"), message))?;
    let transaction_date = date(resource.transaction_date.as_deref())
        .map_err(|message| decode(format!("{context}.transactionDate"), message))?;
    let status = match resource.status.as_deref().map(str::trim) {
        Some(code) if code.eq_ignore_ascii_case("BOOK") => TransactionStatus::Booked,
        Some(code) if code.eq_ignore_ascii_case("PDNG") || code.eq_ignore_ascii_case("FUTR") => {
            TransactionStatus::Pending
        }
        None | Some("") if booking_date.is_some() => TransactionStatus::Booked,
        None | Some("") => TransactionStatus::Pending,
        Some(code) => {
            tracing::warn!(
                context,
                code,
                "transaction status is not a movement; skipped"
            );
            return Ok(None);
        }
    };
    let amount = resource
        .transaction_amount
        .ok_or_else(|| decode(context, "transactionAmount is missing"))?;
    let (amount, currency) = amount
        .money()
        .map_err(|message| decode(format!("{context}.transactionAmount"), message))?;
    let amount = match resource
        .credit_debit_indicator
        .as_deref()
        .map(|code| code.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("DBIT") => signed(amount, true),
        Some("CRDT") => signed(amount, false),
        None if amount.is_sign_negative() => amount,
        None => {
            return Err(decode(
                context,
                "creditDebitIndicator is missing and the amount is unsigned",
            ));
        }
        Some(_) => {
            return Err(decode(
                format!("{context}.creditDebitIndicator"),
                "neither CRDT nor DBIT",
            ));
        }
    };
    let description = resource
        .remittance_information
        .as_deref()
        .map(remittance)
        .transpose()
        .map_err(|message| decode(format!("{context}.remittanceInformation"), message))?
        .flatten();
    let parties = resource.related_parties.unwrap_or_default();
    let creditor = party(parties.creditor).or_else(|| party(parties.ultimate_creditor));
    let debtor = party(parties.debtor).or_else(|| party(parties.ultimate_debtor));
    let counterparty_name = if amount.is_sign_negative() {
        creditor.or(debtor)
    } else {
        debtor.or(creditor)
    };
    let bank_code = resource
        .bank_transaction_code
        .as_deref()
        .and_then(bank_transaction_code);
    let value_date = value_date.or(transaction_date);
    let id = ids.id_or_derived(
        non_empty(resource.entry_reference).or_else(|| non_empty(resource.resource_id)),
        account_id,
        booking_date.or(value_date),
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
        counterparty_name,
        counterparty_country: None,
        merchant_category_code: None,
        bank_code,
    }))
}

/// The text of `remittanceInformation`: its unstructured lines, else structured references.
fn remittance(raw: &RawValue) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Remittance {
        Lines(Vec<String>),
        Line(String),
        Object {
            unstructured: Option<Vec<String>>,
            structured: Option<Vec<Structured>>,
        },
    }
    #[derive(Deserialize)]
    struct Structured {
        reference: Option<String>,
    }
    let parsed: Remittance =
        serde_json::from_str(raw.get()).map_err(|_| "not remittance information".to_owned())?;
    let join = |lines: Vec<String>| {
        let lines: Vec<String> = lines
            .into_iter()
            .filter_map(|l| non_empty(Some(l)))
            .collect();
        non_empty(Some(lines.join(" ")))
    };
    Ok(match parsed {
        Remittance::Lines(lines) => join(lines),
        Remittance::Line(line) => non_empty(Some(line)),
        Remittance::Object {
            unstructured,
            structured,
        } => unstructured.and_then(join).or_else(|| {
            structured?
                .into_iter()
                .find_map(|structured| non_empty(structured.reference))
        }),
    })
}

/// `bankTransactionCode` as `DOMAIN-FAMILY-SUBFAMILY`, a proprietary code, or its text.
fn bank_transaction_code(raw: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Code {
        Text(String),
        Iso {
            domain: Option<String>,
            family: Option<String>,
            #[serde(rename = "subFamily")]
            sub_family: Option<String>,
            code: Option<String>,
        },
    }
    match serde_json::from_str::<Code>(raw.get()).ok()? {
        Code::Text(text) => non_empty(Some(text)),
        Code::Iso {
            domain,
            family,
            sub_family,
            code,
        } => {
            let parts: Vec<String> = [domain, family, sub_family]
                .into_iter()
                .filter_map(non_empty)
                .collect();
            if parts.is_empty() {
                non_empty(code)
            } else {
                Some(parts.join("-"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Consents and errors

/// `PUT /v1/consents` body: the accesses the customer gave the AISP, per account.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentsRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<AccountIdentification>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transactions: Vec<AccountIdentification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_beneficiaries: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psu_identity: Option<bool>,
}

/// The parts of a STET error body bankgate looks at.
#[derive(Deserialize)]
struct ErrorProbe {
    error: Option<serde_json::Value>,
    status: Option<serde_json::Value>,
    message: Option<String>,
}

/// The error a body reports (STET `ErrorModel`, sent with 200 by some banks): an `error`
/// member, or a `status` of 400 or more. `None` for other bodies.
pub fn error_in_body(body: &[u8]) -> Option<String> {
    let probe: ErrorProbe = serde_json::from_slice(body).ok()?;
    let status = probe
        .status
        .as_ref()
        .and_then(|status| status.as_u64())
        .filter(|status| *status >= 400);
    match (&probe.error, status) {
        (None, None) => None,
        _ => Some(
            probe
                .error
                .and_then(|error| error.as_str().map(str::to_owned))
                .or(probe.message)
                .or_else(|| status.map(|status| format!("status {status}")))
                .unwrap_or_else(|| "error".into()),
        ),
    }
}
