//! FAPI rows in PostgreSQL (migration V5): the `jti` replay cache, refresh tokens, issued access
//! tokens, the compare-and-set of refreshed bank grants, and webhook deliveries.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, corrupt, sql_error};
use crate::store::{
    DeliveryOutcome, DeliveryStatus, IssuedToken, RefreshToken, StoreError, StoredGrant,
    WebhookDelivery,
};

/// Inserts the `jti`, or takes over an expired entry; returns a row only when the `jti` is new
/// (or its previous use has expired). One statement, so two instances cannot both win.
const REMEMBER_JTI: &str = "\
    INSERT INTO seen_jtis (scope, jti, expires_at) VALUES ($1, $2, $3) \
    ON CONFLICT (scope, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
        WHERE seen_jtis.expires_at < now() \
    RETURNING jti";

const PURGE_JTIS: &str = "DELETE FROM seen_jtis WHERE expires_at < $1";
const PURGE_ACCESS_TOKENS: &str = "DELETE FROM access_tokens WHERE expires_at < $1";

const INSERT_REFRESH_TOKEN: &str = "\
    INSERT INTO refresh_tokens (token_hash, client_id, consent_id, created_at, expires_at, \
                                revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6)";

const GET_REFRESH_TOKEN: &str = "\
    SELECT token_hash, client_id, consent_id, created_at, expires_at, revoked_at \
    FROM refresh_tokens WHERE token_hash = $1";

const INSERT_ACCESS_TOKEN: &str = "\
    INSERT INTO access_tokens (jti, client_id, consent_id, expires_at) VALUES ($1, $2, $3, $4)";

const REVOKE_ACCESS_TOKEN: &str = "\
    UPDATE access_tokens SET revoked_at = now() WHERE jti = $1 AND revoked_at IS NULL";

const REVOKE_CONSENT_ACCESS_TOKENS: &str = "\
    UPDATE access_tokens SET revoked_at = now() WHERE consent_id = $1 AND revoked_at IS NULL";

const REVOKE_CONSENT_REFRESH_TOKENS: &str = "\
    UPDATE refresh_tokens SET revoked_at = now() WHERE consent_id = $1 AND revoked_at IS NULL";

const REPLACE_GRANT: &str = "\
    UPDATE bank_grants SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = $5 \
    WHERE consent_id = $1 AND updated_at = $6";

const ENQUEUE_WEBHOOK: &str = "\
    INSERT INTO webhook_deliveries (id, client_id, event, consent_id, dedupe_key, url, payload, \
        status, attempts, next_attempt_at, last_error, created_at, delivered_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
    ON CONFLICT (dedupe_key) DO NOTHING";

const DELIVERY_COLUMNS: &str = "id, client_id, event, consent_id, dedupe_key, url, payload, \
    status, attempts, next_attempt_at, last_error, created_at, delivered_at";

/// Claims due deliveries; SKIP LOCKED lets several instances claim disjoint sets at once, and
/// the lease (`next_attempt_at` pushed forward) keeps a claimed row from being claimed again
/// while its worker sends it.
const CLAIM_WEBHOOKS: &str = "\
    UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
    WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
    RETURNING id, client_id, event, consent_id, dedupe_key, url, payload, status, attempts, \
              next_attempt_at, last_error, created_at, delivered_at";

const DELIVERED: &str = "\
    UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, last_error = NULL \
    WHERE id = $1";

const RETRY: &str = "\
    UPDATE webhook_deliveries SET next_attempt_at = $2, last_error = $3 WHERE id = $1";

const FAILED: &str = "\
    UPDATE webhook_deliveries SET status = 'failed', last_error = $2 WHERE id = $1";

/// Remembers `jti` in `scope`; `false` on a replay.
pub async fn remember_jti(
    db: &impl GenericClient,
    scope: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let error = sql_error("jti");
    let statement = db.prepare_cached(REMEMBER_JTI).await.map_err(&error)?;
    let row = db
        .query_opt(&statement, &[&scope, &jti, &expires_at])
        .await
        .map_err(&error)?;
    Ok(row.is_some())
}

