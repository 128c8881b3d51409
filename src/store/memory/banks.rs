//! Bank manifests in memory: every version kept, a new one only when the manifest changed.

use async_trait::async_trait;

use super::*;
use crate::adapters::Banks;

#[async_trait]
impl Banks for MemoryStore {
    async fn put_bank(
        &self,
        bank_id: &str,
        manifest: &serde_json::Value,
    ) -> Result<BankVersion, StoreError> {
        let mut banks = lock(&self.banks);
        let versions = banks.entry(bank_id.to_owned()).or_default();
        let next = match versions.last() {
            Some(active) if active.manifest == *manifest => return Ok(active.clone()),
            Some(active) => active
                .version
                .checked_add(1)
                .ok_or(StoreError::Invariant("bank version overflows"))?,
            None => 1,
        };
        let version = BankVersion {
            bank_id: bank_id.to_owned(),
            version: next,
            manifest: manifest.clone(),
            created_at: micros(Utc::now()),
        };
        versions.push(version.clone());
        Ok(version)
    }

    async fn bank(&self, bank_id: &str) -> Result<Option<BankVersion>, StoreError> {
        Ok(lock(&self.banks)
            .get(bank_id)
            .and_then(|versions| versions.last())
            .cloned())
    }

    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError> {
        Ok(lock(&self.banks)
            .values()
            .filter_map(|versions| versions.last())
            .cloned()
            .collect())
    }

    async fn bank_versions(&self, bank_id: &str) -> Result<Vec<BankVersion>, StoreError> {
        Ok(lock(&self.banks).get(bank_id).cloned().unwrap_or_default())
    }
}
