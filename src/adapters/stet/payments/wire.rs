//! STET 1.4 payment requests on the wire: the `PaymentRequestResource` bankgate sends (and a
//! bank reads), the creation answer with its `consentApproval` link, and the resource as
//! `GET /v1/payment-requests/{id}` returns it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::adapters::common::{InstructedAmount, decimal, normalise_iban};
use crate::adapters::stet::wire as stet_wire;
use crate::adapters::{AdapterError, BankPayment, PaymentOrder};
use crate::payments::BankStatus;

pub use stet_wire::error_in_body;

/// STET's local instrument of an instant credit transfer.
pub const INSTANT: &str = "INST";

/// The body bankgate sends for an order, created at `now`. No debtor account: the user picks
/// it at the bank.
pub fn initiation(order: &PaymentOrder, now: DateTime<Utc>) -> serde_json::Value {
    let mut payment_type = serde_json::json!({ "serviceLevel": "SEPA" });
    if order.instant {
        payment_type["localInstrument"] = INSTANT.into();
    }
    let mut transaction = serde_json::json!({
        "paymentId": {
            "instructionId": order.payment_id,
            "endToEndId": order.payment_id,
        },
        "instructedAmount": {
            "currency": order.currency,
            "amount": order.amount.to_string(),
        },
    });
    if let Some(remittance) = &order.remittance {
        transaction["remittanceInformation"] = serde_json::json!([remittance]);
    }
    serde_json::json!({
        "paymentInformationId": order.payment_id,
        "creationDateTime": now.to_rfc3339_opts(SecondsFormat::Millis, false),
        "numberOfTransactions": 1,
        "initiatingParty": { "name": "bankgate" },
        "paymentTypeInformation": payment_type,
        "creditor": { "name": order.creditor_name },
        "creditorAccount": { "iban": order.creditor_iban },
        "chargeBearer": "SLEV",
        "creditTransferTransaction": [transaction],
        "supplementaryData": { "acceptedAuthenticationApproach": ["REDIRECT"] },
    })
}