/// Deletes expired `jti`s and access-token records.
pub async fn purge_expired(db: &impl GenericClient, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let error = sql_error("purge");
    let mut purged = 0;
    for sql in [PURGE_JTIS, PURGE_ACCESS_TOKENS] {
        let statement = db.prepare_cached(sql).await.map_err(&error)?;
        purged += db.execute(&statement, &[&now]).await.map_err(&error)?;
    }
    Ok(purged)
}

/// Stores a refresh token by its hash.
pub async fn insert_refresh_token(
    db: &impl GenericClient,
    token: &RefreshToken,
) -> Result<(), StoreError> {
    let error = sql_error("refresh token");
    let statement = db
        .prepare_cached(INSERT_REFRESH_TOKEN)
        .await
        .map_err(&error)?;
    db.execute(
        &statement,
        &[
            &token.token_hash,
            &token.client_id,
            &token.consent_id,
            &token.created_at,
            &token.expires_at,
            &token.revoked_at,
        ],
    )
    .await
    .map_err(&error)?;
    Ok(())
}

/// The refresh token with this hash.
pub async fn refresh_token(
    db: &impl GenericClient,
    token_hash: &str,
) -> Result<Option<RefreshToken>, StoreError> {
    let error = sql_error("refresh token");
    let statement = db.prepare_cached(GET_REFRESH_TOKEN).await.map_err(&error)?;
    let Some(row) = db
        .query_opt(&statement, &[&token_hash])
        .await
        .map_err(&error)?
    else {
        return Ok(None);
    };
    Ok(Some(RefreshToken {
        token_hash: column(&row, "token_hash")?,
        client_id: column(&row, "client_id")?,
        consent_id: column(&row, "consent_id")?,
        created_at: column(&row, "created_at")?,
        expires_at: column(&row, "expires_at")?,
        revoked_at: column(&row, "revoked_at")?,
    }))
}

/// Records an issued access token.
pub async fn record_access_token(
    db: &impl GenericClient,
    token: &IssuedToken,
) -> Result<(), StoreError> {
    let error = sql_error("access token");
    let statement = db
        .prepare_cached(INSERT_ACCESS_TOKEN)
        .await
        .map_err(&error)?;
    db.execute(
        &statement,
        &[
            &token.jti,
            &token.client_id,
            &token.consent_id,
            &token.expires_at,
        ],
    )
    .await
    .map_err(&error)?;
    Ok(())
}

/// Revokes one access token.
pub async fn revoke_access_token(db: &impl GenericClient, jti: &str) -> Result<bool, StoreError> {
    let error = sql_error("access token");
    let statement = db
        .prepare_cached(REVOKE_ACCESS_TOKEN)
        .await
        .map_err(&error)?;
    Ok(db.execute(&statement, &[&jti]).await.map_err(&error)? == 1)
}

/// Revokes every token of a consent (run it in a transaction to make it all or nothing).
pub async fn revoke_consent_tokens(
    db: &impl GenericClient,
    consent_id: &str,
) -> Result<u64, StoreError> {
    let error = sql_error("token");
    let mut revoked = 0;
    for sql in [REVOKE_CONSENT_ACCESS_TOKENS, REVOKE_CONSENT_REFRESH_TOKENS] {
        let statement = db.prepare_cached(sql).await.map_err(&error)?;
        revoked += db
            .execute(&statement, &[&consent_id])
            .await
            .map_err(&error)?;
    }
    Ok(revoked)
}

/// Replaces a sealed grant if its `updated_at` is still the expected one.
pub async fn replace_grant(
    db: &impl GenericClient,
    expected: &StoredGrant,
    grant: &StoredGrant,
) -> Result<bool, StoreError> {
    let error = sql_error("bank grant");
    let statement = db.prepare_cached(REPLACE_GRANT).await.map_err(&error)?;
    let changed = db
        .execute(
            &statement,
            &[
                &grant.consent_id,
                &grant.sealed.key_id,
                &grant.sealed.nonce,
                &grant.sealed.ciphertext,
                &grant.updated_at,
                &expected.updated_at,
            ],
        )
        .await
        .map_err(&error)?;
    Ok(changed == 1)
}

