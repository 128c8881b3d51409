//! The audit log in PostgreSQL: chained appends (one statement per batch; the database takes
//! the chain lock and hashes), filtered reads that check every row against the bytes its
//! hash covers, daily summaries (one GROUP BY), the chain stream verification reads,
//! checkpoints, partitions and archives.
//!
//! Tables (see `migrations/V8__audit.sql`): `audit_events`, partitioned by month of
//! `chained_at`; `audit_chain`, the unpartitioned spine whose keys keep positions and event ids
//! unique and where appenders read the head; `audit_checkpoints`; `audit_partitions`;
//! `audit_archives`.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::Row;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;

use async_trait::async_trait;

use super::{column, corrupt, execute, pool_error, query_one, query_opt, record, sql_error};
use crate::audit::AuditLog;
use crate::audit::{
    self, Action, Archive, Checkpoint, Decision, Event, Filter, Partition, Record, StoredRecord,
    SummaryFilter, SummaryRow,
};
use crate::model::WireName;
use crate::store::StoreError;

/// Advisory lock key that orders appends (`"bankgate"` in ASCII), taken by
/// `audit_begin_append` in the database. Held until the appending transaction ends, so positions and hashes are
/// assigned by one writer at a time, also when several gateway instances share the database.
pub const APPEND_LOCK_KEY: i64 = 0x6261_6e6b_6761_7465;

/// The head, for readers (appenders read it inside [`BEGIN_APPEND`]).
const HEAD: &str =
    "SELECT position, hash, chained_at FROM audit_chain ORDER BY position DESC LIMIT 1";

/// The durability barrier after an append: a transaction that takes an id commits
/// synchronously, waiting until the WAL is flushed past its commit record — and so past the
/// batch's, which came before it.
const BARRIER: &str = "SELECT pg_current_xact_id()";

const SELECT: &str = "\
    SELECT position, id, time, actor, action, platform, bank, consent, user_ref, purpose, \
           policy_hash, categories, fields, n_records, decision, reason, request_id, \
           prev_hash, hash, canonical \
    FROM audit_events";

/// Every row after a position, in chain order: one statement streamed to the end, so the
/// verifier sees one consistent snapshot in constant memory.
const CHAIN: &str = "\
    SELECT position, id, time, actor, action, platform, bank, consent, user_ref, purpose, \
           policy_hash, categories, fields, n_records, decision, reason, request_id, \
           prev_hash, hash, canonical \
    FROM audit_events WHERE position > $1 ORDER BY position";

/// How far an event's `chained_at` (the database's clock, when it took its position) may lie
/// from its own `time` (the gateway's clock, when it happened), either way: the clocks may
/// disagree, and an event is committed moments after it happens — the gateway records every
/// event in the request or task that makes it, and a request times out in seconds.
/// Time-filtered queries look this far beyond their range (and then filter on `time`
/// exactly); an event appended more than this after its `time` is missed by a query whose
/// `to` precedes its `chained_at` by more than the margin.
const CHAIN_MARGIN: chrono::Duration = chrono::Duration::days(1);

const FIRST_POSITION_AT: &str = "SELECT audit_first_position_at($1) AS first";

const HASH_AT: &str = "SELECT hash FROM audit_chain WHERE position = $1";

const ADD_CHECKPOINT: &str = "\
    INSERT INTO audit_checkpoints (position, hash, time, kid, jws) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (position) DO NOTHING";

/// As [`ADD_CHECKPOINT`], unless a checkpoint sits above `$1 - $6`.
const ADD_SPACED_CHECKPOINT: &str = "\
    INSERT INTO audit_checkpoints (position, hash, time, kid, jws) \
    SELECT $1::bigint, $2::bytea, $3::timestamptz, $4::text, $5::text \
    WHERE NOT EXISTS \
        (SELECT 1 FROM audit_checkpoints WHERE position > $1::bigint - $6::bigint) \
    ON CONFLICT (position) DO NOTHING";

const CHECKPOINTS: &str = "\
    SELECT position, hash, time, kid, jws FROM audit_checkpoints \
    WHERE position > $1 ORDER BY position LIMIT $2";

