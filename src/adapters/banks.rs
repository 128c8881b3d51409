//! The registered banks: every version of each bank's manifest ([`BankVersion`]) and their
//! storage ([`Banks`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store_error::StoreError;

/// One version of a bank's adapter manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankVersion {
    pub bank_id: String,
    /// 1 for the first registration, then +1 for each change.
    pub version: i32,
    /// The manifest as JSON.
    pub manifest: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Bank manifests, every version kept.
#[async_trait]
pub trait Banks: Send + Sync + 'static {
    /// Stores a new version of a bank's manifest unless it equals the active one; returns the
    /// active version.
    async fn put_bank(
        &self,
        bank_id: &str,
        manifest: &serde_json::Value,
    ) -> Result<BankVersion, StoreError>;
    /// The active (latest) version.
    async fn bank(&self, bank_id: &str) -> Result<Option<BankVersion>, StoreError>;
    /// The active version of every bank, by bank id.
    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError>;
    /// Every version of one bank's manifest, oldest first.
    async fn bank_versions(&self, bank_id: &str) -> Result<Vec<BankVersion>, StoreError>;
}
