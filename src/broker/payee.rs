//! Paying a handle: a payment whose payee is named `{"handle": "@alice"}` is resolved at PAR
//! through the payee's own consent (purpose `p2p-payments-payee-check`) to her account's IBAN
//! and the name on it as her bank has it. The IBAN goes into the recorded payment (it is sent
//! to the payer's bank, nowhere else); the payer and the payer's platform are shown her name
//! and her account masked.
//!
//! The resolution is an access under the payee's purpose, decided as an unattended call of
//! her platform would be: her consent alive with the identity scope, the policy in force
//! allowing it, one unit of her consent's unattended budget spent (the same daily count her
//! platform's own calls and refreshes spend), her bank read through its adapter, and the
//! release audited (`data_access` under her consent: the name and the masked account) before
//! anything is shown. Before the payer's bank is asked to pay — when the bank's payment
//! resource is created, or at submission — [`still_payable`] checks that her consent is still
//! alive and still holds the handle: a payee who revoked meanwhile is not paid.
//!
//! A payee typed by the payer (an IBAN and a name) is checked instead: verification of payee
//! ([`verify`], also behind `POST /v1/payee-verifications`), whose answer the payer's consent
//! screen shows before the payer confirms.

use chrono::{DateTime, Utc};

use super::Broker;
use crate::adapters::verification;
use crate::audit::{Action, Decision, Event};
use crate::consent::Consent;
use crate::error::{Error, OAuthError};
use crate::model::WireName;
use crate::model::{Scope, quoted};
use crate::notify::engine::{ReadError, Reads};
use crate::oauth::Client;
use crate::payments::payees::{Handle, PAYEE_PURPOSE};
use crate::payments::verification::{Outcome, Throttle, ValidVerification};
use crate::payments::{MAX_CREDITOR_NAME_CHARS, PaymentRequest};

/// The audit category of a verification of payee.
pub const VERIFICATION_CATEGORY: &str = "payee_verification";
use crate::policy::{DataRequest, Presence};
use crate::store_error::StoreError;

/// The payee a handle resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Her payee consent.
    pub consent_id: String,
    /// Her account's IBAN (electronic form, as her bank gave it).
    pub iban: String,
    /// The name on the account, as her bank has it.
    pub name: String,
}

/// Why a handle could not be paid; the text is safe to show the payer's platform (it names
/// no account).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unpayable {
    /// No alive payee consent of this platform holds the handle.
    #[error("no payee of this platform has the handle {0}")]
    Unknown(String),
    /// The handle is held, but the payee's account cannot be used now (her policy refuses,
    /// her budget of the day is spent, her bank failed or no longer shows the account).
    #[error("the payee {handle} cannot be paid now: {why}")]
    Unavailable { handle: String, why: &'static str },
}

impl Unpayable {
    /// The stable slug (`payment-unknown-payee`, `payment-payee-unavailable`).
    pub fn slug(&self) -> &'static str {
        match self {
            Unpayable::Unknown(_) => "payment-unknown-payee",
            Unpayable::Unavailable { .. } => "payment-payee-unavailable",
        }
    }
}

/// Fills in the payee of a request naming her by handle (module docs): nothing to do for a
/// request naming an account; otherwise the request's creditor account, name and payee
/// consent are set. A request naming both a handle and an account, or setting the payee
/// consent itself, is refused as invalid; a handle that cannot be paid with its
/// [`Unpayable`] slug.
pub(super) async fn fill_in(
    broker: &Broker,
    client: &Client,
    request: &mut PaymentRequest,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(creditor) = request.creditor.as_mut() else {
        return Ok(());
    };
    if !request.creditor_account.iban.is_empty() || !request.creditor_name.is_empty() {
        return Err(details_error(
            "a payment to a handle names neither creditor_account nor creditor_name",
        ));
    }
    if creditor.consent_id.is_some() {
        return Err(details_error("creditor.consent_id is set by bankgate"));
    }
    let handle = Handle::parse(&creditor.handle)
        .map_err(|invalid| details_error(format!("creditor.handle: {invalid}")))?;
    creditor.handle = handle.to_string();
    let resolved = resolve(broker, client, &handle, now)
        .await?
        .map_err(|unpayable| refused(unpayable.slug(), &unpayable))?;
    creditor.consent_id = Some(resolved.consent_id);
    request.creditor_account.iban = resolved.iban;
    request.creditor_name = resolved.name;
    Ok(())
}

