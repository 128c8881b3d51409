//! Berlin Group NextGenPSD2 1.3.x wire types (serde) and their conversion into the canonical
//! model.
//!
//! Banks (and the standard's own examples) get the format wrong in small ways. The conversions
//! are lenient where the meaning stays clear and refuse with [`AdapterError::Decode`] where it
//! does not; they never panic on bank input:
//! - Amounts are read from the JSON text (a string, or a bare JSON number read through
//!   [`RawValue`], never through `f64`) and keep the bank's precision: `"100"` stays `100`,
//!   `"-12.30"` stays `-12.30`. Text that is not a plain decimal (`"1,000.00"`) is refused.
//! - An element of `balances[]` with neither `balanceType` nor `balanceAmount` (such as the
//!   stray `{"debitAccounting": true}` of the card example) is not a balance and is skipped; a
//!   balance without an amount or without a type is skipped too (missing stays missing, never 0).
//! - Unknown balance types become [`BalanceType::Other`] with the bank's name.
//! - An IBAN failing its ISO 13616 check digits is not passed on as an IBAN; the account is then
//!   identified by its `resourceId`. Accounts sharing one IBAN (the sub-accounts of a
//!   multi-currency account) are told apart by their currency.
//! - A missing account `status` means enabled; an unknown one means blocked. A missing account
//!   currency means `XXX` (several or unknown). Currency codes are upper-cased.
//! - Booleans and counts are also accepted as strings (`"recurringIndicator": "true"`).
//! - The counterparty is the creditor of money out and the debtor of money in, falling back to
//!   the other party when the bank names only one (one official example names the creditor of
//!   a credit).
//! - Dates may carry a time (`2024-01-02T00:00:00`); a date-time without zone is taken as UTC.
//!   A date or amount that cannot be read fails the whole answer.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::adapters::common::{Amount, LenientBool, normalise_iban, parse_decimal};

use crate::adapters::common::{
    TransactionIds, account_currency, balance_amount, date, decode, json_scalar_text, non_empty,
};
use crate::adapters::{self, AdapterError, BankAccount, BankConsent};
use crate::model::{
    Account, AccountStatus, AccountType, Balance, BalanceType, Scope, Transaction,
    TransactionStatus,
};

// ---------------------------------------------------------------------------------------------
// Consent

/// `POST /v1/consents` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    pub access: Access,
    pub recurring_indicator: bool,
    pub valid_until: NaiveDate,
    pub frequency_per_day: u32,
    pub combined_service_indicator: bool,
}

/// What the consent asks for.
///
/// bankgate asks for exactly the categories the purpose needs, in the "bank-offered" form
/// (empty account lists: the customer picks the accounts at the bank). A one-off consent for
/// the account list alone uses `availableAccounts`, which the standard reserves for that case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<AccountReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balances: Option<Vec<AccountReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<Vec<AccountReference>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_accounts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_information: Option<AdditionalInformation>,
}

/// Access to more than the account data itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalInformation {
    /// The account owner's name; empty means every consented account.
    pub owner_name: Vec<AccountReference>,
}

/// An account named in a consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountReference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_pan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl ConsentRequest {
    /// The consent request for what bankgate wants from the bank.
    pub fn new(request: &adapters::ConsentRequest) -> Result<ConsentRequest, AdapterError> {
        let wants = |scope: Scope| request.scopes.contains(&scope);
        request.require_scopes()?;
        let data = wants(Scope::Balances) || wants(Scope::Transactions);
        // Bank-offered: an empty list lets the customer choose the accounts at the bank.
        let bank_offered = |wanted: bool| wanted.then(Vec::new);
        let access = if !request.recurring && !data {
            let available = if wants(Scope::Identity) {
                "allAccountsWithOwnerName"
            } else {
                "allAccounts"
            };
            Access {
                available_accounts: Some(available.into()),
                ..Access::default()
            }
        } else {
            Access {
                // The owner's name alone still needs the account list to be read from.
                accounts: bank_offered(wants(Scope::Accounts) || !data),
                balances: bank_offered(wants(Scope::Balances)),
                transactions: bank_offered(wants(Scope::Transactions)),
                additional_information: wants(Scope::Identity).then(AdditionalInformation::default),
                ..Access::default()
            }
        };
        Ok(ConsentRequest {
            access,
            recurring_indicator: request.recurring,
            valid_until: request.valid_until,
            frequency_per_day: if request.recurring {
                request.frequency_per_day.max(1)
            } else {
                1
            },
            combined_service_indicator: false,
        })
    }
}

