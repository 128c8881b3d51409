//! The people of the audit log in PostgreSQL: their sealed pseudonym keys
//! ([`SubjectKeys`], `subject_keys`) and their erasure ([`Erasure`]): one statement deletes
//! the key and every operational record about one platform's user.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, query, query_one, query_opt};
use crate::audit::SubjectKeys;
use crate::crypto::Sealed;
use crate::lifecycle::erasure::{Erased, Erasure};
use crate::store::StoreError;

const SELECT_KEY: &str = "\
    SELECT platform, key_id, nonce, ciphertext FROM subject_keys \
    WHERE platform = $1 AND user_ref = $2";

const SELECT_KEYS_OF: &str = "\
    SELECT platform, key_id, nonce, ciphertext FROM subject_keys \
    WHERE user_ref = $1 ORDER BY platform";

/// Inserts unless present, then reads what is in force (one statement: the CTE's insert is not
/// visible to the outer SELECT, so the row found is the earlier one or, failing that, ours).
const INSERT_KEY: &str = "\
    WITH inserted AS ( \
        INSERT INTO subject_keys (platform, user_ref, key_id, nonce, ciphertext) \
        VALUES ($1, $2, $3, $4, $5) \
        ON CONFLICT (platform, user_ref) DO NOTHING \
        RETURNING platform, key_id, nonce, ciphertext) \
    SELECT platform, key_id, nonce, ciphertext FROM inserted \
    UNION ALL \
    SELECT platform, key_id, nonce, ciphertext FROM subject_keys \
    WHERE platform = $1 AND user_ref = $2 \
    LIMIT 1";

/// `$1` platform, `$2` user_ref. Data-modifying CTEs all see the snapshot before the
/// statement, so `gone` still lists the consents it deletes for the others.
const ERASE: &str = "\
    WITH gone AS ( \
        DELETE FROM consents WHERE client_id = $1 AND user_ref = $2 RETURNING id), \
    key AS ( \
        DELETE FROM subject_keys WHERE platform = $1 AND user_ref = $2 RETURNING 1), \
    grants AS ( \
        DELETE FROM bank_grants WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    refs AS ( \
        DELETE FROM account_refs WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    authorizations AS ( \
        DELETE FROM bank_authorizations WHERE consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    codes AS ( \
        DELETE FROM authorization_codes WHERE consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    refresh AS ( \
        DELETE FROM refresh_tokens WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    access AS ( \
        DELETE FROM access_tokens WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    counts AS ( \
        DELETE FROM access_counts WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    paid AS ( \
        DELETE FROM payments \
        WHERE (client_id = $1 AND user_ref = $2) OR consent_id IN (SELECT id FROM gone) \
        RETURNING id), \
    payment_keys AS ( \
        DELETE FROM payment_idempotency_keys WHERE payment_id IN (SELECT id FROM paid) \
        RETURNING 1), \
    subscriptions AS ( \
        DELETE FROM notify_subscriptions WHERE consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    jobs AS ( \
        DELETE FROM notify_jobs WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    accounts AS ( \
        DELETE FROM notify_accounts WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    seen AS ( \
        DELETE FROM notify_seen WHERE consent_id IN (SELECT id FROM gone) RETURNING 1), \
    deliveries AS ( \
        DELETE FROM webhook_deliveries WHERE consent_id IN (SELECT id FROM gone) \
        RETURNING 1), \
    requests AS ( \
        DELETE FROM pushed_requests \
        WHERE client_id = $1 \
          AND jsonb_path_exists(request, 'strict $.** ? (@.user_ref == $u)', \
                                jsonb_build_object('u', $2::text)) \
        RETURNING 1) \
    SELECT (SELECT count(*) FROM key), (SELECT count(*) FROM gone), \
           (SELECT count(*) FROM grants), (SELECT count(*) FROM refs), \
           (SELECT count(*) FROM authorizations), (SELECT count(*) FROM codes), \
           (SELECT count(*) FROM refresh), (SELECT count(*) FROM access), \
           (SELECT count(*) FROM counts), (SELECT count(*) FROM paid), \
           (SELECT count(*) FROM subscriptions), \
           (SELECT count(*) FROM jobs) + (SELECT count(*) FROM accounts) \
               + (SELECT count(*) FROM seen), \
           (SELECT count(*) FROM deliveries), (SELECT count(*) FROM requests), \
           (SELECT count(*) FROM payment_keys)";

fn sealed(row: &Row) -> Result<(String, Sealed), StoreError> {
    Ok((
        column(row, "platform")?,
        Sealed {
            key_id: column(row, "key_id")?,
            nonce: column(row, "nonce")?,
            ciphertext: column(row, "ciphertext")?,
        },
    ))
}

/// Deletes the key and every operational record of `platform`'s `user_ref`.
pub async fn erase(
    db: &impl GenericClient,
    platform: &str,
    user_ref: &str,
) -> Result<Erased, StoreError> {
    let row = query_one(db, "erasure", ERASE, &[&platform, &user_ref]).await?;
    let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or_default();
    Ok(Erased {
        key: count(0) > 0,
        consents: count(1),
        grants: count(2),
        account_refs: count(3),
        bank_authorizations: count(4),
        codes: count(5),
        refresh_tokens: count(6),
        access_tokens: count(7),
        access_counts: count(8),
        payments: count(9),
        subscriptions: count(10),
        notify_state: count(11),
        webhook_deliveries: count(12),
        pushed_requests: count(13),
    })
}

#[async_trait]
impl SubjectKeys for super::PgStore {
    async fn subject_key(
        &self,
        platform: &str,
        user_ref: &str,
    ) -> Result<Option<Sealed>, StoreError> {
        let db = self.connection().await?;
        query_opt(&db, "subject key", SELECT_KEY, &[&platform, &user_ref])
            .await?
            .map(|row| sealed(&row).map(|(_, key)| key))
            .transpose()
    }

    async fn subject_keys_of(&self, user_ref: &str) -> Result<Vec<(String, Sealed)>, StoreError> {
        let db = self.connection().await?;
        query(&db, "subject key", SELECT_KEYS_OF, &[&user_ref])
            .await?
            .iter()
            .map(sealed)
            .collect()
    }

    async fn insert_subject_key(
        &self,
        platform: &str,
        user_ref: &str,
        key: &Sealed,
    ) -> Result<Sealed, StoreError> {
        let db = self.connection().await?;
        let row = query_opt(
            &db,
            "subject key",
            INSERT_KEY,
            &[
                &platform,
                &user_ref,
                &key.key_id,
                &key.nonce,
                &key.ciphertext,
            ],
        )
        .await?;
        if let Some(row) = row {
            return Ok(sealed(&row)?.1);
        }
        // Another instance's key committed after this statement's snapshot was taken: the
        // insert met it, the SELECT could not see it; a new statement does.
        query_opt(&db, "subject key", SELECT_KEY, &[&platform, &user_ref])
            .await?
            .map(|row| sealed(&row).map(|(_, key)| key))
            .transpose()?
            .ok_or(StoreError::Invariant(
                "a subject key conflicted but is not there",
            ))
    }
}

#[async_trait]
impl Erasure for super::PgStore {
    async fn erase_subject(&self, platform: &str, user_ref: &str) -> Result<Erased, StoreError> {
        erase(&self.connection().await?, platform, user_ref).await
    }
}
