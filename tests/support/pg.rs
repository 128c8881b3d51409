//! PostgreSQL for tests: every test gets its own database, cloned from a migrated template.
//!
//! Include it with `#[path = "../support/pg.rs"] #[allow(dead_code)] mod pg;` (each test
//! binary uses a different part of it). The server comes from `DATABASE_URL` (default: the
//! local one). Without a reachable server the test fails with a message saying how to start
//! one; it never skips.
//!
//! The template is named after a hash of the migrations the test binary embeds, so a changed
//! migration gets a fresh template, and it is built once per server under an advisory lock: test processes started
//! together (cargo-nextest runs one per test) wait for the first to finish it.

use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// The server tests use when `DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Advisory lock key under which the template is built (`"bgtempl8"`).
const TEMPLATE_LOCK_KEY: i64 = 0x6267_7465_6d70_6c38;

/// How long to keep retrying a clone while a lingering session still holds the template.
const CLONE_ATTEMPTS: u32 = 100;
const CLONE_RETRY: Duration = Duration::from_millis(50);

/// The template's name, once this process has made sure it exists.
static TEMPLATE: OnceLock<String> = OnceLock::new();

/// A database of its own for one test, dropped (forcibly) when this value is.
///
/// Creating and dropping run on a thread of their own with their own runtime, so both work
/// inside and outside a tokio runtime (they block the caller for a few milliseconds).
#[derive(Debug)]
pub struct TestDatabase {
    /// Connection string for the database.
    pub url: String,
    /// Its name (`t_<uuid>`).
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// A fresh database with every migration applied.
    pub fn create() -> TestDatabase {
        let admin_url = admin_url();
        on_own_runtime(move |runtime| {
            let template = TEMPLATE
                .get_or_init(|| runtime.block_on(ensure_template(&admin_url)))
                .clone();
            runtime.block_on(clone_database(admin_url, &template))
        })
    }

    /// A fresh, empty database (no migrations), for tests of migrating itself.
    pub fn empty() -> TestDatabase {
        let admin_url = admin_url();
        on_own_runtime(move |runtime| runtime.block_on(clone_database(admin_url, "template0")))
    }
}

impl Drop for TestDatabase {
    /// Drops the database (never panics: a test may be unwinding).
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let (client, connection) = config(&admin_url)
                    .connect(NoTls)
                    .await
                    .map_err(|error| error.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|error| error.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// Runs `work` on a new thread with a current-thread runtime of its own; its panics
/// (e.g. "PostgreSQL is required …") become the caller's.
fn on_own_runtime<T: Send + 'static>(
    work: impl FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
) -> T {
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|error| {
                panic!("cannot start a runtime for the test database: {error}")
            });
        work(&runtime)
    })
    .join();
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `CREATE DATABASE t_<uuid> TEMPLATE <template>`.
async fn clone_database(admin_url: String, template: &str) -> TestDatabase {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&admin_url).await;
    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
    let mut attempt = 1;
    loop {
        match admin.batch_execute(&sql).await {
            Ok(()) => break,
            // A session that just used the template may still be closing.
            Err(error)
                if error.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < CLONE_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(CLONE_RETRY).await;
            }
            Err(error) => panic!("could not create test database {name}: {error}"),
        }
    }
    TestDatabase {
        url: database_url(&admin_url, &name),
        name,
        admin_url,
    }
}

/// The server's admin connection string: `DATABASE_URL` or [`DEFAULT_URL`].
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// `admin_url` pointed at database `name` (URL or `key=value` form).
pub fn database_url(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut url) if matches!(url.scheme(), "postgres" | "postgresql") => {
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        // key=value form: a later key overrides an earlier one.
        _ => format!("{admin_url} dbname={name}"),
    }
}

/// A connection to `url` whose driver task runs on the current runtime; panics with
/// instructions when the server cannot be reached.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    match config(url).connect(NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    eprintln!("test database connection ended: {error}");
                }
            });
            client
        }
        Err(error) => panic!(
            "PostgreSQL is required for this test: could not connect to {} ({}). \
             Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main \
             start, or set DATABASE_URL.",
            redacted(url),
            with_causes(&error),
        ),
    }
}

/// `error` and its sources, `: `-separated (the driver's own message is only the outer one).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn config(url: &str) -> tokio_postgres::Config {
    let mut config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|error| panic!("DATABASE_URL {} is invalid: {error}", redacted(url)));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Makes sure the migrated template for the current `migrations/` exists; returns its name.
async fn ensure_template(admin_url: &str) -> String {
    let template = format!("bankgate_tpl_{}", migrations_hash());
    let admin = connect(admin_url).await;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|error| panic!("could not take the template lock: {error}"));
    let ready: Option<bool> = admin
        .query_opt(
            "SELECT datistemplate FROM pg_database WHERE datname = $1",
            &[&template],
        )
        .await
        .unwrap_or_else(|error| panic!("could not look for {template}: {error}"))
        .map(|row| row.get(0));
    match ready {
        Some(true) => {}
        leftover => {
            // A template is marked only once migrated: anything else is a failed attempt.
            if leftover.is_some() {
                run(
                    &admin,
                    &format!("DROP DATABASE \"{template}\" WITH (FORCE)"),
                )
                .await;
            }
            run(
                &admin,
                &format!("CREATE DATABASE \"{template}\" TEMPLATE template0"),
            )
            .await;
            bankgate::store::pg::migrate(&database_url(admin_url, &template))
                .await
                .unwrap_or_else(|error| panic!("could not migrate {template}: {error:?}"));
            run(
                &admin,
                &format!(
                    "ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                ),
            )
            .await;
        }
    }
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .unwrap_or_else(|error| panic!("could not release the template lock: {error}"));
    template
}

async fn run(admin: &tokio_postgres::Client, sql: &str) {
    admin
        .batch_execute(sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// The first 8 hex digits of a hash over the migrations this test binary embeds (version, name,
/// checksum) — not over `migrations/` as it is now: a binary built before a migration was added
/// must not fill (or use) the template of one built after.
pub fn migrations_hash() -> String {
    let mut input = Vec::new();
    for (version, name, checksum) in bankgate::store::pg::embedded_migrations() {
        input.extend_from_slice(format!("{version}:{name}:{checksum}").as_bytes());
        input.push(0);
    }
    bankgate::crypto::sha256_hex(&input)[..8].to_owned()
}

/// The files of `migrations/`, by name.
pub fn migration_files() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {dir}: {error}"))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|error| panic!("cannot read {dir}: {error}"))
                .path();
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let contents = std::fs::read(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            (name, contents)
        })
        .collect();
    files.sort();
    files
}
