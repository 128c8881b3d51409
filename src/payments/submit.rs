//! Submitting a payment (`POST /v1/payments`) and following its status: the workflow, with
//! explicit dependencies and no HTTP types. Routes parse and render (`http/routes/payments.rs`);
//! the payer's bank is reached through [`PayerBank`], which `adapters` implements over a
//! profile's `PaymentInitiation`.
//!
//! A submission, in order:
//! 1. the platform's `Idempotency-Key` is claimed for the consent's payment
//!    ([`Payments::claim_key`]): the same key and body again get the stored response, another
//!    body a mismatch, a request while the first is in flight `in flight`, another key for a
//!    payment already submitted `consent used`;
//! 2. the consent is checked (authorised, not revoked, not expired), the body against the
//!    consented payment, and the purpose's limits again; the payment is counted against the
//!    user's day ([`Payments::count_payment`], under the user's lock: concurrent submissions
//!    never count past the limit) unless it was counted when it was created at the bank; a
//!    refusal is audited and answered (and stored with the key);
//! 3. the submission is audited, the payment marked `in_doubt`, the bank called once
//!    ([`PayerBank::submit`]) and its answer recorded; a lost answer leaves the payment
//!    `in_doubt` for the status job, which settles it by a look-up ([`PayerBank::find`]), never
//!    by a second submission.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{
    Amount, BankPayment, CreditorAccount, DayCount, IdempotencyKey, Invalid, KeyRecord,
    LimitRefusal, Payment, PaymentLimits, PaymentOrder, Payments, Replay, Submission, idempotency,
};
use crate::audit::{Action, Auditor, Decision, Event};
use crate::consent::{Consent, Unusable};
use crate::model::WireName;
use crate::store_error::StoreError;

/// When the status job looks up a payment whose submission started and never finished (the
/// instance died while calling the bank): well after any live request has recorded its answer.
pub const RECONCILE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// How a bank call failed, as far as the payment is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankFailure {
    /// The bank said no and made no payment (a 4xx, an error body).
    Refused,
    /// The call may have reached the bank and made the payment (a timeout, a dropped
    /// connection, a 5xx): only a look-up can tell.
    InDoubt,
}

/// The payer's bank, for one consent's payment.
#[async_trait]
pub trait PayerBank: Send + Sync {
    /// Submits (OBIE), confirms (STET) or reads (Berlin Group) the authorised payment. Called
    /// at most once per payment.
    async fn submit(&self, order: &PaymentOrder) -> Result<BankPayment, BankFailure>;

    /// The payment's status at the bank.
    async fn status(&self, bank_payment_id: &str) -> Result<BankPayment, BankFailure>;

    /// Reconciliation: the payment the bank made for `order`, or `None` when it has none.
    async fn find(&self, order: &PaymentOrder) -> Result<Option<BankPayment>, BankFailure>;

    /// The payer's account, where the bank tells it before the payment executes (`None`
    /// otherwise, or when it could not be read).
    async fn payer(&self, order: &PaymentOrder) -> Option<String>;
}

/// Whether a payment's payee can still be paid: a payee named by her handle only while the
/// payee consent she was resolved through is alive and holds the handle (`broker::payee`).
#[async_trait]
pub trait PayeeCheck: Send + Sync {
    async fn still_payable(
        &self,
        client_id: &str,
        request: &super::PaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// What a platform sends to submit its consent's payment: every field optional, and each one
/// present must be the consented payment's (the platform restates what it pays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    #[serde(default)]
    pub instructed_amount: Option<Amount>,
    #[serde(default)]
    pub creditor_account: Option<CreditorAccount>,
    #[serde(default)]
    pub creditor_name: Option<String>,
}

/// Why a submission is refused; each kind has its own problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this token's consent is not a payment consent")]
    NotAPaymentConsent,
    /// Not authorised, revoked or expired.
    #[error("{0}")]
    Consent(Unusable),
    #[error("the consent's payment was already submitted (with another Idempotency-Key)")]
    ConsentUsed,
    #[error("the request does not describe the consented payment ({0} differs)")]
    BodyDiffers(&'static str),
    #[error("this Idempotency-Key was used with another request body")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    InFlight,
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}")]
    Limit(LimitRefusal),
    #[error("the payee {0} can no longer be paid: her consent ended or she gave up the handle")]
    PayeeGone(String),
}

impl Refusal {
    /// The stable slug of the problem type.
    pub fn slug(&self) -> &'static str {
        match self {
            Refusal::NotAPaymentConsent => "scope-not-granted",
            Refusal::Consent(unusable) => unusable.slug(),
            Refusal::ConsentUsed => "payment-consent-used",
            Refusal::BodyDiffers(_) => "payment-does-not-match-consent",
            Refusal::KeyReused => "payment-key-reused",
            Refusal::InFlight => "payment-in-flight",
            Refusal::Invalid(invalid) => invalid.slug(),
            Refusal::Limit(limit) => limit.slug(),
            Refusal::PayeeGone(_) => "payment-payee-unavailable",
        }
    }
}

