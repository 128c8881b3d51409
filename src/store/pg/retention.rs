//! Retention of the operational tables in PostgreSQL ([`Retention`]): one statement deletes
//! every record the cutoffs say has served, a consent with everything kept for it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::query_one;
use crate::lifecycle::retention::{Cutoffs, Purged, Retention};
use crate::store::StoreError;

/// `$1` consents expired before, `$2` unauthorised consents created before, `$3` now,
/// `$4` codes expired before, `$5` refresh tokens revoked before, `$6` finished deliveries
/// enqueued before, `$7` access counts of days before. Data-modifying CTEs all see the
/// snapshot before the statement, so `ended` still lists the consents `gone` deletes.
const PURGE: &str = "\
    WITH gone AS ( \
        DELETE FROM consents AS c \
        WHERE (c.expires_at < $1 \
               OR (c.status IN ('awaiting_authorisation', 'rejected') AND c.created_at < $2)) \
          AND NOT EXISTS (SELECT 1 FROM payments AS p WHERE p.consent_id = c.id) \
        RETURNING c.id), \
    ended AS ( \
        SELECT c.id FROM consents AS c \
        WHERE c.status IN ('revoked', 'expired', 'rejected') \
          AND NOT EXISTS (SELECT 1 FROM payments AS p WHERE p.consent_id = c.id)), \
    refs AS ( \
        DELETE FROM account_refs WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    grants AS ( \
        DELETE FROM bank_grants \
        WHERE consent_id IN (SELECT id FROM ended) OR consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    requests AS ( \
        DELETE FROM pushed_requests WHERE expires_at < $3 RETURNING 1), \
    authorizations AS ( \
        DELETE FROM bank_authorizations \
        WHERE expires_at < $3 OR consent_id IN (SELECT id FROM gone) RETURNING 1), \
    codes AS ( \
        DELETE FROM authorization_codes \
        WHERE expires_at < $4 OR consent_id IN (SELECT id FROM gone) RETURNING 1), \
    refresh AS ( \
        DELETE FROM refresh_tokens \
        WHERE expires_at < $3 OR revoked_at < $5 OR consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    access AS ( \
        DELETE FROM access_tokens \
        WHERE expires_at < $3 OR consent_id IN (SELECT id FROM gone) RETURNING 1), \
    deliveries AS ( \
        DELETE FROM webhook_deliveries \
        WHERE status <> 'pending' AND created_at < $6 RETURNING 1), \
    counts AS ( \
        DELETE FROM access_counts \
        WHERE day < $7 OR consent_id IN (SELECT id FROM gone) RETURNING 1) \
    SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM grants), \
           (SELECT count(*) FROM refs), (SELECT count(*) FROM requests), \
           (SELECT count(*) FROM authorizations), (SELECT count(*) FROM codes), \
           (SELECT count(*) FROM refresh), (SELECT count(*) FROM access), \
           (SELECT count(*) FROM deliveries), (SELECT count(*) FROM counts)";

/// Deletes what has served (see [`crate::lifecycle::retention`]).
pub async fn purge(db: &impl GenericClient, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
    let row = query_one(
        db,
        "retention",
        PURGE,
        &[
            &cutoffs.consents_expired_before,
            &cutoffs.unauthorised_created_before,
            &cutoffs.now,
            &cutoffs.codes_expired_before,
            &cutoffs.refresh_revoked_before,
            &cutoffs.deliveries_created_before,
            &cutoffs.access_counts_before,
        ],
    )
    .await?;
    let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or_default();
    Ok(Purged {
        consents: count(0),
        grants: count(1),
        account_refs: count(2),
        pushed_requests: count(3),
        bank_authorizations: count(4),
        codes: count(5),
        refresh_tokens: count(6),
        access_tokens: count(7),
        deliveries: count(8),
        access_counts: count(9),
    })
}

#[async_trait]
impl Retention for super::PgStore {
    async fn purge_operational(&self, cutoffs: &Cutoffs) -> Result<Purged, StoreError> {
        purge(&self.connection().await?, cutoffs).await
    }
}