const LATEST_CHECKPOINT: &str = "\
    SELECT position, hash, time, kid, jws FROM audit_checkpoints \
    ORDER BY position DESC LIMIT 1";

const PARTITIONS: &str =
    "SELECT name, from_time, to_time, dropped_at FROM audit_partitions ORDER BY from_time";

const PREPARE_PARTITIONS: &str = "SELECT audit_ensure_partitions($1, $2)";

/// What a partition holds: its `chained_at` range selects exactly that partition.
const EXTENT: &str = "\
    SELECT count(*) AS n, min(position) AS first, max(position) AS last FROM audit_events \
    WHERE chained_at >= $1 AND chained_at < $2";

const DROP_PARTITION: &str =
    "SELECT audit_drop_partition($1, $2::bigint * interval '1 second', $3, $4, $5, $6, $7)";

const ARCHIVES: &str = "\
    SELECT partition, n_events, first_position, last_position, sha256, file \
    FROM audit_archives ORDER BY last_position NULLS FIRST";

/// Opens an append (see `audit_begin_append` in `migrations/V18__audit_copy_append.sql`): the
/// chain lock for the transaction, the head, and the batch's `chained_at`. Commits
/// asynchronously.
const BEGIN_APPEND: &str = "SELECT head_position, head_hash, chained_at FROM audit_begin_append()";

/// The batch, loaded by binary COPY under the lock: spine first (its keys refuse a fork or a
/// repeated event id), then the events.
const COPY_SPINE: &str =
    "COPY audit_chain (position, id, chained_at, hash) FROM STDIN (FORMAT binary)";
const COPY_EVENTS: &str = "\
    COPY audit_events (position, id, time, actor, action, platform, bank, consent, user_ref, \
        purpose, policy_hash, categories, fields, n_records, decision, reason, request_id, \
        prev_hash, hash, canonical, chained_at) \
    FROM STDIN (FORMAT binary)";

/// PostgreSQL's check that the batch hangs on the chain, before it commits.
const CHECK_BATCH: &str = "SELECT audit_check_batch($1, $2)";

/// Appends `events` to the chain and returns them linked, once they are durable.
///
/// One transaction. [`BEGIN_APPEND`], pipelined behind `BEGIN`, takes the chain lock and reads
/// the head; the gateway links and hashes the batch (the canonical bytes were serialised before
/// the lock); the spine and the events go in by binary COPY, one after the other; then,
/// pipelined with no wait in between, [`CHECK_BATCH`], `COMMIT` (asynchronous, which releases
/// the lock before the WAL flush) and [`BARRIER`], whose synchronous commit makes the batch
/// durable. Whatever fails aborts the transaction (a failed check makes its `COMMIT` roll back)
/// and the error reaches every caller of the batch; nothing is released on it. The spine's keys
/// refuse a fork or a repeated event id regardless.
///
/// Event times are truncated to microseconds first (what PostgreSQL stores), so the hashed
/// bytes are the bytes read back.
pub async fn append(
    client: deadpool_postgres::Client,
    events: Vec<Event>,
) -> Result<Vec<Record>, StoreError> {
    let error = sql_error("audit event");
    let events: Vec<Event> = events.into_iter().map(normalise).collect();
    let canonical: Vec<Vec<u8>> = events.iter().map(Event::canonical_bytes).collect();
    let begin = client.prepare_cached(BEGIN_APPEND).await.map_err(&error)?;
    let check = client.prepare_cached(CHECK_BATCH).await.map_err(&error)?;
    let barrier = client.prepare_cached(BARRIER).await.map_err(&error)?;
    // Prepared up front: each request below then goes out when its future is first polled, and
    // a biased `tokio::join!` polls them first in the order written, so that is the order they
    // reach the server in.
    let copy_spine_statement = client.prepare_cached(COPY_SPINE).await.map_err(&error)?;
    let copy_events_statement = client.prepare_cached(COPY_EVENTS).await.map_err(&error)?;

    let (opened, head) = tokio::join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query_one(&begin, &[]),
    );
    let head = match opened.and(head) {
        Ok(head) => head,
        Err(failure) => {
            // Leave no transaction open on a connection that goes back to the pool.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(error(failure));
        }
    };
    let linked = (|| {
        let head_position: i64 = column(&head, "head_position")?;
        let head_hash = hash32(&head, "head_hash")?;
        let chained_at: DateTime<Utc> = column(&head, "chained_at")?;
        Ok::<_, StoreError>((head_position, head_hash, chained_at))
    })();
    let (head_position, head_hash, chained_at) = match linked {
        Ok(linked) => linked,
        Err(failure) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failure);
        }
    };
    let records = audit::link_canonical(head_position, head_hash, events, &canonical);
    let first = head_position + 1;
    let last = head_position + records.len() as i64;

    // One COPY after the other, nothing pipelined behind them: after a COPY fails, the server
    // skips what follows until the end of that exchange, which would leave the answers to
    // requests sent behind it out of step.
    let loaded = async {
        copy_spine(&client, &copy_spine_statement, &records, chained_at).await?;
        copy_events(
            &client,
            &copy_events_statement,
            &records,
            &canonical,
            chained_at,
        )
        .await
    }
    .await;
    if let Err(failure) = loaded {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(error(failure));
    }
    let bounds: [&(dyn ToSql + Sync); 2] = [&first, &last];
    let (checked, committed, durable) = tokio::join!(
        biased;
        client.query_one(&check, &bounds),
        client.batch_execute("COMMIT"),
        client.query_one(&barrier, &[]),
    );
    checked.map_err(&error)?;
    committed.map_err(&error)?;
    durable.map_err(&error)?;
    Ok(records)
}