/// Resolves `handle` on `client`'s namespace (module docs): the payee, or why she cannot be
/// paid; an error when the store or the audit log failed.
async fn resolve(
    broker: &Broker,
    client: &Client,
    handle: &Handle,
    now: DateTime<Utc>,
) -> Result<Result<Resolved, Unpayable>, Error> {
    let unavailable = |why| Unpayable::Unavailable {
        handle: handle.to_string(),
        why,
    };
    let unknown = || Ok(Err(Unpayable::Unknown(handle.to_string())));
    let Some(entry) = broker.payees.payee(&client.client_id, handle, now).await? else {
        return unknown();
    };
    let Some(consent) = broker
        .consents
        .consent(&entry.consent_id)
        .await?
        .filter(|consent| consent.purpose == PAYEE_PURPOSE)
    else {
        return unknown();
    };
    if consent.check_access(Scope::Identity, now).is_err() {
        return unknown();
    }
    let policies = broker.policies.current();
    let Ok(allowed) = policies.decide(&DataRequest::under(
        &consent,
        Scope::Identity,
        client.platform(),
        Presence::Unattended,
        now,
    )) else {
        return Ok(Err(unavailable(
            "the payee's purpose policy does not allow it",
        )));
    };
    let limit = allowed.policy.max_unattended_per_day;
    if limit == 0
        || !broker
            .unattended
            .spend_unattended(&consent.id, now.date_naive(), limit)
            .await?
    {
        return Ok(Err(unavailable("the payee's checks of the day are spent")));
    }
    let read = match broker
        .bank_reader
        .read(
            &consent,
            Reads {
                balances: false,
                transactions_from: None,
            },
        )
        .await
    {
        Ok(read) => read,
        Err(ReadError::Store(error)) => return Err(error.into()),
        Err(ReadError::Bank(error)) => {
            tracing::warn!(consent = %consent.id, bank = %consent.bank_id, %error,
                "the payee's bank could not be read");
            return Ok(Err(unavailable("the payee's bank could not be read")));
        }
    };
    let Some(account) = read
        .accounts
        .into_iter()
        .map(|data| data.account)
        .find(|account| account.id == entry.account_id)
    else {
        return Ok(Err(unavailable(
            "the payee's bank no longer shows the account",
        )));
    };
    let Some(iban) = account
        .iban
        .as_deref()
        .and_then(|iban| crate::payments::parse_iban(iban).ok())
    else {
        return Ok(Err(unavailable("the payee's account has no IBAN")));
    };
    let Some(name) = account
        .holder_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
    else {
        return Ok(Err(unavailable(
            "the payee's bank does not name the account holder",
        )));
    };
    let name: String = name.chars().take(MAX_CREDITOR_NAME_CHARS).collect();
    let mut event = Event::new(
        Action::DataAccess,
        client.client_id.clone(),
        Decision::Allow,
    );
    event.platform = Some(consent.client_id.clone());
    event.bank = Some(consent.bank_id.clone());
    event.consent = Some(consent.id.clone());
    event.user_ref = Some(consent.user_ref.clone());
    event.purpose = Some(consent.purpose.clone());
    event.policy_hash = Some(allowed.policy.hash.clone());
    event.categories = vec![Scope::Identity.as_str().to_owned()];
    event.fields = vec![
        "holder_name".to_owned(),
        "iban_masked".to_owned(),
        format!("handle:{handle}"),
    ];
    event.n_records = 1;
    event.reason = Some(format!(
        "the payee of a payment to {}",
        quoted(handle.as_str())
    ));
    broker
        .auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(Ok(Resolved {
        consent_id: consent.id,
        iban,
        name,
    }))
}

