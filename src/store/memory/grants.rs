//! Bank authorizations (taken once) and sealed bank grants (replaced by compare-and-set) in
//! memory.

use async_trait::async_trait;

use super::*;
use crate::adapters::Grants;

#[async_trait]
impl Grants for MemoryStore {
    async fn insert_bank_authorization(
        &self,
        authorization: &BankAuthorization,
    ) -> Result<(), StoreError> {
        let authorization = BankAuthorization {
            expires_at: micros(authorization.expires_at),
            ..authorization.clone()
        };
        insert_new(
            &self.bank_authorizations,
            &authorization.state.clone(),
            authorization,
            "bank authorization",
        )
    }

    async fn take_bank_authorization(
        &self,
        state: &str,
    ) -> Result<Option<BankAuthorization>, StoreError> {
        Ok(lock(&self.bank_authorizations).remove(state))
    }

    async fn put_grant(&self, grant: &StoredGrant) -> Result<(), StoreError> {
        let grant = StoredGrant {
            updated_at: micros(grant.updated_at),
            ..grant.clone()
        };
        lock(&self.grants).insert(grant.consent_id.clone(), grant);
        Ok(())
    }

    async fn grant(&self, consent_id: &str) -> Result<Option<StoredGrant>, StoreError> {
        Ok(lock(&self.grants).get(consent_id).cloned())
    }

    async fn replace_grant(
        &self,
        expected: &StoredGrant,
        grant: &StoredGrant,
    ) -> Result<bool, StoreError> {
        let mut grants = lock(&self.grants);
        match grants.get_mut(&grant.consent_id) {
            Some(current) if current.updated_at == micros(expected.updated_at) => {
                *current = StoredGrant {
                    updated_at: micros(grant.updated_at),
                    ..grant.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
