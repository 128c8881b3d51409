//! Payment initiation (PSD2 PIS): one payment per consent, sent to the payer's bank exactly once.
//!
//! Pure domain logic, no HTTP types: the Rich Authorization Request a platform pushes
//! ([`PaymentRequest`]) and its validation ([`PaymentRequest::validate`] → [`ValidPayment`]),
//! the canonical status and its ISO 20022 codes ([`status`]), the purpose policy's limits
//! ([`limits`]), the platform's `Idempotency-Key` rules ([`idempotency`]), the payment record
//! ([`Payment`]) and the storage trait the stores implement ([`Payments`]).
//!
//! The flow (README, "Payments"): PAR with a `payment_initiation` detail → validated, limits
//! checked, consent created → the consent screen shows the payment → the user authorises at the
//! bank (for Berlin Group and STET, the bank's payment resource *is* the consent) → the token
//! carries the one payment's `authorization_details` → `POST /v1/payments` with an
//! `Idempotency-Key`: the payment is recorded, then submitted (OBIE) or its status read
//! (Berlin Group, STET) → `GET /v1/payments/{id}` and the status job follow it to a final status.
//!
//! Invariants: amounts are `Decimal` from the platform's string to the bank's and back; a payment
//! is recorded before its bank is called, and a payment whose submission may have reached the
//! bank is reconciled by a status look-up, never submitted again; audit facts carry amount and
//! currency but only a masked payee account.

pub mod idempotency;
pub mod limits;
pub mod payee_match;
pub mod payees;
pub mod status;
pub mod submit;
#[cfg(test)]
mod tests;
pub mod verification;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use iban::IbanLike;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::WireName;
use crate::store_error::StoreError;

pub use idempotency::{IdempotencyKey, KeyRecord, Replay};
pub use limits::{LimitRefusal, PaymentLimits};
pub use status::{BankStatus, PaymentStatus, RejectionReason};

/// The authorization details type of a payment (RFC 9396), beside `account_information`.
pub const PAYMENT_INITIATION: &str = "payment_initiation";

/// The longest remittance text every standard carries (SEPA unstructured remittance).
pub const MAX_REMITTANCE_CHARS: usize = 140;

/// The longest creditor name every standard carries (SEPA).
pub const MAX_CREDITOR_NAME_CHARS: usize = 70;

/// An amount in a currency, as the platform and the banks write it: the amount a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    /// ISO 4217 alphabetic code.
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The payee's account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditorAccount {
    pub iban: String,
}

/// A payee named by her handle on the payer's platform (`{"handle": "@alice"}`) instead of by
/// her account: bankgate resolves it through her payee consent (`broker::payee`), and the
/// payer's platform is shown only her name as her bank has it and her account masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditorHandle {
    pub handle: String,
    /// The payee consent the handle resolved through: set by bankgate at PAR (a platform
    /// that sends it is refused), so that the payment is refused if that consent ends before
    /// the bank is asked to pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// The Rich Authorization Request (RFC 9396) entry of a payment, as a platform pushes it at PAR:
/// `{"type":"payment_initiation","bank":…,"purpose":…,"instructed_amount":{"currency":"EUR",
/// "amount":"12.50"},"creditor_account":{"iban":…},"creditor_name":…,"remittance":…,
/// "instant":true,"user_ref":…}`; or, paying a handle of the platform, `"creditor":{"handle":
/// "@alice"}` instead of `creditor_account` and `creditor_name`, which bankgate fills in from
/// the payee's bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// Always [`PAYMENT_INITIATION`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The payer's bank.
    pub bank: String,
    pub purpose: String,
    pub instructed_amount: Amount,
    /// The payee named by her handle; `None` when the payer typed her account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor: Option<CreditorHandle>,
    #[serde(default)]
    pub creditor_account: CreditorAccount,
    #[serde(default)]
    pub creditor_name: String,
    /// Unstructured remittance information shown to the payee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remittance: Option<String>,
    /// An instant credit transfer (SCT Inst) rather than a standard one.
    #[serde(default)]
    pub instant: bool,
    /// The platform's pseudonymous reference for its user (the payer).
    pub user_ref: String,
    /// For a payee typed by the payer, what her bank answered to verification of payee: set
    /// by bankgate at PAR (a platform that sends it is refused) and shown on the consent
    /// screen before the payer confirms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<verification::Outcome>,
}