/// The batch's spine rows by binary COPY.
async fn copy_spine(
    client: &deadpool_postgres::Client,
    statement: &tokio_postgres::Statement,
    records: &[Record],
    chained_at: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    let sink = client.copy_in(statement).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::TEXT, Type::TIMESTAMPTZ, Type::BYTEA],
    );
    futures_util::pin_mut!(writer);
    for record in records {
        let hash = &record.hash[..];
        writer
            .as_mut()
            .write(&[&record.position, &record.event.id, &chained_at, &hash])
            .await?;
    }
    writer.finish().await
}

/// The batch's events by binary COPY, in the column order of [`COPY_EVENTS`].
async fn copy_events(
    client: &deadpool_postgres::Client,
    statement: &tokio_postgres::Statement,
    records: &[Record],
    canonical: &[Vec<u8>],
    chained_at: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    let sink = client.copy_in(statement).await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
            Type::TIMESTAMPTZ,
        ],
    );
    futures_util::pin_mut!(writer);
    for (record, bytes) in records.iter().zip(canonical) {
        let event = &record.event;
        let (prev_hash, hash) = (&record.prev_hash[..], &record.hash[..]);
        writer
            .as_mut()
            .write(&[
                &record.position,
                &event.id,
                &event.time,
                &event.actor,
                &event.action.as_str(),
                &event.platform,
                &event.bank,
                &event.consent,
                &event.user_ref,
                &event.purpose,
                &event.policy_hash,
                &event.categories,
                &event.fields,
                &i64::from(event.n_records),
                &event.decision.as_str(),
                &event.reason,
                &event.request_id,
                &prev_hash,
                &hash,
                bytes,
                &chained_at,
            ])
            .await?;
    }
    writer.finish().await
}

/// The last position and its hash.
pub async fn head(db: &impl GenericClient) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    match query_opt(db, "audit event", HEAD, &[]).await? {
        Some(row) => Ok(Some((column(&row, "position")?, hash32(&row, "hash")?))),
        None => Ok(None),
    }
}

/// Every row after `after` in position order, streamed over a connection of its own.
pub fn chain(pool: Pool, after: i64) -> BoxStream<'static, Result<StoredRecord, StoreError>> {
    futures_util::stream::once(async move {
        let error = sql_error("audit event");
        let client = pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(CHAIN).await.map_err(&error)?;
        let rows = client
            .query_raw(&statement, std::iter::once(after))
            .await
            .map_err(&error)?;
        Ok::<_, StoreError>(rows.map(move |row| {
            // The connection goes back to the pool when the stream is dropped.
            let _connection = &client;
            row.map_err(&error).and_then(|row| stored_row(&row))
        }))
    })
    .try_flatten()
    .boxed()
}

