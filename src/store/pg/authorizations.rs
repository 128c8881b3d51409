//! The authorization server's single-use rows in PostgreSQL: pushed requests (taken once) and
//! authorization codes (looked up, then redeemed once).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, execute, query_opt, record};
use crate::oauth::Authorizations;
use crate::oauth::{AuthorizationCode, PushedRequest, StoredCode};
use crate::store::StoreError;

const INSERT_PUSHED_REQUEST: &str = "\
    INSERT INTO pushed_requests (request_uri, client_id, request, expires_at) \
    VALUES ($1, $2, $3, $4)";

/// One statement: of two concurrent takes, one gets the row and the other nothing.
const TAKE_PUSHED_REQUEST: &str = "\
    DELETE FROM pushed_requests WHERE request_uri = $1 \
    RETURNING request_uri, client_id, request, expires_at";

const INSERT_CODE: &str = "\
    INSERT INTO authorization_codes \
        (code_hash, consent_id, client_id, redirect_uri, code_challenge, expires_at, dpop_jkt) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

const GET_CODE: &str = "\
    SELECT code_hash, consent_id, client_id, redirect_uri, code_challenge, expires_at, dpop_jkt, \
           used_at IS NOT NULL AS redeemed \
    FROM authorization_codes WHERE code_hash = $1";

/// Marks an unused code redeemed. Of concurrent updates, the later ones wait for the row lock
/// and then re-check `used_at IS NULL` against the row the first one committed (READ
/// COMMITTED re-evaluates the condition), so exactly one updates a row.
const REDEEM_CODE: &str = "\
    UPDATE authorization_codes SET used_at = now() \
    WHERE code_hash = $1 AND used_at IS NULL";

const RELEASE_CODE: &str = "\
    UPDATE authorization_codes SET used_at = NULL WHERE code_hash = $1";

/// Stores a pushed request; `Conflict("pushed request")` if its URI exists.
pub async fn insert_pushed_request(
    db: &impl GenericClient,
    request: &PushedRequest,
) -> Result<(), StoreError> {
    execute(
        db,
        "pushed request",
        INSERT_PUSHED_REQUEST,
        &[
            &request.request_uri,
            &request.client_id,
            &request.request,
            &request.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// Removes and returns the pushed request: a `request_uri` works once. Expiry is the
/// caller's check.
pub async fn take_pushed_request(
    db: &impl GenericClient,
    request_uri: &str,
) -> Result<Option<PushedRequest>, StoreError> {
    let Some(row) = query_opt(db, "pushed request", TAKE_PUSHED_REQUEST, &[&request_uri]).await?
    else {
        return Ok(None);
    };
    Ok(Some(PushedRequest {
        request_uri: column(&row, "request_uri")?,
        client_id: column(&row, "client_id")?,
        request: column(&row, "request")?,
        expires_at: column(&row, "expires_at")?,
    }))
}

/// Stores an authorization code by its hash; `Conflict("authorization code")` if it exists.
pub async fn insert_code(
    db: &impl GenericClient,
    code: &AuthorizationCode,
) -> Result<(), StoreError> {
    execute(
        db,
        "authorization code",
        INSERT_CODE,
        &[
            &code.code_hash,
            &code.consent_id,
            &code.client_id,
            &code.redirect_uri,
            &code.code_challenge,
            &code.expires_at,
            &code.dpop_jkt,
        ],
    )
    .await?;
    Ok(())
}

/// The code with `code_hash` and whether it was redeemed. Expiry is the caller's check.
pub async fn code(db: &impl GenericClient, code_hash: &str) -> Result<StoredCode, StoreError> {
    let Some(row) = query_opt(db, "authorization code", GET_CODE, &[&code_hash]).await? else {
        return Ok(StoredCode::Unknown);
    };
    let code = from_code_row(&row)?;
    Ok(if column::<bool>(&row, "redeemed")? {
        StoredCode::Redeemed(code)
    } else {
        StoredCode::Unused(code)
    })
}

/// Marks an unused code redeemed: `true` for exactly one caller, `false` when it was redeemed
/// already or is unknown.
pub async fn redeem_code(db: &impl GenericClient, code_hash: &str) -> Result<bool, StoreError> {
    let updated = execute(db, "authorization code", REDEEM_CODE, &[&code_hash]).await?;
    Ok(updated == 1)
}

/// Marks a redeemed code unused again (nothing was issued from it).
pub async fn release_code(db: &impl GenericClient, code_hash: &str) -> Result<(), StoreError> {
    execute(db, "authorization code", RELEASE_CODE, &[&code_hash]).await?;
    Ok(())
}

fn from_code_row(row: &Row) -> Result<AuthorizationCode, StoreError> {
    Ok(record!(row, AuthorizationCode {
        code_hash, consent_id, client_id, redirect_uri, code_challenge, expires_at, dpop_jkt;
    }))
}

#[async_trait]
impl Authorizations for super::PgStore {
    async fn insert_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        insert_pushed_request(&self.connection().await?, request).await
    }

    async fn take_pushed_request(
        &self,
        request_uri: &str,
    ) -> Result<Option<PushedRequest>, StoreError> {
        take_pushed_request(&self.connection().await?, request_uri).await
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        insert_code(&self.connection().await?, code).await
    }

    async fn code(&self, code_hash: &str) -> Result<StoredCode, StoreError> {
        code(&self.connection().await?, code_hash).await
    }

    async fn redeem_code(&self, code_hash: &str) -> Result<bool, StoreError> {
        redeem_code(&self.connection().await?, code_hash).await
    }

    async fn release_code(&self, code_hash: &str) -> Result<(), StoreError> {
        release_code(&self.connection().await?, code_hash).await
    }
}
