//! The payment parts of the authorization server: a pushed `payment_initiation` detail
//! checked (PAR), the payment recorded with its consent and shown on the consent screen, the
//! bank's payment resource created when the user confirms (recorded first, never retried), and
//! the payment's state when the bank answers.
//!
//! What is checked where: the request itself and the purpose's limits at PAR (and again at
//! submission, `payments::submit`); the payer's account, where the bank names it, at
//! submission. The user's daily limit counts a payment when it is sent on its way: here,
//! before the bank creates it, where authorising it at the bank may execute it (Berlin Group,
//! STET); at submission otherwise.

use chrono::{DateTime, Utc};

use super::Broker;
use super::payee::Verified;
use super::payee::{details_error, refused};
use crate::adapters::{Adapter, BankConsent};
use crate::audit::{Action, Event};
use crate::consent::{AuthorizationDetail, Consent};
use crate::error::Error;
use crate::lifecycle::consent_event;
use crate::model::{quoted, text};
use crate::oauth::Client;
use crate::payments::verification::{Outcome, ValidVerification};
use crate::payments::{
    DayCount, LimitRefusal, PAYMENT_INITIATION, Payment, PaymentRequest, Payments, Submission,
    ValidPayment,
};

/// The scope of a payment consent's access token: it pays, it reads nothing.
pub const PAYMENT_SCOPE: &str = "payment";

/// Whether a pushed authorization detail (as JSON) is a payment's.
pub(super) fn is_payment(detail: &serde_json::Value) -> bool {
    detail.get("type").and_then(serde_json::Value::as_str) == Some(PAYMENT_INITIATION)
}

/// A pushed `payment_initiation` detail checked: its form (amount, currency, IBAN checksum,
/// texts), a bank that can pay, a payment purpose the platform may use, and the purpose's
/// limits against the user's payments of the day. Returns the request and the consent detail
/// it becomes (no data scopes, the purpose's lifetime) with the policy's hash.
pub(super) async fn check(
    broker: &Broker,
    client: &Client,
    raw: serde_json::Value,
) -> Result<(PaymentRequest, AuthorizationDetail, String), Error> {
    let mut request: PaymentRequest = serde_json::from_value(raw)
        .map_err(|error| details_error(format!("authorization_details: {error}")))?;
    for (field, value) in [
        ("bank", Some(&request.bank)),
        ("purpose", Some(&request.purpose)),
        ("user_ref", Some(&request.user_ref)),
        ("creditor_name", Some(&request.creditor_name)),
        ("remittance", request.remittance.as_ref()),
    ] {
        if let Some(value) = value {
            text(field, value).map_err(details_error)?;
        }
    }
    if request.user_ref.is_empty() || request.user_ref.len() > 128 {
        return Err(details_error("user_ref must be 1-128 characters"));
    }
    let adapter = broker
        .banks
        .get(&request.bank)
        .ok_or_else(|| details_error(format!("unknown bank {}", quoted(&request.bank))))?;
    if adapter.profile.payments().is_none() {
        return Err(refused(
            "payment-bank-cannot-pay",
            format!(
                "bank {} ({}) does not offer payment initiation",
                request.bank,
                adapter.profile.name()
            ),
        ));
    }
    let policies = broker.policies.current();
    let policy = policies
        .lookup(&request.purpose)
        .map_err(|refusal| details_error(refusal.to_string()))?;
    policy
        .admits(&client.platform())
        .map_err(|refusal| details_error(refusal.to_string()))?;
    // A payee named by her handle is resolved now (an access under her consent, audited):
    // what is validated and recorded below is her account.
    if request.verification.is_some() {
        return Err(details_error("verification is set by bankgate"));
    }
    super::payee::fill_in(broker, client, &mut request, Utc::now()).await?;
    let mut valid = request
        .validate()
        .map_err(|invalid| refused(invalid.slug(), &invalid))?;
    check_limits(
        broker.payments.as_ref(),
        &client.client_id,
        &valid,
        policy.payment.as_ref(),
        Utc::now(),
    )
    .await?;
    // A payee the payer typed: her bank says whether the name is hers, for the screen.
    if valid.request.creditor.is_none() {
        let typed = ValidVerification {
            iban: valid.creditor_iban.clone(),
            name: valid.request.creditor_name.trim().to_owned(),
        };
        let outcome = match super::payee::verify(
            broker,
            &client.client_id,
            &typed,
            None,
            Utc::now(),
        )
        .await?
        {
            Verified::Answered(outcome) => outcome,
            Verified::Throttled => Outcome::NotPossible,
        };
        valid.request.verification = Some(outcome);
    }
    let detail = AuthorizationDetail {
        kind: PAYMENT_INITIATION.to_owned(),
        bank: request.bank.clone(),
        purpose: request.purpose.clone(),
        scopes: Vec::new(),
        history_days: 0,
        expires_in_days: policy.max_consent_days.max(1),
        user_ref: request.user_ref.clone(),
        consent_id: None,
    };
    Ok((valid.request, detail, policy.hash.clone()))
}

