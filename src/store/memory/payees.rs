//! `payments::payees::Payees` in memory: the directory by platform and handle; a handle's
//! consent is read from the consents under the same rules as PostgreSQL's join.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock, micros};
use crate::consent::ConsentStatus;
use crate::payments::payees::{Handle, PayeeEntry, Payees, Registered};
use crate::store::StoreError;

impl MemoryStore {
    /// Whether `consent_id` is authorised and not expired at `now`.
    fn consent_alive(&self, consent_id: &str, now: DateTime<Utc>) -> bool {
        lock(&self.consents).get(consent_id).is_some_and(|consent| {
            consent.status == ConsentStatus::Authorised && now < consent.expires_at
        })
    }
}

fn key(client_id: &str, handle: &Handle) -> (String, String) {
    (client_id.to_owned(), handle.as_str().to_owned())
}

#[async_trait]
impl Payees for MemoryStore {
    async fn put_payee(
        &self,
        entry: &PayeeEntry,
        now: DateTime<Utc>,
    ) -> Result<Registered, StoreError> {
        if !lock(&self.consents).contains_key(&entry.consent_id) {
            // As PostgreSQL's foreign key.
            return Err(StoreError::Conflict("payee consent"));
        }
        // One lock over the check and the write (the consents' lock is taken inside it, never
        // the other way round), so that two registrations cannot both find the handle free.
        let mut payees = lock(&self.payees);
        let slot = key(&entry.client_id, &entry.handle);
        if let Some(held) = payees.get_mut(&slot) {
            if held.consent_id == entry.consent_id {
                held.account_id.clone_from(&entry.account_id);
                return Ok(Registered::Updated);
            }
            if self.consent_alive(&held.consent_id, now) {
                return Ok(Registered::Taken);
            }
        }
        let mut stored = entry.clone();
        stored.created_at = micros(entry.created_at);
        payees.insert(slot, stored);
        Ok(Registered::Created)
    }

    async fn payee(
        &self,
        client_id: &str,
        handle: &Handle,
        now: DateTime<Utc>,
    ) -> Result<Option<PayeeEntry>, StoreError> {
        let slot = key(client_id, handle);
        let Some(entry) = lock(&self.payees).get(&slot).cloned() else {
            return Ok(None);
        };
        if self.consent_alive(&entry.consent_id, now) {
            return Ok(Some(entry));
        }
        let mut payees = lock(&self.payees);
        if payees
            .get(&slot)
            .is_some_and(|held| held.consent_id == entry.consent_id)
        {
            payees.remove(&slot);
        }
        Ok(None)
    }

    async fn payees_of(&self, consent_id: &str) -> Result<Vec<PayeeEntry>, StoreError> {
        let mut entries: Vec<PayeeEntry> = lock(&self.payees)
            .values()
            .filter(|entry| entry.consent_id == consent_id)
            .cloned()
            .collect();
        entries.sort_by(|a, b| a.handle.cmp(&b.handle));
        Ok(entries)
    }

    async fn delete_payee(
        &self,
        client_id: &str,
        handle: &Handle,
        consent_id: &str,
    ) -> Result<bool, StoreError> {
        let mut payees = lock(&self.payees);
        let slot = key(client_id, handle);
        if payees
            .get(&slot)
            .is_some_and(|held| held.consent_id == consent_id)
        {
            payees.remove(&slot);
            return Ok(true);
        }
        Ok(false)
    }
}
