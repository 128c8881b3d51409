//! UK Open Banking (OBIE) Read/Write API 3.1.x and 4.0 wire types (serde) and their
//! conversion into the canonical model. One set of types reads both versions: v3 names and v4
//! ISO codes mean the same things and map onto the same canonical values.
//!
//! What the conversions tolerate, and what they refuse ([`AdapterError::Decode`]); none of them
//! panics on bank input:
//! - Amounts are unsigned text (`^\d{1,13}(\.\d{1,5})?$`) with a `CreditDebitIndicator`
//!   (`Credit`/`Debit`, or `CRDT`/`DBIT`): the sign comes from the indicator, the bank's five
//!   decimals are kept (`"0.12345"` stays `0.12345`), and JSON text is never read as `f64`.
//! - `Data.Balance` is an array in the bulk examples but a single object in the per-account
//!   ones: both are read. Balance types: `ClosingBooked`/`CLBD`, `OpeningBooked`/`OPBD`,
//!   `InterimBooked`/`ITBD`, `InterimAvailable`/`ITAV`, `Expected`/`XPCD`,
//!   `ForwardAvailable`/`FWAV` map to the canonical types; the others (`ClosingAvailable`/
//!   `CLAV`, `OpeningAvailable`/`OPAV`, `Information`/`INFO`, `PreviouslyClosedBooked`/`PRCD`,
//!   the `…Cleared` ones) have no canonical equivalent and are kept as `other` with the bank's
//!   name, like every unknown code. `Amount` is the balance; a wallet's `LocalAmount` and a
//!   `TotalValue` are not. Each `CreditLine` except `Available` becomes a `credit_limit`
//!   balance, and decides `credit_limit_included`.
//! - Transaction status `Booked`/`BOOK` → booked, `Pending`/`PDNG`/`FUTR` → pending; `Rejected`/
//!   `RJCT`/`INFO` entries are not movements and are skipped. A pending entry has no booking
//!   date: its `BookingDateTime` becomes the value date when there is no `ValueDateTime`.
//! - Consent status `AwaitingAuthorisation`/`AWAU`, `Authorised`/`AUTH`, `Rejected`/`RJCT`
//!   (and `REJT`, which the v4 example uses against its own schema), `Revoked`/`CANC`,
//!   `Expired`/`EXPD`; `StatusReason` is read as one object (the examples) or an array (the
//!   schema).
//! - Account identifiers: `UK.OBIE.IBAN` (check digits verified), `UK.OBIE.SortCodeAccountNumber`
//!   (14 digits: sort code and account number), `UK.OBIE.PAN` (masked if sent in full), others
//!   by scheme and identification; the stable id uses the IBAN, else the first scheme and
//!   identification, else the `AccountId`. `OpeningDate` (`"01-05-2002"` in the examples, not
//!   ISO 8601) and postal addresses (`"Country": "UK"`, not ISO 3166) are not read.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::adapters::berlin_group::wire::account_type as iso_account_type;
use crate::adapters::common::{
    TransactionIds, account_currency, currency, date, date_time, decimal, decode, non_empty,
    normalise_iban, scheme_suffix, signed,
};
use crate::adapters::{self, AdapterError, BankAccount, BankConsent};
use crate::model::{
    Account, AccountStatus, AccountType, Balance, BalanceType, Scope, Transaction,
    TransactionStatus,
};

const SCHEME_PREFIXES: &[&str] = &["UK.OBIE.", "OBIE.", "UK."];

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope<T> {
    pub data: T,
    pub links: Option<Links>,
}

/// `Links` (absolute URLs in OBIE).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Links {
    pub next: Option<String>,
}

impl<T> Envelope<T> {
    /// `Links.Next`, if any.
    pub fn next(&self) -> Option<&str> {
        self.links
            .as_ref()
            .and_then(|links| links.next.as_deref())
            .map(str::trim)
            .filter(|next| !next.is_empty())
    }
}

/// One object or an array of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    Many(Vec<T>),
    One(Box<T>),
}