/// Whether the payee of `request` can still be paid at `now`: a request naming an account
/// always; one naming a handle while the payee consent it resolved through is alive and still
/// holds the handle.
pub async fn still_payable(
    broker: &Broker,
    client_id: &str,
    request: &PaymentRequest,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(creditor) = &request.creditor else {
        return Ok(true);
    };
    let (Some(consent_id), Ok(handle)) = (&creditor.consent_id, Handle::parse(&creditor.handle))
    else {
        return Ok(false);
    };
    let holds = broker
        .payees
        .payee(client_id, &handle, now)
        .await?
        .is_some_and(|entry| &entry.consent_id == consent_id);
    Ok(holds
        && broker
            .consents
            .consent(consent_id)
            .await?
            .is_some_and(|consent: Consent| consent.check_access(Scope::Identity, now).is_ok()))
}

#[async_trait::async_trait]
impl crate::payments::submit::PayeeCheck for Broker {
    async fn still_payable(
        &self,
        client_id: &str,
        request: &PaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        still_payable(self, client_id, request, now).await
    }
}

/// What a verification of payee came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The payee's bank answered (or no bank could: `not_possible`).
    Answered(Outcome),
    /// The platform asked more than its verifications per minute: no bank was asked.
    Throttled,
}

/// Verification of payee for `client_id` (`POST /v1/payee-verifications`, and a payment to a
/// typed account at PAR): counted per platform and minute against
/// `Broker::verifications_per_minute` before any bank is asked (every instance counts against
/// one limit), then asked of the bank that answers for the IBAN (`not_possible` when none
/// does or it fails). Every answer and every throttled request is audited
/// (`payee_verified`: the account masked, the result) before it is returned.
pub async fn verify(
    broker: &Broker,
    client_id: &str,
    valid: &ValidVerification,
    request_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Verified, Error> {
    let mut event = Event::new(Action::PayeeVerified, client_id, Decision::Allow);
    event.platform = Some(client_id.to_owned());
    event.categories = vec![VERIFICATION_CATEGORY.to_owned()];
    event.request_id = request_id;
    let counted = broker
        .verification_counts
        .count_verification(
            client_id,
            Throttle::window(now),
            broker.verifications_per_minute,
        )
        .await?;
    if !counted {
        event.decision = Decision::Deny;
        event.reason = Some("payee-verification-throttled".into());
        event.fields = valid.facts(None);
        broker
            .auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)?;
        return Ok(Verified::Throttled);
    }
    let outcome = match verification::bank_for(&broker.banks, &valid.iban) {
        None => {
            event.reason = Some("no bank answers for this account".into());
            Outcome::NotPossible
        }
        Some(adapter) => {
            event.bank = Some(adapter.bank.id().to_owned());
            match verification::ask(&adapter, valid).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(
                        bank = adapter.bank.id(),
                        kind = error.root().kind(),
                        "verification of payee failed at the bank"
                    );
                    event.reason = Some(format!("bank failed: {}", error.root().kind()));
                    Outcome::NotPossible
                }
            }
        }
    };
    event.fields = valid.facts(Some(&outcome));
    event.n_records = 1;
    broker
        .auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    Ok(Verified::Answered(outcome))
}

/// A refused payment detail at PAR: `invalid_authorization_details`, `slug: message`.
pub(super) fn refused(slug: &str, message: impl std::fmt::Display) -> Error {
    Error::from(OAuthError::new(
        "invalid_authorization_details",
        format!("{slug}: {message}"),
    ))
}

pub(super) fn details_error(message: impl std::fmt::Display) -> Error {
    Error::from(OAuthError::new(
        "invalid_authorization_details",
        message.to_string(),
    ))
}
