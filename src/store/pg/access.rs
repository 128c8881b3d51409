//! A request's state in PostgreSQL: one statement reads the token's record, the client, the
//! consent, its bank grant and account reference, and spends the DPoP proof's `jti` and (when
//! eligible) one unit of the unattended budget (see `store::access`).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, corrupt, execute, query_one};
use crate::adapters::{AccountRef, StoredGrant};
use crate::crypto::Sealed;
use crate::model::WireName;
use crate::store::StoreError;
use crate::store::access::AccessCount;
use crate::store::access::{AccessQuery, AccessState, TokenState};

/// `$1` jti, `$2` client, `$3`–`$5` the proof's replay-cache scope, jti and expiry (NULL
/// without a proof), `$6` consent, `$7` scope, `$8` account, `$9` now, `$10` the budget's day
/// (NULL: do not count), `$11`/`$12` every purpose and its daily limit.
///
/// Data-modifying CTEs run once and the main query sees their `RETURNING` rows but the table
/// as it was before the statement: `used` is read from `spend` when this request took a unit,
/// from the table otherwise. The budget upsert's row lock serialises concurrent requests of a
/// consent, so of concurrent callers exactly `limit` are admitted per day, on every instance.
const READ: &str = "\
    WITH token AS ( \
        SELECT revoked_at IS NOT NULL AS revoked FROM access_tokens WHERE jti = $1::text \
    ), proof AS ( \
        INSERT INTO seen_jtis (scope, jti, expires_at) \
        SELECT $3::text, $4::text, $5::timestamptz WHERE $3::text IS NOT NULL \
        ON CONFLICT (scope, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at \
            WHERE seen_jtis.expires_at < now() \
        RETURNING 1 \
    ), consent AS ( \
        SELECT * FROM consents WHERE id = $6::text \
    ), owned AS ( \
        SELECT id, purpose, status, expires_at, scopes FROM consent WHERE client_id = $2::text \
    ), eligible AS ( \
        SELECT owned.id, limits.lim FROM owned \
        JOIN unnest($11::text[], $12::bigint[]) AS limits (purpose, lim) \
            ON limits.purpose = owned.purpose \
        WHERE $10::date IS NOT NULL \
          AND EXISTS (SELECT 1 FROM token WHERE NOT revoked) \
          AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM proof)) \
          AND EXISTS (SELECT 1 FROM clients WHERE client_id = $2::text) \
          AND owned.status = 'authorised' AND owned.expires_at > $9::timestamptz \
          AND $7::text = ANY (owned.scopes) \
    ), spend AS ( \
        INSERT INTO access_counts AS counts (consent_id, day, used) \
        SELECT id, $10::date, 1 FROM eligible WHERE lim > 0 \
        ON CONFLICT (consent_id, day) DO UPDATE SET used = counts.used + 1 \
            WHERE counts.used < (SELECT lim FROM eligible) \
        RETURNING used \
    ) \
    SELECT \
        (SELECT revoked FROM token) AS token_revoked, \
        EXISTS (SELECT 1 FROM proof) AS proof_fresh, \
        EXISTS (SELECT 1 FROM eligible) AS counted, \
        COALESCE((SELECT used FROM spend), 0) AS spent_used, \
        EXISTS (SELECT 1 FROM spend) AS admitted, \
        COALESCE((SELECT used FROM access_counts \
                  WHERE consent_id = $6::text AND day = $10::date), 0) AS used_before, \
        (SELECT to_jsonb(clients) FROM clients WHERE client_id = $2::text) AS client, \
        (SELECT to_jsonb(consent) FROM consent) AS consent, \
        grants.key_id, grants.nonce, grants.ciphertext, grants.updated_at, \
        refs.bank_ref \
    FROM (SELECT 1) AS one \
    LEFT JOIN bank_grants AS grants ON grants.consent_id = (SELECT id FROM owned) \
    LEFT JOIN account_refs AS refs \
        ON refs.consent_id = (SELECT id FROM owned) AND refs.account_id = $8::text";