impl<T> OneOrMany<T> {
    /// The elements, in order.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(list) => list,
            OneOrMany::One(one) => vec![*one],
        }
    }
}

/// `{"Amount": "10.00", "Currency": "GBP"}`; the amount is kept as raw JSON text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Amount {
    pub amount: Option<Box<RawValue>>,
    pub currency: Option<String>,
}

fn money(amount: &Amount) -> Result<(Decimal, String), String> {
    let raw = amount.amount.as_deref().ok_or("Amount is missing")?;
    Ok((decimal(raw)?, currency(amount.currency.as_deref())?))
}

/// The sign of a `CreditDebitIndicator`: `Some(true)` for a debit.
fn is_debit(indicator: Option<&str>) -> Result<bool, String> {
    match indicator.map(str::trim) {
        Some(code) if code.eq_ignore_ascii_case("Debit") || code.eq_ignore_ascii_case("DBIT") => {
            Ok(true)
        }
        Some(code) if code.eq_ignore_ascii_case("Credit") || code.eq_ignore_ascii_case("CRDT") => {
            Ok(false)
        }
        None => Err("CreditDebitIndicator is missing".into()),
        Some(_) => Err("CreditDebitIndicator is neither Credit nor Debit".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Consents

/// The permissions bankgate asks for, per scope. The account list comes with its identifiers
/// (`ReadAccountsDetail`) whatever the scopes: they key the stable account ids, so that an
/// account keeps its id across consents; the purpose policy strips them before release.
pub fn permissions(scopes: &[Scope]) -> Vec<&'static str> {
    if scopes.is_empty() {
        return Vec::new();
    }
    let mut permissions = vec!["ReadAccountsDetail"];
    for scope in scopes {
        match scope {
            Scope::Accounts => {}
            Scope::Balances => permissions.push("ReadBalances"),
            Scope::Transactions => permissions.extend([
                "ReadTransactionsDetail",
                "ReadTransactionsCredits",
                "ReadTransactionsDebits",
            ]),
            Scope::Identity => permissions.push("ReadPartyPSU"),
        }
    }
    permissions
}

/// `POST /account-access-consents` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentRequest {
    pub data: ConsentRequestData,
    pub risk: serde_json::Map<String, serde_json::Value>,
}

/// Its `Data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentRequestData {
    pub permissions: Vec<&'static str>,
    pub expiration_date_time: String,
}

impl ConsentRequest {
    /// The consent request for what bankgate wants from the bank.
    pub fn new(request: &adapters::ConsentRequest) -> Result<ConsentRequest, AdapterError> {
        let permissions = permissions(&request.scopes);
        if permissions.is_empty() {
            return Err(AdapterError::Refused(
                "a consent needs at least one scope".into(),
            ));
        }
        Ok(ConsentRequest {
            data: ConsentRequestData {
                permissions,
                expiration_date_time: format!("{}T23:59:59+00:00", request.valid_until),
            },
            risk: serde_json::Map::new(),
        })
    }
}

/// `Data` of a consent answer (creation or `GET`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsentData {
    pub consent_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<OneOrMany<StatusReason>>,
    pub permissions: Option<Vec<String>>,
    pub expiration_date_time: Option<String>,
    pub transaction_from_date_time: Option<String>,
    pub transaction_to_date_time: Option<String>,
}

/// `StatusReason` (an object in the examples, an array in the v4 schema).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatusReason {
    pub status_reason_code: Option<String>,
}

/// A consent's state, the same for both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    AwaitingAuthorisation,
    Authorised,
    Rejected,
    Revoked,
    Expired,
}

/// A consent as the bank reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentState {
    pub id: String,
    pub status: ConsentStatus,
    /// The bank's own status text.
    pub status_original: String,
    pub status_reasons: Vec<String>,
    pub permissions: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub transactions_from: Option<DateTime<Utc>>,
    pub transactions_to: Option<DateTime<Utc>>,
}