#[derive(Debug, Deserialize)]
pub struct Iban {
    pub iban: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Party {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentTypeInformation {
    pub local_instrument: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentId {
    pub resource_id: Option<String>,
    pub end_to_end_id: Option<String>,
}

/// `remittanceInformation`: an array of lines (1.4) or an object with `unstructured` lines.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Remittance {
    Lines(Vec<String>),
    Structured { unstructured: Option<Vec<String>> },
}

impl Remittance {
    fn text(&self) -> Option<String> {
        let lines = match self {
            Remittance::Lines(lines) => lines.as_slice(),
            Remittance::Structured { unstructured } => unstructured.as_deref().unwrap_or(&[]),
        };
        (!lines.is_empty()).then(|| lines.join(" "))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub payment_id: Option<PaymentId>,
    pub instructed_amount: InstructedAmount,
    pub remittance_information: Option<Remittance>,
    pub transaction_status: Option<String>,
    pub status_reason_information: Option<String>,
}

/// A payment request resource: what bankgate sends, and what the bank returns (with its
/// `resourceId` and statuses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequest {
    pub resource_id: Option<String>,
    pub payment_information_id: Option<String>,
    pub payment_type_information: Option<PaymentTypeInformation>,
    pub creditor: Option<Party>,
    pub creditor_account: Option<Iban>,
    pub debtor_account: Option<Iban>,
    pub payment_information_status: Option<String>,
    pub status_reason_information: Option<String>,
    pub credit_transfer_transaction: Vec<Transaction>,
}

impl PaymentRequest {
    /// The one transaction (bankgate sends single payments only).
    fn single(&self) -> Result<&Transaction, AdapterError> {
        match self.credit_transfer_transaction.as_slice() {
            [transaction] => Ok(transaction),
            _ => Err(AdapterError::Decode(
                "payment request without exactly one transaction".into(),
            )),
        }
    }

    /// The order a bank reads from the resource (the payment id is the transaction's
    /// end-to-end id), and the debtor IBAN if it names one.
    pub fn order(&self) -> Result<(PaymentOrder, Option<String>), AdapterError> {
        let bad = |what: &str| AdapterError::Decode(format!("payment request: {what}"));
        let transaction = self.single()?;
        let amount = decimal(&transaction.instructed_amount.amount).map_err(|error| bad(&error))?;
        let creditor_iban = self
            .creditor_account
            .as_ref()
            .and_then(|account| account.iban.as_deref())
            .and_then(normalise_iban)
            .ok_or_else(|| bad("creditorAccount has no valid IBAN"))?;
        let order = PaymentOrder {
            payment_id: transaction
                .payment_id
                .as_ref()
                .and_then(|id| id.end_to_end_id.clone())
                .or_else(|| self.payment_information_id.clone())
                .unwrap_or_default(),
            amount,
            currency: transaction.instructed_amount.currency.clone(),
            creditor_iban,
            creditor_name: self
                .creditor
                .as_ref()
                .and_then(|party| party.name.clone())
                .unwrap_or_default(),
            remittance: transaction
                .remittance_information
                .as_ref()
                .and_then(Remittance::text),
            instant: self
                .payment_type_information
                .as_ref()
                .and_then(|info| info.local_instrument.as_deref())
                == Some(INSTANT),
        };
        let debtor = self
            .debtor_account
            .as_ref()
            .and_then(|account| account.iban.as_deref())
            .and_then(normalise_iban);
        Ok((order, debtor))
    }
}

/// `GET /v1/payment-requests/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequestResponse {
    pub payment_request: PaymentRequest,
}

impl PaymentRequestResponse {
    /// The payment: the transaction's status where the bank gives one (it is the payment's for
    /// a single transfer), the payment information status otherwise, with the reason code.
    pub fn into_payment(self) -> Result<BankPayment, AdapterError> {
        let request = self.payment_request;
        let id = request
            .resource_id
            .clone()
            .ok_or_else(|| AdapterError::Decode("payment request without a resourceId".into()))?;
        let transaction = request.single()?;
        let (code, reason) = match &transaction.transaction_status {
            Some(code) => (
                Some(code.as_str()),
                transaction
                    .status_reason_information
                    .as_deref()
                    .or(request.status_reason_information.as_deref()),
            ),
            None => (
                request.payment_information_status.as_deref(),
                request.status_reason_information.as_deref(),
            ),
        };
        let code = code.ok_or_else(|| AdapterError::Decode("payment without a status".into()))?;
        let status = BankStatus::from_iso20022(code, reason)
            .ok_or_else(|| AdapterError::Decode(format!("unknown payment status {code:?}")))?;
        Ok(BankPayment {
            id,
            status,
            debtor_iban: request
                .debtor_account
                .as_ref()
                .and_then(|account| account.iban.as_deref())
                .and_then(normalise_iban),
        })
    }
}

/// `appliedAuthenticationApproach`: a string (STET 1.4.2), or the same nested one level deeper
/// (as one published example has it).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Approach {
    Plain(String),
    #[serde(rename_all = "camelCase")]
    Nested {
        applied_authentication_approach: String,
    },
}

impl Approach {
    /// `REDIRECT`, `DECOUPLED`, …
    pub fn name(&self) -> &str {
        match self {
            Approach::Plain(name) => name,
            Approach::Nested {
                applied_authentication_approach,
            } => applied_authentication_approach,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedLinks {
    pub consent_approval: Option<Link>,
}

/// The answer to `POST /v1/payment-requests` (and to its `PUT`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub applied_authentication_approach: Option<Approach>,
    #[serde(rename = "_links")]
    pub links: Option<CreatedLinks>,
}

impl Created {
    /// The payment request's resource id, from the `consentApproval` link's
    /// `paymentRequestResourceId` parameter.
    pub fn resource_id(&self) -> Option<String> {
        let href = &self.links.as_ref()?.consent_approval.as_ref()?.href;
        let url = url::Url::parse(href).ok()?;
        url.query_pairs()
            .find(|(name, _)| name == super::RESOURCE_PARAM)
            .map(|(_, value)| value.into_owned())
            .filter(|id| !id.is_empty())
    }
}

/// `POST /v1/payment-requests/{id}/confirmation`, as a bank reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    pub psu_authentication_factor: Option<String>,
}