/// Enqueues a delivery unless its dedupe key exists.
pub async fn enqueue_webhook(
    db: &impl GenericClient,
    delivery: &WebhookDelivery,
) -> Result<bool, StoreError> {
    let error = sql_error("webhook delivery");
    let statement = db.prepare_cached(ENQUEUE_WEBHOOK).await.map_err(&error)?;
    let inserted = db
        .execute(
            &statement,
            &[
                &delivery.id,
                &delivery.client_id,
                &delivery.event,
                &delivery.consent_id,
                &delivery.dedupe_key,
                &delivery.url,
                &delivery.payload,
                &delivery.status.as_str(),
                &delivery.attempts,
                &delivery.next_attempt_at,
                &delivery.last_error,
                &delivery.created_at,
                &delivery.delivered_at,
            ],
        )
        .await
        .map_err(&error)?;
    Ok(inserted == 1)
}

/// Claims due deliveries (see [`CLAIM_WEBHOOKS`]).
pub async fn claim_webhooks(
    db: &impl GenericClient,
    now: DateTime<Utc>,
    limit: u32,
    lease_until: DateTime<Utc>,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let error = sql_error("webhook delivery");
    let statement = db.prepare_cached(CLAIM_WEBHOOKS).await.map_err(&error)?;
    let mut claimed = db
        .query(&statement, &[&now, &i64::from(limit), &lease_until])
        .await
        .map_err(&error)?
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|delivery| delivery.created_at);
    Ok(claimed)
}

/// Records the outcome of an attempt.
pub async fn finish_webhook(
    db: &impl GenericClient,
    id: &str,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let error = sql_error("webhook delivery");
    let changed = match outcome {
        DeliveryOutcome::Delivered => {
            let statement = db.prepare_cached(DELIVERED).await.map_err(&error)?;
            db.execute(&statement, &[&id, &now]).await
        }
        DeliveryOutcome::Retry { at, error: reason } => {
            let statement = db.prepare_cached(RETRY).await.map_err(&error)?;
            db.execute(&statement, &[&id, at, reason]).await
        }
        DeliveryOutcome::Failed { error: reason } => {
            let statement = db.prepare_cached(FAILED).await.map_err(&error)?;
            db.execute(&statement, &[&id, reason]).await
        }
    }
    .map_err(&error)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Invariant(
            "finishing an unknown webhook delivery",
        ))
    }
}

/// A client's deliveries, newest first.
pub async fn webhook_deliveries(
    db: &impl GenericClient,
    client_id: &str,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let error = sql_error("webhook delivery");
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE client_id = $1 \
         ORDER BY created_at DESC, id DESC"
    );
    let statement = db.prepare_cached(&sql).await.map_err(&error)?;
    db.query(&statement, &[&client_id])
        .await
        .map_err(&error)?
        .iter()
        .map(delivery_from_row)
        .collect()
}

fn delivery_from_row(row: &Row) -> Result<WebhookDelivery, StoreError> {
    let status: String = column(row, "status")?;
    Ok(WebhookDelivery {
        id: column(row, "id")?,
        client_id: column(row, "client_id")?,
        event: column(row, "event")?,
        consent_id: column(row, "consent_id")?,
        dedupe_key: column(row, "dedupe_key")?,
        url: column(row, "url")?,
        payload: column(row, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format_args!("webhook status {status:?}")))?,
        attempts: column(row, "attempts")?,
        next_attempt_at: column(row, "next_attempt_at")?,
        last_error: column(row, "last_error")?,
        created_at: column(row, "created_at")?,
        delivered_at: column(row, "delivered_at")?,
    })
}