/// A v3 or v4 consent status.
pub fn consent_status(code: &str) -> Option<ConsentStatus> {
    Some(match code.trim() {
        "AwaitingAuthorisation" | "AWAU" => ConsentStatus::AwaitingAuthorisation,
        "Authorised" | "AUTH" => ConsentStatus::Authorised,
        "Rejected" | "RJCT" | "REJT" => ConsentStatus::Rejected,
        "Revoked" | "CANC" => ConsentStatus::Revoked,
        "Expired" | "EXPD" => ConsentStatus::Expired,
        _ => return None,
    })
}

impl TryFrom<ConsentData> for ConsentState {
    type Error = AdapterError;

    fn try_from(data: ConsentData) -> Result<ConsentState, AdapterError> {
        let id =
            non_empty(data.consent_id).ok_or_else(|| decode("Data", "ConsentId is missing"))?;
        let status_original =
            non_empty(data.status).ok_or_else(|| decode("Data", "Status is missing"))?;
        let status = consent_status(&status_original)
            .ok_or_else(|| decode("Data.Status", "not a consent status"))?;
        let when = |name: &str, text: Option<String>| {
            date_time(text.as_deref()).map_err(|message| decode(format!("Data.{name}"), message))
        };
        Ok(ConsentState {
            id,
            status,
            status_original,
            status_reasons: data
                .status_reason
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|reason| non_empty(reason.status_reason_code))
                .collect(),
            permissions: data.permissions.unwrap_or_default(),
            expires_at: when("ExpirationDateTime", data.expiration_date_time)?,
            transactions_from: when("TransactionFromDateTime", data.transaction_from_date_time)?,
            transactions_to: when("TransactionToDateTime", data.transaction_to_date_time)?,
        })
    }
}

/// The OIDC `claims` request naming the consent, as a request object would carry it.
pub fn intent_claims(consent_id: &str) -> String {
    let intent = serde_json::json!({"value": consent_id, "essential": true});
    serde_json::json!({
        "userinfo": {"openbanking_intent_id": intent},
        "id_token": {"openbanking_intent_id": intent},
    })
    .to_string()
}

impl TryFrom<ConsentData> for BankConsent {
    type Error = AdapterError;

