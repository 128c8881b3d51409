//! `payments::payees::Payees` on PostgreSQL (V25): one row per platform and handle. A handle
//! whose consent ended is deleted where it is met; registering takes a free handle, keeps the
//! consent's own, and leaves one held by another alive consent alone (`ON CONFLICT … WHERE`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{PgStore, column, corrupt, execute, query, query_opt, record, storable};
use crate::payments::payees::{Handle, PayeeEntry, Payees, Registered};
use crate::store::StoreError;

/// Frees `($1, $2)` if its consent is not alive at `$3`.
const FREE_ENDED: &str = "\
    DELETE FROM payees p USING consents c \
    WHERE p.client_id = $1 AND p.handle = $2 AND c.id = p.consent_id \
      AND (c.status <> 'authorised' OR c.expires_at <= $3)";

/// Takes the handle, or re-points it when the same consent holds it; `created` tells which.
/// No row: another consent holds it.
const PUT: &str = "\
    INSERT INTO payees AS p (client_id, handle, consent_id, account_id, created_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (client_id, handle) DO UPDATE SET account_id = EXCLUDED.account_id \
        WHERE p.consent_id = EXCLUDED.consent_id \
    RETURNING (xmax = 0) AS created";

const GET: &str = "\
    SELECT p.client_id, p.handle, p.consent_id, p.account_id, p.created_at, \
        (c.status = 'authorised' AND c.expires_at > $3) AS alive \
    FROM payees p JOIN consents c ON c.id = p.consent_id \
    WHERE p.client_id = $1 AND p.handle = $2";

const OF_CONSENT: &str = "\
    SELECT client_id, handle, consent_id, account_id, created_at FROM payees \
    WHERE consent_id = $1 ORDER BY handle";

const DELETE: &str = "\
    DELETE FROM payees WHERE client_id = $1 AND handle = $2 AND consent_id = $3";

fn entry(row: &Row) -> Result<PayeeEntry, StoreError> {
    let handle: String = column(row, "handle")?;
    Ok(record!(row, PayeeEntry {
        client_id, consent_id, account_id, created_at;
        handle: Handle::parse(&handle).map_err(|_| corrupt(format!("payee handle {handle}")))?,
    }))
}

#[async_trait]
impl Payees for PgStore {
    async fn put_payee(
        &self,
        entry: &PayeeEntry,
        now: DateTime<Utc>,
    ) -> Result<Registered, StoreError> {
        let client = self.connection().await?;
        let handle = entry.handle.as_str();
        execute(
            &client,
            "payee",
            FREE_ENDED,
            &[&entry.client_id, &handle, &now],
        )
        .await?;
        let row = query_opt(
            &client,
            "payee",
            PUT,
            &[
                &entry.client_id,
                &handle,
                &entry.consent_id,
                &entry.account_id,
                &entry.created_at,
            ],
        )
        .await?;
        Ok(match row {
            None => Registered::Taken,
            Some(row) if column::<bool>(&row, "created")? => Registered::Created,
            Some(_) => Registered::Updated,
        })
    }

    async fn payee(
        &self,
        client_id: &str,
        handle: &Handle,
        now: DateTime<Utc>,
    ) -> Result<Option<PayeeEntry>, StoreError> {
        if !storable(client_id) {
            return Ok(None);
        }
        let client = self.connection().await?;
        let Some(row) =
            query_opt(&client, "payee", GET, &[&client_id, &handle.as_str(), &now]).await?
        else {
            return Ok(None);
        };
        if column::<bool>(&row, "alive")? {
            return Ok(Some(entry(&row)?));
        }
        execute(
            &client,
            "payee",
            FREE_ENDED,
            &[&client_id, &handle.as_str(), &now],
        )
        .await?;
        Ok(None)
    }

    async fn payees_of(&self, consent_id: &str) -> Result<Vec<PayeeEntry>, StoreError> {
        if !storable(consent_id) {
            return Ok(Vec::new());
        }
        let client = self.connection().await?;
        query(&client, "payees", OF_CONSENT, &[&consent_id])
            .await?
            .iter()
            .map(entry)
            .collect()
    }

    async fn delete_payee(
        &self,
        client_id: &str,
        handle: &Handle,
        consent_id: &str,
    ) -> Result<bool, StoreError> {
        if !storable(client_id) || !storable(consent_id) {
            return Ok(false);
        }
        let client = self.connection().await?;
        let deleted = execute(
            &client,
            "payee",
            DELETE,
            &[&client_id, &handle.as_str(), &consent_id],
        )
        .await?;
        Ok(deleted > 0)
    }
}
