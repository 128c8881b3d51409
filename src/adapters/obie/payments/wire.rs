//! OBIE domestic payments on the wire, 3.1 and 4.0: the consent and payment requests, the
//! consent and payment resources, funds confirmation. Statuses are read in both versions'
//! words (3.1 names such as `AcceptedSettlementInProcess`, 4.0 ISO 20022 codes such as
//! `ACSP`); amounts from their text, exactly.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::adapters::common::{decimal, normalise_iban};
use crate::adapters::{AdapterError, BankPayment, PaymentOrder};
use crate::payments::BankStatus;

/// The scheme name of an IBAN account identification.
pub const IBAN_SCHEME: &str = "UK.OBIE.IBAN";

/// `Data` and what else the envelope holds (`Risk` is not read: bankgate sends its own).
#[derive(Debug, Deserialize)]
pub struct Envelope<D> {
    #[serde(rename = "Data")]
    pub data: D,
}

#[derive(Debug, Deserialize)]
pub struct Amount {
    #[serde(rename = "Amount")]
    pub amount: Box<RawValue>,
    #[serde(rename = "Currency")]
    pub currency: String,
}

/// An account as OBIE identifies it: a scheme and an identification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Account {
    #[serde(rename = "SchemeName")]
    pub scheme_name: String,
    #[serde(rename = "Identification")]
    pub identification: String,
    #[serde(rename = "Name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Account {
    /// The IBAN, for an account identified by one.
    pub fn iban(&self) -> Option<String> {
        let scheme = self.scheme_name.rsplit('.').next().unwrap_or_default();
        scheme
            .eq_ignore_ascii_case("IBAN")
            .then(|| normalise_iban(&self.identification))
            .flatten()
    }
}

/// `Unstructured` remittance: a string in 3.1, an array of lines in 4.0.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Lines {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct Remittance {
    #[serde(rename = "Reference")]
    pub reference: Option<String>,
    #[serde(rename = "Unstructured")]
    pub unstructured: Option<Lines>,
}

impl Remittance {
    /// The reference and the unstructured lines, in one line of text.
    pub fn text(&self) -> Option<String> {
        let mut parts: Vec<&str> = self.reference.iter().map(String::as_str).collect();
        match &self.unstructured {
            Some(Lines::One(line)) => parts.push(line),
            Some(Lines::Many(lines)) => parts.extend(lines.iter().map(String::as_str)),
            None => {}
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// `Data.Initiation` of a consent or payment. Fields bankgate does not read (regulatory
/// reporting, addresses, agents) are ignored, also when a published example repeats one.
#[derive(Debug, Deserialize)]
pub struct Initiation {
    #[serde(rename = "InstructionIdentification")]
    pub instruction_identification: Option<String>,
    #[serde(rename = "EndToEndIdentification")]
    pub end_to_end_identification: Option<String>,
    #[serde(rename = "LocalInstrument")]
    pub local_instrument: Option<String>,
    #[serde(rename = "InstructedAmount")]
    pub instructed_amount: Amount,
    #[serde(rename = "DebtorAccount")]
    pub debtor_account: Option<Account>,
    #[serde(rename = "CreditorAccount")]
    pub creditor_account: Account,
    #[serde(rename = "RemittanceInformation")]
    pub remittance_information: Option<Remittance>,
    /// Where one published 4.0 example puts `Debtor` (by schema it belongs in `Data`).
    #[serde(rename = "Debtor")]
    pub debtor: Option<Account>,
}

/// What an initiation asks for, canonically: the account and amount exactly, the creditor's
/// account as OBIE identifies it (an IBAN normalised when it is one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitiationView {
    pub end_to_end_id: Option<String>,
    pub amount: String,
    pub currency: String,
    pub creditor_account: Account,
    pub creditor_iban: Option<String>,
    pub remittance: Option<String>,
    pub debtor_account: Option<Account>,
    pub instant: bool,
}

impl Initiation {
    /// The canonical view.
    pub fn view(&self) -> Result<InitiationView, AdapterError> {
        let amount = decimal(&self.instructed_amount.amount)
            .map_err(|error| AdapterError::Decode(format!("instructed amount: {error}")))?;
        Ok(InitiationView {
            end_to_end_id: self.end_to_end_identification.clone(),
            amount: amount.to_string(),
            currency: self.instructed_amount.currency.clone(),
            creditor_account: self.creditor_account.clone(),
            creditor_iban: self.creditor_account.iban(),
            remittance: self
                .remittance_information
                .as_ref()
                .and_then(Remittance::text),
            debtor_account: self.debtor_account.clone(),
            instant: self
                .local_instrument
                .as_deref()
                .is_some_and(|instrument| instrument.ends_with("FPS")),
        })
    }
}

/// The `Data.Initiation` bankgate sends for an order: the creditor by IBAN, the payment id as
/// instruction and end-to-end id, the remittance as its unstructured line. No debtor account:
/// the user picks it at the bank.
pub fn initiation(order: &PaymentOrder) -> serde_json::Value {
    let mut initiation = serde_json::json!({
        "InstructionIdentification": order.payment_id,
        "EndToEndIdentification": order.payment_id,
        "InstructedAmount": {
            "Amount": order.amount.to_string(),
            "Currency": order.currency,
        },
        "CreditorAccount": {
            "SchemeName": IBAN_SCHEME,
            "Identification": order.creditor_iban,
            "Name": order.creditor_name,
        },
    });
    if let Some(remittance) = &order.remittance {
        initiation["RemittanceInformation"] = serde_json::json!({ "Unstructured": remittance });
    }
    initiation
}

/// A 3.1 or 4.0 consent status, canonically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    AwaitingAuthorisation,
    Authorised,
    /// The payment was made under it: reconciliation's proof that a submission arrived.
    Consumed,
    Rejected,
}

impl ConsentStatus {
    /// Reads a status in either version's words.
    pub fn parse(raw: &str) -> Option<ConsentStatus> {
        Some(match raw {
            "AwaitingAuthorisation" | "AWAU" => ConsentStatus::AwaitingAuthorisation,
            "Authorised" | "AUTH" => ConsentStatus::Authorised,
            "Consumed" | "COND" => ConsentStatus::Consumed,
            "Rejected" | "RJCT" => ConsentStatus::Rejected,
            _ => return None,
        })
    }
}

/// `Data` of a domestic payment consent.
#[derive(Debug, Deserialize)]
pub struct ConsentData {
    #[serde(rename = "ConsentId")]
    pub consent_id: Option<String>,
    #[serde(rename = "Status")]
    pub status: Option<String>,
    #[serde(rename = "Initiation")]
    pub initiation: Initiation,
}

impl ConsentData {
    /// The consent's id and status, which a bank must give.
    pub fn state(&self) -> Result<(String, ConsentStatus), AdapterError> {
        let id = self
            .consent_id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AdapterError::Decode("payment consent without a ConsentId".into()))?;
        let raw = self.status.as_deref().unwrap_or_default();
        let status = ConsentStatus::parse(raw)
            .ok_or_else(|| AdapterError::Decode(format!("unknown consent status {raw:?}")))?;
        Ok((id, status))
    }
}

