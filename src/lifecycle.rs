//! The consent lifecycle after authorisation: revocation (by the platform, an operator or a
//! replayed authorization code), expiry, the 7-day expiry notice, and the maintenance task that
//! runs expiry, notices, webhook deliveries and replay-cache cleanup on every instance.
//!
//! Everything here is safe with several instances on one database: state changes are
//! compare-and-set (`transition_consent`, `expire_consents` … `RETURNING`), so exactly one
//! instance audits and notifies each change; webhook deliveries are deduplicated by key and
//! claimed with `SKIP LOCKED`.

pub mod webhooks;

pub use webhooks::{DeliveryOutcome, DeliveryStatus, WebhookDelivery, Webhooks};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapters::Adapter;
use crate::adapters::bank_oauth::{self, BankGrant};
use crate::app::App;
use crate::audit::{Action, Decision, Event};
use crate::consent::{Consent, ConsentStatus};
use crate::error::Error;

/// How often the maintenance task runs.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// How long before expiry platforms get `consent.expiring`.
pub const EXPIRING_NOTICE_DAYS: i64 = 7;

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
    app: &App,
    consent: &Consent,
    actor: &str,
    reason: &str,
) -> Result<bool, Error> {
    revoke_inner(app, consent, actor, reason, true).await
}

/// [`revoke`] when the bank itself ended the consent: everything but calling the bank back.
pub async fn revoke_by_bank(
    app: &App,
    consent: &Consent,
    actor: &str,
    reason: &str,
) -> Result<bool, Error> {
    revoke_inner(app, consent, actor, reason, false).await
}

async fn revoke_inner(
    app: &App,
    consent: &Consent,
    actor: &str,
    reason: &str,
    end_at_bank: bool,
) -> Result<bool, Error> {
    let moved = app
        .store
        .transition_consent(
            &consent.id,
            ConsentStatus::Authorised,
            ConsentStatus::Revoked,
        )
        .await?;
    app.store.revoke_consent_tokens(&consent.id).await?;
    if !moved {
        return Ok(false);
    }
    let mut event = consent_event(Action::ConsentRevoked, actor, consent);
    event.reason = Some(reason.to_owned());
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    let revoked = Consent {
        status: ConsentStatus::Revoked,
        ..consent.clone()
    };
    webhooks::enqueue(
        app,
        &revoked,
        webhooks::CONSENT_REVOKED,
        Some(reason),
        Utc::now(),
    )
    .await?;
    if end_at_bank {
        revoke_at_bank(app, consent).await;
    }
    Ok(true)
}

/// Ends the consent at the bank: revokes its bank tokens (RFC 7009) when the manifest names a
/// revocation endpoint, and ends the bank-side consent resource where the standard has one
/// (Berlin Group `DELETE /v1/consents/{id}`). Failures are logged, never raised: a bank that is
/// down does not keep bankgate's consent alive.
async fn revoke_at_bank(app: &App, consent: &Consent) {
    let Some(adapter) = app.banks.get(&consent.bank_id) else {
        return;
    };
    let grant = match app.store.grant(&consent.id).await {
        Ok(Some(stored)) => app
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
}

/// Moves consents past their expiry to `expired`; audits `ConsentExpired` and enqueues
/// `consent.expired` for each, once across instances.
pub async fn expire_due(app: &App, now: DateTime<Utc>) -> Result<usize, Error> {
    let expired = app.store.expire_consents(now).await?;
    for consent in &expired {
        app.store.revoke_consent_tokens(&consent.id).await?;
        let mut event = consent_event(Action::ConsentExpired, "gateway", consent);
        event.reason = Some("the consent reached its expiry".into());
        app.auditor
            .record(event)
            .await
            .map_err(Error::AuditUnavailable)?;
        webhooks::enqueue(app, consent, webhooks::CONSENT_EXPIRED, None, now).await?;
    }
    Ok(expired.len())
}

/// Enqueues `consent.expiring` for authorised consents expiring within
/// [`EXPIRING_NOTICE_DAYS`]; each consent is notified once (deduplicated by key).
pub async fn notify_expiring(app: &App, now: DateTime<Utc>) -> Result<usize, Error> {
    let until = now + chrono::Duration::days(EXPIRING_NOTICE_DAYS);
    let mut notices = 0;
    for consent in app.store.consents_expiring(now, until).await? {
        if webhooks::enqueue(app, &consent, webhooks::CONSENT_EXPIRING, None, now).await? {
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
pub async fn poll_payments(app: &App, now: DateTime<Utc>) -> Result<usize, Error> {
    let due = app
        .store
        .due_payments(now, now + PAYMENT_LEASE, PAYMENT_BATCH)
        .await?;
    let submitter = crate::payments::submit::Submitter {
        payments: app.store.as_ref(),
        auditor: &app.auditor,
    };
    let mut changed = 0;
    for payment in due {
        let (Some(consent), Some(adapter)) = (
            app.store.consent(&payment.consent_id).await?,
            app.banks.get(&payment.bank_id),
        ) else {
            continue;
        };
        let grant = app.store.grant(&consent.id).await?;
        let bank_grant = match app
            .bank_tokens
            .current(
                app.store.clone(),
                app.sealer.clone(),
                adapter.clone(),
                grant,
            )
            .await
        {
            Ok(grant) => grant,
            Err(error) => {
                tracing::warn!(payment = %payment.id, %error, "no bank credentials for a status look-up");
                continue;
            }
        };
        let bank = crate::adapters::paying::Paying {
            adapter: &adapter,
            access_token: bank_grant.access_token.clone(),
            bank_consent_id: bank_grant.bank_consent_id.clone(),
        };
        match submitter.poll(&payment, &consent, &bank, now).await {
            Ok(Some(next)) => {
                webhooks::enqueue_payment(app, &consent, &next, now).await?;
                changed += 1;
            }
            Ok(None) => {}
            Err(crate::payments::submit::SubmitError::Audit(error)) => {
                return Err(Error::AuditUnavailable(error));
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
    app: Arc<App>,
    http: reqwest::Client,
}

impl Maintenance {
    /// Maintenance for `app`, delivering webhooks with its own HTTP client: no redirects, and
    /// connections only where the platforms' egress policy allows (public addresses unless
    /// `allow_private_platform_hosts`).
    pub fn new(app: Arc<App>) -> Result<Maintenance, Error> {
        let http = crate::egress::Egress::new(app.config.allow_private_platform_hosts)
            .client_builder()
            .timeout(webhooks::DELIVERY_TIMEOUT)
            .build()
            .map_err(|error| Error::Internal(error.to_string()))?;
        Ok(Maintenance { app, http })
    }

    /// One pass at `now`: expiry, expiry notices, payment statuses, due webhooks, replay-cache
    /// cleanup.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Report, Error> {
        let payments_changed = poll_payments(&self.app, now).await?;
        let keys_purged = self
            .app
            .store
            .purge_keys(now - crate::payments::idempotency::KEY_RETENTION)
            .await?;
        Ok(Report {
            payments_changed,
            keys_purged,
            expired: expire_due(&self.app, now).await?,
            expiring_notices: notify_expiring(&self.app, now).await?,
            deliveries: webhooks::deliver_due(&self.app, &self.http, now).await?,
            purged: self.app.store.purge_expired(now).await?,
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
