//! The audit log in PostgreSQL: chained appends under an advisory lock, filtered reads that
//! check every row against the bytes its hash covers.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{column, corrupt, sql_error};
use crate::audit::{self, Action, Decision, Event, Filter, GENESIS, Record};
use crate::store::StoreError;

/// Advisory lock key that orders appends (`"bankgate"` in ASCII). Held until the appending
/// transaction ends, so positions and hashes are assigned by one writer at a time, also when
/// several gateway instances share the database.
pub const APPEND_LOCK_KEY: i64 = 0x6261_6e6b_6761_7465;

const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

const HEAD: &str = "SELECT position, hash FROM audit_events ORDER BY position DESC LIMIT 1";

/// One statement for the whole batch: one array per column. `categories` and `fields` are
/// lists per row, so they travel as one JSON array per row.
const INSERT: &str = "\
    INSERT INTO audit_events \
        (position, id, time, actor, action, platform, bank, consent, user_ref, purpose, \
         policy_hash, categories, fields, n_records, decision, reason, request_id, \
         prev_hash, hash, canonical) \
    SELECT e.position, e.id, e.time, e.actor, e.action, e.platform, e.bank, e.consent, \
           e.user_ref, e.purpose, e.policy_hash, \
           ARRAY(SELECT item FROM jsonb_array_elements_text(e.categories) \
                 WITH ORDINALITY AS c(item, n) ORDER BY n)::text[], \
           ARRAY(SELECT item FROM jsonb_array_elements_text(e.fields) \
                 WITH ORDINALITY AS f(item, n) ORDER BY n)::text[], \
           e.n_records, e.decision, e.reason, e.request_id, e.prev_hash, e.hash, e.canonical \
    FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], \
                $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
                $12::jsonb[], $13::jsonb[], $14::bigint[], $15::text[], $16::text[], \
                $17::text[], $18::bytea[], $19::bytea[], $20::bytea[]) \
         AS e(position, id, time, actor, action, platform, bank, consent, user_ref, purpose, \
              policy_hash, categories, fields, n_records, decision, reason, request_id, \
              prev_hash, hash, canonical)";

const SELECT: &str = "\
    SELECT position, id, time, actor, action, platform, bank, consent, user_ref, purpose, \
           policy_hash, categories, fields, n_records, decision, reason, request_id, \
           prev_hash, hash, canonical \
    FROM audit_events";

/// Appends `events` to the chain and returns them linked. Takes a transaction: the advisory
/// lock it holds until commit is what keeps positions gapless and the chain unforked.
///
/// Event times are truncated to microseconds first (what PostgreSQL stores), so the hashed
/// bytes are the bytes read back.
pub async fn append(
    transaction: &Transaction<'_>,
    events: Vec<Event>,
) -> Result<Vec<Record>, StoreError> {
    let error = sql_error("audit event");
    let statement = transaction.prepare_cached(LOCK).await.map_err(&error)?;
    transaction
        .execute(&statement, &[&APPEND_LOCK_KEY])
        .await
        .map_err(&error)?;
    let statement = transaction.prepare_cached(HEAD).await.map_err(&error)?;
    let (position, hash) = match transaction
        .query_opt(&statement, &[])
        .await
        .map_err(&error)?
    {
        Some(row) => (column::<i64>(&row, "position")?, hash32(&row, "hash")?),
        None => (0, GENESIS),
    };
    let events = events.into_iter().map(normalise).collect();
    let records = audit::link(position, hash, events);

    let columns = Columns::of(&records);
    let statement = transaction.prepare_cached(INSERT).await.map_err(&error)?;
    let inserted = transaction
        .execute(&statement, &columns.params())
        .await
        .map_err(&error)?;
    if inserted != records.len() as u64 {
        return Err(StoreError::Invariant(
            "audit insert wrote a different number of rows",
        ));
    }
    Ok(records)
}