/// Gives back one unit: the row goes when it held the only one (`used` is at least 1).
const REFUND: &str = "\
    WITH emptied AS ( \
        DELETE FROM access_counts WHERE consent_id = $1 AND day = $2 AND used = 1 RETURNING 1 \
    ) \
    UPDATE access_counts SET used = used - 1 WHERE consent_id = $1 AND day = $2 AND used > 1";

/// Reads (and spends) a request's state (see `AccessReads::access_state`).
pub async fn read(db: &impl GenericClient, query: &AccessQuery) -> Result<AccessState, StoreError> {
    let proof = query.proof.as_ref();
    let data = query.data.as_ref();
    let budget = data.and_then(|data| data.budget.as_ref());
    let (purposes, limits): (Vec<&str>, Vec<i64>) = budget
        .map(|budget| {
            budget
                .limits
                .iter()
                .map(|(purpose, limit)| (purpose.as_str(), i64::from(*limit)))
                .unzip()
        })
        .unwrap_or_default();
    let row = query_one(
        db,
        "access state",
        READ,
        &[
            &query.jti,
            &query.client_id,
            &proof.map(|proof| proof.scope.as_str()),
            &proof.map(|proof| proof.jti.as_str()),
            &proof.map(|proof| proof.expires_at),
            &data.map(|data| data.consent_id.as_str()),
            &data.map(|data| data.scope.as_str()),
            &data.and_then(|data| data.account_id.as_deref()),
            &data.map(|data| data.now),
            &budget.map(|budget| budget.day),
            &purposes,
            &limits,
        ],
    )
    .await?;
    state_from_row(&row, query)
}

fn state_from_row(row: &Row, query: &AccessQuery) -> Result<AccessState, StoreError> {
    let token = match column::<Option<bool>>(row, "token_revoked")? {
        Some(false) => TokenState::Active,
        Some(true) => TokenState::Revoked,
        None => TokenState::Unknown,
    };
    let counted: bool = column(row, "counted")?;
    let admitted: bool = column(row, "admitted")?;
    let used: i64 = column(
        row,
        if admitted {
            "spent_used"
        } else {
            "used_before"
        },
    )?;
    let budget = counted
        .then(|| {
            u32::try_from(used)
                .map(|used| AccessCount { admitted, used })
                .map_err(|_| corrupt(format_args!("access count {used}")))
        })
        .transpose()?;
    let consent = json(row, "consent")?;
    let bank_grant = match column::<Option<String>>(row, "key_id")? {
        Some(key_id) => Some(StoredGrant {
            consent_id: query
                .data
                .as_ref()
                .map(|data| data.consent_id.clone())
                .unwrap_or_default(),
            sealed: Sealed {
                key_id,
                nonce: column(row, "nonce")?,
                ciphertext: column(row, "ciphertext")?,
            },
            updated_at: column(row, "updated_at")?,
        }),
        None => None,
    };
    let account = column::<Option<String>>(row, "bank_ref")?.and_then(|bank_ref| {
        let account_id = query.data.as_ref()?.account_id.clone()?;
        Some(AccountRef {
            account_id,
            bank_ref,
        })
    });
    Ok(AccessState {
        token,
        proof_fresh: query
            .proof
            .as_ref()
            .map(|_| column(row, "proof_fresh"))
            .transpose()?,
        client: json(row, "client")?,
        consent,
        budget,
        bank_grant,
        account,
    })
}

/// A row read as JSON (`to_jsonb`) into its record type.
fn json<T: serde::de::DeserializeOwned>(row: &Row, name: &str) -> Result<Option<T>, StoreError> {
    column::<Option<serde_json::Value>>(row, name)?
        .map(|value| {
            serde_json::from_value(value).map_err(|error| corrupt(format_args!("{name}: {error}")))
        })
        .transpose()
}

/// Gives back one unit of `consent_id`'s budget of `day`.
pub async fn refund(
    db: &impl GenericClient,
    consent_id: &str,
    day: chrono::NaiveDate,
) -> Result<(), StoreError> {
    execute(db, "access refund", REFUND, &[&consent_id, &day]).await?;
    Ok(())
}
