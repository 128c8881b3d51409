//! Notifications in PostgreSQL (migrations V16, V21): subscriptions, the refresh queue (claimed
//! with `FOR UPDATE SKIP LOCKED` under a lease) and the change-detection state.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{column, corrupt, execute, query, query_opt, record};
use crate::consent::Consent;
use crate::model::WireName;
use crate::notify::{AccountState, EventType, Job, Mode, Seen, Subscription, Subscriptions};
use crate::store::StoreError;

const INSERT_SUBSCRIPTION: &str = "\
    INSERT INTO notify_subscriptions (id, client_id, consent_id, purpose, events, mode, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

const SUBSCRIPTION_COLUMNS: &str = "id, client_id, consent_id, purpose, events, mode, created_at";

const DELETE_SUBSCRIPTION: &str =
    "DELETE FROM notify_subscriptions WHERE id = $1 AND client_id = $2";

/// Every authorised, unexpired consent a subscription covers, into the queue once.
const SCHEDULE: &str = "\
    INSERT INTO notify_jobs (consent_id, due_at) \
    SELECT DISTINCT c.id, $1::timestamptz FROM consents AS c \
    JOIN notify_subscriptions AS s ON s.client_id = c.client_id \
        AND (s.consent_id = c.id OR (s.consent_id IS NULL AND s.purpose = c.purpose)) \
    WHERE c.status = 'authorised' AND c.expires_at > $1::timestamptz \
      AND NOT EXISTS (SELECT 1 FROM notify_jobs AS j WHERE j.consent_id = c.id) \
    ON CONFLICT (consent_id) DO NOTHING";

/// SKIP LOCKED lets instances claim disjoint jobs at once; the lease (`due_at` pushed to its
/// end) keeps a claimed job from being claimed again until it is finished or its instance is
/// gone.
const CLAIM: &str = "\
    UPDATE notify_jobs AS j SET due_at = $3 \
    FROM (SELECT consent_id, due_at FROM notify_jobs WHERE due_at <= $1 \
          ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS due \
    WHERE j.consent_id = due.consent_id \
    RETURNING j.consent_id, due.due_at, j.failures, j.last_error, j.bank_consent_id";

const NOTE_BANK_CONSENT: &str = "\
    UPDATE notify_jobs SET bank_id = $2, bank_consent_id = $3 WHERE consent_id = $1";

/// A bank's event makes its consent's job due now. A job claimed at that moment (its
/// `due_at` the end of its lease) may then be claimed again before the first refresh ends:
/// detection is compare-and-set, so each change is still announced once.
const DUE_FOR_BANK_EVENT: &str = "\
    UPDATE notify_jobs SET due_at = $3 \
    WHERE bank_id = $1 AND bank_consent_id = $2 AND due_at > $3 \
    RETURNING consent_id";

const JOB_OF_BANK_CONSENT: &str = "\
    SELECT consent_id FROM notify_jobs WHERE bank_id = $1 AND bank_consent_id = $2";

const FINISH: &str = "\
    UPDATE notify_jobs SET due_at = $2, failures = $3, last_error = $4 WHERE consent_id = $1";

const DROP_JOB: &str = "\
    WITH jobs AS (DELETE FROM notify_jobs WHERE consent_id = $1), \
         accounts AS (DELETE FROM notify_accounts WHERE consent_id = $1) \
    DELETE FROM notify_seen WHERE consent_id = $1";

/// The same count and the same conditional upsert as the data path's budget
/// (`store/pg/access.rs`): the row lock serialises every spender of a consent.
const SPEND: &str = "\
    INSERT INTO access_counts AS counts (consent_id, day, used) \
    SELECT $1, $2, 1 WHERE $3::bigint > 0 \
    ON CONFLICT (consent_id, day) DO UPDATE SET used = counts.used + 1 \
        WHERE counts.used < $3::bigint \
    RETURNING used";

