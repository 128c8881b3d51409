//! Payments and the platforms' idempotency keys in PostgreSQL (migration V11): the payment and
//! its key in one transaction, updates by compare-and-set on `updated_at`, the status job's
//! lease with `FOR UPDATE SKIP LOCKED`, the daily sum in SQL.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use rust_decimal::Decimal;
use tokio_postgres::Row;

use super::{PgStore, column, corrupt, execute, query, query_one, query_opt, sql_error, storable};
use crate::model::WireName;
use crate::payments::idempotency::{self, StoredResponse};
use crate::payments::{
    BankStatus, DayCount, IdempotencyKey, KeyRecord, Payment, PaymentRequest, PaymentStatus,
    Payments, Replay, Submission,
};
use crate::store::StoreError;

/// The columns [`from_row`] reads, in its order (a macro so that each statement stays a
/// `const`).
macro_rules! columns {
    () => {
        "id, client_id, consent_id, bank_id, request, submission, bank_payment_id, status, \
         rejection_reason, status_raw, status_reason_code, created_at, updated_at, next_poll_at, \
         polls"
    };
}

const BY_CONSENT: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM payments WHERE consent_id = $1"
);

const BY_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM payments WHERE id = $1 AND client_id = $2"
);

/// Claims the key; a concurrent claim of the same key waits for this transaction and then
/// inserts nothing.
const CLAIM_KEY: &str = "\
    INSERT INTO payment_idempotency_keys (client_id, key, fingerprint, payment_id, created_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (client_id, key) DO NOTHING";

const LOCK_KEY: &str = "\
    SELECT fingerprint, payment_id, response_status, response_body, created_at \
    FROM payment_idempotency_keys WHERE client_id = $1 AND key = $2 FOR UPDATE";

/// A key past its retention is taken over by the new request.
const REPLACE_KEY: &str = "\
    UPDATE payment_idempotency_keys \
    SET fingerprint = $3, payment_id = $4, response_status = NULL, response_body = NULL, \
        created_at = $5 \
    WHERE client_id = $1 AND key = $2";

const COMPLETE_KEY: &str = "\
    UPDATE payment_idempotency_keys SET response_status = $3, response_body = $4 \
    WHERE client_id = $1 AND key = $2";

const INSERT: &str = "\
    INSERT INTO payments (id, client_id, consent_id, bank_id, user_ref, currency, amount, \
        request, submission, bank_payment_id, status, rejection_reason, status_raw, \
        status_reason_code, created_at, updated_at, next_poll_at, polls) \
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8, $9, $10, $11, $12, $13, $14, $15, \
        $16, $17, $18)";

/// Compare-and-set: only the row still at `updated_at = $2` changes.
const UPDATE: &str = "\
    UPDATE payments SET submission = $3, bank_payment_id = $4, status = $5, \
        rejection_reason = $6, status_raw = $7, status_reason_code = $8, updated_at = $9, \
        next_poll_at = $10, polls = $11 \
    WHERE id = $1 AND updated_at = $2";

/// The lease: several instances claim disjoint sets at once, and a claimed row is not due
/// again before `$2`.
const CLAIM_DUE: &str = "\
    UPDATE payments SET next_poll_at = $2 \
    WHERE id IN (SELECT id FROM payments WHERE next_poll_at <= $1 \
                 ORDER BY next_poll_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
    RETURNING id, client_id, consent_id, bank_id, request, submission, bank_payment_id, status, \
              rejection_reason, status_raw, status_reason_code, created_at, updated_at, \
              next_poll_at, polls";

/// What the daily limit counts: payments counted on the day, neither refused by the bank nor
/// rejected since, other than `$6`.
const SPENT_ON: &str = "\
    SELECT COALESCE(sum(amount), 0)::text AS spent FROM payments \
    WHERE client_id = $1 AND user_ref = $2 AND currency = $3 \
      AND counted_at >= $4 AND counted_at < $5 AND id IS DISTINCT FROM $6 \
      AND submission <> 'refused' AND status IS DISTINCT FROM 'rejected'";

/// The advisory lock class of a user's daily count (the two-key form: apart from the audit
/// chain's one-key lock), keyed by a hash of platform, user and currency.
const DAY_COUNT_LOCK_CLASS: i32 = 0x7061_7964; // "payd"

/// Serialises the counts of one user's payments through one platform in one currency (a hash
/// collision only serialises two users more than needed).
const LOCK_DAY_COUNT: &str = "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))";

const LOCK_COUNTED: &str = "SELECT counted_at FROM payments WHERE id = $1 FOR UPDATE";

const MARK_COUNTED: &str = "UPDATE payments SET counted_at = $2 WHERE id = $1";

const PURGE_KEYS: &str = "DELETE FROM payment_idempotency_keys WHERE created_at < $1";