impl PaymentRequest {
    /// The request as its platform may read it back (the token's `authorization_details`):
    /// as it was sent, except that a payee named by her handle is shown by her handle, her
    /// name and her account masked — never her IBAN, nor the consent she was resolved through.
    pub fn platform_view(&self) -> serde_json::Value {
        let mut view = serde_json::to_value(self).unwrap_or_default();
        if let Some(creditor) = &self.creditor {
            view["creditor"] = serde_json::json!({ "handle": creditor.handle });
            view["creditor_account"] = serde_json::json!({
                "iban_masked": crate::model::mask_iban(&self.creditor_account.iban),
            });
        }
        view
    }
}

/// Why a payment request is refused before anything is stored. The text is safe to show the
/// platform; each kind has its own problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("authorization details type must be {PAYMENT_INITIATION:?}")]
    WrongType,
    #[error("amount must be greater than zero")]
    AmountNotPositive,
    #[error("unknown currency {0:?}: not an ISO 4217 code")]
    UnknownCurrency(String),
    #[error("{currency} amounts have at most {exponent} decimal places")]
    TooPrecise { currency: String, exponent: u32 },
    #[error("creditor IBAN is not valid (format or checksum)")]
    InvalidIban,
    #[error("creditor name must be 1 to {MAX_CREDITOR_NAME_CHARS} characters")]
    CreditorName,
    #[error("remittance must be at most {MAX_REMITTANCE_CHARS} characters")]
    RemittanceTooLong,
    #[error("user_ref must not be empty")]
    NoUserRef,
    #[error("the payee's account is the payer's own")]
    PayeeIsPayer,
}

impl Invalid {
    /// The stable slug of the problem type (`payment-invalid-iban`, …).
    pub fn slug(&self) -> &'static str {
        match self {
            Invalid::WrongType => "payment-invalid-type",
            Invalid::AmountNotPositive => "payment-amount-not-positive",
            Invalid::UnknownCurrency(_) => "payment-unknown-currency",
            Invalid::TooPrecise { .. } => "payment-amount-too-precise",
            Invalid::InvalidIban => "payment-invalid-iban",
            Invalid::CreditorName => "payment-invalid-creditor-name",
            Invalid::RemittanceTooLong => "payment-remittance-too-long",
            Invalid::NoUserRef => "payment-invalid-user-ref",
            Invalid::PayeeIsPayer => "payment-payee-is-payer",
        }
    }
}

/// A payment request that passed [`PaymentRequest::validate`]: the currency is known, the
/// amount positive and no more precise than the currency allows, the IBAN in its electronic
/// form with a valid checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPayment {
    pub request: PaymentRequest,
    /// The ISO 4217 currency.
    pub currency: iso_currency::Currency,
    /// The creditor IBAN without spaces, upper case.
    pub creditor_iban: String,
}

impl PaymentRequest {
    /// Checks everything that can be checked without knowing the payer's account: the type,
    /// the amount (positive, known currency, at most the currency's ISO 4217 exponent of
    /// decimals), the creditor IBAN (format and checksum), the creditor name, the remittance
    /// and the user reference. The payee ≠ payer check needs the payer's account
    /// ([`ValidPayment::check_payer`]).
    pub fn validate(&self) -> Result<ValidPayment, Invalid> {
        if self.kind != PAYMENT_INITIATION {
            return Err(Invalid::WrongType);
        }
        let currency = currency(&self.instructed_amount.currency)?;
        check_amount(self.instructed_amount.amount, currency)?;
        let creditor_iban = parse_iban(&self.creditor_account.iban)?;
        let name = self.creditor_name.trim();
        if name.is_empty() || name.chars().count() > MAX_CREDITOR_NAME_CHARS {
            return Err(Invalid::CreditorName);
        }
        if self
            .remittance
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_REMITTANCE_CHARS)
        {
            return Err(Invalid::RemittanceTooLong);
        }
        if self.user_ref.trim().is_empty() {
            return Err(Invalid::NoUserRef);
        }
        Ok(ValidPayment {
            request: self.clone(),
            currency,
            creditor_iban,
        })
    }
}

impl ValidPayment {
    /// The amount (exact).
    pub fn amount(&self) -> Decimal {
        self.request.instructed_amount.amount
    }

    /// The ISO 4217 code.
    pub fn currency_code(&self) -> &'static str {
        self.currency.code()
    }

    /// The creditor IBAN as shown to a person and written to the audit log:
    /// [`crate::model::mask_iban`].
    pub fn masked_creditor(&self) -> String {
        crate::model::mask_iban(&self.creditor_iban)
    }

    /// Refuses a payment to the payer's own account, once the payer's account is known (the
    /// bank names it at authorisation, or the request names the debtor).
    pub fn check_payer(&self, payer_iban: &str) -> Result<(), Invalid> {
        match parse_iban(payer_iban) {
            Ok(payer) if payer == self.creditor_iban => Err(Invalid::PayeeIsPayer),
            _ => Ok(()),
        }
    }

    /// The audit facts of this payment: amount and currency in the clear, the payee's account
    /// masked, never its IBAN.
    pub fn facts(&self) -> Vec<String> {
        vec![
            format!("amount:{}", self.amount()),
            format!("currency:{}", self.currency_code()),
            format!("payee_account:{}", self.masked_creditor()),
            format!("instant:{}", self.request.instant),
        ]
    }
}