/// The ISO 20022 code of a 3.1 payment status name (4.0 codes pass as they are).
pub fn iso_code(raw: &str) -> &str {
    match raw {
        "Pending" => "PDNG",
        "Rejected" => "RJCT",
        "AcceptedSettlementInProcess" => "ACSP",
        "AcceptedSettlementCompleted" => "ACSC",
        "AcceptedWithoutPosting" => "ACWP",
        "AcceptedCreditSettlementCompleted" => "ACCC",
        other => other,
    }
}

/// A 4.0 status reason.
#[derive(Debug, Deserialize)]
pub struct StatusReason {
    #[serde(rename = "StatusReasonCode")]
    pub code: Option<String>,
}

/// `Data` of a domestic payment.
#[derive(Debug, Deserialize)]
pub struct PaymentData {
    #[serde(rename = "DomesticPaymentId")]
    pub domestic_payment_id: Option<String>,
    #[serde(rename = "Status")]
    pub status: Option<String>,
    #[serde(rename = "StatusReason")]
    pub status_reason: Option<Vec<StatusReason>>,
    #[serde(rename = "Initiation")]
    pub initiation: Initiation,
    #[serde(rename = "Debtor")]
    pub debtor: Option<Account>,
}

impl PaymentData {
    /// The payment: the status in ISO 20022 terms with the bank's raw word kept, the first
    /// reason code, the debtor's IBAN where the bank names it by one (in `Data`, or where one
    /// published example puts it, in `Initiation`).
    pub fn into_payment(self) -> Result<BankPayment, AdapterError> {
        let id = self
            .domestic_payment_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AdapterError::Decode("payment without a DomesticPaymentId".into()))?;
        let raw = self
            .status
            .ok_or_else(|| AdapterError::Decode("payment without a status".into()))?;
        let reason = self
            .status_reason
            .iter()
            .flatten()
            .find_map(|reason| reason.code.clone());
        let mut status = BankStatus::from_iso20022(iso_code(&raw), reason.as_deref())
            .ok_or_else(|| AdapterError::Decode(format!("unknown payment status {raw:?}")))?;
        status.raw = raw;
        let debtor = self.debtor.or(self.initiation.debtor);
        Ok(BankPayment {
            id,
            status,
            debtor_iban: debtor.as_ref().and_then(Account::iban),
        })
    }
}

/// `Data` of a funds confirmation.
#[derive(Debug, Deserialize)]
pub struct FundsData {
    #[serde(rename = "FundsAvailableResult")]
    pub result: Option<FundsResult>,
}

#[derive(Debug, Deserialize)]
pub struct FundsResult {
    #[serde(rename = "FundsAvailable")]
    pub funds_available: Option<bool>,
}