/// `POST /v1/consents` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentCreated {
    pub consent_id: Option<String>,
    pub consent_status: Option<String>,
}

impl TryFrom<ConsentCreated> for BankConsent {
    type Error = AdapterError;

    fn try_from(created: ConsentCreated) -> Result<BankConsent, AdapterError> {
        let id = non_empty(created.consent_id)
            .ok_or_else(|| AdapterError::Decode("consent answer has no consentId".into()))?;
        if created.consent_status.as_deref() == Some("rejected") {
            return Err(AdapterError::Refused(
                "the bank rejected the consent".into(),
            ));
        }
        Ok(BankConsent {
            oauth_scopes: vec![format!("AIS:{id}")],
            id: Some(id),
            authorization_params: Vec::new(),
        })
    }
}

/// The consent named by RFC 9396 `authorization_details` of type `kind`
/// (`[{"type": kind, "consentId": id}]`) instead of the scope `AIS:<id>`, for a bank whose
/// manifest says `consent_detail_type`.
pub fn as_authorization_details(consent: BankConsent, kind: &str) -> BankConsent {
    let Some(id) = &consent.id else {
        return consent;
    };
    let details = serde_json::json!([{ "type": kind, "consentId": id }]);
    BankConsent {
        oauth_scopes: Vec::new(),
        authorization_params: vec![("authorization_details".into(), details.to_string())],
        ..consent
    }
}

/// `GET /v1/consents/{id}/status` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentStatusResponse {
    pub consent_status: Option<String>,
}

/// `GET /v1/consents/{id}` answer (the parts bankgate reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentInformation {
    pub recurring_indicator: Option<LenientBool>,
    pub valid_until: Option<String>,
    pub frequency_per_day: Option<Box<RawValue>>,
    pub consent_status: Option<String>,
}

/// A consent as the bank reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    /// The bank's `consentStatus` (`received`, `valid`, `expired`, `terminatedByTpp`, ...).
    pub status: String,
    pub recurring: Option<bool>,
    pub valid_until: Option<NaiveDate>,
    pub frequency_per_day: Option<u32>,
}

impl TryFrom<ConsentInformation> for ConsentState {
    type Error = AdapterError;

