//! Consents in memory: compare-and-set transitions and extension, listing, expiry once.

use async_trait::async_trait;

use super::*;
use crate::consent::Consents;

#[async_trait]
impl Consents for MemoryStore {
    async fn insert_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let consent = Consent {
            created_at: micros(consent.created_at),
            expires_at: micros(consent.expires_at),
            ..consent.clone()
        };
        insert_new(&self.consents, &consent.id.clone(), consent, "consent")
    }

    async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        Ok(lock(&self.consents).get(id).cloned())
    }

    async fn transition_consent(
        &self,
        id: &str,
        from: ConsentStatus,
        to: ConsentStatus,
    ) -> Result<bool, StoreError> {
        let mut consents = lock(&self.consents);
        match consents.get_mut(id) {
            Some(consent) if consent.status == from => {
                consent.status = to;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn extend_consent(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        policy_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut consents = lock(&self.consents);
        match consents.get_mut(id) {
            Some(consent)
                if consent.status == ConsentStatus::Authorised && consent.expires_at > now =>
            {
                consent.expires_at = micros(expires_at);
                consent.policy_hash = policy_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn consents_of(
        &self,
        client_id: &str,
        user_ref: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let mut consents: Vec<Consent> = lock(&self.consents)
            .values()
            .filter(|consent| consent.client_id == client_id && consent.user_ref == user_ref)
            .cloned()
            .collect();
        consents.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(consents)
    }

    async fn set_bank_person(&self, id: &str, bank_person: &str) -> Result<bool, StoreError> {
        if !lock(&self.consents).contains_key(id) {
            return Ok(false);
        }
        lock(&self.bank_persons).insert(id.to_owned(), bank_person.to_owned());
        Ok(true)
    }

    async fn consents_of_bank_person(
        &self,
        bank_id: &str,
        bank_person: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let ids: Vec<String> = lock(&self.bank_persons)
            .iter()
            .filter(|(_, person)| person.as_str() == bank_person)
            .map(|(id, _)| id.clone())
            .collect();
        let consents = lock(&self.consents);
        let mut found: Vec<Consent> = ids
            .iter()
            .filter_map(|id| consents.get(id))
            .filter(|consent| consent.bank_id == bank_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn expire_consents(&self, now: DateTime<Utc>) -> Result<Vec<Consent>, StoreError> {
        let mut expired = Vec::new();
        for consent in lock(&self.consents).values_mut() {
            if consent.status == ConsentStatus::Authorised && consent.expires_at < now {
                consent.status = ConsentStatus::Expired;
                expired.push(consent.clone());
            }
        }
        Ok(expired)
    }

    async fn consents_expiring(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Consent>, StoreError> {
        Ok(lock(&self.consents)
            .values()
            .filter(|consent| {
                consent.status == ConsentStatus::Authorised
                    && consent.expires_at >= from
                    && consent.expires_at < until
            })
            .cloned()
            .collect())
    }
}
