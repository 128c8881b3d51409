//! Berlin Group payment initiation on the wire: the `paymentInitiation_json` body bankgate
//! sends (and a bank reads), the creation answer, the status answer and a payment as `GET`
//! returns it. Amounts are strings both ways, read exactly.

use serde::{Deserialize, Serialize};

use crate::adapters::berlin_group;
use crate::adapters::berlin_group::wire::TppMessage;
use crate::adapters::common::{InstructedAmount, decimal, normalise_iban};
use crate::adapters::{AdapterError, BankPayment, PaymentOrder};
use crate::payments::BankStatus;

/// The SEPA credit transfer product.
pub const SCT: &str = "sepa-credit-transfers";
/// The SEPA instant credit transfer product.
pub const INSTANT_SCT: &str = "instant-sepa-credit-transfers";

/// An account reference (IBAN only: bankgate pays to IBANs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReference {
    pub iban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The body of `POST /v1/payments/{product}` (both products share it), as a bank reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initiation {
    pub end_to_end_identification: Option<String>,
    pub debtor_account: Option<AccountReference>,
    pub instructed_amount: InstructedAmount,
    pub creditor_account: AccountReference,
    pub creditor_name: String,
    pub remittance_information_unstructured: Option<String>,
}

/// The body bankgate sends for an order. No `debtorAccount`: the user picks the account at
/// the bank.
pub fn initiation(order: &PaymentOrder) -> serde_json::Value {
    let mut body = serde_json::json!({
        "endToEndIdentification": order.payment_id,
        "instructedAmount": {
            "currency": order.currency,
            "amount": order.amount.to_string(),
        },
        "creditorAccount": { "iban": order.creditor_iban },
        "creditorName": order.creditor_name,
    });
    if let (Some(remittance), Some(map)) = (&order.remittance, body.as_object_mut()) {
        map.insert(
            "remittanceInformationUnstructured".to_owned(),
            remittance.clone().into(),
        );
    }
    body
}

impl Initiation {
    /// The order a bank reads from the body (the payment id is its end-to-end id), and the
    /// debtor IBAN if the body names one.
    pub fn order(&self, instant: bool) -> Result<(PaymentOrder, Option<String>), AdapterError> {
        let bad = |what: &str| AdapterError::Decode(format!("payment initiation: {what}"));
        let amount = decimal(&self.instructed_amount.amount).map_err(|error| bad(&error))?;
        let creditor_iban = self
            .creditor_account
            .iban
            .as_deref()
            .and_then(normalise_iban)
            .ok_or_else(|| bad("creditorAccount has no IBAN"))?;
        let order = PaymentOrder {
            payment_id: self.end_to_end_identification.clone().unwrap_or_default(),
            amount,
            currency: self.instructed_amount.currency.clone(),
            creditor_iban,
            creditor_name: self.creditor_name.clone(),
            remittance: self.remittance_information_unstructured.clone(),
            instant,
        };
        let debtor = self
            .debtor_account
            .as_ref()
            .and_then(|account| account.iban.as_deref())
            .and_then(normalise_iban);
        Ok((order, debtor))
    }
}

/// The answer to `POST /v1/payments/{product}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCreated {
    pub transaction_status: Option<String>,
    pub payment_id: Option<String>,
    #[serde(rename = "_links", default)]
    pub links: serde_json::Map<String, serde_json::Value>,
}

/// A creation answer bankgate can go on with: a payment id and a known status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub payment_id: String,
    pub status: BankStatus,
    /// The names of the links the bank offered (`scaOAuth`, `scaRedirect`, …): bankgate follows
    /// none of them, it sends the user through the bank's OAuth authorization endpoint.
    pub links: Vec<String>,
}

impl PaymentCreated {
    /// Checks the answer names a payment and a known status.
    pub fn validate(self) -> Result<Created, AdapterError> {
        let payment_id = self
            .payment_id
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| AdapterError::Decode("payment created without a paymentId".into()))?;
        let status = status(self.transaction_status.as_deref(), None)?;
        Ok(Created {
            payment_id,
            status,
            links: self.links.keys().cloned().collect(),
        })
    }
}

/// The answer to `GET …/status` (and the fields of `GET /v1/payments/{product}/{id}` bankgate
/// reads). `psuMessage`, the bank's own words, is never read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub transaction_status: Option<String>,
    pub debtor_account: Option<AccountReference>,
    /// Where a bank gives the reason of a rejection (NextGenPSD2 status answers have no field
    /// of their own for it): an entry whose `code` is an ISO 20022 status reason (`AM04`).
    #[serde(default)]
    pub tpp_messages: Vec<StatusMessage>,
}

/// One `tppMessages` entry of a status answer: only its code is read, never its text.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusMessage {
    pub code: Option<String>,
}

/// Whether `code` has the form of an ISO 20022 external status reason code (four upper-case
/// letters or digits: `AM04`, `AC04`, `DUPL`), unlike the NextGenPSD2 message codes
/// (`FORMAT_ERROR`, `WARNING`).
pub fn is_iso_reason(code: &str) -> bool {
    code.len() == 4
        && code
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
}

impl StatusResponse {
    /// The ISO 20022 reason code the answer carries in `tppMessages`, if any.
    pub fn reason_code(&self) -> Option<&str> {
        self.tpp_messages
            .iter()
            .filter_map(|message| message.code.as_deref())
            .map(str::trim)
            .find(|code| is_iso_reason(code))
    }

    /// The payment it describes; a rejection's reason from [`StatusResponse::reason_code`].
    pub fn into_payment(self, bank_payment_id: &str) -> Result<BankPayment, AdapterError> {
        let reason = self.reason_code().map(str::to_owned);
        Ok(BankPayment {
            id: bank_payment_id.to_owned(),
            status: status(self.transaction_status.as_deref(), reason.as_deref())?,
            debtor_iban: self
                .debtor_account
                .and_then(|account| account.iban)
                .as_deref()
                .and_then(normalise_iban),
        })
    }
}

/// A known ISO 20022 status, or a decode error naming the code.
pub fn status(code: Option<&str>, reason: Option<&str>) -> Result<BankStatus, AdapterError> {
    let code = code.ok_or_else(|| AdapterError::Decode("payment without a status".into()))?;
    BankStatus::from_iso20022(code, reason)
        .ok_or_else(|| AdapterError::Decode(format!("unknown payment status {code:?}")))
}

/// The error codes of a payment error body: an object with `tppMessages` (what
/// [`crate::adapters::berlin_group::wire::error_in_body`] reads), or a bare array of them (as the
/// specification's own 409 example is written). Never the messages' text.
pub fn error_codes(body: &[u8]) -> Option<Vec<String>> {
    if let Some(codes) = berlin_group::wire::error_in_body(body) {
        return Some(codes);
    }
    let messages: Vec<TppMessage> = serde_json::from_slice(body).ok()?;
    let codes = berlin_group::wire::error_codes_of(messages);
    (!codes.is_empty()).then_some(codes)
}