/// Events matching `filter`, by ascending position, at most `filter.page_size()`.
///
/// Every row is checked: its `canonical` bytes must decode to an event that serialises back
/// to the same bytes and agrees with the typed columns; otherwise `Corrupt`. The chain itself
/// is checked by [`audit::verify`] over what this returns.
pub async fn query(db: &impl GenericClient, filter: &Filter) -> Result<Vec<Record>, StoreError> {
    let error = sql_error("audit event");
    let action = filter.action.map(Action::as_str);
    let decision = filter.decision.map(Decision::as_str);
    let limit = i64::from(filter.page_size());
    let mut clauses = Where::default();
    let text = [
        ("platform =", &filter.platform),
        ("bank =", &filter.bank),
        ("consent =", &filter.consent),
        ("user_ref =", &filter.user_ref),
        ("purpose =", &filter.purpose),
    ];
    for (sql, value) in text {
        if let Some(value) = value {
            clauses.push(sql, value);
        }
    }
    if let Some(action) = &action {
        clauses.push("action =", action);
    }
    if let Some(decision) = &decision {
        clauses.push("decision =", decision);
    }
    if let Some(from) = &filter.from {
        clauses.push("time >=", from);
    }
    if let Some(to) = &filter.to {
        clauses.push("time <", to);
    }
    if let Some(after) = &filter.after {
        clauses.push("position >", after);
    }
    let mut sql = String::from(SELECT);
    if !clauses.conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.conditions.join(" AND "));
    }
    clauses.params.push(&limit);
    sql.push_str(&format!(
        " ORDER BY position LIMIT ${}",
        clauses.params.len()
    ));

    let statement = db.prepare_cached(&sql).await.map_err(&error)?;
    db.query(&statement, &clauses.params)
        .await
        .map_err(&error)?
        .iter()
        .map(from_row)
        .collect()
}

/// A WHERE clause under construction: conditions and their positional parameters.
#[derive(Default)]
struct Where<'a> {
    conditions: Vec<String>,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Where<'a> {
    /// Adds `<sql> $n` (e.g. `platform = $1`) with `param` as `$n`.
    fn push(&mut self, sql: &str, param: &'a (dyn ToSql + Sync)) {
        self.params.push(param);
        self.conditions
            .push(format!("{sql} ${}", self.params.len()));
    }
}

/// The event as PostgreSQL will store it.
fn normalise(mut event: Event) -> Event {
    event.time = truncate_to_micros(event.time);
    event
}

/// Drops sub-microsecond digits, as the driver does when it sends a timestamp.
pub(crate) fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    time.trunc_subsecs(6)
}