/// The ISO 4217 currency of an alphabetic code (exactly three upper-case letters).
pub fn currency(code: &str) -> Result<iso_currency::Currency, Invalid> {
    let unknown = || Invalid::UnknownCurrency(code.to_owned());
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(unknown());
    }
    iso_currency::Currency::from_code(code).ok_or_else(unknown)
}

/// The number of decimals a currency's amounts may have (its ISO 4217 exponent; currencies
/// without one, such as gold, cannot be paid in).
pub fn exponent(currency: iso_currency::Currency) -> Result<u32, Invalid> {
    currency
        .exponent()
        .map(u32::from)
        .ok_or_else(|| Invalid::UnknownCurrency(currency.code().to_owned()))
}

/// Checks an amount is positive and no more precise than its currency: `12.50` and `12.5`
/// are fine in EUR, `12.505` is not; trailing zeros beyond the exponent (`12.500`) are refused
/// too, since a bank reading the string may refuse them.
pub fn check_amount(amount: Decimal, currency: iso_currency::Currency) -> Result<(), Invalid> {
    if amount <= Decimal::ZERO {
        return Err(Invalid::AmountNotPositive);
    }
    let exponent = exponent(currency)?;
    if amount.scale() > exponent {
        return Err(Invalid::TooPrecise {
            currency: currency.code().to_owned(),
            exponent,
        });
    }
    Ok(())
}

/// An IBAN in its electronic form (no spaces, upper case) if its format and checksum are valid;
/// lower case and the print form's spaces are accepted.
pub fn parse_iban(text: &str) -> Result<String, Invalid> {
    let upper = text.trim().to_ascii_uppercase();
    let iban = iban::Iban::from_str(&upper).map_err(|_| Invalid::InvalidIban)?;
    Ok(iban.electronic_str().to_owned())
}

/// What bankgate asks a bank to pay: one single immediate credit transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    /// bankgate's payment id: the end-to-end id, and the idempotency value where the standard
    /// has one (`x-idempotency-key`, `X-Request-ID` stays per request).
    pub payment_id: String,
    pub amount: rust_decimal::Decimal,
    /// ISO 4217 code.
    pub currency: String,
    /// Electronic form, checksum valid.
    pub creditor_iban: String,
    pub creditor_name: String,
    pub remittance: Option<String>,
    /// SCT Inst (Berlin Group `instant-sepa-credit-transfers`, STET `INST` category).
    pub instant: bool,
}

impl PaymentOrder {
    /// The request id of the payment's creation at the bank (`X-Request-ID`, which Berlin Group
    /// and STET banks use to recognise a repeated creation): the UUID in the payment id, the
    /// same every time, so that a creation repeated after its answer was lost is the same
    /// request, which the bank answers with the payment it made rather than a second one. A
    /// payment id without one (not made by [`Payment::new_id`]) gets a fresh UUID.
    pub fn creation_request_id(&self) -> String {
        self.payment_id
            .strip_prefix("pay_")
            .and_then(|simple| uuid::Uuid::try_parse(simple).ok())
            .unwrap_or_else(uuid::Uuid::new_v4)
            .hyphenated()
            .to_string()
    }
}

/// A payment as the bank knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BankPayment {
    /// The bank's id of the payment resource.
    pub id: String,
    pub status: BankStatus,
    /// The payer's account, when the bank names it (for the payee ≠ payer check).
    pub debtor_iban: Option<String>,
}

/// Where the gateway's own handling of a payment stands, beside the bank's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Submission {
    /// Recorded; the bank has not been called yet.
    Recorded,
    /// The bank was called and no answer was recorded: the payment may or may not exist at the
    /// bank. Only a status look-up may settle it (reconciliation), never a second submission.
    InDoubt,
    /// The bank answered: `bank_payment_id` and the status are the bank's.
    Submitted,
    /// The bank refused before creating a payment (a 4xx with no payment resource).
    Refused,
}

impl WireName for Submission {}

