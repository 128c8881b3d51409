//! PostgreSQL store: [`PgStore`] over a deadpool pool, migrations, and SQLSTATE → [`StoreError`].
//!
//! Each aggregate keeps its SQL as `const` strings in its own file (`pg/<aggregate>.rs`); its
//! functions take `&impl GenericClient`, so a caller chooses between a pooled connection and a
//! transaction. [`PgStore`] implements each aggregate's trait in that aggregate's file: it checks
//! out a connection and calls them.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod authorizations;
pub mod banks;
pub mod clients;
pub mod consents;
pub mod grants;
pub mod notify;
pub mod payees;
pub mod payments;
pub mod retention;
pub mod subjects;
pub mod tokens;
pub mod verification;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::store::StoreError;
use crate::store::access::{AccessQuery, AccessReads, AccessState};

/// What the aggregate functions run on: a pooled connection or a transaction.
pub use deadpool_postgres::GenericClient;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory lock key held while migrations run (`"bankgate"` + `"migrate"`), so that two
/// instances starting together apply them once.
pub const MIGRATION_LOCK_KEY: i64 = 0x6267_6d69_6772_6174;

/// How long a caller waits for a pooled connection before the store reports `Unavailable`.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL implementation of every storage trait ([`crate::store::Store`]).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: show its size only.
        f.debug_struct("PgStore")
            .field("max_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

/// Connects to `database_url` (a `postgres://` URL or `key=value` string) with a pool of at
/// most `max_connections`, and checks that the server answers.
pub async fn connect(database_url: &str, max_connections: usize) -> Result<PgStore, StoreError> {
    let mut config = parse_config(database_url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_connections.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|error| StoreError::Unavailable(Box::new(error)))?;
    let store = PgStore { pool };
    let client = store.connection().await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(sql_error("connection check"))?;
    Ok(store)
}

impl PgStore {
    /// A store over an existing pool.
    pub fn from_pool(pool: Pool) -> PgStore {
        PgStore { pool }
    }

    /// The pool, for callers that run several aggregate functions in one transaction.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn connection(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// The migrations one [`migrate`] call applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Applied in this run, in order; empty when the schema was already current.
    pub applied: Vec<AppliedMigration>,
}

/// One migration applied by [`migrate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The `n` of `V{n}__{name}.sql`.
    pub version: u32,
    /// The `name` of `V{n}__{name}.sql`.
    pub name: String,
}

/// Applies the embedded `migrations/` that the database lacks, recording them in refinery's
/// history table.
///
/// Runs under a session advisory lock ([`MIGRATION_LOCK_KEY`]): concurrent callers wait, then
/// find nothing left to apply. Each migration commits in its own transaction.
pub async fn migrate(database_url: &str) -> Result<MigrationReport, StoreError> {
    let mut config = parse_config(database_url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|error| StoreError::Unavailable(Box::new(error)))?;
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "migration connection ended with an error");
        }
    });
    let result = migrate_locked(&mut client).await;
    // Closing the session releases the lock also when `migrate_locked` failed before unlocking.
    drop(client);
    let _ = connection.await;
    result
}

/// The migrations this binary embeds, as (version, name, checksum): what [`migrate`] applies.
/// Test templates are keyed by it, so binaries built from different `migrations/` never share
/// one.
pub fn embedded_migrations() -> Vec<(u32, String, u64)> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|migration| {
            (
                migration.version(),
                migration.name().to_owned(),
                migration.checksum(),
            )
        })
        .collect()
}