/// The purpose's payment limits for `payment`, with what the user already paid today through
/// this platform.
async fn check_limits(
    payments: &dyn Payments,
    client_id: &str,
    payment: &ValidPayment,
    limits: Option<&crate::payments::PaymentLimits>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let purpose = &payment.request.purpose;
    let limits = limits.ok_or_else(|| {
        let refusal = LimitRefusal::NotAPaymentPurpose {
            purpose: purpose.clone(),
        };
        refused(refusal.slug(), &refusal)
    })?;
    let spent = payments
        .spent_on(
            client_id,
            &payment.request.user_ref,
            payment.currency_code(),
            now.date_naive(),
        )
        .await?;
    limits
        .check(purpose, payment, spent)
        .map_err(|refusal| refused(refusal.slug(), &refusal))
}

/// The audit facts of a payment request as an event's fields (amount, currency, the payee's
/// account masked), under the category `payment`.
pub fn with_facts(mut event: Event, request: &PaymentRequest) -> Event {
    event.categories = vec![PAYMENT_SCOPE.to_owned()];
    if let Ok(valid) = request.validate() {
        event.fields = valid.facts();
    }
    event
}

/// Records the payment of a new payment consent (before any bank call) and audits the
/// consent's creation with the payment's facts.
pub(super) async fn record(
    broker: &Broker,
    consent: &Consent,
    request: &PaymentRequest,
) -> Result<Payment, Error> {
    let payment = Payment::recorded(&consent.client_id, &consent.id, request, consent.created_at);
    broker.payments.insert_payment(&payment).await?;
    broker
        .auditor
        .record(with_facts(
            consent_event(Action::ConsentCreated, &consent.client_id, consent),
            request,
        ))
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(payment)
}

/// What [`create_at_bank`] got.
pub(super) enum Creation {
    /// The bank's payment resource (or payment consent) exists; the user authorises it next.
    Created(BankConsent),
    /// The bank refused it, or could not be reached: the payment is not made (logged).
    Failed,
    /// The gateway refused it before calling the bank (the user's daily limit, counted when
    /// authorising the payment at the bank may execute it): why, as `slug: text`.
    Refused(String),
}