    fn try_from(data: ConsentData) -> Result<BankConsent, AdapterError> {
        let state = ConsentState::try_from(data)?;
        match state.status {
            ConsentStatus::AwaitingAuthorisation | ConsentStatus::Authorised => {}
            _ => {
                return Err(AdapterError::Refused(format!(
                    "the bank answered the consent with status {}",
                    state.status_original
                )));
            }
        }
        Ok(BankConsent {
            authorization_params: vec![("claims".into(), intent_claims(&state.id))],
            oauth_scopes: vec!["openid".into(), "accounts".into()],
            id: Some(state.id),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// `Data` of `GET /accounts`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountsData {
    #[serde(default)]
    pub account: Vec<ObAccount>,
}

/// One account (v3 and v4 fields).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObAccount {
    pub account_id: Option<String>,
    pub status: Option<String>,
    pub currency: Option<String>,
    /// v3
    pub account_sub_type: Option<String>,
    /// v4 (ISO ExternalCashAccountType1Code)
    pub account_type_code: Option<String>,
    pub nickname: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub account: Vec<AccountIdentification>,
}

/// `Account[]` of an account: a scheme and an identification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccountIdentification {
    pub scheme_name: Option<String>,
    pub identification: Option<String>,
    pub name: Option<String>,
}

/// The canonical accounts of an account list.
pub fn accounts(bank_id: &str, data: AccountsData) -> Result<Vec<BankAccount>, AdapterError> {
    let mut accounts = Vec::with_capacity(data.account.len());
    for (index, account) in data.account.into_iter().enumerate() {
        let context = format!("Data.Account[{index}]");
        if let Some(account) = account_of(bank_id, account, &context)? {
            accounts.push(account);
        }
    }
    Ok(accounts)
}

/// An account type from a v3 `AccountSubType` or a v4 ISO code.
pub fn account_type(sub_type: Option<&str>, code: Option<&str>) -> AccountType {
    match sub_type.map(str::trim) {
        Some("CurrentAccount") => return AccountType::Current,
        Some("Savings") => return AccountType::Savings,
        Some("CreditCard" | "ChargeCard" | "PrePaidCard") => return AccountType::Card,
        Some("Loan" | "Mortgage") => return AccountType::Loan,
        Some(_) => return AccountType::Other,
        None => {}
    }
    match code.map(|code| code.trim().to_ascii_uppercase()).as_deref() {
        Some("MGLD") => AccountType::Loan,
        other => iso_account_type(other),
    }
}

fn account_of(
    bank_id: &str,
    account: ObAccount,
    context: &str,
) -> Result<Option<BankAccount>, AdapterError> {
    let currency = account_currency(account.currency.as_deref())
        .map_err(|message| decode(format!("{context}.Currency"), message))?;
    let mut iban = None;
    let mut scan = None;
    let mut pan = None;
    let mut first = None;
    let mut holder_name = None;
    for identification in account.account {
        let scheme = non_empty(identification.scheme_name).unwrap_or_default();
        let Some(id) = non_empty(identification.identification) else {
            continue;
        };
        holder_name = holder_name.or_else(|| non_empty(identification.name));
        let scheme = scheme_suffix(&scheme, SCHEME_PREFIXES).to_owned();
        match scheme.as_str() {
            "IBAN" => match normalise_iban(&id) {
                Some(valid) => iban = iban.or(Some(valid)),
                None => tracing::warn!(context, "IBAN fails its check digits; dropped"),
            },
            "SortCodeAccountNumber" => {
                let digits: String = id.chars().filter(|c| !c.is_whitespace()).collect();
                if digits.len() == 14 && digits.bytes().all(|b| b.is_ascii_digit()) {
                    scan = scan.or(Some(digits));
                } else {
                    tracing::warn!(context, "sort code and account number are not 14 digits");
                }
            }
            "PAN" => pan = pan.or_else(|| Some(mask_pan(&id))),
            _ => {}
        }
        first = first.or(Some(format!("{scheme}:{id}")));
    }
    let account_id = non_empty(account.account_id);
    let identifier = match (&iban, &scan, &pan, &first, &account_id) {
        (Some(iban), ..) => iban.clone(),
        (None, Some(scan), ..) => format!("SortCodeAccountNumber:{scan}"),
        (None, None, Some(pan), ..) => format!("PAN:{pan}"),
        (None, None, None, Some(first), _) => first.clone(),
        (None, None, None, None, Some(id)) => id.clone(),
        (None, None, None, None, None) => {
            tracing::warn!(context, "account has no identifier; skipped");
            return Ok(None);
        }
    };
    let status = match account.status.as_deref().map(str::trim) {
        None | Some("Enabled") => AccountStatus::Enabled,
        Some("Deleted") => AccountStatus::Deleted,
        Some(_) => AccountStatus::Blocked,
    };
    Ok(Some(BankAccount {
        bank_ref: account_id.unwrap_or_default(),
        account: Account {
            id: adapters::account_id(bank_id, &identifier),
            bank_id: bank_id.to_owned(),
            display_name: non_empty(account.nickname).or_else(|| non_empty(account.description)),
            kind: match account_type(
                account.account_sub_type.as_deref(),
                account.account_type_code.as_deref(),
            ) {
                AccountType::Other if pan.is_some() => AccountType::Card,
                kind => kind,
            },
            currency,
            iban_masked: iban.as_deref().map(crate::model::mask_iban),
            iban,
            bban: None,
            sort_code: scan.as_ref().map(|digits| digits[..6].to_owned()),
            account_number: scan.as_ref().map(|digits| digits[6..].to_owned()),
            pan_masked: pan,
            holder_name,
            status,
        },
    }))
}

/// A card number with all but the first six and last four digits masked (already masked
/// numbers stay as they are).
pub fn mask_pan(pan: &str) -> String {
    let compact: Vec<char> = pan.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 12 || !compact.iter().all(char::is_ascii_digit) {
        return compact.into_iter().collect();
    }
    let n = compact.len();
    compact
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= n - 4 { *c } else { '*' })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Balances

/// `Data` of `GET /accounts/{AccountId}/balances` and `GET /balances`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BalancesData {
    /// An array, or one object; kept raw because untagged enums cannot hold raw amounts.
    pub balance: Option<Box<RawValue>>,
}

