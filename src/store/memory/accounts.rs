//! The accounts each consent has seen, in memory.

use async_trait::async_trait;

use super::*;
use crate::adapters::AccountRefs;

#[async_trait]
impl AccountRefs for MemoryStore {
    async fn put_account_refs(
        &self,
        consent_id: &str,
        refs: &[AccountRef],
    ) -> Result<(), StoreError> {
        let mut account_refs = lock(&self.account_refs);
        for account in refs {
            // The first mapping recorded for an account id stays, as in PostgreSQL.
            account_refs
                .entry((consent_id.to_owned(), account.account_id.clone()))
                .or_insert_with(|| account.clone());
        }
        Ok(())
    }

    async fn account_ref(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountRef>, StoreError> {
        Ok(lock(&self.account_refs)
            .get(&(consent_id.to_owned(), account_id.to_owned()))
            .cloned())
    }
}