/// A payment as stored: recorded before its bank is called, updated by compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// `pay_…`, opaque; also the end-to-end id and the idempotency value sent to the bank.
    pub id: String,
    pub client_id: String,
    /// The consent (one payment each) it was authorised under.
    pub consent_id: String,
    pub bank_id: String,
    pub request: PaymentRequest,
    pub submission: Submission,
    /// The bank's id of the payment resource, once known.
    pub bank_payment_id: Option<String>,
    /// The canonical status with the bank's raw code, once the bank gave one.
    pub status: Option<BankStatus>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the status job next asks the bank (none once final).
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Status look-ups so far (the backoff grows with it).
    pub polls: u32,
}

impl Payment {
    /// A new payment id.
    pub fn new_id() -> String {
        format!("pay_{}", uuid::Uuid::now_v7().simple())
    }

    /// `Invariant` unless `key` is claimed for this payment of its own platform (what
    /// [`Payments::record_payment`] stores together).
    pub fn check_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        if self.client_id != key.client_id || self.id != key.payment_id {
            return Err(StoreError::Invariant(
                "an idempotency key is claimed for its own platform's payment",
            ));
        }
        Ok(())
    }

    /// Whether nothing more will change: a final bank status, or refused.
    pub fn is_final(&self) -> bool {
        self.submission == Submission::Refused
            || self.status.as_ref().is_some_and(|s| s.status.is_final())
    }

    /// A payment recorded under `consent_id` before its bank is called.
    pub fn recorded(
        client_id: &str,
        consent_id: &str,
        request: &PaymentRequest,
        now: DateTime<Utc>,
    ) -> Payment {
        Payment {
            id: Payment::new_id(),
            client_id: client_id.to_owned(),
            consent_id: consent_id.to_owned(),
            bank_id: request.bank.clone(),
            request: request.clone(),
            submission: Submission::Recorded,
            bank_payment_id: None,
            status: None,
            created_at: now,
            updated_at: now,
            next_poll_at: None,
            polls: 0,
        }
    }

    /// What the bank is asked to pay (the request was validated when it was pushed).
    pub fn order(&self) -> PaymentOrder {
        PaymentOrder {
            payment_id: self.id.clone(),
            amount: self.request.instructed_amount.amount,
            currency: self.request.instructed_amount.currency.clone(),
            creditor_iban: parse_iban(&self.request.creditor_account.iban)
                .unwrap_or_else(|_| self.request.creditor_account.iban.clone()),
            creditor_name: self.request.creditor_name.clone(),
            remittance: self.request.remittance.clone(),
            instant: self.request.instant,
        }
    }

    /// The payment moved to `submission` at `now` (the caller stores it by compare-and-set
    /// against the `updated_at` it read).
    pub fn moved(&self, submission: Submission, now: DateTime<Utc>) -> Payment {
        Payment {
            submission,
            // Strictly later than the value read, so that compare-and-set tells them apart.
            updated_at: now.max(self.updated_at + chrono::Duration::microseconds(1)),
            ..self.clone()
        }
    }

    /// The payment with the bank's answer: its id and status; the status job follows it
    /// until it is final.
    pub fn answered(&self, bank: &BankPayment, now: DateTime<Utc>) -> Payment {
        let status = match &self.status {
            Some(current) if !current.status.can_become(bank.status.status) => current.clone(),
            _ => bank.status.clone(),
        };
        let mut next = self.moved(Submission::Submitted, now);
        next.bank_payment_id = Some(bank.id.clone());
        next.next_poll_at = (!status.status.is_final()).then(|| now + poll_delay(0));
        next.status = Some(status);
        next.polls = 0;
        next
    }

    /// The canonical view a platform reads (`POST` and `GET /v1/payments…`): amounts exact as
    /// strings, the payee's account masked, the status with the bank's raw code.
    pub fn view(&self) -> serde_json::Value {
        let status = self.status.as_ref();
        let state = match (self.submission, status) {
            (Submission::Refused, _) => "rejected",
            (_, Some(status)) => status.status.as_str(),
            (_, None) => "pending",
        };
        let mut body = serde_json::json!({
            "id": self.id,
            "consent_id": self.consent_id,
            "bank": self.bank_id,
            "status": state,
            "instructed_amount": {
                "currency": self.request.instructed_amount.currency,
                "amount": self.request.instructed_amount.amount.to_string(),
            },
            "creditor_account": {
                "iban_masked": crate::model::mask_iban(&self.request.creditor_account.iban),
            },
            "creditor_name": self.request.creditor_name,
            "instant": self.request.instant,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        });
        if let Some(creditor) = &self.request.creditor {
            body["creditor"] = serde_json::json!({ "handle": creditor.handle });
        }
        if let Some(status) = status {
            body["bank_status"] = serde_json::json!({
                "code": status.raw,
                "reason_code": status.reason_code,
            });
            if let Some(reason) = status.status.reason() {
                body["rejection_reason"] = reason.as_str().into();
            }
        }
        if self.submission == Submission::Refused && body.get("rejection_reason").is_none() {
            body["rejection_reason"] = "refused_by_bank".into();
        }
        body
    }
}

