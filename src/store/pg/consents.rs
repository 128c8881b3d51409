//! Consents in PostgreSQL; status changes are compare-and-set.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::storable;
use super::{column, corrupt, execute, query, query_opt, record};
use crate::consent::Consents;
use crate::consent::{Consent, ConsentStatus};
use crate::model::Scope;
use crate::model::WireName;
use crate::store::StoreError;

/// The columns [`insert`] writes and [`from_row`] reads, in their order, for the statements
/// below (a macro so that each statement stays a `const`).
macro_rules! columns {
    () => {
        "id, client_id, bank_id, purpose, scopes, history_days, user_ref, status, policy_hash, \
         redirect_uri, state, code_challenge, dpop_jkt, created_at, expires_at"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO consents (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);

const GET: &str = concat!("SELECT ", columns!(), " FROM consents WHERE id = $1");

const LIST_OF: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM consents WHERE client_id = $1 AND user_ref = $2 ORDER BY created_at DESC, id"
);

const LIST_OF_BANK_PERSON: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM consents WHERE bank_id = $1 AND bank_person = $2 ORDER BY created_at DESC, id"
);

/// One statement: of several instances expiring at once, each row moves (and is returned) once.
const EXPIRE: &str = concat!(
    "UPDATE consents SET status = 'expired', updated_at = now() \
     WHERE status = 'authorised' AND expires_at < $1 RETURNING ",
    columns!()
);

const EXPIRING: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM consents WHERE status = 'authorised' AND expires_at >= $1 AND expires_at < $2 \
     ORDER BY expires_at"
);

/// Only moves a consent that is still in the expected state: of two racing transitions one
/// matches no row.
const TRANSITION: &str = "\
    UPDATE consents SET status = $3, updated_at = now() \
    WHERE id = $1 AND status = $2";

/// Extends an authorised, unexpired consent in one statement (compare-and-set).
const EXTEND: &str = "\
    UPDATE consents SET expires_at = $2, policy_hash = $3, updated_at = now() \
    WHERE id = $1 AND status = 'authorised' AND expires_at > $4";

/// Records the person who authorised a consent, as a keyed digest of their bank's identifier.
const SET_BANK_PERSON: &str = "\
    UPDATE consents SET bank_person = $2, updated_at = now() WHERE id = $1";

/// Stores a new consent; `Conflict("consent")` if its id exists.
pub async fn insert(db: &impl GenericClient, consent: &Consent) -> Result<(), StoreError> {
    let scopes: Vec<&str> = consent.scopes.iter().map(|scope| scope.as_str()).collect();
    let history_days = i64::from(consent.history_days);
    execute(
        db,
        "consent",
        INSERT,
        &[
            &consent.id,
            &consent.client_id,
            &consent.bank_id,
            &consent.purpose,
            &scopes,
            &history_days,
            &consent.user_ref,
            &consent.status.as_str(),
            &consent.policy_hash,
            &consent.redirect_uri,
            &consent.state,
            &consent.code_challenge,
            &consent.dpop_jkt,
            &consent.created_at,
            &consent.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// The consent with `id`.
pub async fn get(db: &impl GenericClient, id: &str) -> Result<Option<Consent>, StoreError> {
    query_opt(db, "consent", GET, &[&id])
        .await?
        .map(|row| from_row(&row))
        .transpose()
}

/// Moves consent `id` from `from` to `to`; `false` if it was not in `from` (or does not
/// exist). Whether the move is allowed is the caller's business
/// ([`ConsentStatus::can_become`]).
pub async fn transition(
    db: &impl GenericClient,
    id: &str,
    from: ConsentStatus,
    to: ConsentStatus,
) -> Result<bool, StoreError> {
    let changed = execute(
        db,
        "consent",
        TRANSITION,
        &[&id, &from.as_str(), &to.as_str()],
    )
    .await?;
    Ok(changed == 1)
}

/// Extends consent `id` to `expires_at` under `policy_hash` if it is authorised and has not
/// expired at `now`; `false` otherwise.
pub async fn extend(
    db: &impl GenericClient,
    id: &str,
    expires_at: DateTime<Utc>,
    policy_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = execute(
        db,
        "consent",
        EXTEND,
        &[&id, &expires_at, &policy_hash, &now],
    )
    .await?;
    Ok(changed == 1)
}

/// One platform's consents for one user, newest first.
pub async fn list_of(
    db: &impl GenericClient,
    client_id: &str,
    user_ref: &str,
) -> Result<Vec<Consent>, StoreError> {
    consents(db, LIST_OF, &[&client_id, &user_ref]).await
}

/// Moves authorised consents past their expiry to `expired`; returns the ones moved.
pub async fn expire(
    db: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<Vec<Consent>, StoreError> {
    consents(db, EXPIRE, &[&now]).await
}

/// Authorised consents expiring in `[from, until)`.
pub async fn expiring(
    db: &impl GenericClient,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Consent>, StoreError> {
    consents(db, EXPIRING, &[&from, &until]).await
}

/// The consents `sql` returns (it returns the consent columns).
async fn consents(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Consent>, StoreError> {
    query(db, "consent", sql, params)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

fn from_row(row: &Row) -> Result<Consent, StoreError> {
    let scopes: Vec<String> = column(row, "scopes")?;
    let status: String = column(row, "status")?;
    let history_days: i64 = column(row, "history_days")?;
    Ok(record!(row, Consent {
        id, client_id, bank_id, purpose, user_ref, policy_hash, redirect_uri, state, code_challenge,
        dpop_jkt, created_at, expires_at;
        scopes: scopes
            .iter()
            .map(|scope| Scope::parse(scope).ok_or_else(|| corrupt(format_args!("scope {scope:?}"))))
            .collect::<Result<Vec<_>, _>>()?,
        history_days: u32::try_from(history_days)
            .map_err(|_| corrupt(format_args!("history_days {history_days}")))?,
        status: ConsentStatus::parse(&status)
            .ok_or_else(|| corrupt(format_args!("consent status {status:?}")))?,
    }))
}

#[async_trait]
impl Consents for super::PgStore {
    async fn insert_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        insert(&self.connection().await?, consent).await
    }

    async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        if !storable(id) {
            return Ok(None);
        }
        get(&self.connection().await?, id).await
    }

    async fn transition_consent(
        &self,
        id: &str,
        from: ConsentStatus,
        to: ConsentStatus,
    ) -> Result<bool, StoreError> {
        transition(&self.connection().await?, id, from, to).await
    }

    async fn extend_consent(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        policy_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        extend(&self.connection().await?, id, expires_at, policy_hash, now).await
    }

    async fn consents_of(
        &self,
        client_id: &str,
        user_ref: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        list_of(&self.connection().await?, client_id, user_ref).await
    }

    async fn set_bank_person(&self, id: &str, bank_person: &str) -> Result<bool, StoreError> {
        if !storable(id) {
            return Ok(false);
        }
        let changed = execute(
            &self.connection().await?,
            "consent",
            SET_BANK_PERSON,
            &[&id, &bank_person],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn consents_of_bank_person(
        &self,
        bank_id: &str,
        bank_person: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        if !storable(bank_id) || !storable(bank_person) {
            return Ok(Vec::new());
        }
        consents(
            &self.connection().await?,
            LIST_OF_BANK_PERSON,
            &[&bank_id, &bank_person],
        )
        .await
    }

    async fn expire_consents(&self, now: DateTime<Utc>) -> Result<Vec<Consent>, StoreError> {
        expire(&self.connection().await?, now).await
    }

    async fn consents_expiring(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Consent>, StoreError> {
        expiring(&self.connection().await?, from, until).await
    }
}