    fn try_from(information: ConsentInformation) -> Result<ConsentState, AdapterError> {
        let status = non_empty(information.consent_status)
            .ok_or_else(|| AdapterError::Decode("consent has no consentStatus".into()))?;
        let frequency_per_day = information
            .frequency_per_day
            .map(|raw| {
                let text = json_scalar_text(&raw)?;
                text.trim()
                    .parse::<u32>()
                    .map_err(|_| "not a whole number".to_owned())
            })
            .transpose()
            .map_err(|message| decode("frequencyPerDay", message))?;
        Ok(ConsentState {
            status,
            recurring: information.recurring_indicator.map(|flag| flag.0),
            valid_until: date(information.valid_until.as_deref())
                .map_err(|message| decode("validUntil", message))?,
            frequency_per_day,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// `GET /v1/accounts` answer.
#[derive(Debug, Deserialize)]
pub struct AccountList {
    pub accounts: Vec<AccountDetails>,
}

/// `GET /v1/accounts/{id}` answer.
#[derive(Debug, Deserialize)]
pub struct AccountDetailsResponse {
    pub account: AccountDetails,
}

/// One account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    pub resource_id: Option<String>,
    pub iban: Option<String>,
    pub bban: Option<String>,
    pub msisdn: Option<String>,
    /// Not part of the standard's `accountDetails`, but sent by banks that list card accounts
    /// under `/v1/accounts`.
    pub masked_pan: Option<String>,
    pub currency: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub product: Option<String>,
    pub cash_account_type: Option<String>,
    pub status: Option<String>,
    pub owner_name: Option<String>,
}

/// `GET /v1/card-accounts` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardAccountList {
    pub card_accounts: Vec<CardAccountDetails>,
}

/// One card account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardAccountDetails {
    pub resource_id: Option<String>,
    pub masked_pan: Option<String>,
    pub currency: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub product: Option<String>,
    pub status: Option<String>,
    pub owner_name: Option<String>,
    pub credit_limit: Option<Amount>,
    pub balances: Option<Vec<WireBalance>>,
}

/// A card account with the balances listed with it (its credit limit among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardAccount {
    pub account: BankAccount,
    pub balances: Vec<Balance>,
}

/// The canonical accounts of an account list.
pub fn accounts(bank_id: &str, list: AccountList) -> Result<Vec<BankAccount>, AdapterError> {
    let ibans: Vec<Option<String>> = list
        .accounts
        .iter()
        .map(|details| details.iban.as_deref().and_then(normalise_iban))
        .collect();
    let mut n_sharing: HashMap<&str, usize> = HashMap::new();
    for iban in ibans.iter().flatten() {
        *n_sharing.entry(iban).or_default() += 1;
    }
    let mut accounts = Vec::with_capacity(list.accounts.len());
    for (index, details) in list.accounts.into_iter().enumerate() {
        let shared_iban = ibans[index]
            .as_deref()
            .is_some_and(|iban| n_sharing.get(iban).copied().unwrap_or(0) > 1);
        let context = format!("accounts[{index}]");
        if let Some(account) = account(bank_id, details, shared_iban, &context)? {
            accounts.push(account);
        }
    }
    Ok(accounts)
}

/// The canonical account of an account details answer (`None`: nothing identifies it).
pub fn account_details(
    bank_id: &str,
    response: AccountDetailsResponse,
) -> Result<Option<BankAccount>, AdapterError> {
    account(bank_id, response.account, false, "account")
}

fn account(
    bank_id: &str,
    details: AccountDetails,
    shared_iban: bool,
    context: &str,
) -> Result<Option<BankAccount>, AdapterError> {
    let iban = details.iban.as_deref().and_then(normalise_iban);
    if details.iban.is_some() && iban.is_none() {
        tracing::warn!(
            context,
            "bank sent an IBAN that fails its check digits; dropped"
        );
    }
    let currency = account_currency(details.currency.as_deref())
        .map_err(|message| decode(format!("{context}.currency"), message))?;
    let resource_id = non_empty(details.resource_id);
    let masked_pan = non_empty(details.masked_pan);
    let bban = non_empty(details.bban);
    let identifier = match (&iban, &resource_id, &bban, &masked_pan) {
        (Some(iban), ..) if shared_iban => format!("{iban} {currency}"),
        (Some(iban), ..) => iban.clone(),
        (None, Some(resource_id), ..) => resource_id.clone(),
        (None, None, Some(bban), _) => bban.clone(),
        (None, None, None, Some(pan)) => format!("{pan} {currency}"),
        (None, None, None, None) => {
            tracing::warn!(context, "account has no identifier; skipped");
            return Ok(None);
        }
    };
    let kind = account_type(details.cash_account_type.as_deref());
    let display_name = non_empty(details.display_name)
        .or_else(|| non_empty(details.name))
        .or_else(|| non_empty(details.product));
    Ok(Some(BankAccount {
        bank_ref: resource_id.unwrap_or_default(),
        account: Account {
            id: adapters::account_id(bank_id, &identifier),
            bank_id: bank_id.to_owned(),
            display_name,
            kind,
            currency,
            iban_masked: iban.as_deref().map(crate::model::mask_iban),
            iban,
            bban,
            sort_code: None,
            account_number: None,
            pan_masked: masked_pan,
            holder_name: non_empty(details.owner_name),
            status: account_status(details.status.as_deref(), context),
        },
    }))
}

