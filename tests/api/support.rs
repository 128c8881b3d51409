//! Starts a gateway (with its bundled sandbox bank) on an ephemeral port, on the in-memory store
//! or on a fresh PostgreSQL database, with a registered platform and compliance client.

use bankgate::app::Gateway;
use bankgate::config::StoreConfig;
use bankgate::demo::PlatformClient;
use bankgate::oauth::registration::{Registration, register};
use bankgate::store::Role;

#[path = "../support/pg.rs"]
#[allow(dead_code)]
mod pg;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum StoreKind {
    Memory,
    Postgres,
}

pub const REDIRECT_URI: &str = "https://platform.example/callback";

/// A running gateway and the clients that talk to it; stops when dropped.
pub struct TestGateway {
    pub app: std::sync::Arc<bankgate::app::App>,
    pub base: String,
    pub platform: PlatformClient,
    pub compliance: PlatformClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _database: Option<pg::TestDatabase>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestGateway {
    pub async fn start(kind: StoreKind) -> TestGateway {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_test_writer()
            .try_init();
        let mut config = bankgate::app::embedded_config();
        let database = match kind {
            StoreKind::Memory => None,
            StoreKind::Postgres => {
                let database = pg::TestDatabase::create();
                config.store = StoreConfig::Postgres {
                    url: database.url.clone(),
                    max_connections: 4,
                };
                config.grant_key = Some((
                    "test".into(),
                    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
                ));
                Some(database)
            }
        };
        let gateway = Gateway::start(config).await.expect("gateway starts");
        let app = gateway.app.clone();
        let base = app.config.public_url.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        let platform = register(
            app.store.as_ref(),
            &app.policies,
            Registration {
                client_id: "messenger".into(),
                name: "Messenger".into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: vec!["balance-alerts".into(), "fraud-alerts".into()],
            },
        )
        .await
        .expect("platform registers");
        let officer = register(
            app.store.as_ref(),
            &app.policies,
            Registration {
                client_id: "compliance-office".into(),
                name: "Compliance".into(),
                role: Role::Compliance,
                redirect_uris: vec![],
                allowed_purposes: vec![],
            },
        )
        .await
        .expect("compliance client registers");
        TestGateway {
            platform: PlatformClient::new(
                &base,
                &platform.client_id,
                &platform.client_secret,
                REDIRECT_URI,
            )
            .expect("client"),
            compliance: PlatformClient::new(&base, &officer.client_id, &officer.client_secret, "")
                .expect("client"),
            app,
            base,
            stop: Some(stop),
            _database: database,
        }
    }

    /// Registers another platform and returns its client.
    pub async fn another_platform(&self, client_id: &str, purposes: &[&str]) -> PlatformClient {
        let registered = register(
            self.app.store.as_ref(),
            &self.app.policies,
            Registration {
                client_id: client_id.into(),
                name: client_id.into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: purposes.iter().map(|p| p.to_string()).collect(),
            },
        )
        .await
        .expect("platform registers");
        PlatformClient::new(
            &self.base,
            client_id,
            &registered.client_secret,
            REDIRECT_URI,
        )
        .expect("client")
    }

    /// The audit events of a consent, as the compliance client sees them.
    pub async fn audit_of(&self, consent_id: &str) -> Vec<serde_json::Value> {
        let token = self
            .compliance
            .client_credentials()
            .await
            .expect("compliance token");
        let (status, body) = self
            .compliance
            .get(&token, &format!("/v1/audit/events?consent={consent_id}"))
            .await
            .expect("audit query");
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }
}
