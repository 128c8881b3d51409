//! The bank leg's rows in PostgreSQL: pending bank authorizations (single use, keyed by
//! `state`) and the sealed bank grants of consents, replaced by compare-and-set on refresh.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::{column, execute, query_opt};
use crate::adapters::Grants;
use crate::adapters::{BankAuthorization, StoredGrant};
use crate::crypto::Sealed;
use crate::store::StoreError;

const INSERT_BANK_AUTHORIZATION: &str = "\
    INSERT INTO bank_authorizations \
        (state, consent_id, bank_id, pkce_key_id, pkce_nonce, pkce_ciphertext, \
         bank_consent_id, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const TAKE_BANK_AUTHORIZATION: &str = "\
    DELETE FROM bank_authorizations WHERE state = $1 \
    RETURNING state, consent_id, bank_id, pkce_key_id, pkce_nonce, pkce_ciphertext, \
              bank_consent_id, expires_at";

const PUT_GRANT: &str = "\
    INSERT INTO bank_grants (consent_id, key_id, nonce, ciphertext, updated_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (consent_id) DO UPDATE SET \
        key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, \
        ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at";

const GET_GRANT: &str = "\
    SELECT consent_id, key_id, nonce, ciphertext, updated_at \
    FROM bank_grants WHERE consent_id = $1";

/// Stores a pending bank authorization; `Conflict("bank authorization")` if its state exists.
pub async fn insert_bank_authorization(
    db: &impl GenericClient,
    authorization: &BankAuthorization,
) -> Result<(), StoreError> {
    let verifier = &authorization.pkce_verifier;
    execute(
        db,
        "bank authorization",
        INSERT_BANK_AUTHORIZATION,
        &[
            &authorization.state,
            &authorization.consent_id,
            &authorization.bank_id,
            &verifier.key_id,
            &verifier.nonce,
            &verifier.ciphertext,
            &authorization.bank_consent_id,
            &authorization.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// Removes and returns the pending authorization for `state`: a state works once.
pub async fn take_bank_authorization(
    db: &impl GenericClient,
    state: &str,
) -> Result<Option<BankAuthorization>, StoreError> {
    let Some(row) = query_opt(db, "bank authorization", TAKE_BANK_AUTHORIZATION, &[&state]).await?
    else {
        return Ok(None);
    };
    Ok(Some(BankAuthorization {
        state: column(&row, "state")?,
        consent_id: column(&row, "consent_id")?,
        bank_id: column(&row, "bank_id")?,
        pkce_verifier: Sealed {
            key_id: column(&row, "pkce_key_id")?,
            nonce: column(&row, "pkce_nonce")?,
            ciphertext: column(&row, "pkce_ciphertext")?,
        },
        bank_consent_id: column(&row, "bank_consent_id")?,
        expires_at: column(&row, "expires_at")?,
    }))
}

/// Inserts or replaces the sealed bank grant of a consent.
pub async fn put_grant(db: &impl GenericClient, grant: &StoredGrant) -> Result<(), StoreError> {
    execute(
        db,
        "bank grant",
        PUT_GRANT,
        &[
            &grant.consent_id,
            &grant.sealed.key_id,
            &grant.sealed.nonce,
            &grant.sealed.ciphertext,
            &grant.updated_at,
        ],
    )
    .await?;
    Ok(())
}

/// The sealed bank grant of `consent_id`.
pub async fn grant(
    db: &impl GenericClient,
    consent_id: &str,
) -> Result<Option<StoredGrant>, StoreError> {
    let Some(row) = query_opt(db, "bank grant", GET_GRANT, &[&consent_id]).await? else {
        return Ok(None);
    };
    Ok(Some(StoredGrant {
        consent_id: column(&row, "consent_id")?,
        sealed: Sealed {
            key_id: column(&row, "key_id")?,
            nonce: column(&row, "nonce")?,
            ciphertext: column(&row, "ciphertext")?,
        },
        updated_at: column(&row, "updated_at")?,
    }))
}

const REPLACE_GRANT: &str = "\
    UPDATE bank_grants SET key_id = $2, nonce = $3, ciphertext = $4, updated_at = $5 \
    WHERE consent_id = $1 AND updated_at = $6";

/// Replaces a sealed grant if its `updated_at` is still the expected one.
pub async fn replace_grant(
    db: &impl GenericClient,
    expected: &StoredGrant,
    grant: &StoredGrant,
) -> Result<bool, StoreError> {
    let changed = execute(
        db,
        "bank grant",
        REPLACE_GRANT,
        &[
            &grant.consent_id,
            &grant.sealed.key_id,
            &grant.sealed.nonce,
            &grant.sealed.ciphertext,
            &grant.updated_at,
            &expected.updated_at,
        ],
    )
    .await?;
    Ok(changed == 1)
}

#[async_trait]
impl Grants for super::PgStore {
    async fn insert_bank_authorization(
        &self,
        authorization: &BankAuthorization,
    ) -> Result<(), StoreError> {
        insert_bank_authorization(&self.connection().await?, authorization).await
    }

    async fn take_bank_authorization(
        &self,
        state: &str,
    ) -> Result<Option<BankAuthorization>, StoreError> {
        take_bank_authorization(&self.connection().await?, state).await
    }

    async fn put_grant(&self, grant: &StoredGrant) -> Result<(), StoreError> {
        put_grant(&self.connection().await?, grant).await
    }

    async fn grant(&self, consent_id: &str) -> Result<Option<StoredGrant>, StoreError> {
        grant(&self.connection().await?, consent_id).await
    }

    async fn replace_grant(
        &self,
        expected: &StoredGrant,
        grant: &StoredGrant,
    ) -> Result<bool, StoreError> {
        replace_grant(&self.connection().await?, expected, grant).await
    }
}
