//! The consent lifecycle after authorisation: revocation (by the platform, an operator or a
//! replayed authorization code), expiry, the 7-day expiry notice, and the maintenance task that
//! runs expiry, notices, webhook deliveries and replay-cache cleanup on every instance.
//!
//! Everything here is safe with several instances on one database: state changes are
//! compare-and-set (`transition_consent`, `expire_consents` … `RETURNING`), so exactly one
//! instance audits and notifies each change; webhook deliveries are deduplicated by key and
//! claimed with `SKIP LOCKED`.

pub mod erasure;
pub mod retention;
pub mod webhooks;

pub use webhooks::{DeliveryOutcome, DeliveryStatus, WebhookDelivery, Webhooks};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::bank_oauth::{self, BankGrant, BankTokens};
use crate::adapters::{Adapter, Grants, Registry};
use crate::audit::{Action, Auditor, Decision, Event};
use crate::consent::{Consent, ConsentStatus, Consents};
use crate::crypto::Sealer;
use crate::egress::Egress;
use crate::jose::keys::SigningKey;
use crate::model::WireName;
use crate::oauth::{Clients, Tokens};
use crate::payments::Payments;
use crate::store_error::StoreError;

/// How often the maintenance task runs.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// How long before expiry platforms get `consent.expiring`.
pub const EXPIRING_NOTICE_DAYS: i64 = 7;

/// What the lifecycle works with, each named: the stores it reads and changes, the auditor, the
/// banks and their tokens, the sealer of bank grants, and the key and issuer webhooks are signed
/// with. Plain values (shared handles), built from the gateway's state when needed.
#[derive(Clone)]
pub struct Lifecycle {
    pub consents: Arc<dyn Consents>,
    pub tokens: Arc<dyn Tokens>,
    pub grants: Arc<dyn Grants>,
    pub clients: Arc<dyn Clients>,
    pub webhooks: Arc<dyn Webhooks>,
    pub payments: Arc<dyn Payments>,
    pub auditor: Auditor,
    pub banks: Arc<Registry>,
    pub sealer: Arc<Sealer>,
    /// Bank tokens being refreshed (single-flight per consent on this instance).
    pub bank_tokens: Arc<BankTokens>,
    /// Signs webhook deliveries: the current access-token key, so platforms verify them with
    /// the keys they already trust.
    pub signing_key: Arc<SigningKey>,
    /// The gateway's issuer (`public_url`), the `iss` of every delivery.
    pub issuer: String,
}

/// Why a lifecycle step failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The audit log could not record a change: nothing further was done (fail closed).
    #[error("the audit log is unavailable")]
    AuditUnavailable(#[source] StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook delivery could not be signed.
    #[error("webhook signing failed: {0}")]
    Signing(String),
    /// The webhook HTTP client could not be built.
    #[error("webhook HTTP client: {0}")]
    HttpClient(String),
}

/// An event about a consent, with its platform, bank, user, purpose and policy.
pub fn consent_event(action: Action, actor: &str, consent: &Consent) -> Event {
    let mut event = Event::new(action, actor, Decision::Allow);
    event.platform = Some(consent.client_id.clone());
    event.bank = Some(consent.bank_id.clone());
    event.consent = Some(consent.id.clone());
    event.user_ref = Some(consent.user_ref.clone());
    event.purpose = Some(consent.purpose.clone());
    event.policy_hash = Some(consent.policy_hash.clone());
    event.categories = consent
        .scopes
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .collect();
    event
}

/// Revokes an authorised consent: status `revoked` (compare-and-set, so one caller wins), every
/// token issued under it revoked, `ConsentRevoked` audited, the platform's webhook enqueued, and
/// the bank grant ended at the bank (its tokens revoked when it offers RFC 7009 revocation, its
/// bank-side consent resource deleted where the standard has one; best effort: a bank that is
/// down does not keep the consent alive). Returns `false` if the consent was not authorised (already
/// revoked or expired; its tokens are revoked all the same).
///
/// Takes effect at the next request on every instance: the consent layer and the token checks
/// read the store on every request.
pub async fn revoke(
    lifecycle: &Lifecycle,
    consent: &Consent,
    actor: &str,
    reason: &str,
) -> Result<bool, LifecycleError> {
    revoke_inner(lifecycle, consent, actor, reason, true).await
}

/// [`revoke`] when the bank itself ended the consent: everything but calling the bank back.
pub async fn revoke_by_bank(
    lifecycle: &Lifecycle,
    consent: &Consent,
    actor: &str,
    reason: &str,
) -> Result<bool, LifecycleError> {
    revoke_inner(lifecycle, consent, actor, reason, false).await
}

