//! Helpers of the audit tests: stores, auditors, keys, waiting, and the `bankgate` binary.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bankgate::audit::verifier::{Report, VerifyOptions, verify_chain};
use bankgate::audit::{
    Action, AuditConfig, Auditor, Decision, Event, Pseudonymiser, VerifyingKeys,
};
use bankgate::crypto::Sealer;
use bankgate::jose::keys::SigningKey;
use bankgate::store::Store;

pub use crate::gateway::Served;

/// The grant key of every test gateway (base64 of bytes 0..32).
pub const GRANT_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Logs to the test's output (shown when it fails).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_test_writer()
        .try_init();
}

pub async fn pg_store(url: &str) -> Arc<dyn Store> {
    init_tracing();
    Arc::new(
        bankgate::store::pg::connect(url, 8)
            .await
            .expect("connect to the test database"),
    )
}

pub fn signing_key() -> Arc<SigningKey> {
    Arc::new(SigningKey::generate().expect("key"))
}

pub fn auditor(store: Arc<dyn Store>, key: &Arc<SigningKey>, config: AuditConfig) -> Auditor {
    let sealer = Sealer::from_base64("test", GRANT_KEY).expect("grant key");
    Auditor::start(
        store.clone(),
        config,
        Some(key.clone()),
        Pseudonymiser::new(Arc::new(sealer), store.clone()),
    )
}

/// A data-access event numbered `i`.
pub fn event(i: usize) -> Event {
    Event {
        platform: Some(format!("platform-{}", i % 3)),
        consent: Some(format!("c-{}", i % 10)),
        user_ref: Some(format!("u-{}", i % 7)),
        purpose: Some("balance-alerts".into()),
        categories: vec!["balances".into()],
        fields: vec!["amount".into(), "currency".into()],
        n_records: (i % 5) as u32,
        request_id: Some(format!("req-{i}")),
        ..Event::new(
            Action::DataAccess,
            format!("platform-{}", i % 3),
            Decision::Allow,
        )
    }
}

/// Records `n` events from `writers` concurrent tasks; every one must commit.
pub async fn record_many(auditor: &Auditor, writers: usize, n: usize) {
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let auditor = auditor.clone();
            tokio::spawn(async move {
                for i in (writer..n).step_by(writers) {
                    auditor.record(event(i)).await.expect("event commits");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
}

/// Polls `check` until it yields (at most ~10 s; then the test fails).
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in time");
}

/// The library verification of the whole log with `key`'s public half.
pub async fn verify(store: &Arc<dyn Store>, key: &SigningKey) -> Report {
    verify_chain(
        store.as_ref(),
        &VerifyOptions {
            keys: VerifyingKeys::of(key),
            from: None,
        },
        |_| {},
    )
    .await
    .expect("the log can be read")
}

/// A directory of its own under the system's temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("bankgate-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh signing key, also written as a PEM file (for gateways and the binary).
pub fn signing_key_file(dir: &TempDir) -> (Arc<SigningKey>, PathBuf) {
    let path = dir.join("signing-key.pem");
    std::fs::write(&path, SigningKey::generate_pem().expect("key")).expect("key file");
    (Arc::new(SigningKey::load(&path).expect("key loads")), path)
}

/// What a run of the `bankgate` binary printed and whether it succeeded (`Debug` shows all of
/// it when an assertion fails).
#[derive(Debug)]
#[allow(dead_code)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bankgate audit verify [args]` on the database at `url`, checking checkpoints with the
/// key in `key_file`.
pub async fn verify_binary(url: &str, key_file: &Path, args: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bankgate"))
        .args(["audit", "verify"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("BANKGATE_CONFIG")
        .env("DATABASE_URL", url)
        .env_remove("BANKGATE_GRANT_KEY")
        .env("BANKGATE_SIGNING_KEY_FILE", key_file)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("bankgate runs");
    Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The address of the PostgreSQL server the tests use.
pub fn server_addr() -> SocketAddr {
    let url = url::Url::parse(&crate::pg::admin_url()).expect("DATABASE_URL is a URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5432);
    format!("{host}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .expect("the PostgreSQL host resolves")
}

/// The test configuration of a gateway on the PostgreSQL database at `url`.
pub fn gateway_config(url: &str, key_file: &Path) -> bankgate::config::Config {
    let mut config = bankgate::gateway::embedded_config();
    config.store = bankgate::config::StoreConfig::Postgres {
        url: url.to_owned(),
        max_connections: 8,
    };
    config.grant_key = Some(("test".into(), GRANT_KEY.into()));
    config.signing_key_file = Some(key_file.to_owned());
    // The test platform authenticates with a secret and uses bearer tokens: development.
    config.allow_insecure_clients = true;
    config
}

pub const REDIRECT_URI: &str = "https://platform.example/callback";

/// Registers a platform (balance alerts) and a compliance client at `gateway`; returns their
/// secrets.
pub async fn register_clients(gateway: &Served) -> (String, String) {
    use bankgate::oauth::Role;
    use bankgate::oauth::registration::Registration;
    let platform = Registration {
        client_id: "messenger".into(),
        name: "Messenger".into(),
        role: Role::Platform,
        redirect_uris: vec![REDIRECT_URI.into()],
        allowed_purposes: vec!["balance-alerts".into()],
        token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
        ..Registration::default()
    };
    let officer = Registration {
        client_id: "compliance-office".into(),
        name: "Compliance".into(),
        role: Role::Compliance,
        token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
        ..Registration::default()
    };
    let platform = gateway.register(platform).await;
    let officer = gateway.register(officer).await;
    (platform.client_secret, officer.client_secret)
}

/// One data request with a request id of our choosing (the user present, so the daily
/// unattended budget does not run out); its status and problem type, or `None` if no answer
/// came.
pub async fn get_balances(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    account: &str,
    request_id: &str,
) -> Option<(u16, Option<String>)> {
    let response = http
        .get(format!("{base}/v1/accounts/{account}/balances"))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .header("x-user-present", "true")
        .header("psu-ip-address", "203.0.113.7")
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.ok()?;
    let kind = body["type"]
        .as_str()
        .map(|kind| kind.rsplit('/').next().unwrap_or(kind).to_owned());
    Some((status, kind))
}

/// The request ids of the data-access events with `decision`.
pub async fn audited_request_ids(url: &str, decision: &str) -> std::collections::HashSet<String> {
    let client = crate::pg::connect(url).await;
    client
        .query(
            "SELECT request_id FROM audit_events \
             WHERE action = 'data_access' AND decision = $1 AND request_id IS NOT NULL",
            &[&decision],
        )
        .await
        .expect("audit events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}
