//! The people of the audit log in memory: their sealed pseudonym keys ([`SubjectKeys`]) and
//! their erasure ([`Erasure`]), as the PostgreSQL store does them.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::audit::SubjectKeys;
use crate::crypto::Sealed;
use crate::lifecycle::erasure::{Erased, Erasure, names_user_ref};
use crate::store::StoreError;

/// Removes the entries `keep` refuses: how many.
fn removed(before: usize, after: usize) -> u64 {
    u64::try_from(before - after).unwrap_or(u64::MAX)
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
        {
            let mut grants = lock(&self.grants);
            let before = grants.len();
            grants.retain(|_, grant| !gone.contains(&grant.consent_id));
            erased.grants = removed(before, grants.len());
        }
        {
            let mut refs = lock(&self.account_refs);
            let before = refs.len();
            refs.retain(|(consent_id, _), _| !gone.contains(consent_id));
            erased.account_refs = removed(before, refs.len());
        }
        {
            let mut authorizations = lock(&self.bank_authorizations);
            let before = authorizations.len();
            authorizations.retain(|_, authorization| !gone.contains(&authorization.consent_id));
            erased.bank_authorizations = removed(before, authorizations.len());
        }
        {
            let mut codes = lock(&self.codes);
            let before = codes.len();
            codes.retain(|_, (code, _)| !gone.contains(&code.consent_id));
            erased.codes = removed(before, codes.len());
        }
        {
            let mut tokens = lock(&self.refresh_tokens);
            let before = tokens.len();
            tokens.retain(|_, token| !gone.contains(&token.consent_id));
            erased.refresh_tokens = removed(before, tokens.len());
        }
        {
            let mut tokens = lock(&self.access_tokens);
            let before = tokens.len();
            tokens.retain(|_, (token, _)| {
                token
                    .consent_id
                    .as_ref()
                    .is_none_or(|consent_id| !gone.contains(consent_id))
            });
            erased.access_tokens = removed(before, tokens.len());
        }
        {
            let mut counts = lock(&self.access_counts);
            let before = counts.len();
            counts.retain(|(consent_id, _), _| !gone.contains(consent_id));
            erased.access_counts = removed(before, counts.len());
        }
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
        {
            let mut requests = lock(&self.pushed_requests);
            let before = requests.len();
            requests.retain(|_, request| {
                request.client_id != platform || !names_user_ref(&request.request, user_ref)
            });
            erased.pushed_requests = removed(before, requests.len());
        }
        Ok(erased)
    }
}
