//! Account references in PostgreSQL: the opaque account id a platform sees under a consent,
//! and the bank's own reference behind it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::storable;
use super::{column, execute, query_opt};
use crate::adapters::AccountRef;
use crate::adapters::AccountRefs;
use crate::store::StoreError;

/// One statement for the whole list. The first mapping recorded for an account id stays:
/// repeating it is a no-op, and a later, different `bank_ref` does not redirect the id.
const PUT: &str = "\
    INSERT INTO account_refs (consent_id, account_id, bank_ref) \
    SELECT $1, account_id, bank_ref FROM UNNEST($2::text[], $3::text[]) AS t(account_id, bank_ref) \
    ON CONFLICT (consent_id, account_id) DO NOTHING";

const GET: &str = "\
    SELECT account_id, bank_ref FROM account_refs WHERE consent_id = $1 AND account_id = $2";

/// Records (idempotently) the accounts `consent_id` has seen.
pub async fn put(
    db: &impl GenericClient,
    consent_id: &str,
    refs: &[AccountRef],
) -> Result<(), StoreError> {
    if refs.is_empty() {
        return Ok(());
    }
    let account_ids: Vec<&str> = refs.iter().map(|r| r.account_id.as_str()).collect();
    let bank_refs: Vec<&str> = refs.iter().map(|r| r.bank_ref.as_str()).collect();
    execute(
        db,
        "account ref",
        PUT,
        &[&consent_id, &account_ids, &bank_refs],
    )
    .await?;
    Ok(())
}

/// The reference behind `account_id` under `consent_id`.
pub async fn get(
    db: &impl GenericClient,
    consent_id: &str,
    account_id: &str,
) -> Result<Option<AccountRef>, StoreError> {
    let Some(row) = query_opt(db, "account ref", GET, &[&consent_id, &account_id]).await? else {
        return Ok(None);
    };
    Ok(Some(AccountRef {
        account_id: column(&row, "account_id")?,
        bank_ref: column(&row, "bank_ref")?,
    }))
}

#[async_trait]
impl AccountRefs for super::PgStore {
    async fn put_account_refs(
        &self,
        consent_id: &str,
        refs: &[AccountRef],
    ) -> Result<(), StoreError> {
        put(&self.connection().await?, consent_id, refs).await
    }

    async fn account_ref(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountRef>, StoreError> {
        if !storable(consent_id) || !storable(account_id) {
            return Ok(None);
        }
        get(&self.connection().await?, consent_id, account_id).await
    }
}
