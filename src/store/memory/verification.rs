//! `payments::verification::VerificationCounts` in memory: the count of the current minute
//! per platform.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, lock};
use crate::payments::verification::VerificationCounts;
use crate::store::StoreError;

#[async_trait]
impl VerificationCounts for MemoryStore {
    async fn count_verification(
        &self,
        client_id: &str,
        window: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut counts = lock(&self.verification_counts);
        counts.retain(|(_, start), _| *start >= window);
        let used = counts.entry((client_id.to_owned(), window)).or_insert(0);
        if *used >= limit {
            return Ok(false);
        }
        *used += 1;
        Ok(true)
    }
}