/// One balance.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObBalance {
    pub account_id: Option<String>,
    pub amount: Option<Amount>,
    pub credit_debit_indicator: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub date_time: Option<String>,
    #[serde(default)]
    pub credit_line: Vec<CreditLine>,
}

/// A credit line of a balance.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditLine {
    pub included: Option<bool>,
    pub amount: Option<Amount>,
    #[serde(rename = "Type")]
    pub kind: Option<String>,
}

/// A v3 balance type name or v4 ISO code as a canonical type.
pub fn balance_type(code: &str) -> BalanceType {
    match code.trim() {
        "ClosingBooked" | "CLBD" => BalanceType::ClosingBooked,
        "OpeningBooked" | "OPBD" => BalanceType::OpeningBooked,
        "InterimBooked" | "ITBD" => BalanceType::InterimBooked,
        "InterimAvailable" | "ITAV" => BalanceType::InterimAvailable,
        "Expected" | "XPCD" => BalanceType::Expected,
        "ForwardAvailable" | "FWAV" => BalanceType::ForwardAvailable,
        other => BalanceType::Other(other.to_owned()),
    }
}

/// The canonical balances of `account_id`; with `bank_ref`, balances of other accounts (a bulk
/// answer) are left out.
pub fn balances(
    account_id: &str,
    bank_ref: Option<&str>,
    data: BalancesData,
) -> Result<Vec<Balance>, AdapterError> {
    let list: Vec<ObBalance> = match data.balance.as_deref().map(|raw| raw.get().trim_start()) {
        None | Some("null") => Ok(Vec::new()),
        Some(text) if text.starts_with('[') => serde_json::from_str::<Vec<ObBalance>>(text),
        Some(text) => serde_json::from_str::<ObBalance>(text).map(|one| vec![one]),
    }
    .map_err(|error| decode("Data.Balance", error))?;
    let mut converted = Vec::with_capacity(list.len());
    for (index, balance) in list.into_iter().enumerate() {
        let context = format!("Data.Balance[{index}]");
        if let (Some(wanted), Some(other)) = (bank_ref, balance.account_id.as_deref())
            && wanted != other.trim()
        {
            continue;
        }
        let (Some(amount), Some(kind)) = (balance.amount, non_empty(balance.kind)) else {
            tracing::warn!(%context, "balance without an amount or a type; skipped");
            continue;
        };
        let (amount, currency) =
            money(&amount).map_err(|message| decode(format!("{context}.Amount"), message))?;
        let debit = is_debit(balance.credit_debit_indicator.as_deref())
            .map_err(|message| decode(&context, message))?;
        let as_of = date_time(balance.date_time.as_deref())
            .map_err(|message| decode(format!("{context}.DateTime"), message))?;
        let lines: Vec<&CreditLine> = balance.credit_line.iter().collect();
        let included =
            (!lines.is_empty()).then(|| lines.iter().any(|line| line.included == Some(true)));
        converted.push(Balance {
            account_id: account_id.to_owned(),
            kind: balance_type(&kind),
            amount: signed(amount, debit),
            currency,
            credit_limit_included: included,
            as_of,
        });
        for (n, line) in balance.credit_line.into_iter().enumerate() {
            let is_limit = line
                .kind
                .as_deref()
                .is_none_or(|kind| !kind.trim().eq_ignore_ascii_case("Available"));
            let Some(amount) = line.amount.filter(|_| is_limit) else {
                continue;
            };
            let (amount, currency) = money(&amount)
                .map_err(|message| decode(format!("{context}.CreditLine[{n}].Amount"), message))?;
            converted.push(Balance {
                account_id: account_id.to_owned(),
                kind: BalanceType::CreditLimit,
                amount: amount.abs(),
                currency,
                credit_limit_included: line.included,
                as_of,
            });
        }
    }
    Ok(converted)
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// `Data` of `GET /accounts/{AccountId}/transactions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionsData {
    #[serde(default)]
    pub transaction: Vec<ObTransaction>,
}

