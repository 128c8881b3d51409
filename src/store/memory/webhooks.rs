//! Webhook deliveries in memory: deduplicated, leased, logged.

use async_trait::async_trait;

use super::*;
use crate::lifecycle::Webhooks;

#[async_trait]
impl Webhooks for MemoryStore {
    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let mut webhooks = lock(&self.webhooks);
        if webhooks
            .iter()
            .any(|existing| existing.dedupe_key == delivery.dedupe_key)
        {
            return Ok(false);
        }
        if webhooks.iter().any(|existing| existing.id == delivery.id) {
            return Err(StoreError::Conflict("webhook delivery"));
        }
        webhooks.push(WebhookDelivery {
            next_attempt_at: micros(delivery.next_attempt_at),
            created_at: micros(delivery.created_at),
            delivered_at: delivery.delivered_at.map(micros),
            ..delivery.clone()
        });
        Ok(true)
    }

    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut webhooks = lock(&self.webhooks);
        let mut due: Vec<&mut WebhookDelivery> = webhooks
            .iter_mut()
            .filter(|delivery| {
                delivery.status == DeliveryStatus::Pending && delivery.next_attempt_at <= now
            })
            .collect();
        due.sort_by_key(|delivery| delivery.next_attempt_at);
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|delivery| {
                delivery.attempts += 1;
                delivery.next_attempt_at = micros(lease_until);
                delivery.clone()
            })
            .collect())
    }

    async fn finish_webhook(
        &self,
        id: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut webhooks = lock(&self.webhooks);
        let delivery = webhooks
            .iter_mut()
            .find(|delivery| delivery.id == id)
            .ok_or(StoreError::Invariant(
                "finishing an unknown webhook delivery",
            ))?;
        match outcome {
            DeliveryOutcome::Delivered => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(micros(now));
                delivery.last_error = None;
            }
            DeliveryOutcome::Retry { at, error } => {
                delivery.next_attempt_at = micros(*at);
                delivery.last_error = Some(error.clone());
            }
            DeliveryOutcome::Failed { error } => {
                delivery.status = DeliveryStatus::Failed;
                delivery.last_error = Some(error.clone());
            }
        }
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        client_id: &str,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        Ok(lock(&self.webhooks)
            .iter()
            .rev()
            .filter(|delivery| delivery.client_id == client_id)
            .cloned()
            .collect())
    }
}