/// Serialises the claims of one payment's keys.
const LOCK_PAYMENT: &str = "SELECT id FROM payments WHERE id = $1 AND client_id = $2 FOR UPDATE";

/// Another key than `$3` claimed the payment already and was not refused (read after the
/// payment's lock, so it sees every claim committed before).
const OTHER_KEY: &str = "\
    SELECT 1 FROM payment_idempotency_keys \
    WHERE client_id = $1 AND payment_id = $2 AND key <> $3 \
      AND (response_status IS NULL OR response_status < 400) LIMIT 1";

#[async_trait]
impl Payments for PgStore {
    async fn record_payment(
        &self,
        payment: &Payment,
        key: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Replay, StoreError> {
        payment.check_key(key)?;
        let mut client = self.connection().await?;
        let error = sql_error("payment");
        let transaction = client.transaction().await.map_err(&error)?;
        let claimed = async {
            match claim_in(&transaction, key, now).await? {
                Replay::Proceed => {}
                other => return Ok(other),
            }
            insert(&transaction, payment).await?;
            Ok(Replay::Proceed)
        }
        .await;
        finish(transaction, claimed).await
    }

    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        let client = self.connection().await?;
        insert(&client, payment).await
    }

    async fn payment_of_consent(&self, consent_id: &str) -> Result<Option<Payment>, StoreError> {
        if !storable(consent_id) {
            return Ok(None);
        }
        query_opt(
            &self.connection().await?,
            "payment",
            BY_CONSENT,
            &[&consent_id],
        )
        .await?
        .map(|row| from_row(&row))
        .transpose()
    }

    async fn claim_key(&self, key: &KeyRecord, now: DateTime<Utc>) -> Result<Replay, StoreError> {
        let mut client = self.connection().await?;
        let error = sql_error("payment");
        let transaction = client.transaction().await.map_err(&error)?;
        let claimed = async {
            let locked = query_opt(
                &transaction,
                "payment",
                LOCK_PAYMENT,
                &[&key.payment_id, &key.client_id],
            )
            .await?;
            if locked.is_none() {
                return Err(StoreError::Invariant(
                    "a key is claimed for a recorded payment",
                ));
            }
            match claim_in(&transaction, key, now).await? {
                Replay::Proceed => {}
                other => return Ok(other),
            }
            let other = query_opt(
                &transaction,
                "payment",
                OTHER_KEY,
                &[&key.client_id, &key.payment_id, &key.key.as_str()],
            )
            .await?;
            if other.is_some() {
                // Rolled back: the key stays unclaimed.
                return Err(StoreError::Conflict("payment"));
            }
            Ok(Replay::Proceed)
        }
        .await;
        finish(transaction, claimed).await
    }

    async fn complete_key(
        &self,
        client_id: &str,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let status = i32::from(response.status);
        execute(
            &self.connection().await?,
            "idempotency key",
            COMPLETE_KEY,
            &[&client_id, &key.as_str(), &status, &response.body],
        )
        .await?;
        Ok(())
    }

    async fn payment(&self, client_id: &str, id: &str) -> Result<Option<Payment>, StoreError> {
        if !storable(id) || !storable(client_id) {
            return Ok(None);
        }
        query_opt(
            &self.connection().await?,
            "payment",
            BY_ID,
            &[&id, &client_id],
        )
        .await?
        .map(|row| from_row(&row))
        .transpose()
    }

    async fn update_payment(
        &self,
        payment: &Payment,
        expected: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let status = StatusColumns::of(payment.status.as_ref());
        let polls = polls_column(payment.polls)?;
        let changed = execute(
            &self.connection().await?,
            "payment",
            UPDATE,
            &[
                &payment.id,
                &expected,
                &payment.submission.as_str(),
                &payment.bank_payment_id,
                &status.status,
                &status.reason,
                &status.raw,
                &status.reason_code,
                &payment.updated_at,
                &payment.next_poll_at,
                &polls,
            ],
        )
        .await?;
        Ok(changed == 1)
    }