const ACCOUNT_STATE: &str = "\
    SELECT balance_digest, generation FROM notify_accounts \
    WHERE consent_id = $1 AND account_id = $2";

const FIRST_STATE: &str = "\
    INSERT INTO notify_accounts (consent_id, account_id, balance_digest, generation, updated_at) \
    VALUES ($1, $2, $3, 0, $4) ON CONFLICT (consent_id, account_id) DO NOTHING";

const NEXT_STATE: &str = "\
    UPDATE notify_accounts SET balance_digest = $3, generation = generation + 1, updated_at = $5 \
    WHERE consent_id = $1 AND account_id = $2 AND generation = $4";

const SEEN: &str = "\
    SELECT pseudonym, match_key, seen_at FROM notify_seen \
    WHERE consent_id = $1 AND account_id = $2";

const MARK_SEEN: &str = "\
    INSERT INTO notify_seen (consent_id, account_id, pseudonym, match_key, seen_at) \
    SELECT $1, $2, seen.pseudonym, seen.match_key, seen.seen_at \
    FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS seen (pseudonym, match_key, seen_at) \
    ON CONFLICT (consent_id, account_id, pseudonym) DO NOTHING \
    RETURNING pseudonym, match_key";

fn subscription_from_row(row: &Row) -> Result<Subscription, StoreError> {
    let events: Vec<String> = column(row, "events")?;
    let mode: String = column(row, "mode")?;
    Ok(record!(row, Subscription {
        id, client_id, consent_id, purpose, created_at;
        events: events
            .iter()
            .map(|name| {
                EventType::parse(name).ok_or_else(|| corrupt(format_args!("event {name:?}")))
            })
            .collect::<Result<_, _>>()?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt(format_args!("mode {mode:?}")))?,
    }))
}

fn seen_from_row(row: &Row) -> Result<Seen, StoreError> {
    Ok(record!(row, Seen { pseudonym, match_key; }))
}

async fn subscriptions_where(
    db: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Subscription>, StoreError> {
    let sql = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM notify_subscriptions WHERE {condition} \
         ORDER BY created_at, id"
    );
    query(db, "subscription", &sql, params)
        .await?
        .iter()
        .map(subscription_from_row)
        .collect()
}

#[async_trait]
impl Subscriptions for super::PgStore {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let events: Vec<&str> = subscription
            .events
            .iter()
            .map(|event| event.as_str())
            .collect();
        execute(
            &self.connection().await?,
            "subscription",
            INSERT_SUBSCRIPTION,
            &[
                &subscription.id,
                &subscription.client_id,
                &subscription.consent_id,
                &subscription.purpose,
                &events,
                &subscription.mode.as_str(),
                &subscription.created_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn subscriptions_of(&self, client_id: &str) -> Result<Vec<Subscription>, StoreError> {
        subscriptions_where(&self.connection().await?, "client_id = $1", &[&client_id]).await
    }

    async fn delete_subscription(&self, client_id: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = execute(
            &self.connection().await?,
            "subscription",
            DELETE_SUBSCRIPTION,
            &[&id, &client_id],
        )
        .await?;
        Ok(deleted == 1)
    }

    async fn subscriptions_for(&self, consent: &Consent) -> Result<Vec<Subscription>, StoreError> {
        subscriptions_where(
            &self.connection().await?,
            "client_id = $1 AND (consent_id = $2 OR (consent_id IS NULL AND purpose = $3))",
            &[&consent.client_id, &consent.id, &consent.purpose],
        )
        .await
    }

    async fn schedule_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        execute(&self.connection().await?, "refresh job", SCHEDULE, &[&now]).await
    }

    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut jobs = query(
            &self.connection().await?,
            "refresh job",
            CLAIM,
            &[&now, &i64::from(limit), &lease_until],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(record!(row, Job {
                consent_id, due_at, failures, last_error, bank_consent_id;
            }))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        jobs.sort_by(|a, b| (a.due_at, &a.consent_id).cmp(&(b.due_at, &b.consent_id)));
        Ok(jobs)
    }

    async fn finish_job(
        &self,
        consent_id: &str,
        due_at: DateTime<Utc>,
        failures: i32,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        execute(
            &self.connection().await?,
            "refresh job",
            FINISH,
            &[&consent_id, &due_at, &failures, &last_error],
        )
        .await?;
        Ok(())
    }

    async fn note_bank_consent(
        &self,
        consent_id: &str,
        bank_id: &str,
        bank_consent_id: &str,
    ) -> Result<(), StoreError> {
        execute(
            &self.connection().await?,
            "refresh job",
            NOTE_BANK_CONSENT,
            &[&consent_id, &bank_id, &bank_consent_id],
        )
        .await?;
        Ok(())
    }

    async fn due_for_bank_event(
        &self,
        bank_id: &str,
        bank_consent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let db = self.connection().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&bank_id, &bank_consent_id, &now];
        if let Some(row) = query_opt(&db, "refresh job", DUE_FOR_BANK_EVENT, &params).await? {
            return Ok(Some(column(&row, "consent_id")?));
        }
        // Already due: the job is found all the same.
        query_opt(&db, "refresh job", JOB_OF_BANK_CONSENT, &params[..2])
            .await?
            .map(|row| column(&row, "consent_id"))
            .transpose()
    }