async fn revoke_inner(
    lifecycle: &Lifecycle,
    consent: &Consent,
    actor: &str,
    reason: &str,
    end_at_bank: bool,
) -> Result<bool, LifecycleError> {
    let moved = lifecycle
        .consents
        .transition_consent(
            &consent.id,
            ConsentStatus::Authorised,
            ConsentStatus::Revoked,
        )
        .await?;
    lifecycle.tokens.revoke_consent_tokens(&consent.id).await?;
    if !moved {
        return Ok(false);
    }
    let mut event = consent_event(Action::ConsentRevoked, actor, consent);
    event.reason = Some(reason.to_owned());
    lifecycle
        .auditor
        .record(event)
        .await
        .map_err(LifecycleError::AuditUnavailable)?;
    let revoked = Consent {
        status: ConsentStatus::Revoked,
        ..consent.clone()
    };
    webhooks::enqueue(
        lifecycle,
        &revoked,
        webhooks::CONSENT_REVOKED,
        Some(reason),
        Utc::now(),
    )
    .await?;
    if end_at_bank {
        revoke_at_bank(lifecycle, consent).await;
    }
    Ok(true)
}

/// Ends the consent at the bank: revokes its bank tokens (RFC 7009) when the manifest names a
/// revocation endpoint, and ends the bank-side consent resource where the standard has one
/// (Berlin Group `DELETE /v1/consents/{id}`). Failures are logged, never raised: a bank that is
/// down does not keep bankgate's consent alive.
async fn revoke_at_bank(lifecycle: &Lifecycle, consent: &Consent) {
    let Some(adapter) = lifecycle.banks.get(&consent.bank_id) else {
        return;
    };
    let grant = match lifecycle.grants.grant(&consent.id).await {
        Ok(Some(stored)) => lifecycle
            .sealer
            .open(consent.id.as_bytes(), &stored.sealed)
            .ok()
            .and_then(|plaintext| serde_json::from_slice::<BankGrant>(&plaintext).ok()),
        _ => None,
    };
    let Some(grant) = grant else {
        tracing::warn!(consent = %consent.id, "no readable bank grant to revoke");
        return;
    };
    end_bank_grant(&adapter, &consent.id, &grant).await;
}

/// Revokes one bank grant at the bank: its tokens, then its bank-side consent resource.
/// Failures are logged, never raised.
pub(crate) async fn end_bank_grant(adapter: &Adapter, consent_id: &str, grant: &BankGrant) {
    let bank = &adapter.bank;
    if bank.manifest.oauth.revocation_endpoint.is_some()
        && let Err(error) = bank_oauth::revoke(bank, grant).await
    {
        tracing::warn!(bank = %bank.id(), consent = %consent_id, %error,
            "the bank grant could not be revoked at the bank");
    }
    if let Some(bank_consent_id) = &grant.bank_consent_id
        && let Err(error) = adapter.profile.revoke_consent(bank, bank_consent_id).await
    {
        tracing::warn!(bank = %bank.id(), consent = %consent_id, %error,
            "the bank-side consent could not be ended at the bank");
    }
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub expired: usize,
    pub expiring_notices: usize,
    pub deliveries: webhooks::DeliveryReport,
    pub purged: u64,
    /// Payments whose status the status job saw change.
    pub payments_changed: usize,
    /// Platforms' idempotency keys past their retention, forgotten.
    pub keys_purged: u64,
    /// Operational records past their retention, deleted.
    pub retention: retention::Purged,
}

/// Moves consents past their expiry to `expired`; audits `ConsentExpired` and enqueues
/// `consent.expired` for each, once across instances.
pub async fn expire_due(
    lifecycle: &Lifecycle,
    now: DateTime<Utc>,
) -> Result<usize, LifecycleError> {
    let expired = lifecycle.consents.expire_consents(now).await?;
    for consent in &expired {
        lifecycle.tokens.revoke_consent_tokens(&consent.id).await?;
        let mut event = consent_event(Action::ConsentExpired, "gateway", consent);
        event.reason = Some("the consent reached its expiry".into());
        lifecycle
            .auditor
            .record(event)
            .await
            .map_err(LifecycleError::AuditUnavailable)?;
        webhooks::enqueue(lifecycle, consent, webhooks::CONSENT_EXPIRED, None, now).await?;
    }
    Ok(expired.len())
}

/// Enqueues `consent.expiring` for authorised consents expiring within
/// [`EXPIRING_NOTICE_DAYS`]; each consent is notified once (deduplicated by key).
pub async fn notify_expiring(
    lifecycle: &Lifecycle,
    now: DateTime<Utc>,
) -> Result<usize, LifecycleError> {
    let until = now + chrono::Duration::days(EXPIRING_NOTICE_DAYS);
    let mut notices = 0;
    for consent in lifecycle.consents.consents_expiring(now, until).await? {
        if webhooks::enqueue(lifecycle, &consent, webhooks::CONSENT_EXPIRING, None, now).await? {
            notices += 1;
        }
    }
    Ok(notices)
}