/// Stores `checkpoint` (see `AuditLog::add_audit_checkpoint`).
pub async fn add_checkpoint(
    db: &impl GenericClient,
    checkpoint: &Checkpoint,
    min_gap: Option<i64>,
) -> Result<bool, StoreError> {
    let chained = query_opt(db, "audit checkpoint", HASH_AT, &[&checkpoint.position])
        .await?
        .map(|row| hash32(&row, "hash"))
        .transpose()?;
    if chained != Some(checkpoint.hash) {
        return Err(StoreError::Invariant(
            "a checkpoint must carry the chain's hash at its position",
        ));
    }
    let hash = &checkpoint.hash[..];
    let params: [&(dyn ToSql + Sync); 5] = [
        &checkpoint.position,
        &hash,
        &checkpoint.time,
        &checkpoint.kid,
        &checkpoint.jws,
    ];
    let inserted = match min_gap {
        None => execute(db, "audit checkpoint", ADD_CHECKPOINT, &params).await?,
        Some(gap) => {
            let mut spaced = params.to_vec();
            spaced.push(&gap);
            execute(db, "audit checkpoint", ADD_SPACED_CHECKPOINT, &spaced).await?
        }
    };
    Ok(inserted == 1)
}

/// Checkpoints after `after` by ascending position, at most `limit`.
pub async fn checkpoints(
    db: &impl GenericClient,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<Checkpoint>, StoreError> {
    let after = after.unwrap_or(i64::MIN);
    super::query(
        db,
        "audit checkpoint",
        CHECKPOINTS,
        &[&after, &i64::from(limit)],
    )
    .await?
    .iter()
    .map(checkpoint_row)
    .collect()
}

/// The checkpoint at the highest position.
pub async fn latest_checkpoint(db: &impl GenericClient) -> Result<Option<Checkpoint>, StoreError> {
    query_opt(db, "audit checkpoint", LATEST_CHECKPOINT, &[])
        .await?
        .as_ref()
        .map(checkpoint_row)
        .transpose()
}

/// The monthly partitions, oldest first.
pub async fn partitions(db: &impl GenericClient) -> Result<Vec<Partition>, StoreError> {
    super::query(db, "audit partition", PARTITIONS, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(record!(row, Partition {
                name, dropped_at;
                from: column(row, "from_time")?,
                to: column(row, "to_time")?,
            }))
        })
        .collect()
}

/// Creates the missing partitions for the months from `from` to `to`.
pub async fn prepare_partitions(
    db: &impl GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let row = query_one(db, "audit partition", PREPARE_PARTITIONS, &[&from, &to]).await?;
    let created: i32 = row
        .try_get(0)
        .map_err(|error| corrupt(format_args!("created partitions: {error}")))?;
    Ok(u32::try_from(created).unwrap_or(0))
}

/// How many events `partition` holds, and its first and last position.
pub async fn partition_extent(
    db: &impl GenericClient,
    partition: &Partition,
) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
    let row = query_one(
        db,
        "audit partition",
        EXTENT,
        &[&partition.from, &partition.to],
    )
    .await?;
    Ok((
        column(&row, "n")?,
        column(&row, "first")?,
        column(&row, "last")?,
    ))
}

/// Records `archive` and drops its partition (the database function checks everything).
pub async fn drop_partition(
    db: &impl GenericClient,
    archive: &Archive,
    retention: chrono::Duration,
) -> Result<(), StoreError> {
    let seconds = retention.num_seconds();
    execute(
        db,
        "audit partition",
        DROP_PARTITION,
        &[
            &archive.partition,
            &seconds,
            &archive.n_events,
            &archive.first_position,
            &archive.last_position,
            &archive.sha256,
            &archive.file,
        ],
    )
    .await?;
    Ok(())
}

/// Archived partitions, by ascending last position.
pub async fn archives(db: &impl GenericClient) -> Result<Vec<Archive>, StoreError> {
    super::query(db, "audit archive", ARCHIVES, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(record!(row, Archive {
                partition, n_events, first_position, last_position, sha256, file;
            }))
        })
        .collect()
}