/// The canonical card accounts of a card account list, with their balances.
pub fn card_accounts(
    bank_id: &str,
    list: CardAccountList,
) -> Result<Vec<CardAccount>, AdapterError> {
    let mut accounts = Vec::with_capacity(list.card_accounts.len());
    for (index, card) in list.card_accounts.into_iter().enumerate() {
        let context = format!("cardAccounts[{index}]");
        let details = AccountDetails {
            resource_id: card.resource_id,
            iban: None,
            bban: None,
            msisdn: None,
            masked_pan: card.masked_pan,
            currency: card.currency,
            name: card.name,
            display_name: card.display_name,
            product: card.product,
            cash_account_type: Some("CARD".into()),
            status: card.status,
            owner_name: card.owner_name,
        };
        let Some(account) = account(bank_id, details, false, &context)? else {
            continue;
        };
        let account_id = account.account.id.clone();
        let mut balances = balances(
            &account_id,
            card.balances.unwrap_or_default(),
            &format!("{context}.balances"),
        )?;
        if let Some(limit) = card.credit_limit {
            let (amount, currency) = limit
                .money()
                .map_err(|message| decode(format!("{context}.creditLimit"), message))?;
            balances.push(Balance {
                account_id: account_id.clone(),
                kind: BalanceType::CreditLimit,
                amount,
                currency,
                credit_limit_included: None,
                as_of: None,
            });
        }
        accounts.push(CardAccount { account, balances });
    }
    Ok(accounts)
}

/// `cashAccountType` (ISO 20022 ExternalCashAccountType1Code, or the names some banks use).
pub fn account_type(cash_account_type: Option<&str>) -> AccountType {
    let code = cash_account_type
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    match code.as_str() {
        "CACC" | "CURRENTACCOUNT" | "CURRENT" | "TRAN" | "SLRY" => AccountType::Current,
        "SVGS" | "SAVINGS" | "SAVINGSACCOUNT" | "LLSV" => AccountType::Savings,
        "CARD" | "CREDITCARD" => AccountType::Card,
        "LOAN" | "MORTGAGE" => AccountType::Loan,
        _ => AccountType::Other,
    }
}

fn account_status(status: Option<&str>, context: &str) -> AccountStatus {
    let Some(status) = status.map(str::trim) else {
        return AccountStatus::Enabled;
    };
    if status.eq_ignore_ascii_case("enabled") {
        AccountStatus::Enabled
    } else if status.eq_ignore_ascii_case("deleted") {
        AccountStatus::Deleted
    } else {
        if !status.eq_ignore_ascii_case("blocked") {
            tracing::warn!(context, "unknown account status; treated as blocked");
        }
        AccountStatus::Blocked
    }
}

// ---------------------------------------------------------------------------------------------
// Balances

/// `GET /v1/accounts/{id}/balances` (and card account balances) answer.
#[derive(Debug, Deserialize)]
pub struct BalancesResponse {
    pub balances: Vec<WireBalance>,
}

/// One element of `balances[]`, every field optional so that junk elements can be skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireBalance {
    pub balance_amount: Option<Amount>,
    pub balance_type: Option<String>,
    pub credit_limit_included: Option<LenientBool>,
    pub last_change_date_time: Option<String>,
    pub reference_date: Option<String>,
}