/// A submission that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("store error")]
    Store(#[from] StoreError),
    /// The audit log cannot take the record: nothing is answered (fail closed).
    #[error("audit unavailable")]
    Audit(#[source] StoreError),
}

/// What a submission request carries, as the route parsed it.
pub struct SubmitRequest<'a> {
    pub client_id: &'a str,
    /// The token's consent (its subject), as stored.
    pub consent: &'a Consent,
    pub key: IdempotencyKey,
    /// The body as the platform sent it (its fingerprint is the key's), and parsed.
    pub raw_body: &'a serde_json::Value,
    pub body: SubmitBody,
    /// The purpose's payment limits in force (`None`: no longer a payment purpose).
    pub limits: Option<&'a PaymentLimits>,
    pub request_id: Option<String>,
    /// Checks a payee named by her handle is still there.
    pub payee: &'a dyn PayeeCheck,
}

/// How a submission ended.
#[derive(Debug)]
pub enum Submitted {
    /// The same key and body were answered before: the platform gets that response again.
    Replay(idempotency::StoredResponse),
    /// The payment as it now stands (with the bank's answer, or `in_doubt`).
    Payment(Box<Payment>),
    /// Refused after the key was claimed: the refusal is audited; the caller stores its
    /// answer with the key ([`Submitter::complete`]).
    Refused(Refusal),
}

/// The payment workflow: submission, the status look-ups of the status job.
pub struct Submitter<'a> {
    pub payments: &'a dyn Payments,
    pub auditor: &'a Auditor,
}