    async fn due_payments(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let limit = i64::from(limit);
        query(
            &self.connection().await?,
            "payment",
            CLAIM_DUE,
            &[&now, &lease_until, &limit],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn count_payment(
        &self,
        payment: &Payment,
        max_per_day: Decimal,
        now: DateTime<Utc>,
    ) -> Result<DayCount, StoreError> {
        let request = &payment.request;
        let currency = &request.instructed_amount.currency;
        let (from, until) = day_bounds(now.date_naive())?;
        let mut client = self.connection().await?;
        let error = sql_error("payment");
        let transaction = client.transaction().await.map_err(&error)?;
        let counted = async {
            let user = format!(
                "{}\u{1f}{}\u{1f}{currency}",
                payment.client_id, request.user_ref
            );
            execute(
                &transaction,
                "payment",
                LOCK_DAY_COUNT,
                &[&DAY_COUNT_LOCK_CLASS, &user],
            )
            .await?;
            let row = query_opt(&transaction, "payment", LOCK_COUNTED, &[&payment.id])
                .await?
                .ok_or(StoreError::Invariant("a recorded payment is counted"))?;
            let counted_at: Option<DateTime<Utc>> = column(&row, "counted_at")?;
            if counted_at.is_some() {
                return Ok(None);
            }
            let spent = spent(
                &transaction,
                &payment.client_id,
                &request.user_ref,
                currency,
                (from, until),
                Some(&payment.id),
            )
            .await?;
            let within = spent
                .checked_add(request.instructed_amount.amount)
                .is_some_and(|total| total <= max_per_day);
            if !within {
                return Ok(Some(DayCount::OverLimit { spent }));
            }
            execute(&transaction, "payment", MARK_COUNTED, &[&payment.id, &now]).await?;
            Ok(Some(DayCount::Counted))
        }
        .await;
        match counted {
            // Counted now: committed before the caller lets the payment go.
            Ok(Some(DayCount::Counted)) => {
                transaction.commit().await.map_err(&error)?;
                Ok(DayCount::Counted)
            }
            Ok(Some(over)) => {
                transaction.rollback().await.map_err(&error)?;
                Ok(over)
            }
            Ok(None) => {
                transaction.rollback().await.map_err(&error)?;
                Ok(DayCount::Counted)
            }
            Err(failure) => {
                let _ = transaction.rollback().await;
                Err(failure)
            }
        }
    }

    async fn spent_on(
        &self,
        client_id: &str,
        user_ref: &str,
        currency: &str,
        day: NaiveDate,
    ) -> Result<Decimal, StoreError> {
        let bounds = day_bounds(day)?;
        let client = self.connection().await?;
        spent(&client, client_id, user_ref, currency, bounds, None).await
    }

    async fn purge_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        execute(
            &self.connection().await?,
            "idempotency key",
            PURGE_KEYS,
            &[&before],
        )
        .await
    }
}

/// Claims `key` in `transaction`: inserted when free, taken over when past its retention
/// (`Replay::Proceed`), otherwise what [`idempotency::judge`] says of the key's record, which
/// stays locked until the transaction ends.
async fn claim_in(
    transaction: &deadpool_postgres::Transaction<'_>,
    key: &KeyRecord,
    now: DateTime<Utc>,
) -> Result<Replay, StoreError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &key.client_id,
        &key.key.as_str(),
        &key.fingerprint,
        &key.payment_id,
        &key.created_at,
    ];
    if execute(transaction, "payment", CLAIM_KEY, &params).await? == 1 {
        return Ok(Replay::Proceed);
    }
    let row = query_opt(
        transaction,
        "payment",
        LOCK_KEY,
        &[&key.client_id, &key.key.as_str()],
    )
    .await?
    // The conflicting row was there when the insert looked; keys are only purged past
    // their retention, which a racing purge may just have done.
    .ok_or(StoreError::Invariant("idempotency key vanished; retry"))?;
    let existing = key_from_row(&row, &key.client_id, &key.key)?;
    let judged = idempotency::judge(Some(&existing), &key.fingerprint, now);
    if judged == Replay::Proceed {
        execute(transaction, "payment", REPLACE_KEY, &params).await?;
    }
    Ok(judged)
}

/// Ends a claim's transaction: committed when the claim proceeds, otherwise rolled back —
/// and waited for, so that its row locks are gone when the caller answers. (A transaction
/// merely dropped is rolled back later, when the server gets to it: until then the status
/// job, whose `FOR UPDATE SKIP LOCKED` passes over locked rows, would not see the payment.)
async fn finish(
    transaction: deadpool_postgres::Transaction<'_>,
    claimed: Result<Replay, StoreError>,
) -> Result<Replay, StoreError> {
    let error = sql_error("payment");
    match claimed {
        Ok(Replay::Proceed) => {
            transaction.commit().await.map_err(&error)?;
            Ok(Replay::Proceed)
        }
        Ok(other) => {
            transaction.rollback().await.map_err(&error)?;
            Ok(other)
        }
        Err(failure) => {
            // The claim's own error is the one to report; a failed rollback ends with the
            // connection, which the pool then drops.
            let _ = transaction.rollback().await;
            Err(failure)
        }
    }
}

/// What a user counted in `bounds` in a currency, not refused or rejected since, other
/// payments than `except`.
async fn spent(
    db: &impl GenericClient,
    client_id: &str,
    user_ref: &str,
    currency: &str,
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    except: Option<&str>,
) -> Result<Decimal, StoreError> {
    let row = query_one(
        db,
        "payment",
        SPENT_ON,
        &[&client_id, &user_ref, &currency, &from, &until, &except],
    )
    .await?;
    let sum: String = column(&row, "spent")?;
    Decimal::from_str(&sum).map_err(|_| corrupt(format_args!("payment sum {sum:?}")))
}