/// One transaction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObTransaction {
    pub account_id: Option<String>,
    pub transaction_id: Option<String>,
    pub transaction_reference: Option<String>,
    pub amount: Option<Amount>,
    pub credit_debit_indicator: Option<String>,
    pub status: Option<String>,
    pub booking_date_time: Option<String>,
    pub value_date_time: Option<String>,
    pub transaction_information: Option<String>,
    pub bank_transaction_code: Option<CodeAndSubCode>,
    pub proprietary_bank_transaction_code: Option<ProprietaryCode>,
    pub merchant_details: Option<MerchantDetails>,
    pub creditor_account: Option<Named>,
    pub debtor_account: Option<Named>,
    pub ultimate_creditor: Option<Named>,
    pub ultimate_debtor: Option<Named>,
    pub creditor_agent: Option<Named>,
    pub debtor_agent: Option<Named>,
}

/// `BankTransactionCode`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeAndSubCode {
    pub code: Option<String>,
    pub sub_code: Option<String>,
}

/// `ProprietaryBankTransactionCode`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProprietaryCode {
    pub code: Option<String>,
}

/// `MerchantDetails`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MerchantDetails {
    pub merchant_name: Option<String>,
    /// Text in the standard; some banks send a number.
    pub merchant_category_code: Option<Box<RawValue>>,
}

/// Anything with a `Name`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Named {
    pub name: Option<String>,
    pub scheme_name: Option<String>,
    pub identification: Option<String>,
    pub postal_address: Option<PostalAddress>,
}

/// `PostalAddress` (only its country is read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PostalAddress {
    pub country: Option<String>,
}

/// The country of a counterparty: the ultimate party's address, else the account's IBAN,
/// else its bank's (agent's) address.
fn party_country(
    ultimate: Option<&Named>,
    account: Option<&Named>,
    agent: Option<&Named>,
) -> Option<String> {
    use crate::adapters::common::{country, iban_country};
    let address =
        |named: Option<&Named>| country(named?.postal_address.as_ref()?.country.as_deref());
    address(ultimate)
        .or_else(|| {
            let account = account?;
            let scheme = account.scheme_name.as_deref()?;
            (scheme_suffix(scheme, SCHEME_PREFIXES) == "IBAN")
                .then(|| iban_country(account.identification.as_deref()))
                .flatten()
        })
        .or_else(|| address(agent))
}

fn name_of(named: Option<Named>) -> Option<String> {
    named.and_then(|named| non_empty(named.name))
}

/// The canonical transactions of a list (entries that are not movements skipped); with
/// `bank_ref`, entries of other accounts are left out.
pub fn transactions(
    account_id: &str,
    bank_ref: Option<&str>,
    list: Vec<ObTransaction>,
) -> Result<Vec<Transaction>, AdapterError> {
    let mut ids = TransactionIds::default();
    let mut converted = Vec::with_capacity(list.len());
    for (index, entry) in list.into_iter().enumerate() {
        let context = format!("Data.Transaction[{index}]");
        if let (Some(wanted), Some(other)) = (bank_ref, entry.account_id.as_deref())
            && wanted != other.trim()
        {
            continue;
        }
        if let Some(transaction) = transaction(account_id, entry, &mut ids, &context)? {
            converted.push(transaction);
        }
    }
    Ok(converted)
}

