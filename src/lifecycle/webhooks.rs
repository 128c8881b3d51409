//! Signed webhooks to platforms: `consent.revoked`, `consent.expired`, `consent.expiring`,
//! `payment.status_changed`, and the notifications of `notify` (`balance.changed`,
//! `transactions.created`: sent only while their consent is authorised; [`Lifecycle`] is the
//! notification engine's `Outbox`).
//!
//! Each delivery is a Security Event Token (RFC 8417) POSTed as the request body with
//! `Content-Type: application/secevent+jwt` (push delivery, RFC 8935). It is a JWS signed with
//! the gateway's current access-token key, so a platform verifies it with the keys it already
//! trusts (`/.well-known/jwks.json`):
//! 1. the header has `typ: secevent+jwt`, `alg: ES256` and a `kid` listed in the JWKS;
//! 2. the signature verifies with that key;
//! 3. `iss` is the gateway's issuer and `aud` the platform's own client id;
//! 4. `jti` (the delivery id) has not been processed before (retries reuse it).
//!
//! The event is `events["https://bankgate.dev/events/<type>"]` with the consent id, user
//! reference, status and, for revocations, the reason. A 2xx answer is a delivery; anything
//! else (or no answer within [`DELIVERY_TIMEOUT`]) is retried with exponential backoff
//! ([`backoff`]) up to [`MAX_ATTEMPTS`] times, then marked failed. Every attempt is kept in the
//! delivery log (`webhook_deliveries`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Lifecycle, LifecycleError};
use crate::consent::Consent;
use crate::model::WireName;
use crate::store_error::StoreError;
use crate::telemetry::metrics::WEBHOOK_FAILURES;

/// A consent was revoked (by the platform, an operator, the bank, or a replayed code).
pub const CONSENT_REVOKED: &str = "consent.revoked";
/// A consent reached its expiry.
pub const CONSENT_EXPIRED: &str = "consent.expired";
/// A consent expires within seven days.
pub const CONSENT_EXPIRING: &str = "consent.expiring";
/// A payment's status changed (the bank answered, or the status job saw it move).
pub const PAYMENT_STATUS_CHANGED: &str = "payment.status_changed";

/// The prefix of event type URIs in the SET's `events` claim.
pub const EVENT_URI_BASE: &str = "https://bankgate.dev/events/";

/// The JOSE `typ` of deliveries.
pub const SET_TYP: &str = "secevent+jwt";

/// The media type of delivery bodies.
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

/// How many attempts a delivery gets.
pub const MAX_ATTEMPTS: i32 = 8;

/// How long one attempt may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a claimed delivery stays hidden from other workers.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(60);

/// Deliveries one worker claims per run.
const BATCH: u32 = 32;

/// The delay before attempt `attempts + 1`: 30 s doubling, at most an hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(7);
    chrono::Duration::seconds((30_i64 << exponent).min(3600))
}

/// The claims of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub iss: String,
    /// The platform's client id.
    pub aud: String,
    pub iat: i64,
    /// The delivery id: the same on every retry.
    pub jti: String,
    /// The consent id, for correlation.
    pub txn: String,
    pub events: serde_json::Value,
}

/// Enqueues `event` about `consent` for its platform's webhook, if it registered one. Returns
/// whether a new delivery was stored (`false` if the platform has no webhook or this event was
/// already enqueued: each `(event, consent)` is delivered once).
pub async fn enqueue(
    lifecycle: &Lifecycle,
    consent: &Consent,
    event: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, LifecycleError> {
    let mut detail = json!({
        "consent_id": consent.id,
        "user_ref": consent.user_ref,
        "bank": consent.bank_id,
        "purpose": consent.purpose,
        "status": consent.status.as_str(),
        "expires_at": consent.expires_at,
    });
    if let Some(reason) = reason {
        detail["reason"] = json!(reason);
    }
    // One notice per consent and event; an extended consent gets a new expiry notice.
    let dedupe_key = if event == CONSENT_EXPIRING {
        format!("{event}:{}:{}", consent.id, consent.expires_at.timestamp())
    } else {
        format!("{event}:{}", consent.id)
    };
    enqueue_event(lifecycle, consent, event, detail, dedupe_key, now).await
}

/// Enqueues `payment.status_changed` for a payment whose status moved: its id, status (with
/// the bank's raw code and the rejection reason), amount and currency — never an account
/// number. Once per payment and status.
pub async fn enqueue_payment(
    lifecycle: &Lifecycle,
    consent: &Consent,
    payment: &crate::payments::Payment,
    now: DateTime<Utc>,
) -> Result<bool, LifecycleError> {
    let view = payment.view();
    let detail = json!({
        "payment_id": payment.id,
        "consent_id": consent.id,
        "user_ref": consent.user_ref,
        "bank": payment.bank_id,
        "status": view["status"],
        "bank_status": view["bank_status"],
        "rejection_reason": view["rejection_reason"],
        "instructed_amount": view["instructed_amount"],
    });
    let dedupe_key = format!(
        "{PAYMENT_STATUS_CHANGED}:{}:{}:{}",
        payment.id,
        view["status"].as_str().unwrap_or_default(),
        payment.submission.as_str()
    );
    enqueue_event(
        lifecycle,
        consent,
        PAYMENT_STATUS_CHANGED,
        detail,
        dedupe_key,
        now,
    )
    .await
}

/// Signs `event` with `detail` as a SET for the consent's platform and stores its delivery,
/// once per `dedupe_key`, if the platform registered a webhook.
async fn enqueue_event(
    lifecycle: &Lifecycle,
    consent: &Consent,
    event: &str,
    detail: serde_json::Value,
    dedupe_key: String,
    now: DateTime<Utc>,
) -> Result<bool, LifecycleError> {
    let Some(client) = lifecycle.clients.client(&consent.client_id).await? else {
        return Ok(false);
    };
    let Some(url) = client.webhook_url else {
        return Ok(false);
    };
    let id = uuid::Uuid::now_v7().to_string();
    let claims = SecurityEvent {
        iss: lifecycle.issuer.clone(),
        aud: consent.client_id.clone(),
        iat: now.timestamp(),
        jti: id.clone(),
        txn: consent.id.clone(),
        events: json!({ format!("{EVENT_URI_BASE}{event}"): detail }),
    };
    let key = &lifecycle.signing_key;
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(SET_TYP.to_owned());
    header.kid = Some(key.kid.clone());
    let payload = jsonwebtoken::encode(&header, &claims, &key.encoding)
        .map_err(|error| LifecycleError::Signing(error.to_string()))?;
    let delivery = WebhookDelivery {
        id,
        client_id: consent.client_id.clone(),
        event: event.to_owned(),
        consent_id: consent.id.clone(),
        dedupe_key,
        url,
        payload,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        delivered_at: None,
    };
    Ok(lifecycle.webhooks.enqueue_webhook(&delivery).await?)
}

#[async_trait]
impl crate::notify::Outbox for Lifecycle {
    async fn has_webhook(&self, client_id: &str) -> Result<bool, crate::notify::OutboxError> {
        Ok(self
            .clients
            .client(client_id)
            .await?
            .is_some_and(|client| client.webhook_url.is_some()))
    }

    async fn send(
        &self,
        consent: &Consent,
        event: &str,
        detail: serde_json::Value,
        dedupe_key: String,
        now: DateTime<Utc>,
    ) -> Result<bool, crate::notify::OutboxError> {
        enqueue_event(self, consent, event, detail, dedupe_key, now)
            .await
            .map_err(|error| match error {
                LifecycleError::Store(error) => crate::notify::OutboxError::Store(error),
                other => crate::notify::OutboxError::Sign(other.to_string()),
            })
    }
}

/// What one delivery run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    /// Notifications not sent: their consent was revoked or expired meanwhile.
    pub withdrawn: usize,
}

