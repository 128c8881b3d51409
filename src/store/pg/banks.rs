//! Bank adapter manifests in PostgreSQL: every version kept, the highest one active.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::storable;
use super::{column, execute, query, query_one, query_opt, record, sql_error};
use crate::adapters::BankVersion;
use crate::adapters::Banks;
use crate::store::StoreError;

const ENSURE_BANK: &str = "\
    INSERT INTO banks (bank_id) VALUES ($1) ON CONFLICT (bank_id) DO NOTHING";

/// Serialises concurrent updates of one bank until the transaction ends.
const LOCK_BANK: &str = "SELECT bank_id FROM banks WHERE bank_id = $1 FOR UPDATE";

/// The active version, and whether its manifest equals `$2` (jsonb equality: key order and
/// number spelling do not matter).
const LATEST_COMPARED: &str = "\
    SELECT bank_id, version, manifest, created_at, manifest = $2 AS same \
    FROM bank_versions WHERE bank_id = $1 \
    ORDER BY version DESC LIMIT 1";

const INSERT_VERSION: &str = "\
    INSERT INTO bank_versions (bank_id, version, manifest, created_at) \
    VALUES ($1, $2, $3, now()) \
    RETURNING bank_id, version, manifest, created_at";

const LATEST: &str = "\
    SELECT bank_id, version, manifest, created_at \
    FROM bank_versions WHERE bank_id = $1 \
    ORDER BY version DESC LIMIT 1";

const VERSIONS: &str = "\
    SELECT bank_id, version, manifest, created_at \
    FROM bank_versions WHERE bank_id = $1 \
    ORDER BY version";

const ALL_LATEST: &str = "\
    SELECT DISTINCT ON (bank_id) bank_id, version, manifest, created_at \
    FROM bank_versions \
    ORDER BY bank_id, version DESC";

/// Stores `manifest` as a new version of `bank_id` unless it equals the active one; returns
/// the active version. Takes a transaction: the bank's row lock orders concurrent updates.
pub async fn put(
    transaction: &Transaction<'_>,
    bank_id: &str,
    manifest: &serde_json::Value,
) -> Result<BankVersion, StoreError> {
    execute(transaction, "bank version", ENSURE_BANK, &[&bank_id]).await?;
    execute(transaction, "bank version", LOCK_BANK, &[&bank_id]).await?;

    let latest = query_opt(
        transaction,
        "bank version",
        LATEST_COMPARED,
        &[&bank_id, manifest],
    )
    .await?;
    let next = match latest {
        Some(row) if column::<bool>(&row, "same")? => return from_row(&row),
        Some(row) => column::<i32>(&row, "version")?
            .checked_add(1)
            .ok_or(StoreError::Invariant("bank version overflows"))?,
        None => 1,
    };
    let row = query_one(
        transaction,
        "bank version",
        INSERT_VERSION,
        &[&bank_id, &next, manifest],
    )
    .await?;
    from_row(&row)
}

/// The active (latest) version of `bank_id`.
pub async fn latest(
    db: &impl GenericClient,
    bank_id: &str,
) -> Result<Option<BankVersion>, StoreError> {
    query_opt(db, "bank version", LATEST, &[&bank_id])
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// Every version of `bank_id`, oldest first.
pub async fn versions(
    db: &impl GenericClient,
    bank_id: &str,
) -> Result<Vec<BankVersion>, StoreError> {
    query(db, "bank version", VERSIONS, &[&bank_id])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The active version of every bank, by bank id.
pub async fn all_latest(db: &impl GenericClient) -> Result<Vec<BankVersion>, StoreError> {
    query(db, "bank version", ALL_LATEST, &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

fn from_row(row: &Row) -> Result<BankVersion, StoreError> {
    Ok(record!(row, BankVersion {
        bank_id, version, manifest, created_at;
    }))
}

#[async_trait]
impl Banks for super::PgStore {
    async fn put_bank(
        &self,
        bank_id: &str,
        manifest: &serde_json::Value,
    ) -> Result<BankVersion, StoreError> {
        let mut client = self.connection().await?;
        let transaction = client
            .transaction()
            .await
            .map_err(sql_error("bank version"))?;
        let version = put(&transaction, bank_id, manifest).await?;
        transaction
            .commit()
            .await
            .map_err(sql_error("bank version"))?;
        Ok(version)
    }

    async fn bank(&self, bank_id: &str) -> Result<Option<BankVersion>, StoreError> {
        if !storable(bank_id) {
            return Ok(None);
        }
        latest(&self.connection().await?, bank_id).await
    }

    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError> {
        all_latest(&self.connection().await?).await
    }

    async fn bank_versions(&self, bank_id: &str) -> Result<Vec<BankVersion>, StoreError> {
        versions(&self.connection().await?, bank_id).await
    }
}