/// The first instant of `day` and of the day after, in UTC.
pub(crate) fn day_bounds(day: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), StoreError> {
    let next = day
        .checked_add_days(Days::new(1))
        .ok_or(StoreError::Invariant("day out of range"))?;
    Ok((
        day.and_time(chrono::NaiveTime::MIN).and_utc(),
        next.and_time(chrono::NaiveTime::MIN).and_utc(),
    ))
}

async fn insert(db: &impl GenericClient, payment: &Payment) -> Result<(), StoreError> {
    let request = serde_json::to_value(&payment.request)
        .map_err(|_| StoreError::Invariant("a payment request serialises"))?;
    let status = StatusColumns::of(payment.status.as_ref());
    let amount = payment.request.instructed_amount.amount.to_string();
    let polls = polls_column(payment.polls)?;
    execute(
        db,
        "payment",
        INSERT,
        &[
            &payment.id,
            &payment.client_id,
            &payment.consent_id,
            &payment.bank_id,
            &payment.request.user_ref,
            &payment.request.instructed_amount.currency,
            &amount,
            &request,
            &payment.submission.as_str(),
            &payment.bank_payment_id,
            &status.status,
            &status.reason,
            &status.raw,
            &status.reason_code,
            &payment.created_at,
            &payment.updated_at,
            &payment.next_poll_at,
            &polls,
        ],
    )
    .await?;
    Ok(())
}

fn polls_column(polls: u32) -> Result<i32, StoreError> {
    i32::try_from(polls).map_err(|_| StoreError::Invariant("payment polls overflow"))
}

/// A [`BankStatus`] as its four columns.
struct StatusColumns<'a> {
    status: Option<&'static str>,
    reason: Option<&'static str>,
    raw: Option<&'a str>,
    reason_code: Option<&'a str>,
}

impl<'a> StatusColumns<'a> {
    fn of(status: Option<&'a BankStatus>) -> StatusColumns<'a> {
        StatusColumns {
            status: status.map(|s| s.status.as_str()),
            reason: status.and_then(|s| s.status.reason()).map(|r| r.as_str()),
            raw: status.map(|s| s.raw.as_str()),
            reason_code: status.and_then(|s| s.reason_code.as_deref()),
        }
    }
}

fn from_row(row: &Row) -> Result<Payment, StoreError> {
    let request: serde_json::Value = column(row, "request")?;
    let request: PaymentRequest = serde_json::from_value(request)
        .map_err(|error| corrupt(format_args!("payment: {error}")))?;
    let submission: String = column(row, "submission")?;
    let submission = Submission::parse(&submission)
        .ok_or_else(|| corrupt(format_args!("payment submission {submission:?}")))?;
    let status: Option<String> = column(row, "status")?;
    let status = match status {
        None => None,
        Some(name) => {
            let reason: Option<String> = column(row, "rejection_reason")?;
            let canonical = PaymentStatus::parse(&name, reason.as_deref())
                .ok_or_else(|| corrupt(format_args!("payment status {name:?}")))?;
            Some(BankStatus {
                status: canonical,
                raw: column::<Option<String>>(row, "status_raw")?.unwrap_or_default(),
                reason_code: column(row, "status_reason_code")?,
            })
        }
    };
    let polls: i32 = column(row, "polls")?;
    Ok(Payment {
        id: column(row, "id")?,
        client_id: column(row, "client_id")?,
        consent_id: column(row, "consent_id")?,
        bank_id: column(row, "bank_id")?,
        request,
        submission,
        bank_payment_id: column(row, "bank_payment_id")?,
        status,
        created_at: column(row, "created_at")?,
        updated_at: column(row, "updated_at")?,
        next_poll_at: column(row, "next_poll_at")?,
        polls: u32::try_from(polls).map_err(|_| corrupt("payment polls"))?,
    })
}

fn key_from_row(row: &Row, client_id: &str, key: &IdempotencyKey) -> Result<KeyRecord, StoreError> {
    let status: Option<i32> = column(row, "response_status")?;
    let body: Option<serde_json::Value> = column(row, "response_body")?;
    let response = match (status, body) {
        (Some(status), Some(body)) => Some(StoredResponse {
            status: u16::try_from(status).map_err(|_| corrupt("idempotency response status"))?,
            body,
        }),
        (None, None) => None,
        _ => return Err(corrupt("idempotency response half stored")),
    };
    Ok(KeyRecord {
        client_id: client_id.to_owned(),
        key: key.clone(),
        fingerprint: column(row, "fingerprint")?,
        payment_id: column(row, "payment_id")?,
        response,
        created_at: column(row, "created_at")?,
    })
}