/// Claims the deliveries due at `now` and attempts each once.
pub async fn deliver_due(
    lifecycle: &Lifecycle,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> Result<DeliveryReport, LifecycleError> {
    let mut report = DeliveryReport::default();
    let claimed = lifecycle
        .webhooks
        .claim_webhooks(now, BATCH, now + LEASE)
        .await?;
    for delivery in claimed {
        // A notification leaves only while its consent is authorised: a revocation or expiry
        // stops the deliveries still queued at once.
        if crate::notify::EventType::is_notification(&delivery.event)
            && !lifecycle
                .consents
                .consent(&delivery.consent_id)
                .await?
                .is_some_and(|consent| {
                    consent.status == crate::consent::ConsentStatus::Authorised
                        && consent.expires_at > now
                })
        {
            report.withdrawn += 1;
            let outcome = DeliveryOutcome::Failed {
                error: "the consent is no longer authorised".into(),
            };
            lifecycle
                .webhooks
                .finish_webhook(&delivery.id, &outcome, now)
                .await?;
            continue;
        }
        let outcome = match attempt(http, &delivery).await {
            Ok(()) => {
                report.delivered += 1;
                DeliveryOutcome::Delivered
            }
            Err(error) if delivery.attempts >= MAX_ATTEMPTS => {
                report.failed += 1;
                metrics::counter!(WEBHOOK_FAILURES, "outcome" => "gave_up").increment(1);
                tracing::warn!(client = %delivery.client_id, event = %delivery.event, %error,
                    "webhook delivery failed for good");
                DeliveryOutcome::Failed { error }
            }
            Err(error) => {
                report.retried += 1;
                metrics::counter!(WEBHOOK_FAILURES, "outcome" => "retry").increment(1);
                DeliveryOutcome::Retry {
                    at: now + backoff(delivery.attempts),
                    error,
                }
            }
        };
        lifecycle
            .webhooks
            .finish_webhook(&delivery.id, &outcome, now)
            .await?;
    }
    Ok(report)
}

/// One POST; the error text names the status or the transport failure (never the body).
async fn attempt(http: &reqwest::Client, delivery: &WebhookDelivery) -> Result<(), String> {
    let response = http
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, SET_MEDIA_TYPE)
        .header(reqwest::header::ACCEPT, "application/json")
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|error| {
            if error.is_timeout() {
                "timed out".to_owned()
            } else {
                "could not connect".to_owned()
            }
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(4), chrono::Duration::seconds(240));
        assert_eq!(backoff(20), chrono::Duration::seconds(3600));
        assert_eq!(backoff(0), chrono::Duration::seconds(30));
    }
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl WireName for DeliveryStatus {}

/// One webhook delivery to a platform, and its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: String,
    pub client_id: String,
    /// `consent.revoked`, `consent.expired` or `consent.expiring`.
    pub event: String,
    pub consent_id: String,
    /// Enqueueing the same key twice stores one delivery (e.g. `consent.expiring:<id>`).
    pub dedupe_key: String,
    pub url: String,
    /// The signed Security Event Token that is POSTed.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Give up.
    Failed {
        error: String,
    },
}

/// Webhook deliveries: a queue with leases, and each client's delivery log.
#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Enqueues a delivery; `false` if one with its `dedupe_key` exists.
    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError>;
    /// Claims up to `limit` pending deliveries due at `now`: each is counted as attempted and
    /// hidden from other workers until `lease_until`.
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Records the outcome of an attempt.
    async fn finish_webhook(
        &self,
        id: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A client's deliveries, newest first (the delivery log).
    async fn webhook_deliveries(&self, client_id: &str)
    -> Result<Vec<WebhookDelivery>, StoreError>;
}