impl Submitter<'_> {
    /// Submits the consent's payment once (module docs). Refusals before the key is claimed
    /// (`in flight`, `key reused`, `consent used`) are errors; refusals after are
    /// [`Submitted::Refused`], to be stored with the key.
    pub async fn submit(
        &self,
        request: SubmitRequest<'_>,
        bank: &dyn PayerBank,
        now: DateTime<Utc>,
    ) -> Result<Submitted, SubmitError> {
        let consent = request.consent;
        let payment = self
            .payments
            .payment_of_consent(&consent.id)
            .await?
            .filter(|payment| payment.client_id == request.client_id)
            .ok_or(SubmitError::Refused(Refusal::NotAPaymentConsent))?;
        let claim = KeyRecord {
            client_id: request.client_id.to_owned(),
            key: request.key.clone(),
            fingerprint: idempotency::fingerprint(request.raw_body),
            payment_id: payment.id.clone(),
            response: None,
            created_at: now,
        };
        let refused = |refusal: Refusal| SubmitError::Refused(refusal);
        match self.payments.claim_key(&claim, now).await {
            Ok(Replay::Proceed) => {}
            Ok(Replay::Same(response)) => return Ok(Submitted::Replay(response)),
            Ok(Replay::Mismatch) => return Err(refused(Refusal::KeyReused)),
            Ok(Replay::InFlight) => return Err(refused(Refusal::InFlight)),
            Err(StoreError::Conflict(_)) => {
                self.audit_refusal(&payment, consent, &Refusal::ConsentUsed, &request)
                    .await?;
                return Err(refused(Refusal::ConsentUsed));
            }
            Err(error) => return Err(error.into()),
        }
        let refused = match self.check(&payment, &request, now) {
            Ok(_)
                if !request
                    .payee
                    .still_payable(request.client_id, &payment.request, now)
                    .await? =>
            {
                let handle = payment.request.creditor.as_ref();
                Some(Refusal::PayeeGone(
                    handle
                        .map(|creditor| creditor.handle.clone())
                        .unwrap_or_default(),
                ))
            }
            Ok(limits) => match check_payer(&payment, bank).await {
                Err(refusal) => Some(refusal),
                Ok(()) => self.count(&payment, limits, now).await?.err(),
            },
            Err(refusal) => Some(refusal),
        };
        if let Some(refusal) = refused {
            self.audit_refusal(&payment, consent, &refusal, &request)
                .await?;
            return Ok(Submitted::Refused(refusal));
        }
        let mut event = payment_event(Action::PaymentSubmitted, &payment, consent, Decision::Allow);
        event.actor = request.client_id.to_owned();
        event.request_id = request.request_id.clone();
        self.auditor
            .record(event)
            .await
            .map_err(SubmitError::Audit)?;
        // Should this instance die once the bank is called, the status job finds the payment
        // due a minute later and settles it by a look-up.
        let mut calling = payment.moved(Submission::InDoubt, now);
        calling.next_poll_at = Some(now + RECONCILE_AFTER);
        if !self
            .payments
            .update_payment(&calling, payment.updated_at)
            .await?
        {
            return Err(StoreError::Conflict("payment").into());
        }
        let answered = match bank.submit(&calling.order()).await {
            Ok(at_bank) => calling.answered(&at_bank, Utc::now()),
            Err(BankFailure::Refused) => calling.moved(Submission::Refused, Utc::now()),
            // The status job asks the bank soon; nothing is sent again.
            Err(BankFailure::InDoubt) => {
                let mut doubt = calling.moved(Submission::InDoubt, Utc::now());
                doubt.next_poll_at = Some(Utc::now() + super::poll_delay(0));
                doubt
            }
        };
        self.payments
            .update_payment(&answered, calling.updated_at)
            .await?;
        self.audit_change(&answered, consent, request.client_id)
            .await?;
        Ok(Submitted::Payment(Box::new(answered)))
    }

    /// Stores the answer of a claimed key, so that a retry with it gets the same answer.
    pub async fn complete(
        &self,
        client_id: &str,
        key: &IdempotencyKey,
        response: &idempotency::StoredResponse,
    ) -> Result<(), StoreError> {
        self.payments.complete_key(client_id, key, response).await
    }

    /// What is checked once the key is claimed: the consent, the body, the limits but the
    /// day's ([`Submitter::count`]). Returns the limits in force.
    fn check<'r>(
        &self,
        payment: &Payment,
        request: &SubmitRequest<'r>,
        now: DateTime<Utc>,
    ) -> Result<&'r PaymentLimits, Refusal> {
        let consent = request.consent;
        consent.check_usable(now).map_err(Refusal::Consent)?;
        if payment.submission != Submission::Submitted && payment.submission != Submission::Recorded
            || payment.status.is_some()
        {
            return Err(Refusal::ConsentUsed);
        }
        let wanted = &payment.request;
        let body = &request.body;
        if body
            .instructed_amount
            .as_ref()
            .is_some_and(|amount| amount != &wanted.instructed_amount)
        {
            return Err(Refusal::BodyDiffers("instructed_amount"));
        }
        // A payee named by her handle: her account is never compared (the answer would tell
        // the platform whether it guessed her IBAN).
        if body.creditor_account.as_ref().is_some_and(|account| {
            wanted.creditor.is_some()
                || super::parse_iban(&account.iban).ok()
                    != super::parse_iban(&wanted.creditor_account.iban).ok()
        }) {
            return Err(Refusal::BodyDiffers("creditor_account"));
        }
        if body
            .creditor_name
            .as_ref()
            .is_some_and(|name| name != &wanted.creditor_name)
        {
            return Err(Refusal::BodyDiffers("creditor_name"));
        }
        let valid = wanted.validate().map_err(Refusal::Invalid)?;
        let limits = request.limits.ok_or_else(|| {
            Refusal::Limit(LimitRefusal::NotAPaymentPurpose {
                purpose: wanted.purpose.clone(),
            })
        })?;
        // The day's other payments are counted by `count`, under the user's lock.
        limits
            .check(&wanted.purpose, &valid, Decimal::ZERO)
            .map_err(Refusal::Limit)?;
        Ok(limits)
    }

    /// Counts the payment against its user's day ([`Payments::count_payment`]: exact under
    /// concurrency), unless it was counted when it was created at the bank; refused when the
    /// day's other counted payments and this one pass the limit.
    async fn count(
        &self,
        payment: &Payment,
        limits: &PaymentLimits,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Refusal>, StoreError> {
        Ok(
            match self
                .payments
                .count_payment(payment, limits.max_amount_per_day, now)
                .await?
            {
                DayCount::Counted => Ok(()),
                DayCount::OverLimit { spent } => Err(Refusal::Limit(LimitRefusal::PerDay {
                    purpose: payment.request.purpose.clone(),
                    max: limits.max_amount_per_day,
                    spent,
                    currency: payment.request.instructed_amount.currency.clone(),
                })),
            },
        )
    }

    async fn audit_refusal(
        &self,
        payment: &Payment,
        consent: &Consent,
        refusal: &Refusal,
        request: &SubmitRequest<'_>,
    ) -> Result<(), SubmitError> {
        let mut event = payment_event(Action::PaymentSubmitted, payment, consent, Decision::Deny);
        event.actor = request.client_id.to_owned();
        event.reason = Some(format!("{}: {refusal}", refusal.slug()));
        event.request_id = request.request_id.clone();
        self.auditor
            .record(event)
            .await
            .map(|_| ())
            .map_err(SubmitError::Audit)
    }

    /// Audits where a payment now stands (after the bank answered, or a status look-up).
    async fn audit_change(
        &self,
        payment: &Payment,
        consent: &Consent,
        actor: &str,
    ) -> Result<(), SubmitError> {
        let decision = match payment.submission {
            Submission::Refused => Decision::Deny,
            Submission::InDoubt => Decision::Error,
            _ => Decision::Allow,
        };
        let mut event = payment_event(Action::PaymentStatusChanged, payment, consent, decision);
        event.actor = actor.to_owned();
        event.reason = Some(status_reason(payment));
        self.auditor
            .record(event)
            .await
            .map(|_| ())
            .map_err(SubmitError::Audit)
    }

    /// One look-up of the status job for a due payment (claimed with a lease): asks the bank,
    /// moves the status by compare-and-set, audits a change. Returns the payment when its
    /// status changed (for the webhook), `None` otherwise. A payment `in_doubt` is settled by
    /// [`PayerBank::find`]: found → its status; not found → `refused` (nothing was made, and
    /// nothing is sent again).
    pub async fn poll(
        &self,
        payment: &Payment,
        consent: &Consent,
        bank: &dyn PayerBank,
        now: DateTime<Utc>,
    ) -> Result<Option<Payment>, SubmitError> {
        let looked_up = match (&payment.submission, &payment.bank_payment_id) {
            (Submission::InDoubt, _) => match bank.find(&payment.order()).await {
                Ok(Some(found)) => Ok(found),
                Ok(None) => Err(Some(payment.moved(Submission::Refused, now))),
                Err(_) => Err(None),
            },
            (_, Some(id)) => bank.status(id).await.map_err(|_| None),
            (_, None) => Err(None),
        };
        let next = match looked_up {
            Ok(found) => {
                let mut next = payment.answered(&found, now);
                if next.status == payment.status && next.submission == payment.submission {
                    // Unchanged: ask again later, less often.
                    next.polls = payment.polls.saturating_add(1);
                    next.next_poll_at = Some(now + super::poll_delay(next.polls));
                }
                next
            }
            Err(Some(settled)) => settled,
            Err(None) => {
                let mut next = payment.moved(payment.submission, now);
                next.polls = payment.polls.saturating_add(1);
                next.next_poll_at = Some(now + super::poll_delay(next.polls));
                next
            }
        };
        let changed = next.status != payment.status || next.submission != payment.submission;
        if !self
            .payments
            .update_payment(&next, payment.updated_at)
            .await?
        {
            // Another instance moved it first.
            return Ok(None);
        }
        if !changed {
            return Ok(None);
        }
        self.audit_change(&next, consent, "gateway").await?;
        Ok(Some(next))
    }
}