/// How long a claimed payment stays hidden from other instances' status jobs.
pub const PAYMENT_LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// Payments one status job run claims.
const PAYMENT_BATCH: u32 = 32;

/// The status job: claims the payments whose look-up is due (`FOR UPDATE SKIP LOCKED`, so
/// every instance takes its own), asks each one's bank once (a payment in doubt is found, never
/// sent again), moves its status by compare-and-set (audited), and tells the platform with a
/// signed `payment.status_changed`. Returns how many changed.
pub async fn poll_payments(
    lifecycle: &Lifecycle,
    now: DateTime<Utc>,
) -> Result<usize, LifecycleError> {
    let due = lifecycle
        .payments
        .due_payments(now, now + PAYMENT_LEASE, PAYMENT_BATCH)
        .await?;
    let submitter = crate::payments::submit::Submitter {
        payments: lifecycle.payments.as_ref(),
        auditor: &lifecycle.auditor,
    };
    let mut changed = 0;
    for payment in due {
        let (Some(consent), Some(adapter)) = (
            lifecycle.consents.consent(&payment.consent_id).await?,
            lifecycle.banks.get(&payment.bank_id),
        ) else {
            continue;
        };
        let grant = lifecycle.grants.grant(&consent.id).await?;
        let bank_grant = match lifecycle.bank_tokens.current(adapter.clone(), grant).await {
            Ok(grant) => grant,
            Err(error) => {
                tracing::warn!(payment = %payment.id, %error, "no bank credentials for a status look-up");
                continue;
            }
        };
        let bank = crate::adapters::paying::Paying {
            adapter: &adapter,
            grant: bank_grant,
        };
        match submitter.poll(&payment, &consent, &bank, now).await {
            Ok(Some(next)) => {
                webhooks::enqueue_payment(lifecycle, &consent, &next, now).await?;
                changed += 1;
            }
            Ok(None) => {}
            Err(crate::payments::submit::SubmitError::Audit(error)) => {
                return Err(LifecycleError::AuditUnavailable(error));
            }
            Err(error) => {
                tracing::warn!(payment = %payment.id, %error, "payment status look-up failed")
            }
        }
    }
    Ok(changed)
}

/// The background work of one instance.
pub struct Maintenance {
    lifecycle: Lifecycle,
    /// Deletes the operational records that have served ([`retention`]).
    retention: Arc<dyn retention::Retention>,
    http: reqwest::Client,
}

impl Maintenance {
    /// Maintenance over `lifecycle`, delivering webhooks with its own HTTP client: no
    /// redirects, and connections only where `egress` (the platforms' policy: public addresses
    /// unless `allow_private_platform_hosts`) allows.
    pub fn new(
        lifecycle: Lifecycle,
        retention: Arc<dyn retention::Retention>,
        egress: &Egress,
    ) -> Result<Maintenance, LifecycleError> {
        let http = egress
            .client_builder()
            .timeout(webhooks::DELIVERY_TIMEOUT)
            .build()
            .map_err(|error| LifecycleError::HttpClient(error.to_string()))?;
        Ok(Maintenance {
            lifecycle,
            retention,
            http,
        })
    }

    /// One pass at `now`: expiry, expiry notices, payment statuses, due webhooks, replay-cache
    /// cleanup, and the retention of the operational records (after expiry, so that a consent
    /// expiring now ends before its grant is judged).
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Report, LifecycleError> {
        let lifecycle = &self.lifecycle;
        let payments_changed = poll_payments(lifecycle, now).await?;
        let keys_purged = lifecycle
            .payments
            .purge_keys(now - crate::payments::idempotency::KEY_RETENTION)
            .await?;
        Ok(Report {
            payments_changed,
            keys_purged,
            expired: expire_due(lifecycle, now).await?,
            expiring_notices: notify_expiring(lifecycle, now).await?,
            deliveries: webhooks::deliver_due(lifecycle, &self.http, now).await?,
            purged: lifecycle.tokens.purge_expired(now).await?,
            retention: self
                .retention
                .purge_operational(&retention::PERIODS.cutoffs(now))
                .await?,
        })
    }

    /// Runs [`Maintenance::run_once`] every `interval` until the process ends; failures are
    /// logged and retried at the next tick.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.run_once(Utc::now()).await {
                    Ok(report) if report != Report::default() => {
                        tracing::info!(?report, "maintenance");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "maintenance run failed"),
                }
            }
        })
    }
}