    async fn drop_job(&self, consent_id: &str) -> Result<(), StoreError> {
        execute(
            &self.connection().await?,
            "refresh job",
            DROP_JOB,
            &[&consent_id],
        )
        .await?;
        Ok(())
    }

    async fn spend_unattended(
        &self,
        consent_id: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let spent = query_opt(
            &self.connection().await?,
            "access count",
            SPEND,
            &[&consent_id, &day, &i64::from(limit)],
        )
        .await?;
        Ok(spent.is_some())
    }

    async fn account_state(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountState>, StoreError> {
        query_opt(
            &self.connection().await?,
            "account state",
            ACCOUNT_STATE,
            &[&consent_id, &account_id],
        )
        .await?
        .map(|row| Ok(record!(&row, AccountState { balance_digest, generation; })))
        .transpose()
    }

    async fn swap_account_state(
        &self,
        consent_id: &str,
        account_id: &str,
        expected: Option<i64>,
        balance_digest: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let db = self.connection().await?;
        let changed = match expected {
            None => {
                execute(
                    &db,
                    "account state",
                    FIRST_STATE,
                    &[&consent_id, &account_id, &balance_digest, &now],
                )
                .await?
            }
            Some(generation) => {
                execute(
                    &db,
                    "account state",
                    NEXT_STATE,
                    &[&consent_id, &account_id, &balance_digest, &generation, &now],
                )
                .await?
            }
        };
        Ok(changed == 1)
    }

    async fn seen(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Vec<(Seen, DateTime<Utc>)>, StoreError> {
        query(
            &self.connection().await?,
            "seen transaction",
            SEEN,
            &[&consent_id, &account_id],
        )
        .await?
        .iter()
        .map(|row| Ok((seen_from_row(row)?, column(row, "seen_at")?)))
        .collect()
    }

    async fn mark_seen(
        &self,
        consent_id: &str,
        account_id: &str,
        seen: &[(Seen, DateTime<Utc>)],
    ) -> Result<Vec<Seen>, StoreError> {
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        let pseudonyms: Vec<&str> = seen
            .iter()
            .map(|(seen, _)| seen.pseudonym.as_str())
            .collect();
        let keys: Vec<&str> = seen
            .iter()
            .map(|(seen, _)| seen.match_key.as_str())
            .collect();
        let times: Vec<DateTime<Utc>> = seen.iter().map(|(_, at)| *at).collect();
        query(
            &self.connection().await?,
            "seen transaction",
            MARK_SEEN,
            &[&consent_id, &account_id, &pseudonyms, &keys, &times],
        )
        .await?
        .iter()
        .map(seen_from_row)
        .collect()
    }
}