async fn migrate_locked(
    client: &mut tokio_postgres::Client,
) -> Result<MigrationReport, StoreError> {
    // The application role (`bankgate_app`, see V8) owns nothing and cannot create tables: it
    // only checks that the schema owner applied every migration.
    let may_create: bool = client
        .query_one("SELECT has_schema_privilege('public', 'CREATE')", &[])
        .await
        .map_err(sql_error("migration check"))?
        .get(0);
    if !may_create {
        return check_migrated(client).await;
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(sql_error("migration lock"))?;
    let report = embedded::migrations::runner()
        .run_async(client)
        .await
        .map_err(|error| StoreError::Query(Box::new(error)));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(sql_error("migration lock"));
    // A failed migration is the news; a failed unlock only matters after a success.
    let report = report?;
    unlocked?;
    let applied = report
        .applied_migrations()
        .iter()
        .map(|migration| AppliedMigration {
            version: migration.version(),
            name: migration.name().to_owned(),
        })
        .collect();
    Ok(MigrationReport { applied })
}

/// For a role that may not change the schema: every embedded migration must be applied.
async fn check_migrated(client: &tokio_postgres::Client) -> Result<MigrationReport, StoreError> {
    let applied: Vec<i32> = client
        .query("SELECT version FROM refinery_schema_history", &[])
        .await
        .map_err(sql_error("migration check"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<String> = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .filter(|migration| {
            !applied
                .iter()
                .any(|version| u32::try_from(*version).ok() == Some(migration.version()))
        })
        .map(|migration| format!("V{}__{}", migration.version(), migration.name()))
        .collect();
    if missing.is_empty() {
        return Ok(MigrationReport::default());
    }
    Err(StoreError::Query(
        format!(
            "this role may not change the schema and {} is not applied: run `bankgate migrate` \
             as the schema owner",
            missing.join(", ")
        )
        .into(),
    ))
}

fn parse_config(database_url: &str) -> Result<tokio_postgres::Config, StoreError> {
    // The error may quote the URL, password included: keep only its kind.
    tokio_postgres::Config::from_str(database_url).map_err(|_| {
        StoreError::Unavailable("DATABASE_URL is not a valid PostgreSQL connection string".into())
    })
}

/// Turns a pool error into `Unavailable`: no connection could be had.
fn pool_error(error: PoolError) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// Runs `sql` (prepared once per connection) with `params`: the number of rows it changed.
/// Errors name `what`, as [`sql_error`] does.
pub(crate) async fn execute(
    db: &impl GenericClient,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let error = sql_error(what);
    let statement = db.prepare_cached(sql).await.map_err(&error)?;
    db.execute(&statement, params).await.map_err(&error)
}

/// Runs `sql` like [`execute`]: its rows.
pub(crate) async fn query(
    db: &impl GenericClient,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let error = sql_error(what);
    let statement = db.prepare_cached(sql).await.map_err(&error)?;
    db.query(&statement, params).await.map_err(&error)
}

/// Runs `sql` like [`execute`]: its one row, if any.
pub(crate) async fn query_opt(
    db: &impl GenericClient,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let error = sql_error(what);
    let statement = db.prepare_cached(sql).await.map_err(&error)?;
    db.query_opt(&statement, params).await.map_err(&error)
}

/// Runs `sql` like [`execute`]: its one row.
pub(crate) async fn query_one(
    db: &impl GenericClient,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, StoreError> {
    let error = sql_error(what);
    let statement = db.prepare_cached(sql).await.map_err(&error)?;
    db.query_one(&statement, params).await.map_err(&error)
}

/// Maps a driver error by SQLSTATE: unique violation → `Conflict(what)`, lost or refused
/// connections → `Unavailable`, anything else → `Query`.
pub(crate) fn sql_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| match error.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(what),
        Some(code) if is_unavailable(code) => StoreError::Unavailable(Box::new(error)),
        Some(_) => StoreError::Query(Box::new(error)),
        None if error.is_closed() || has_io_source(&error) => {
            StoreError::Unavailable(Box::new(error))
        }
        None => StoreError::Query(Box::new(error)),
    }
}

fn is_unavailable(code: &SqlState) -> bool {
    // Class 08: connection exception; 57P0x: shutdown, crash recovery; 53300: too many
    // connections.
    let code = code.code();
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// Whether `key` can be a PostgreSQL `text` value. One holding U+0000 cannot, so no stored id
/// holds it: a look-up by it finds nothing (as on the memory store) instead of failing with a
/// database error. Routes refuse such input up front; this keeps the look-ups that authenticate
/// (client ids from HTTP Basic) and the operator's paths from answering 500.
fn storable(key: &str) -> bool {
    !key.contains('\0')
}

/// A stored value that does not decode: `Corrupt`.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A record read from a row: `record!(row, Client { client_id, name, …; role: …, … })` reads
/// each field before the `;` from the column of the same name ([`column`]) and takes each
/// field after it as written (a column that needs parsing or checking first).
macro_rules! record {
    ($row:expr, $record:ident { $($field:ident),+ $(,)? ; $($special:ident : $value:expr),* $(,)? }) => {
        $record {
            $($field: $crate::store::pg::column($row, stringify!($field))?,)+
            $($special: $value,)*
        }
    };
}
pub(crate) use record;

/// Column `column` of `row`, or `Corrupt` naming it.
pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T, StoreError> {
    row.try_get(column)
        .map_err(|error| corrupt(format_args!("column {column}: {error}")))
}

#[async_trait]
impl AccessReads for PgStore {
    async fn access_state(&self, query: &AccessQuery) -> Result<AccessState, StoreError> {
        access::read(&self.connection().await?, query).await
    }

    async fn refund_access(&self, consent_id: &str, day: NaiveDate) -> Result<(), StoreError> {
        access::refund(&self.connection().await?, consent_id, day).await
    }
}

#[async_trait]
impl crate::store::Operational for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn operational_counts(&self) -> Result<super::OperationalCounts, StoreError> {
        let client = self.connection().await?;
        let statement = client
            .prepare_cached(OPERATIONAL_COUNTS)
            .await
            .map_err(sql_error("metrics"))?;
        let rows = client
            .query(&statement, &[])
            .await
            .map_err(sql_error("metrics"))?;
        let mut counts = super::OperationalCounts::default();
        for row in &rows {
            let kind: String = column(row, "kind")?;
            let n: i64 = column(row, "n")?;
            match kind.as_str() {
                "webhooks_pending" => counts.webhooks_pending = n,
                _ => counts
                    .consents_by_state
                    .push((column::<String>(row, "state")?, n)),
            }
        }
        Ok(counts)
    }
}

/// Consents by state and pending webhook deliveries, in one round trip (the metrics scrape).
const OPERATIONAL_COUNTS: &str = "\
    SELECT 'consents' AS kind, status AS state, count(*) AS n FROM consents GROUP BY status \
    UNION ALL \
    SELECT 'webhooks_pending', '', count(*) FROM webhook_deliveries WHERE status = 'pending'";