/// The canonical balances of `account_id`; `context` names the list in error messages.
pub fn balances(
    account_id: &str,
    balances: Vec<WireBalance>,
    context: &str,
) -> Result<Vec<Balance>, AdapterError> {
    let mut converted = Vec::with_capacity(balances.len());
    for (index, wire) in balances.into_iter().enumerate() {
        let context = format!("{context}[{index}]");
        let (amount, kind) = match (wire.balance_amount, non_empty(wire.balance_type)) {
            (Some(amount), Some(kind)) => (amount, kind),
            (None, None) => {
                tracing::warn!(%context, "element of balances is not a balance; skipped");
                continue;
            }
            (None, Some(_)) => {
                tracing::warn!(%context, "balance without an amount; skipped");
                continue;
            }
            (Some(_), None) => {
                tracing::warn!(%context, "balance without a type; skipped");
                continue;
            }
        };
        let (amount, currency, as_of) = balance_amount(
            &context,
            &amount,
            wire.last_change_date_time.as_deref(),
            wire.reference_date.as_deref(),
        )?;
        converted.push(Balance {
            account_id: account_id.to_owned(),
            kind: balance_type(&kind),
            amount,
            currency,
            credit_limit_included: wire.credit_limit_included.map(|flag| flag.0),
            as_of,
        });
    }
    Ok(converted)
}

/// A Berlin Group `balanceType` as a canonical type; unknown codes keep their name.
pub fn balance_type(code: &str) -> BalanceType {
    const KNOWN: [(&str, BalanceType); 8] = [
        ("closingBooked", BalanceType::ClosingBooked),
        ("openingBooked", BalanceType::OpeningBooked),
        ("interimBooked", BalanceType::InterimBooked),
        ("interimAvailable", BalanceType::InterimAvailable),
        ("expected", BalanceType::Expected),
        ("forwardAvailable", BalanceType::ForwardAvailable),
        ("authorised", BalanceType::Authorised),
        ("creditLimit", BalanceType::CreditLimit),
    ];
    let code = code.trim();
    KNOWN
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(code))
        .map_or_else(
            || BalanceType::Other(code.to_owned()),
            |(_, kind)| kind.clone(),
        )
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// `GET /v1/accounts/{id}/transactions` answer (JSON).
#[derive(Debug, Deserialize)]
pub struct TransactionsResponse {
    /// Absent when the account has nothing to report.
    pub transactions: Option<AccountReport>,
}

/// The transaction report: booked and pending lists and the link to the next page.
#[derive(Debug, Default, Deserialize)]
pub struct AccountReport {
    #[serde(default)]
    pub booked: Vec<TransactionDetails>,
    #[serde(default)]
    pub pending: Vec<TransactionDetails>,
    #[serde(rename = "_links")]
    pub links: Option<ReportLinks>,
}

/// The links of a report that bankgate follows.
pub type ReportLinks = crate::adapters::common::NextLink;

impl AccountReport {
    /// The `_links.next.href` of this page, if any.
    pub fn next_href(&self) -> Option<&str> {
        self.links.as_ref().and_then(ReportLinks::href)
    }

    /// Appends the entries of a following page.
    pub fn extend(&mut self, page: AccountReport) {
        self.booked.extend(page.booked);
        self.pending.extend(page.pending);
    }
}

/// `GET /v1/accounts/{id}/transactions/{transactionId}` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDetailsResponse {
    pub transactions_details: TransactionDetails,
}

/// One transaction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDetails {
    pub transaction_id: Option<String>,
    pub booking_date: Option<String>,
    pub value_date: Option<String>,
    pub transaction_amount: Option<Amount>,
    pub creditor_name: Option<String>,
    pub creditor_account: Option<AccountReference>,
    pub creditor_address: Option<PartyAddress>,
    pub ultimate_creditor: Option<String>,
    pub debtor_name: Option<String>,
    pub debtor_account: Option<AccountReference>,
    pub debtor_address: Option<PartyAddress>,
    pub ultimate_debtor: Option<String>,
    pub remittance_information_unstructured: Option<String>,
    pub remittance_information_unstructured_array: Option<Vec<String>>,
    /// A string in 1.3.x up to 1.3.8, an object with a `reference` since.
    pub remittance_information_structured: Option<Box<RawValue>>,
    pub additional_information: Option<String>,
    /// Text in the standard; some banks send a JSON number.
    pub merchant_category_code: Option<Box<RawValue>>,
    pub bank_transaction_code: Option<String>,
    pub proprietary_bank_transaction_code: Option<String>,
}