fn transaction(
    account_id: &str,
    entry: ObTransaction,
    ids: &mut TransactionIds,
    context: &str,
) -> Result<Option<Transaction>, AdapterError> {
    let status = match entry.status.as_deref().map(str::trim) {
        Some("Booked" | "BOOK") => TransactionStatus::Booked,
        Some("Pending" | "PDNG" | "FUTR") => TransactionStatus::Pending,
        Some(code) => {
            tracing::warn!(
                context,
                code,
                "transaction status is not a movement; skipped"
            );
            return Ok(None);
        }
        None => return Err(decode(context, "Status is missing")),
    };
    let amount = entry
        .amount
        .as_ref()
        .ok_or_else(|| decode(context, "Amount is missing"))?;
    let (amount, currency) =
        money(amount).map_err(|message| decode(format!("{context}.Amount"), message))?;
    let debit = is_debit(entry.credit_debit_indicator.as_deref())
        .map_err(|message| decode(context, message))?;
    let amount = signed(amount, debit);
    let booked_on = date(entry.booking_date_time.as_deref())
        .map_err(|message| decode(format!("{context}.BookingDateTime"), message))?;
    let valued_on = date(entry.value_date_time.as_deref())
        .map_err(|message| decode(format!("{context}.ValueDateTime"), message))?;
    let (booking_date, value_date): (Option<NaiveDate>, Option<NaiveDate>) = match status {
        TransactionStatus::Booked => (booked_on, valued_on),
        TransactionStatus::Pending => (None, valued_on.or(booked_on)),
    };
    let merchant = entry.merchant_details;
    let merchant_name = merchant
        .as_ref()
        .and_then(|merchant| non_empty(merchant.merchant_name.clone()));
    let merchant_category_code = merchant
        .and_then(|merchant| merchant.merchant_category_code)
        .map(|raw| {
            crate::adapters::common::json_scalar_text(&raw)
                .map(|code| code.trim().to_owned())
                .map(|code| {
                    let digits = code.bytes().all(|b| b.is_ascii_digit());
                    if digits && !code.is_empty() && code.len() < 4 {
                        format!("{code:0>4}")
                    } else {
                        code
                    }
                })
        })
        .transpose()
        .map_err(|message| decode(format!("{context}.MerchantDetails"), message))?
        .filter(|code| !code.is_empty());
    let counterparty_country = if debit {
        party_country(
            entry.ultimate_creditor.as_ref(),
            entry.creditor_account.as_ref(),
            entry.creditor_agent.as_ref(),
        )
    } else {
        party_country(
            entry.ultimate_debtor.as_ref(),
            entry.debtor_account.as_ref(),
            entry.debtor_agent.as_ref(),
        )
    };
    let creditor = name_of(entry.creditor_account).or_else(|| name_of(entry.ultimate_creditor));
    let debtor = name_of(entry.debtor_account).or_else(|| name_of(entry.ultimate_debtor));
    let counterparty_name = if debit {
        merchant_name.or(creditor).or(debtor)
    } else {
        debtor.or(merchant_name).or(creditor)
    };
    let description = non_empty(entry.transaction_information)
        .or_else(|| non_empty(entry.transaction_reference.clone()));
    let bank_code = entry
        .bank_transaction_code
        .and_then(|code| {
            let parts: Vec<String> = [code.code, code.sub_code]
                .into_iter()
                .filter_map(non_empty)
                .collect();
            (!parts.is_empty()).then(|| parts.join("-"))
        })
        .or_else(|| {
            entry
                .proprietary_bank_transaction_code
                .and_then(|code| non_empty(code.code))
        });
    let id = ids.id_or_derived(
        non_empty(entry.transaction_id),
        account_id,
        booked_on.or(valued_on),
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
        counterparty_country,
        merchant_category_code,
        bank_code,
    }))
}

// ---------------------------------------------------------------------------------------------
// Errors in 2xx answers

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorProbe {
    code: Option<serde_json::Value>,
    errors: Option<Vec<ErrorEntry>>,
    data: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorEntry {
    error_code: Option<String>,
}

/// The error codes of an OBIE `ErrorResponse` (`Code` and `Errors[]`, without `Data`);
/// `None` for other bodies.
pub fn error_in_body(body: &[u8]) -> Option<String> {
    let probe: ErrorProbe = serde_json::from_slice(body).ok()?;
    if probe.data.is_some() || (probe.errors.is_none() && probe.code.is_none()) {
        return None;
    }
    let codes: Vec<String> = probe
        .errors
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.error_code)
        .collect();
    Some(if codes.is_empty() {
        "ErrorResponse".into()
    } else {
        codes.join(", ")
    })
}