/// Refuses a payment to the payer's own account, where the bank tells which account the user
/// chose before the payment executes ([`PayerBank::payer`]).
async fn check_payer(payment: &Payment, bank: &dyn PayerBank) -> Result<(), Refusal> {
    let Some(payer) = bank.payer(&payment.order()).await else {
        return Ok(());
    };
    let valid = payment.request.validate().map_err(Refusal::Invalid)?;
    valid.check_payer(&payer).map_err(Refusal::Invalid)
}

/// A payment's status in an audit reason: the canonical status and the bank's raw code.
pub fn status_reason(payment: &Payment) -> String {
    match (&payment.submission, &payment.status) {
        (Submission::Refused, _) => "refused by the bank or never sent".to_owned(),
        (Submission::InDoubt, _) => "in doubt: the bank's answer was lost".to_owned(),
        (_, Some(status)) => match status.status.reason() {
            Some(reason) => format!(
                "{} ({}; {})",
                status.status.as_str(),
                status.raw,
                reason.as_str()
            ),
            None => format!("{} ({})", status.status.as_str(), status.raw),
        },
        (_, None) => "pending".to_owned(),
    }
}

/// An event about a payment: the consent's platform, bank, user and purpose, the payment's
/// facts (amount, currency, the payee's account masked) and its id.
pub fn payment_event(
    action: Action,
    payment: &Payment,
    consent: &Consent,
    decision: Decision,
) -> Event {
    let mut event = Event::new(action, consent.client_id.clone(), decision);
    event.platform = Some(consent.client_id.clone());
    event.bank = Some(payment.bank_id.clone());
    event.consent = Some(consent.id.clone());
    event.user_ref = Some(consent.user_ref.clone());
    event.purpose = Some(consent.purpose.clone());
    event.policy_hash = Some(consent.policy_hash.clone());
    event.categories = vec!["payment".to_owned()];
    event.fields = payment
        .request
        .validate()
        .map(|valid| valid.facts())
        .unwrap_or_default();
    event.fields.push(format!("payment:{}", payment.id));
    event
}
