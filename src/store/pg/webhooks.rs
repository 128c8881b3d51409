//! Webhook deliveries in PostgreSQL (migration V5): enqueued once per dedupe key, claimed under
//! a lease with SKIP LOCKED, and their log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, corrupt, execute, query, record};
use crate::lifecycle::Webhooks;
use crate::lifecycle::{DeliveryOutcome, DeliveryStatus, WebhookDelivery};
use crate::model::WireName;
use crate::store::StoreError;

const ENQUEUE_WEBHOOK: &str = "\
    INSERT INTO webhook_deliveries (id, client_id, event, consent_id, dedupe_key, url, payload, \
        status, attempts, next_attempt_at, last_error, created_at, delivered_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
    ON CONFLICT (dedupe_key) DO NOTHING";

/// A client's deliveries, newest first, with the columns `delivery_from_row` reads.
const DELIVERIES: &str = "\
    SELECT id, client_id, event, consent_id, dedupe_key, url, payload, status, attempts, \
           next_attempt_at, last_error, created_at, delivered_at \
    FROM webhook_deliveries WHERE client_id = $1 ORDER BY created_at DESC, id DESC";

/// Claims due deliveries; SKIP LOCKED lets several instances claim disjoint sets at once, and
/// the lease (`next_attempt_at` pushed forward) keeps a claimed row from being claimed again
/// while its worker sends it.
const CLAIM_WEBHOOKS: &str = "\
    UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
    WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
    RETURNING id, client_id, event, consent_id, dedupe_key, url, payload, status, attempts, \
              next_attempt_at, last_error, created_at, delivered_at";

const DELIVERED: &str = "\
    UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_error = NULL \
    WHERE id = $1";

const RETRY: &str = "\
    UPDATE webhook_deliveries SET next_attempt_at = $2, last_error = $3 WHERE id = $1";

const FAILED: &str = "\
    UPDATE webhook_deliveries SET status = 'failed', last_error = $2 WHERE id = $1";

/// Enqueues a delivery unless its dedupe key exists.
pub async fn enqueue_webhook(
    db: &impl GenericClient,
    delivery: &WebhookDelivery,
) -> Result<bool, StoreError> {
    let inserted = execute(
        db,
        "webhook delivery",
        ENQUEUE_WEBHOOK,
        &[
            &delivery.id,
            &delivery.client_id,
            &delivery.event,
            &delivery.consent_id,
            &delivery.dedupe_key,
            &delivery.url,
            &delivery.payload,
            &delivery.status.as_str(),
            &delivery.attempts,
            &delivery.next_attempt_at,
            &delivery.last_error,
            &delivery.created_at,
            &delivery.delivered_at,
        ],
    )
    .await?;
    Ok(inserted == 1)
}

/// Claims due deliveries (see [`CLAIM_WEBHOOKS`]).
pub async fn claim_webhooks(
    db: &impl GenericClient,
    now: DateTime<Utc>,
    limit: u32,
    lease_until: DateTime<Utc>,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let mut claimed = query(
        db,
        "webhook delivery",
        CLAIM_WEBHOOKS,
        &[&now, &i64::from(limit), &lease_until],
    )
    .await?
    .iter()
    .map(delivery_from_row)
    .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|delivery| delivery.created_at);
    Ok(claimed)
}

/// Records the outcome of an attempt.
pub async fn finish_webhook(
    db: &impl GenericClient,
    id: &str,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let what = "webhook delivery";
    let changed = match outcome {
        DeliveryOutcome::Delivered => execute(db, what, DELIVERED, &[&id, &now]).await?,
        DeliveryOutcome::Retry { at, error: reason } => {
            execute(db, what, RETRY, &[&id, at, reason]).await?
        }
        DeliveryOutcome::Failed { error: reason } => {
            execute(db, what, FAILED, &[&id, reason]).await?
        }
    };
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Invariant(
            "finishing an unknown webhook delivery",
        ))
    }
}

/// A client's deliveries, newest first.
pub async fn webhook_deliveries(
    db: &impl GenericClient,
    client_id: &str,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    query(db, "webhook delivery", DELIVERIES, &[&client_id])
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

fn delivery_from_row(row: &Row) -> Result<WebhookDelivery, StoreError> {
    let status: String = column(row, "status")?;
    Ok(record!(row, WebhookDelivery {
        id, client_id, event, consent_id, dedupe_key, url, payload, attempts, next_attempt_at,
        last_error, created_at, delivered_at;
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format_args!("webhook status {status:?}")))?,
    }))
}

#[async_trait]
impl Webhooks for super::PgStore {
    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        enqueue_webhook(&self.connection().await?, delivery).await
    }

    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        claim_webhooks(&self.connection().await?, now, limit, lease_until).await
    }

    async fn finish_webhook(
        &self,
        id: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        finish_webhook(&self.connection().await?, id, outcome, now).await
    }

    async fn webhook_deliveries(
        &self,
        client_id: &str,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        webhook_deliveries(&self.connection().await?, client_id).await
    }
}
