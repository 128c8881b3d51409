//! Starts a gateway (with its bundled sandbox bank) on an ephemeral port, on the in-memory store
//! or on a fresh PostgreSQL database, with a registered platform and compliance client.

use bankgate::config::StoreConfig;
use bankgate::demo::PlatformClient;
use bankgate::gateway::Gateway;
use bankgate::jose::ClientKey;
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Role};

#[path = "../support/pg.rs"]
#[allow(dead_code)]
pub mod pg;

#[path = "../support/gateway.rs"]
pub mod gateway;

use gateway::Served;

#[path = "../audit/proxy.rs"]
pub mod proxy;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum StoreKind {
    Memory,
    Postgres,
}

pub const REDIRECT_URI: &str = "https://platform.example/callback";

/// What [`TestGateway::start_with`] changes from the default test gateway.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A policy directory other than the bundled one (e.g. a copy a test edits and reloads).
    pub policies_dir: Option<std::path::PathBuf>,
    /// Turns the operator API on with this token.
    pub admin_token: Option<String>,
    /// A bank manifest directory other than the bundled `adapters/`.
    pub adapters_dir: Option<std::path::PathBuf>,
    /// The key that signs access tokens (PKCS#8 PEM) instead of an ephemeral one.
    pub signing_key_file: Option<std::path::PathBuf>,
    /// Connect to public addresses only, as in production (`allow_private_bank_hosts` and
    /// `allow_private_platform_hosts` off); the bundled sandboxes stay reachable.
    pub public_hosts_only: bool,
    /// Reach PostgreSQL through a [`proxy::Proxy`] the test can cut (an outage only this
    /// gateway feels).
    pub database_through_proxy: bool,
    /// Run as production does: platforms must be FAPI 2.0 clients (`allow_insecure_clients`
    /// off), so `platform` authenticates with `private_key_jwt` and proves with DPoP. Without
    /// it `platform` is a development client with a secret and bearer tokens.
    pub fapi_only: bool,
    /// Serve `/metrics` on a listener of its own (`metrics_listen`).
    pub metrics: bool,
    /// `payee_verifications_per_minute` instead of the default.
    pub payee_verifications_per_minute: Option<u32>,
    /// `sign_in_starts_per_minute` instead of the default.
    pub sign_in_starts_per_minute: Option<u32>,
}

