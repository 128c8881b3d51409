//! Unattended-access budgets in PostgreSQL: one counter row per consent and UTC day, moved by
//! one atomic statement so that every gateway instance sees the same budget.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;

use super::{column, corrupt, sql_error};
use crate::store::{AccessCount, StoreError};

/// Counts one access if the day's count is below `$3`: the first access of the day inserts
/// the row (only if the limit allows one at all), later ones increment it while it is below
/// the limit. Returns the new count; no row means the budget is spent. The row lock taken by
/// the upsert serialises concurrent callers, so exactly `limit` of them get a row back.
const COUNT: &str = "\
    INSERT INTO access_counts AS counts (consent_id, day, used) \
    SELECT $1::text, $2::date, 1 WHERE $3::bigint > 0 \
    ON CONFLICT (consent_id, day) DO UPDATE SET used = counts.used + 1 \
    WHERE counts.used < $3::bigint \
    RETURNING used";

const USED: &str = "SELECT used FROM access_counts WHERE consent_id = $1 AND day = $2";

/// Counts one access of `consent_id` on `day` against `limit` (see `Store::count_access`).
pub async fn count_access(
    db: &impl GenericClient,
    consent_id: &str,
    day: NaiveDate,
    limit: u32,
) -> Result<AccessCount, StoreError> {
    let error = sql_error("access count");
    let limit = i64::from(limit);
    let statement = db.prepare_cached(COUNT).await.map_err(&error)?;
    if let Some(row) = db
        .query_opt(&statement, &[&consent_id, &day, &limit])
        .await
        .map_err(&error)?
    {
        return Ok(AccessCount {
            admitted: true,
            used: used(column(&row, "used")?)?,
        });
    }
    let statement = db.prepare_cached(USED).await.map_err(&error)?;
    let used = match db
        .query_opt(&statement, &[&consent_id, &day])
        .await
        .map_err(&error)?
    {
        Some(row) => used(column(&row, "used")?)?,
        None => 0,
    };
    Ok(AccessCount {
        admitted: false,
        used,
    })
}

fn used(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(format_args!("access count {value}")))
}