/// Creates the bank's payment resource (Berlin Group, STET) or payment consent for `payment`:
/// counted against the user's day first where authorising it may execute it, marked
/// `in_doubt` (a crash after the call leaves a trace), created — and, when the answer was
/// lost, looked up once by repeating the creation under the same request id, which the bank
/// answers with the payment it made —, then the answer recorded: the bank's id, or `refused`
/// when the bank refused it, or left `in_doubt` when no answer came (the consent then ends:
/// only the user's authorisation could execute a payment made meanwhile, and the user is not
/// sent to the bank).
pub(super) async fn create_at_bank(
    broker: &Broker,
    adapter: &Adapter,
    payment: &Payment,
) -> Result<Creation, Error> {
    let Some(initiation) = adapter.profile.payments() else {
        return Ok(Creation::Failed);
    };
    // A payee named by her handle who revoked her consent (or gave up the handle) since PAR
    // is not paid.
    if !super::payee::still_payable(broker, &payment.client_id, &payment.request, Utc::now())
        .await?
    {
        refuse(broker, payment).await?;
        let unpayable = super::payee::Unpayable::Unavailable {
            handle: payment
                .request
                .creditor
                .as_ref()
                .map(|creditor| creditor.handle.clone())
                .unwrap_or_default(),
            why: "the payee's consent ended",
        };
        return Ok(Creation::Refused(format!(
            "{}: {unpayable}",
            unpayable.slug()
        )));
    }
    if initiation.authorisation_executes()
        && let Err(refusal) = count(broker, payment).await?
    {
        return Ok(Creation::Refused(format!("{}: {refusal}", refusal.slug())));
    }
    let calling = payment.moved(Submission::InDoubt, Utc::now());
    if !broker
        .payments
        .update_payment(&calling, payment.updated_at)
        .await?
    {
        return Err(Error::InvalidRequest(
            "this payment is already on its way to the bank".into(),
        ));
    }
    let order = calling.order();
    let created = match initiation
        .create_payment_consent(&adapter.bank, &order)
        .await
    {
        // The answer was lost (or the bank failed) and the payment may exist at the bank: the
        // creation is repeated once under the same request id
        // (`PaymentOrder::creation_request_id`, OBIE's `x-idempotency-key`), which the bank
        // answers with the payment it made — or makes it now, had the first never arrived.
        // Either way one payment exists, and only the user's authorisation can execute it.
        Err(error) if !crate::adapters::paying::is_refusal(&error) => {
            tracing::warn!(bank = %adapter.bank.manifest.id, kind = error.kind(),
                "no answer to the payment's creation; looking it up by its request id");
            initiation
                .create_payment_consent(&adapter.bank, &order)
                .await
        }
        answered => answered,
    };
    match created {
        Ok(created) => {
            let mut answered = calling.moved(Submission::Submitted, Utc::now());
            answered.bank_payment_id = created.id.clone();
            broker
                .payments
                .update_payment(&answered, calling.updated_at)
                .await?;
            Ok(Creation::Created(created))
        }
        Err(error) => {
            let error = error.at(&adapter.bank.manifest.id);
            tracing::warn!(bank = %adapter.bank.manifest.id, kind = error.kind(),
                "the bank did not create the payment");
            if crate::adapters::paying::is_refusal(&error) {
                refuse(broker, &calling).await?;
            }
            Ok(Creation::Failed)
        }
    }
}

/// Counts `payment` against its user's day before the bank is asked to create it, where
/// authorising it at the bank may execute it: the purpose's daily limit in force, exact under
/// concurrency ([`crate::payments::Payments::count_payment`]).
async fn count(broker: &Broker, payment: &Payment) -> Result<Result<(), LimitRefusal>, Error> {
    let purpose = &payment.request.purpose;
    let policy = broker.policies.get(purpose);
    let Some(limits) = policy.as_ref().and_then(|policy| policy.payment.as_ref()) else {
        return Ok(Err(LimitRefusal::NotAPaymentPurpose {
            purpose: purpose.clone(),
        }));
    };
    Ok(
        match broker
            .payments
            .count_payment(payment, limits.max_amount_per_day, Utc::now())
            .await?
        {
            DayCount::Counted => Ok(()),
            DayCount::OverLimit { spent } => Err(LimitRefusal::PerDay {
                purpose: purpose.clone(),
                max: limits.max_amount_per_day,
                spent,
                currency: payment.request.instructed_amount.currency.clone(),
            }),
        },
    )
}

/// The payment of a consent that ended without being authorised (declined by the user or at
/// the bank): `refused`, so that it never counts against the day's limit and is never sent.
pub(super) async fn abandon(broker: &Broker, consent: &Consent) -> Result<(), Error> {
    // Not authorised by the user, a payment the bank may have created (even one whose creation
    // answer was lost, `in_doubt`) cannot be executed: it is not a payment of the day.
    if let Some(payment) = broker.payments.payment_of_consent(&consent.id).await?
        && payment.submission != Submission::Refused
        && payment.status.is_none()
    {
        refuse(broker, &payment).await?;
    }
    Ok(())
}

/// Marks `payment` refused (compare-and-set): never sent, not a payment of the day.
async fn refuse(broker: &Broker, payment: &Payment) -> Result<bool, Error> {
    Ok(broker
        .payments
        .update_payment(
            &payment.moved(Submission::Refused, Utc::now()),
            payment.updated_at,
        )
        .await?)
}

/// The authorization details a payment consent's token carries: the one payment.
pub async fn granted_details(
    payments: &dyn Payments,
    consent: &Consent,
) -> Result<serde_json::Value, Error> {
    Ok(match payments.payment_of_consent(&consent.id).await? {
        Some(payment) => serde_json::json!([payment.request.platform_view()]),
        None => serde_json::json!([consent.granted_details()]),
    })
}