/// The grant key of PostgreSQL test gateways (every instance of one test shares it).
const TEST_GRANT_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running gateway (its `app`, `base` and, with `Options::metrics`, `metrics_url` are the
/// [`Served`] one's) and the clients that talk to it; stops when dropped.
pub struct TestGateway {
    served: Served,
    pub platform: PlatformClient,
    pub compliance: PlatformClient,
    /// The secrets of `platform` and `compliance`, for clients of a second instance.
    secrets: (String, String),
    /// The proxy in front of PostgreSQL, with `Options::database_through_proxy`.
    pub database_proxy: Option<proxy::Proxy>,
    _database: Option<pg::TestDatabase>,
}

impl std::ops::Deref for TestGateway {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl TestGateway {
    pub async fn start(kind: StoreKind) -> TestGateway {
        TestGateway::start_with(kind, Options::default()).await
    }

    /// A gateway with `options` applied to the default test configuration.
    pub async fn start_with(kind: StoreKind, options: Options) -> TestGateway {
        // The gateway's own subscriber (traces included), into the test's output.
        let _ =
            tracing_subscriber::util::SubscriberInitExt::try_init(bankgate::telemetry::subscriber(
                &bankgate::telemetry::LogSettings {
                    format: bankgate::telemetry::LogFormat::Text,
                    ansi: false,
                    filter: "info".into(),
                },
                tracing_subscriber::fmt::TestWriter::new(),
                &bankgate::telemetry::traces::Traces::local(),
            ));
        let mut config = bankgate::gateway::embedded_config();
        if let Some(dir) = options.policies_dir {
            config.policies_dir = dir;
        }
        if let Some(dir) = options.adapters_dir {
            config.adapters_dir = dir;
        }
        config.signing_key_file = options.signing_key_file;
        if options.public_hosts_only {
            config.allow_private_bank_hosts = false;
            config.allow_private_platform_hosts = false;
        }
        config.admin_token = options.admin_token;
        if options.metrics {
            config.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        if let Some(limit) = options.payee_verifications_per_minute {
            config.payee_verifications_per_minute = limit;
        }
        if let Some(limit) = options.sign_in_starts_per_minute {
            config.sign_in_starts_per_minute = limit;
        }
        let mut database_proxy = None;
        // The development setting, stated: most tests drive the flow with a secret and bearer
        // tokens, which is simpler to read; `fapi_only` runs as production does.
        config.allow_insecure_clients = !options.fapi_only;
        let database = match kind {
            StoreKind::Memory => None,
            StoreKind::Postgres => {
                let database = pg::TestDatabase::create();
                let mut url = database.url.clone();
                if options.database_through_proxy {
                    let server = url::Url::parse(&url)
                        .expect("a database URL")
                        .socket_addrs(|| Some(5432))
                        .expect("the PostgreSQL host resolves")[0];
                    let proxy = proxy::Proxy::start(server).await;
                    url = proxy.url_for(&url);
                    database_proxy = Some(proxy);
                }
                config.store = StoreConfig::Postgres {
                    url,
                    max_connections: 4,
                };
                config.grant_key = Some(("test".into(), TEST_GRANT_KEY.into()));
                Some(database)
            }
        };
        let served = Served::start(config).await;
        let base = served.base.clone();
        let assertion_key = ClientKey::generate_es256().expect("key");
        let platform = served
            .register(Registration {
                client_id: "messenger".into(),
                name: "Messenger".into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: vec!["balance-alerts".into(), "fraud-alerts".into()],
                token_endpoint_auth_method: if options.fapi_only {
                    AuthMethod::PrivateKeyJwt
                } else {
                    AuthMethod::ClientSecretBasic
                },
                jwks: options.fapi_only.then(|| assertion_key.jwks()),
                ..Registration::default()
            })
            .await;
        let officer = served
            .register(Registration {
                client_id: "compliance-office".into(),
                name: "Compliance".into(),
                role: Role::Compliance,
                redirect_uris: vec![],
                allowed_purposes: vec![],
                token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                ..Registration::default()
            })
            .await;
        let mut platform_client = PlatformClient::new(
            &base,
            &platform.client_id,
            &platform.client_secret,
            REDIRECT_URI,
        )
        .expect("client");
        if options.fapi_only {
            platform_client = platform_client
                .with_private_key_jwt(assertion_key)
                .with_dpop(ClientKey::generate_ed25519().expect("key"));
        }
        TestGateway {
            platform: platform_client,
            compliance: PlatformClient::new(&base, &officer.client_id, &officer.client_secret, "")
                .expect("client"),
            secrets: (platform.client_secret, officer.client_secret),
            served,
            database_proxy,
            _database: database,
        }
    }

    /// A second gateway instance on this one's PostgreSQL database, as a load balancer would
    /// run it: its own listener, store pool, auditor and policy set, and the configuration the
    /// instances share in production (issuer URL, signing key, grant key, banks) taken from
    /// this one. Its `platform` and `compliance` clients are the same registered clients.
    /// Keep `self` alive while the second instance runs: it owns the database.
    pub async fn second_instance(&self) -> TestGateway {
        self.instance_with_keys(self.app.tokens.clone(), self.app.signing_key.clone())
            .await
    }

    /// [`TestGateway::second_instance`] signing and verifying with `tokens`.
    async fn instance_with_keys(
        &self,
        tokens: bankgate::oauth::tokens::TokenService,
        signing_key: std::sync::Arc<bankgate::jose::keys::SigningKey>,
    ) -> TestGateway {
        let database = self
            ._database
            .as_ref()
            .expect("a second instance needs a PostgreSQL gateway");
        let mut config = bankgate::gateway::embedded_config();
        config.store = StoreConfig::Postgres {
            url: database.url.clone(),
            max_connections: 4,
        };
        config.grant_key = Some(("test".into(), TEST_GRANT_KEY.into()));
        config.policies_dir = self.app.config.policies_dir.clone();
        config.admin_token = self.app.config.admin_token.clone();
        config.allow_insecure_clients = self.app.config.allow_insecure_clients;
        let gateway = Gateway::start(config).await.expect("second gateway starts");
        let own = std::sync::Arc::try_unwrap(gateway.app)
            .unwrap_or_else(|_| panic!("a freshly started gateway's state is not shared yet"));
        let first = &self.app;
        let mut shared_config = own.config.clone();
        shared_config.public_url = first.config.public_url.clone();
        let app = std::sync::Arc::new(bankgate::app::App {
            config: shared_config,
            banks: first.banks.clone(),
            tokens,
            signing_key,
            sealer: first.sealer.clone(),
            ..own
        });
        let base = format!("http://{}", gateway.addr);
        let instance = Gateway {
            app,
            listener: gateway.listener,
            addr: gateway.addr,
            metrics: None,
            sandboxes: Vec::new(),
        };
        let served = Served::serve(instance, base.clone());
        let (platform_secret, officer_secret) = self.secrets.clone();
        TestGateway {
            platform: PlatformClient::new(&base, "messenger", &platform_secret, REDIRECT_URI)
                .expect("client"),
            compliance: PlatformClient::new(&base, "compliance-office", &officer_secret, "")
                .expect("client"),
            secrets: self.secrets.clone(),
            served,
            database_proxy: None,
            _database: None,
        }
    }

    /// A second instance on this one's PostgreSQL database after a signing key rotation: it
    /// signs with `signing_key_file` and still verifies with `previous_signing_key_files`, as
    /// `serve` configured that way does; everything else is shared as in
    /// [`TestGateway::second_instance`]. Keep `self` alive while it runs.
    pub async fn rotated_instance(
        &self,
        signing_key_file: &std::path::Path,
        previous_signing_key_files: &[std::path::PathBuf],
    ) -> TestGateway {
        let signing_key = std::sync::Arc::new(
            bankgate::jose::keys::SigningKey::load(signing_key_file).expect("signing key"),
        );
        let previous = previous_signing_key_files
            .iter()
            .map(|path| bankgate::jose::keys::VerifyingKey::load(path).expect("previous key"))
            .collect();
        let public_url = &self.app.config.public_url;
        let tokens = bankgate::oauth::tokens::TokenService::new(
            signing_key.clone(),
            public_url,
            public_url,
            self.app.config.access_token_ttl_secs,
        )
        .with_previous_keys(previous);
        self.instance_with_keys(tokens, signing_key).await
    }

    /// The URL of the gateway's PostgreSQL database; `None` on the memory store.
    pub fn database_url(&self) -> Option<&str> {
        self._database
            .as_ref()
            .map(|database| database.url.as_str())
    }

    /// Registers a FAPI 2.0 platform: `private_key_jwt` with a fresh ES256 key, DPoP-bound
    /// tokens required (its client proves with a fresh Ed25519 key), and `webhook_url` if
    /// given. Returns its client, which authenticates and proves as RFC 7523/9449 clients do.
    pub async fn fapi_platform(
        &self,
        client_id: &str,
        webhook_url: Option<&str>,
    ) -> PlatformClient {
        let assertion_key = ClientKey::generate_es256().expect("key");
        self.register(Registration {
            client_id: client_id.into(),
            name: client_id.into(),
            role: Role::Platform,
            redirect_uris: vec![REDIRECT_URI.into()],
            allowed_purposes: vec!["balance-alerts".into(), "fraud-alerts".into()],
            token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(assertion_key.jwks()),
            dpop_bound_access_tokens: Some(true),
            webhook_url: webhook_url.map(str::to_owned),
            ..Registration::default()
        })
        .await;
        PlatformClient::new(&self.base, client_id, "", REDIRECT_URI)
            .expect("client")
            .with_private_key_jwt(assertion_key)
            .with_dpop(ClientKey::generate_ed25519().expect("key"))
    }

    /// Registers another platform and returns its client.
    pub async fn another_platform(&self, client_id: &str, purposes: &[&str]) -> PlatformClient {
        let registered = self
            .register(Registration {
                client_id: client_id.into(),
                name: client_id.into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: purposes.iter().map(|p| p.to_string()).collect(),
                token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                ..Registration::default()
            })
            .await;
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