fn checkpoint_row(row: &Row) -> Result<Checkpoint, StoreError> {
    Ok(record!(row, Checkpoint {
        position, time, kid, jws;
        hash: hash32(row, "hash")?,
    }))
}

/// The first position chained at or after `at` (one past the head when none is): a binary
/// search over the spine (`audit_first_position_at`, V9).
async fn first_position_at(db: &impl GenericClient, at: &DateTime<Utc>) -> Result<i64, StoreError> {
    let row = query_one(db, "audit event", FIRST_POSITION_AT, &[at]).await?;
    column(&row, "first")
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
    // Time bounds become bounds on `chained_at` and on positions (see below).
    let chained_from = filter.from.map(|from| from - CHAIN_MARGIN);
    let chained_to = filter.to.map(|to| to + CHAIN_MARGIN);
    let first_position = match &chained_from {
        Some(at) => Some(first_position_at(db, at).await?),
        None => None,
    };
    let end_position = match &chained_to {
        Some(at) => Some(first_position_at(db, at).await?),
        None => None,
    };
    let mut clauses = Where::default();
    let text = [
        ("platform =", &filter.platform),
        ("bank =", &filter.bank),
        ("consent =", &filter.consent),
        ("purpose =", &filter.purpose),
    ];
    for (sql, value) in text {
        if let Some(value) = value {
            clauses.push(sql, value);
        }
    }
    // One person may be recorded under several pseudonyms (see `Filter::user_ref_also`).
    let user_refs: Vec<&str> = filter
        .user_ref
        .iter()
        .chain(&filter.user_ref_also)
        .map(String::as_str)
        .collect();
    if filter.user_ref_also.is_empty() {
        if let Some(user_ref) = &filter.user_ref {
            clauses.push("user_ref =", user_ref);
        }
    } else {
        clauses.push("user_ref = ANY", &user_refs);
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
    // An event is chained moments after it happens (see `CHAIN_MARGIN`), and `chained_at`
    // never goes backwards along the chain, so a time range lies within [from - margin,
    // to + margin) of `chained_at` and within the positions chained then. The `chained_at`
    // bounds let PostgreSQL skip whole partitions; the position bounds, looked up first
    // (`audit_first_position_at`, V9) and passed as values, bound each partition's keyset
    // scan, so a time range costs what its own rows do, not what the months around it do.
    if let Some(at) = &chained_from {
        clauses.push("chained_at >=", at);
    }
    if let Some(at) = &chained_to {
        clauses.push("chained_at <", at);
    }
    if let Some(first) = &first_position {
        clauses.push("position >=", first);
    }
    if let Some(end) = &end_position {
        clauses.push("position <", end);
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

    // Prepared afresh, not cached: PostgreSQL then plans with the values (a custom plan), and
    // picks the right index for how selective this filter and these bounds are; a cached
    // generic plan cannot know, and chose full partition scans for narrow time ranges.
    let statement = db.prepare(&sql).await.map_err(&error)?;
    db.query(&statement, &clauses.params)
        .await
        .map_err(&error)?
        .iter()
        .map(from_row)
        .collect()
}

/// The summary: one GROUP BY over the time range (the `time` index, and `chained_at` to skip
/// older partitions); the filters follow as `AND` clauses. Text columns compare and order byte
/// for byte (`COLLATE "C"`), as in memory.
const SUMMARY: &str = "\
    SELECT (time AT TIME ZONE 'UTC')::date AS day, platform, purpose, decision, count(*) AS n \
    FROM audit_events WHERE time >= $1 AND chained_at >= $2";

const SUMMARY_ORDER: &str = " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST, 4";

/// Counts events by UTC day, platform, purpose and decision (see
/// `AuditLog::audit_summary`).
pub async fn summary(
    db: &impl GenericClient,
    filter: &SummaryFilter,
) -> Result<Vec<SummaryRow>, StoreError> {
    // An event is chained after it happens; the margin absorbs clocks that step back.
    let chained_from = filter.from - CHAIN_MARGIN;
    let mut clauses = Where::default();
    clauses.params.extend([
        &filter.from as &(dyn ToSql + Sync),
        &chained_from as &(dyn ToSql + Sync),
    ]);
    if let Some(to) = &filter.to {
        clauses.push("time <", to);
    }
    let text = [
        ("platform =", &filter.platform),
        ("purpose =", &filter.purpose),
        ("bank =", &filter.bank),
    ];
    for (sql, value) in text {
        if let Some(value) = value {
            clauses.push(sql, value);
        }
    }
    let mut sql = String::from(SUMMARY);
    for condition in &clauses.conditions {
        sql.push_str(" AND ");
        sql.push_str(condition);
    }
    sql.push_str(SUMMARY_ORDER);
    super::query(db, "audit event", &sql, &clauses.params)
        .await?
        .iter()
        .map(|row| {
            let decision: String = column(row, "decision")?;
            Ok(record!(row, SummaryRow {
                day, platform, purpose;
                decision: Decision::parse(&decision)
                    .ok_or_else(|| corrupt(format_args!("audit decision {decision:?}")))?,
                count: column(row, "n")?,
            }))
        })
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
        if sql.ends_with("ANY") {
            self.conditions
                .push(format!("{sql}(${})", self.params.len()));
        } else {
            self.conditions
                .push(format!("{sql} ${}", self.params.len()));
        }
    }
}

/// A row as stored, unchecked, for the verifier.
fn stored_row(row: &Row) -> Result<StoredRecord, StoreError> {
    Ok(record!(row, StoredRecord {
        position, prev_hash, hash, canonical;
        columns: typed_columns(row).map_err(|error| error.to_string()),
    }))
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
    Ok(record!(row, Event {
        id, time, actor, platform, bank, consent, user_ref, purpose, policy_hash, categories,
        fields, reason, request_id;
        action: Action::parse(&action)
            .ok_or_else(|| corrupt(format_args!("audit action {action:?}")))?,
        n_records: u32::try_from(n_records)
            .map_err(|_| corrupt(format_args!("audit n_records {n_records}")))?,
        decision: Decision::parse(&decision)
            .ok_or_else(|| corrupt(format_args!("audit decision {decision:?}")))?,
    }))
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

#[async_trait]
impl AuditLog for super::PgStore {
    async fn append_audit(&self, events: Vec<Event>) -> Result<Vec<Record>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        append(self.connection().await?, events).await
    }

    async fn audit_events(&self, filter: &Filter) -> Result<Vec<Record>, StoreError> {
        query(&self.connection().await?, filter).await
    }

    async fn audit_summary(
        &self,
        filter: &crate::audit::SummaryFilter,
    ) -> Result<Vec<crate::audit::SummaryRow>, StoreError> {
        summary(&self.connection().await?, filter).await
    }

    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        head(&self.connection().await?).await
    }

    fn audit_chain(
        &self,
        after: i64,
    ) -> futures_util::stream::BoxStream<'static, Result<crate::audit::StoredRecord, StoreError>>
    {
        chain(self.pool.clone(), after)
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &crate::audit::Checkpoint,
        min_gap: Option<i64>,
    ) -> Result<bool, StoreError> {
        add_checkpoint(&self.connection().await?, checkpoint, min_gap).await
    }

    async fn audit_checkpoints(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<crate::audit::Checkpoint>, StoreError> {
        checkpoints(&self.connection().await?, after, limit).await
    }

    async fn latest_audit_checkpoint(
        &self,
    ) -> Result<Option<crate::audit::Checkpoint>, StoreError> {
        latest_checkpoint(&self.connection().await?).await
    }

    async fn audit_partitions(&self) -> Result<Vec<crate::audit::Partition>, StoreError> {
        partitions(&self.connection().await?).await
    }

    async fn prepare_audit_partitions(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<u32, StoreError> {
        prepare_partitions(&self.connection().await?, from, to).await
    }

    async fn audit_partition_extent(
        &self,
        partition: &crate::audit::Partition,
    ) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
        partition_extent(&self.connection().await?, partition).await
    }

    async fn drop_audit_partition(
        &self,
        archive: &crate::audit::Archive,
        retention: chrono::Duration,
    ) -> Result<(), StoreError> {
        drop_partition(&self.connection().await?, archive, retention).await
    }

    async fn audit_archives(&self) -> Result<Vec<crate::audit::Archive>, StoreError> {
        archives(&self.connection().await?).await
    }
}