/// What [`Payments::count_payment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCount {
    /// The payment counts against its day (now, or before).
    Counted,
    /// Not counted: the day's other counted payments (`spent`) plus this one would pass the
    /// limit.
    OverLimit { spent: Decimal },
}

/// How long the status job waits before the `polls`-th look-up after the last one: 2 s,
/// doubling, at most 10 minutes.
pub fn poll_delay(polls: u32) -> chrono::Duration {
    let seconds = 2_i64.saturating_mul(1_i64 << polls.min(9));
    chrono::Duration::seconds(seconds.min(600))
}

/// The storage of payments and of the platforms' idempotency keys, beside the domain
/// (`store/pg/payments.rs`, `store/memory/payments.rs`).
#[async_trait]
pub trait Payments: Send + Sync {
    /// Records a payment and claims its idempotency key in one step: `Replay::Proceed` when the
    /// key was free (the payment is stored, its key in flight); otherwise what
    /// [`idempotency::judge`] says about the key's record, and nothing is stored. Of concurrent
    /// calls with one key, exactly one proceeds. A consent pays once: `Conflict("payment")`
    /// (and nothing stored) when the consent already has a payment.
    async fn record_payment(
        &self,
        payment: &Payment,
        key: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Replay, StoreError>;

    /// Completes the key of a payment with the response the platform got, so a retry replays it.
    async fn complete_key(
        &self,
        client_id: &str,
        key: &IdempotencyKey,
        response: &idempotency::StoredResponse,
    ) -> Result<(), StoreError>;

    /// Records a payment before its bank is first called (at consent time), without a key.
    /// `Conflict("payment")` (and nothing stored) when its consent already has a payment.
    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError>;

    /// The payment of a consent, if one was recorded.
    async fn payment_of_consent(&self, consent_id: &str) -> Result<Option<Payment>, StoreError>;

    /// Claims an idempotency key for a payment already recorded (`key.payment_id`): what
    /// [`idempotency::judge`] says about the key's record (`Replay::Proceed` when the key was
    /// free or past its retention, and is now claimed, in flight). A payment submits under one
    /// key: `Conflict("payment")` (and nothing claimed) when another key already claimed it and
    /// was not answered with a refusal (a 4xx: the platform may correct its request and retry
    /// with a new key).
    /// Of concurrent calls for one payment, exactly one proceeds.
    async fn claim_key(&self, key: &KeyRecord, now: DateTime<Utc>) -> Result<Replay, StoreError>;

    /// A payment of a platform (another platform's payment is not found).
    async fn payment(&self, client_id: &str, id: &str) -> Result<Option<Payment>, StoreError>;

    /// Replaces a payment if it still is at `expected` (compare-and-set on `updated_at`):
    /// `false` when another instance changed it first.
    async fn update_payment(
        &self,
        payment: &Payment,
        expected: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` payments whose status look-up is due, postponing each to `lease_until`
    /// so that no other instance takes it meanwhile (`FOR UPDATE SKIP LOCKED`).
    async fn due_payments(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError>;

    /// Counts `payment` against its user's day (UTC, the day of `now`) when the user's other
    /// counted payments of that day in its currency (not refused, not rejected) plus this one
    /// stay within `max_per_day`; otherwise counts nothing and answers what they add up to.
    /// A payment counted already is [`DayCount::Counted`] again (on whatever day). Of
    /// concurrent calls for one user, platform and currency, each sees the ones before it:
    /// together they never count more than `max_per_day` in a day.
    async fn count_payment(
        &self,
        payment: &Payment,
        max_per_day: Decimal,
        now: DateTime<Utc>,
    ) -> Result<DayCount, StoreError>;

    /// The sum of a user's payments in a currency counted on `day` (UTC,
    /// [`Payments::count_payment`]) that were not refused or rejected since: what the daily
    /// limit counts.
    async fn spent_on(
        &self,
        client_id: &str,
        user_ref: &str,
        currency: &str,
        day: NaiveDate,
    ) -> Result<Decimal, StoreError>;

    /// Forgets idempotency keys created before `before` (kept at least
    /// [`idempotency::KEY_RETENTION`]).
    async fn purge_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