/// The batch, column by column, in the order of [`INSERT`]'s parameters.
struct Columns<'a> {
    position: Vec<i64>,
    id: Vec<&'a str>,
    time: Vec<DateTime<Utc>>,
    actor: Vec<&'a str>,
    action: Vec<&'static str>,
    platform: Vec<Option<&'a str>>,
    bank: Vec<Option<&'a str>>,
    consent: Vec<Option<&'a str>>,
    user_ref: Vec<Option<&'a str>>,
    purpose: Vec<Option<&'a str>>,
    policy_hash: Vec<Option<&'a str>>,
    categories: Vec<serde_json::Value>,
    fields: Vec<serde_json::Value>,
    n_records: Vec<i64>,
    decision: Vec<&'static str>,
    reason: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    prev_hash: Vec<&'a [u8]>,
    hash: Vec<&'a [u8]>,
    canonical: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    fn of(records: &'a [Record]) -> Columns<'a> {
        let strings = |values: &[String]| {
            serde_json::Value::Array(
                values
                    .iter()
                    .map(|value| serde_json::Value::String(value.clone()))
                    .collect(),
            )
        };
        let events = || records.iter().map(|record| &record.event);
        Columns {
            position: records.iter().map(|record| record.position).collect(),
            id: events().map(|event| event.id.as_str()).collect(),
            time: events().map(|event| event.time).collect(),
            actor: events().map(|event| event.actor.as_str()).collect(),
            action: events().map(|event| event.action.as_str()).collect(),
            platform: events().map(|event| event.platform.as_deref()).collect(),
            bank: events().map(|event| event.bank.as_deref()).collect(),
            consent: events().map(|event| event.consent.as_deref()).collect(),
            user_ref: events().map(|event| event.user_ref.as_deref()).collect(),
            purpose: events().map(|event| event.purpose.as_deref()).collect(),
            policy_hash: events().map(|event| event.policy_hash.as_deref()).collect(),
            categories: events().map(|event| strings(&event.categories)).collect(),
            fields: events().map(|event| strings(&event.fields)).collect(),
            n_records: events().map(|event| i64::from(event.n_records)).collect(),
            decision: events().map(|event| event.decision.as_str()).collect(),
            reason: events().map(|event| event.reason.as_deref()).collect(),
            request_id: events().map(|event| event.request_id.as_deref()).collect(),
            prev_hash: records.iter().map(|record| &record.prev_hash[..]).collect(),
            hash: records.iter().map(|record| &record.hash[..]).collect(),
            canonical: events().map(Event::canonical_bytes).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 20] {
        [
            &self.position,
            &self.id,
            &self.time,
            &self.actor,
            &self.action,
            &self.platform,
            &self.bank,
            &self.consent,
            &self.user_ref,
            &self.purpose,
            &self.policy_hash,
            &self.categories,
            &self.fields,
            &self.n_records,
            &self.decision,
            &self.reason,
            &self.request_id,
            &self.prev_hash,
            &self.hash,
            &self.canonical,
        ]
    }
}

fn from_row(row: &Row) -> Result<Record, StoreError> {
    let position: i64 = column(row, "position")?;
    let broken = |what: &str| corrupt(format_args!("audit event at position {position}: {what}"));
    let canonical: Vec<u8> = column(row, "canonical")?;
    let event: Event = serde_json::from_slice(&canonical)
        .map_err(|_| broken("canonical bytes are not an event"))?;
    if event.canonical_bytes() != canonical {
        return Err(broken("canonical bytes are not in canonical form"));
    }
    if typed_columns(row)? != event {
        return Err(broken("columns disagree with the canonical bytes"));
    }
    Ok(Record {
        position,
        prev_hash: hash32(row, "prev_hash")?,
        hash: hash32(row, "hash")?,
        event,
    })
}

/// The event as the typed columns tell it.
fn typed_columns(row: &Row) -> Result<Event, StoreError> {
    let action: String = column(row, "action")?;
    let decision: String = column(row, "decision")?;
    let n_records: i64 = column(row, "n_records")?;
    Ok(Event {
        id: column(row, "id")?,
        time: column(row, "time")?,
        actor: column(row, "actor")?,
        action: Action::parse(&action)
            .ok_or_else(|| corrupt(format_args!("audit action {action:?}")))?,
        platform: column(row, "platform")?,
        bank: column(row, "bank")?,
        consent: column(row, "consent")?,
        user_ref: column(row, "user_ref")?,
        purpose: column(row, "purpose")?,
        policy_hash: column(row, "policy_hash")?,
        categories: column(row, "categories")?,
        fields: column(row, "fields")?,
        n_records: u32::try_from(n_records)
            .map_err(|_| corrupt(format_args!("audit n_records {n_records}")))?,
        decision: Decision::parse(&decision)
            .ok_or_else(|| corrupt(format_args!("audit decision {decision:?}")))?,
        reason: column(row, "reason")?,
        request_id: column(row, "request_id")?,
    })
}

fn hash32(row: &Row, name: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = column(row, name)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        corrupt(format_args!(
            "audit {name} is {} bytes, not 32",
            bytes.len()
        ))
    })
}