/// A party's address (only its country is read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyAddress {
    pub country: Option<String>,
}

/// The country of a party: its address's, else its account's IBAN's.
fn party_country(
    address: Option<&PartyAddress>,
    account: Option<&AccountReference>,
) -> Option<String> {
    use crate::adapters::common::{country, iban_country};
    address
        .and_then(|address| country(address.country.as_deref()))
        .or_else(|| iban_country(account.and_then(|account| account.iban.as_deref())))
}

/// The canonical transactions of a report, booked first.
pub fn transactions(
    account_id: &str,
    report: AccountReport,
) -> Result<Vec<Transaction>, AdapterError> {
    let mut ids = TransactionIds::default();
    let groups = [
        (TransactionStatus::Booked, "booked", report.booked),
        (TransactionStatus::Pending, "pending", report.pending),
    ];
    let mut converted = Vec::new();
    for (status, name, list) in groups {
        for (index, details) in list.into_iter().enumerate() {
            let context = format!("transactions.{name}[{index}]");
            converted.push(transaction(
                account_id, details, status, &mut ids, &context,
            )?);
        }
    }
    Ok(converted)
}

/// The canonical transaction of a transaction details answer (booked if it has a booking date).
pub fn transaction_details(
    account_id: &str,
    response: TransactionDetailsResponse,
) -> Result<Transaction, AdapterError> {
    let details = response.transactions_details;
    let status = if details.booking_date.is_some() {
        TransactionStatus::Booked
    } else {
        TransactionStatus::Pending
    };
    transaction(
        account_id,
        details,
        status,
        &mut TransactionIds::default(),
        "transactionsDetails",
    )
}

fn transaction(
    account_id: &str,
    details: TransactionDetails,
    status: TransactionStatus,
    ids: &mut TransactionIds,
    context: &str,
) -> Result<Transaction, AdapterError> {
    let amount = details
        .transaction_amount
        .ok_or_else(|| decode(context, "transactionAmount is missing"))?;
    let (amount, currency) = amount
        .money()
        .map_err(|message| decode(format!("{context}.transactionAmount"), message))?;
    let booking_date = date(details.booking_date.as_deref())
        .map_err(|message| decode(format!("{context}.bookingDate"), message))?;
    let value_date = date(details.value_date.as_deref())
        .map_err(|message| decode(format!("{context}.valueDate"), message))?;
    let structured = details
        .remittance_information_structured
        .as_deref()
        .map(structured_reference)
        .transpose()
        .map_err(|message| {
            decode(
                format!("{context}.remittanceInformationStructured"),
                message,
            )
        })?
        .flatten();
    let description = non_empty(details.remittance_information_unstructured)
        .or_else(|| {
            let lines = details.remittance_information_unstructured_array?;
            non_empty(Some(lines.join(" ")))
        })
        .or(structured)
        .or_else(|| non_empty(details.additional_information));
    let counterparty_country = if amount.is_sign_negative() {
        party_country(
            details.creditor_address.as_ref(),
            details.creditor_account.as_ref(),
        )
    } else {
        party_country(
            details.debtor_address.as_ref(),
            details.debtor_account.as_ref(),
        )
    };
    let creditor =
        non_empty(details.creditor_name).or_else(|| non_empty(details.ultimate_creditor));
    let debtor = non_empty(details.debtor_name).or_else(|| non_empty(details.ultimate_debtor));
    let counterparty_name = if amount.is_sign_negative() {
        creditor.or(debtor)
    } else {
        debtor.or(creditor)
    };
    let merchant_category_code = details
        .merchant_category_code
        .as_deref()
        .map(merchant_category_code)
        .transpose()
        .map_err(|message| decode(format!("{context}.merchantCategoryCode"), message))?
        .flatten();
    let id = ids.id_or_derived(
        non_empty(details.transaction_id),
        account_id,
        booking_date.or(value_date),
        amount,
        &currency,
        description.as_deref(),
    );
    Ok(Transaction {
        id,
        account_id: account_id.to_owned(),
        status,
        booking_date,
        value_date,
        amount,
        currency,
        description,
        counterparty_name,
        counterparty_country,
        merchant_category_code,
        bank_code: non_empty(details.bank_transaction_code)
            .or_else(|| non_empty(details.proprietary_bank_transaction_code)),
    })
}

