//! `payments::verification::VerificationCounts` on PostgreSQL: one row per platform and
//! minute, counted by a conditional upsert (its row lock keeps concurrent counts from passing
//! the limit across instances).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{execute, query_opt};
use crate::payments::verification::VerificationCounts;
use crate::store::StoreError;

const COUNT: &str = "\
    INSERT INTO payee_verification_counts AS counts (client_id, window_start, used) \
    SELECT $1, $2, 1 WHERE $3::integer > 0 \
    ON CONFLICT (client_id, window_start) DO UPDATE SET used = counts.used + 1 \
        WHERE counts.used < $3::integer \
    RETURNING used";

const FORGET: &str = "\
    DELETE FROM payee_verification_counts WHERE client_id = $1 AND window_start < $2";

#[async_trait]
impl VerificationCounts for super::PgStore {
    async fn count_verification(
        &self,
        client_id: &str,
        window: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let client = self.connection().await?;
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        execute(
            &client,
            "verification counts",
            FORGET,
            &[&client_id, &window],
        )
        .await?;
        let counted = query_opt(
            &client,
            "verification count",
            COUNT,
            &[&client_id, &window, &limit],
        )
        .await?;
        Ok(counted.is_some())
    }
}
