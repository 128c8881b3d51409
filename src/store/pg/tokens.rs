//! The authorization server's token rows in PostgreSQL (migration V5): the `jti` replay cache,
//! refresh tokens by hash and issued access tokens, revocable early.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{column, execute, query_opt, sql_error};
use crate::oauth::Tokens;
use crate::oauth::{IssuedToken, RefreshToken};
use crate::store::StoreError;

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

/// Remembers `jti` in `scope`; `false` on a replay.
pub async fn remember_jti(
    db: &impl GenericClient,
    scope: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = query_opt(db, "jti", REMEMBER_JTI, &[&scope, &jti, &expires_at]).await?;
    Ok(row.is_some())
}

/// Deletes expired `jti`s and access-token records.
pub async fn purge_expired(db: &impl GenericClient, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut purged = 0;
    for sql in [PURGE_JTIS, PURGE_ACCESS_TOKENS] {
        purged += execute(db, "purge", sql, &[&now]).await?;
    }
    Ok(purged)
}

/// Stores a refresh token by its hash.
pub async fn insert_refresh_token(
    db: &impl GenericClient,
    token: &RefreshToken,
) -> Result<(), StoreError> {
    execute(
        db,
        "refresh token",
        INSERT_REFRESH_TOKEN,
        &[
            &token.token_hash,
            &token.client_id,
            &token.consent_id,
            &token.created_at,
            &token.expires_at,
            &token.revoked_at,
        ],
    )
    .await?;
    Ok(())
}

/// The refresh token with this hash.
pub async fn refresh_token(
    db: &impl GenericClient,
    token_hash: &str,
) -> Result<Option<RefreshToken>, StoreError> {
    let Some(row) = query_opt(db, "refresh token", GET_REFRESH_TOKEN, &[&token_hash]).await? else {
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
    execute(
        db,
        "access token",
        INSERT_ACCESS_TOKEN,
        &[
            &token.jti,
            &token.client_id,
            &token.consent_id,
            &token.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// Revokes one access token.
pub async fn revoke_access_token(db: &impl GenericClient, jti: &str) -> Result<bool, StoreError> {
    Ok(execute(db, "access token", REVOKE_ACCESS_TOKEN, &[&jti]).await? == 1)
}

/// Revokes every token of a consent (run it in a transaction to make it all or nothing).
pub async fn revoke_consent_tokens(
    db: &impl GenericClient,
    consent_id: &str,
) -> Result<u64, StoreError> {
    let mut revoked = 0;
    for sql in [REVOKE_CONSENT_ACCESS_TOKENS, REVOKE_CONSENT_REFRESH_TOKENS] {
        revoked += execute(db, "token", sql, &[&consent_id]).await?;
    }
    Ok(revoked)
}

#[async_trait]
impl Tokens for super::PgStore {
    async fn remember_jti(
        &self,
        scope: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        remember_jti(&self.connection().await?, scope, jti, expires_at).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        purge_expired(&self.connection().await?, now).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        insert_refresh_token(&self.connection().await?, token).await
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        refresh_token(&self.connection().await?, token_hash).await
    }

    async fn record_access_token(&self, token: &IssuedToken) -> Result<(), StoreError> {
        record_access_token(&self.connection().await?, token).await
    }

    async fn revoke_access_token(&self, jti: &str) -> Result<bool, StoreError> {
        revoke_access_token(&self.connection().await?, jti).await
    }

    async fn revoke_consent_tokens(&self, consent_id: &str) -> Result<u64, StoreError> {
        let mut client = self.connection().await?;
        let transaction = client.transaction().await.map_err(sql_error("token"))?;
        let revoked = revoke_consent_tokens(&transaction, consent_id).await?;
        transaction.commit().await.map_err(sql_error("token"))?;
        Ok(revoked)
    }
}
