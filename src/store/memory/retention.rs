//! Retention of the operational records in memory ([`Retention`]), as the PostgreSQL store
//! does it.

use std::collections::HashSet;

use async_trait::async_trait;

use super::*;
use crate::lifecycle::retention::{Cutoffs, Purged, Retention};

/// Removes the entries `keep` refuses: how many.
fn retain_counted<K, V>(map: &mut HashMap<K, V>, mut keep: impl FnMut(&V) -> bool) -> u64 {
    let before = map.len();
    map.retain(|_, value| keep(value));
    u64::try_from(before - map.len()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Retention for MemoryStore {
    async fn purge_operational(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        // The consents that go and those that ended, decided first (payment consents stay).
        let (gone, ended) = {
            let payments = lock(&self.payments);
            let mut consents = lock(&self.consents);
            let mut gone = HashSet::new();
            let mut ended = HashSet::new();
            for consent in consents.values() {
                if payments.holds_consent(&consent.id) {
                    continue;
                }
                let unauthorised = matches!(
                    consent.status,
                    ConsentStatus::AwaitingAuthorisation | ConsentStatus::Rejected
                );
                if consent.expires_at < cutoffs.consents_expired_before
                    || (unauthorised && consent.created_at < cutoffs.unauthorised_created_before)
                {
                    gone.insert(consent.id.clone());
                }
                if matches!(
                    consent.status,
                    ConsentStatus::Revoked | ConsentStatus::Expired | ConsentStatus::Rejected
                ) {
                    ended.insert(consent.id.clone());
                }
            }
            purged.consents = retain_counted(&mut consents, |consent| !gone.contains(&consent.id));
            (gone, ended)
        };
        lock(&self.bank_persons).retain(|consent_id, _| !gone.contains(consent_id));
        purged.grants = retain_counted(&mut lock(&self.grants), |grant| {
            !ended.contains(&grant.consent_id) && !gone.contains(&grant.consent_id)
        });
        {
            let mut refs = lock(&self.account_refs);
            let before = refs.len();
            refs.retain(|(consent_id, _), _| !gone.contains(consent_id));
            purged.account_refs = u64::try_from(before - refs.len()).unwrap_or(u64::MAX);
        }
        // A handle goes with its consent, as PostgreSQL's `ON DELETE CASCADE` does.
        lock(&self.payees).retain(|_, entry| !gone.contains(&entry.consent_id));
        purged.pushed_requests = retain_counted(&mut lock(&self.pushed_requests), |request| {
            request.expires_at >= cutoffs.now
        });
        purged.bank_authorizations =
            retain_counted(&mut lock(&self.bank_authorizations), |authorization| {
                authorization.expires_at >= cutoffs.now && !gone.contains(&authorization.consent_id)
            });
        purged.codes = retain_counted(&mut lock(&self.codes), |(code, _)| {
            code.expires_at >= cutoffs.codes_expired_before && !gone.contains(&code.consent_id)
        });
        purged.refresh_tokens = retain_counted(&mut lock(&self.refresh_tokens), |token| {
            token.expires_at >= cutoffs.now
                && token
                    .revoked_at
                    .is_none_or(|revoked| revoked >= cutoffs.refresh_revoked_before)
                && !gone.contains(&token.consent_id)
        });
        purged.access_tokens = retain_counted(&mut lock(&self.access_tokens), |(token, _)| {
            token.expires_at >= cutoffs.now
                && token
                    .consent_id
                    .as_ref()
                    .is_none_or(|consent_id| !gone.contains(consent_id))
        });
        {
            let mut deliveries = lock(&self.webhooks);
            let before = deliveries.len();
            deliveries.retain(|delivery| {
                delivery.status == DeliveryStatus::Pending
                    || delivery.created_at >= cutoffs.deliveries_created_before
            });
            purged.deliveries = u64::try_from(before - deliveries.len()).unwrap_or(u64::MAX);
        }
        {
            let mut counts = lock(&self.access_counts);
            let before = counts.len();
            counts.retain(|(consent_id, day), _| {
                *day >= cutoffs.access_counts_before && !gone.contains(consent_id)
            });
            purged.access_counts = u64::try_from(before - counts.len()).unwrap_or(u64::MAX);
        }
        Ok(purged)
    }
}