/// `remittanceInformationStructured`: a string, or an object whose `reference` is the text.
fn structured_reference(raw: &RawValue) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct Structured {
        reference: Option<String>,
    }
    if raw.get().trim_start().starts_with('{') {
        let structured: Structured =
            serde_json::from_str(raw.get()).map_err(|_| "not a structured reference".to_owned())?;
        return Ok(non_empty(structured.reference));
    }
    Ok(non_empty(Some(json_scalar_text(raw)?)))
}

/// An ISO 18245 code; a JSON number loses leading zeros, which are put back.
fn merchant_category_code(raw: &RawValue) -> Result<Option<String>, String> {
    let is_number = !raw.get().trim_start().starts_with('"');
    let code = json_scalar_text(raw)?.trim().to_owned();
    if code.is_empty() {
        return Ok(None);
    }
    if is_number && code.len() < 4 && code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(format!("{code:0>4}")));
    }
    Ok(Some(code))
}

// ---------------------------------------------------------------------------------------------
// Errors in 2xx answers

/// The parts of an error body bankgate looks at.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorProbe {
    tpp_messages: Option<Vec<TppMessage>>,
    error: Option<IgnoredAny>,
    /// Aggregators in front of Berlin Group banks (GoCardless) put the HTTP status here.
    #[serde(rename = "status_code")]
    status_code: Option<serde_json::Value>,
}

/// One `tppMessages` entry, as an error body lists them.
#[derive(Debug, Deserialize)]
pub struct TppMessage {
    category: Option<String>,
    code: Option<String>,
}

/// The codes of the messages of category `ERROR` (or of none); a message without a code is
/// `unknown`.
pub fn error_codes_of(messages: Vec<TppMessage>) -> Vec<String> {
    messages
        .into_iter()
        .filter(|message| {
            message
                .category
                .as_deref()
                .is_none_or(|category| category.eq_ignore_ascii_case("ERROR"))
        })
        .map(|message| message.code.unwrap_or_else(|| "unknown".into()))
        .collect()
}

/// The error codes in a body that reports an error (banks send some with HTTP 200): a
/// `tppMessages` entry of category `ERROR`, an `error` member, or a `status_code` of 400 or
/// more (GoCardless). `None` for other bodies.
pub fn error_in_body(body: &[u8]) -> Option<Vec<String>> {
    let probe: ErrorProbe = serde_json::from_slice(body).ok()?;
    let mut codes = error_codes_of(probe.tpp_messages.unwrap_or_default());
    if probe.error.is_some() {
        codes.push("error".into());
    }
    if let Some(status) = probe
        .status_code
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .filter(|status| *status >= 400)
    {
        codes.push(format!("status_code {status}"));
    }
    (!codes.is_empty()).then_some(codes)
}

/// The `code`s of the `tppMessages` in a body, for logs.
pub fn message_codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ErrorProbe>(body)
        .ok()
        .and_then(|probe| probe.tpp_messages)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|message| message.code)
        .collect()
}
