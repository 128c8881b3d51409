//! The people of the audit log in memory: their sealed pseudonym keys ([`SubjectKeys`]) and
//! their erasure ([`Erasure`]), as the PostgreSQL store does them.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::audit::SubjectKeys;
use crate::crypto::Sealed;
use crate::lifecycle::erasure::{Erased, Erasure, names_user_ref};
use crate::store::StoreError;

/// How many entries went from `before` to `after`.
fn removed(before: usize, after: usize) -> u64 {
    u64::try_from(before - after).unwrap_or(u64::MAX)
}

/// Removes the entries of `map` that `keep` refuses: how many.
fn retain<K: Eq + Hash, V>(map: &mut HashMap<K, V>, keep: impl FnMut(&K, &mut V) -> bool) -> u64 {
    let before = map.len();
    map.retain(keep);
    removed(before, map.len())
}

#[async_trait]
impl SubjectKeys for MemoryStore {
    async fn subject_key(
        &self,
        platform: &str,
        user_ref: &str,
    ) -> Result<Option<Sealed>, StoreError> {
        Ok(lock(&self.subject_keys)
            .get(&(platform.to_owned(), user_ref.to_owned()))
            .cloned())
    }

    async fn subject_keys_of(&self, user_ref: &str) -> Result<Vec<(String, Sealed)>, StoreError> {
        let mut keys: Vec<(String, Sealed)> = lock(&self.subject_keys)
            .iter()
            .filter(|((_, of), _)| of == user_ref)
            .map(|((platform, _), key)| (platform.clone(), key.clone()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }

    async fn insert_subject_key(
        &self,
        platform: &str,
        user_ref: &str,
        key: &Sealed,
    ) -> Result<Sealed, StoreError> {
        Ok(lock(&self.subject_keys)
            .entry((platform.to_owned(), user_ref.to_owned()))
            .or_insert_with(|| key.clone())
            .clone())
    }
}

#[async_trait]
impl Erasure for MemoryStore {
    async fn erase_subject(&self, platform: &str, user_ref: &str) -> Result<Erased, StoreError> {
        let mut erased = Erased {
            key: lock(&self.subject_keys)
                .remove(&(platform.to_owned(), user_ref.to_owned()))
                .is_some(),
            ..Erased::default()
        };
        let gone: HashSet<String> = {
            let mut consents = lock(&self.consents);
            let gone: HashSet<String> = consents
                .values()
                .filter(|consent| consent.client_id == platform && consent.user_ref == user_ref)
                .map(|consent| consent.id.clone())
                .collect();
            consents.retain(|id, _| !gone.contains(id));
            gone
        };
        erased.consents = u64::try_from(gone.len()).unwrap_or(u64::MAX);
        erased.grants = retain(&mut lock(&self.grants), |_, grant| {
            !gone.contains(&grant.consent_id)
        });
        erased.account_refs = retain(&mut lock(&self.account_refs), |(consent_id, _), _| {
            !gone.contains(consent_id)
        });
        erased.bank_authorizations =
            retain(&mut lock(&self.bank_authorizations), |_, authorization| {
                !gone.contains(&authorization.consent_id)
            });
        erased.codes = retain(&mut lock(&self.codes), |_, (code, _)| {
            !gone.contains(&code.consent_id)
        });
        erased.refresh_tokens = retain(&mut lock(&self.refresh_tokens), |_, token| {
            !gone.contains(&token.consent_id)
        });
        erased.access_tokens = retain(&mut lock(&self.access_tokens), |_, (token, _)| {
            token
                .consent_id
                .as_ref()
                .is_none_or(|consent_id| !gone.contains(consent_id))
        });
        erased.access_counts = retain(&mut lock(&self.access_counts), |(consent_id, _), _| {
            !gone.contains(consent_id)
        });
        // Payee handles go with their consent (in PostgreSQL by ON DELETE CASCADE).
        lock(&self.payees).retain(|_, entry| !gone.contains(&entry.consent_id));
        erased.payments = lock(&self.payments).erase(platform, user_ref, &gone);
        (erased.subscriptions, erased.notify_state) = lock(&self.notify).erase(&gone);
        {
            let mut deliveries = lock(&self.webhooks);
            let before = deliveries.len();
            deliveries.retain(|delivery| !gone.contains(&delivery.consent_id));
            erased.webhook_deliveries = removed(before, deliveries.len());
        }
        erased.pushed_requests = retain(&mut lock(&self.pushed_requests), |_, request| {
            request.client_id != platform || !names_user_ref(&request.request, user_ref)
        });
        Ok(erased)
    }
}
