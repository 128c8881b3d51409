//! Start-up: [`Gateway::start`] builds the shared state ([`App`]) once — binds, connects the
//! store (migrating PostgreSQL), loads policies and bank manifests, starts the bundled sandbox
//! banks — and [`Gateway::serve`] serves it with its background tasks. Used by `serve`, `demo`
//! and the tests alike.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::adapters::bank_oauth::BankTokens;
use crate::adapters::bank_oauth::auth::BankKeys;
use crate::adapters::{self, Adapter, Manifest, Registry};
use crate::app::App;
use crate::audit::{self, Action, Auditor, Decision};
use crate::broker::sign_in::{self, StartLimit};
use crate::config::{Config, StoreConfig};
use crate::crypto::Sealer;
use crate::egress::Egress;
use crate::jose::keys::SigningKey;
use crate::oauth::client_auth::ClientAuth;
use crate::oauth::client_keys::ClientKeys;
use crate::oauth::registration::Registrar;
use crate::oauth::tokens::TokenService;
use crate::policy::{Live, PolicySet};
use crate::store::{Store, memory::MemoryStore};
use bankgate_sandbox::{self as sandbox, Sandbox, SandboxConfig, SandboxFapi};

/// Errors starting the gateway; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policies: {0}")]
    Policies(#[from] crate::policy::PolicyError),
    #[error("adapters: {0}")]
    Manifest(#[from] adapters::ManifestError),
    #[error("bank {bank}: {message}")]
    Bank { bank: String, message: String },
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("signing key: {0}")]
    Key(#[from] crate::jose::keys::KeyError),
    #[error("grant key: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reloads the policies and the banks' eIDAS certificates on every SIGHUP for as long as the
/// process runs (`serve`). A rejected reload is logged with its problems and changes nothing.
pub fn reload_policies_on_sighup(app: Arc<App>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            for (bank, error) in app.banks.reload_certificates() {
                tracing::error!(%bank, %error, "SIGHUP: eIDAS certificates not reloaded; the old ones stay");
            }
            match app.reload_policies("operator").await {
                Ok(changes) => {
                    tracing::info!(changed = changes.len(), "SIGHUP: policies reloaded");
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: policy reload rejected; the old set stays");
                }
            }
        }
    });
    Ok(())
}

/// A started gateway: its state, its listener, and the sandbox banks it runs.
pub struct Gateway {
    pub app: Arc<App>,
    pub listener: TcpListener,
    pub addr: SocketAddr,
    /// The metrics listener (`metrics_listen`) and its address, when metrics are on.
    pub metrics: Option<(TcpListener, SocketAddr)>,
    /// Kept alive as long as the gateway: dropping one stops it.
    pub sandboxes: Vec<Sandbox>,
}

impl Gateway {
    /// Binds the listener, connects the store (migrating PostgreSQL), loads policies and
    /// banks, and starts the bundled sandbox banks. With port 0 in `listen`, `public_url` is
    /// set from the bound address.
    pub async fn start(mut config: Config) -> Result<Gateway, StartError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        if config.listen.port() == 0 {
            config.public_url = format!("http://{addr}");
        }
        let metrics = match config.metrics_listen {
            Some(metrics_addr) => {
                let listen_error = |source| StartError::Listen {
                    addr: metrics_addr,
                    source,
                };
                let listener = TcpListener::bind(metrics_addr)
                    .await
                    .map_err(listen_error)?;
                let bound = listener.local_addr().map_err(listen_error)?;
                // Recording starts now, so that start-up (policy loads, banks) is counted.
                crate::telemetry::metrics::install();
                Some((listener, bound))
            }
            None => None,
        };

        let policies = PolicySet::load_dir(&config.policies_dir)?;
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Memory => Arc::new(MemoryStore::new()),
            StoreConfig::Postgres {
                url,
                max_connections,
            } => {
                crate::store::pg::migrate(url).await?;
                Arc::new(crate::store::pg::connect(url, *max_connections).await?)
            }
        };
        let signing_key = Arc::new(match &config.signing_key_file {
            Some(path) => SigningKey::load(path)?,
            None => SigningKey::generate()?,
        });
        let sealer = Arc::new(match &config.grant_key {
            Some((id, key)) => Sealer::from_base64(id, key)?,
            None => Sealer::ephemeral()?,
        });
        let previous_keys = config
            .previous_signing_key_files
            .iter()
            .map(|path| crate::jose::keys::VerifyingKey::load(path))
            .collect::<Result<Vec<_>, _>>()?;
        // Group commit, checkpoints signed with the token key (its `kid` is in the JWKS), user
        // references pseudonymised under a key derived from the grant key.
        let auditor = Auditor::start(
            store.clone(),
            config.audit.clone(),
            Some(signing_key.clone()),
            audit::Pseudonymiser::new(sealer.clone(), store.clone()),
        );
        if let Err(error) = audit::retention::prepare_partitions(&auditor, chrono::Utc::now()).await
        {
            tracing::warn!(%error, "cannot prepare audit partitions; events go to the default one");
        }
        audit::retention::spawn_maintenance(&auditor, config.audit.maintenance_interval);
        let tokens = TokenService::new(
            signing_key.clone(),
            &config.public_url,
            &config.public_url,
            config.access_token_ttl_secs,
        )
        .with_previous_keys(previous_keys);

        for policy in policies.iter() {
            let mut event = audit::Event::new(Action::PolicyLoaded, "gateway", Decision::Allow);
            event.purpose = Some(policy.id.clone());
            event.policy_hash = Some(policy.hash.clone());
            auditor.record(event).await?;
        }
        let (banks, sandboxes) = load_banks(&config, store.as_ref(), &auditor).await?;
        register_event_callbacks(&banks, &config.public_url).await;

        let client_auth = ClientAuth::new(
            store.clone(),
            store.clone(),
            sealer.clone(),
            config.allow_insecure_clients,
            {
                // Clients' published key sets are fetched under the platforms' egress policy.
                ClientKeys::new(&Egress::new(config.allow_private_platform_hosts))
                    .map_err(|error| StartError::HttpClient(error.to_string()))?
            },
        );
        let registrar = Registrar::new(store.clone(), sealer.clone(), config.registration());
        let bank_tokens = Arc::new(BankTokens::new(store.clone(), sealer.clone()));
        let sign_in_starts = Arc::new(StartLimit::per_minute(config.sign_in_starts_per_minute));
        Ok(Gateway {
            app: Arc::new(App {
                client_auth,
                registrar,
                config,
                store,
                auditor,
                policies: Live::new(policies),
                banks: Arc::new(banks),
                tokens,
                signing_key,
                sealer,
                bank_tokens,
                event_keys: Arc::default(),
                sign_in_starts,
            }),
            listener,
            addr,
            metrics,
            sandboxes,
        })
    }

    /// Serves requests until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = crate::http::stack::service(self.app.clone());
        let _sandboxes = self.sandboxes;
        // Consent expiry, expiry notices, webhooks, replay-cache cleanup (safe on every
        // instance); aborted when serving ends.
        let _maintenance = match self.app.config.maintenance_interval {
            Some(interval) => self
                .app
                .maintenance()
                .map(|maintenance| AbortOnDrop(maintenance.spawn(interval)))
                .map_err(std::io::Error::other)
                .map(Some)?,
            None => None,
        };
        // Notifications: the refresh engine claims due jobs from the shared queue (safe on
        // every instance); it runs whenever the maintenance task does.
        let _notify = self
            .app
            .config
            .maintenance_interval
            .map(|_| AbortOnDrop(self.app.notifier().spawn(crate::notify::engine::TICK)));
        // Adapters registered through another instance come into force here within one
        // interval (see `adapters::registry`); aborted when serving ends.
        let _adapters_refresh = self.app.config.adapters_refresh_interval.map(|interval| {
            AbortOnDrop(Registry::spawn_refresh(
                self.app.banks.clone(),
                self.app.store.clone(),
                interval,
            ))
        });
        // The sign-in limit forgets clients whose starts have replenished (its memory stays
        // bounded whether or not the maintenance task runs).
        let sign_in_starts = self.app.sign_in_starts.clone();
        let _sign_in_forgetting =
            AbortOnDrop::every(sign_in::FORGET_EVERY, move || sign_in_starts.forget_idle());
        // eIDAS certificates ending within 30 days are warned about at start, at every reload
        // and once a day while serving.
        let banks = self.app.banks.clone();
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        let _certificate_warnings = AbortOnDrop::every(day, move || {
            banks.warn_ending_certificates(chrono::Utc::now());
        });
        let shutdown = futures_util::FutureExt::shared(Box::pin(shutdown));
        // The operator's metrics, on their own listener; ends with the gateway.
        let _metrics = self.metrics.map(|(listener, _)| {
            let router = crate::http::metrics::router(
                self.app.clone(),
                crate::telemetry::metrics::install(),
            );
            let serving = crate::http::server::serve(
                listener,
                router,
                self.app.config.server,
                shutdown.clone(),
            );
            AbortOnDrop(tokio::spawn(async move {
                if let Err(error) = serving.await {
                    tracing::error!(%error, "the metrics listener failed");
                }
            }))
        });
        crate::http::server::serve(self.listener, service, self.app.config.server, shutdown).await
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Runs `tick` every `period`, the first time one period from now.
    fn every(period: std::time::Duration, tick: impl Fn() + Send + 'static) -> AbortOnDrop {
        AbortOnDrop(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                tick();
            }
        }))
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long registering for a bank's event notifications may hold up the start.
const EVENT_REGISTRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells every bank whose manifest has `[events]` to push its event notifications to
/// `/v1/banks/{bank_id}/event-notifications` here (best effort: a bank that cannot be reached
/// is logged; its consents are still refreshed on schedule).
pub async fn register_event_callbacks(banks: &Registry, public_url: &str) {
    for adapter in banks.iter() {
        if adapter.bank.manifest.events.is_none() {
            continue;
        }
        let bank = adapter.bank.id();
        let url = format!(
            "{}/v1/banks/{bank}/event-notifications",
            public_url.trim_end_matches('/')
        );
        let registering = adapter.profile.register_event_callback(&adapter.bank, &url);
        match tokio::time::timeout(EVENT_REGISTRATION_TIMEOUT, registering).await {
            Ok(Ok(true)) => tracing::info!(bank, "registered for event notifications"),
            Ok(Ok(false)) => {
                tracing::warn!(bank, "the bank's profile has no event notifications");
            }
            Ok(Err(error)) => {
                tracing::warn!(bank, %error, "cannot register for event notifications");
            }
            Err(_) => tracing::warn!(bank, "registering for event notifications timed out"),
        }
    }
}

/// Loads `adapters/*.toml`, starts the sandboxes they ask for, resolves credentials and records
/// every manifest version in the store.
async fn load_banks(
    config: &Config,
    store: &dyn Store,
    auditor: &Auditor,
) -> Result<(Registry, Vec<Sandbox>), StartError> {
    let registry = Registry::new(
        Arc::new(adapters::ProcessEnv),
        Egress::new(config.allow_private_bank_hosts),
    );
    let mut sandboxes = Vec::new();
    for mut manifest in Manifest::load_dir(&config.adapters_dir)? {
        let env = |var: &str| registry.secret(var);
        let client_id = env(&manifest.oauth.client_id_env);
        // A secret only where the bank's token endpoint authentication method uses one.
        let secret_env = manifest.oauth.secret_env().map(str::to_owned);
        let client_secret = secret_env.as_deref().and_then(env);
        let credentials_set =
            client_id.is_some() && (secret_env.is_none() || client_secret.is_some());
        // bankgate's private_key_jwt and DPoP keys at the bank, if its manifest asks for them:
        // from the files its variables name, or fresh for a sandbox started here.
        let sandbox_here = manifest.sandbox.is_some() && !credentials_set;
        if sandbox_here && !config.start_sandboxes {
            continue;
        }
        let starts_sandbox = sandbox_here && config.start_sandboxes;
        let keys = BankKeys::load(&manifest.oauth, env, starts_sandbox).map_err(|error| {
            StartError::Bank {
                bank: manifest.id.clone(),
                message: error.to_string(),
            }
        })?;
        let mut egress = registry.egress().clone();
        // bankgate's eIDAS certificates at the bank: from the files the manifest names, or —
        // a bundled sandbox started here — a test PKI made now, which the sandbox enforces.
        let mut eidas_material = None;
        let (client_id, client_secret) = match (&manifest.sandbox, client_id) {
            (_, Some(id)) if credentials_set => (id, client_secret),
            (Some(spec), id) if config.start_sandboxes => {
                // A bundled sandbox: bankgate starts it and tells it which client to trust.
                let client_id = id.unwrap_or_else(|| "bankgate".to_owned());
                let client_secret = crate::crypto::random_token(24)?;
                let port = if config.listen.port() == 0 {
                    0
                } else {
                    spec.port
                };
                let (sandbox_eidas, material) = match &manifest.eidas {
                    Some(_) => {
                        let (settings, material) = test_pki_for(&manifest)?;
                        (Some(settings), Some(material))
                    }
                    None => (None, None),
                };
                eidas_material = material;
                let sandbox = sandbox::start(SandboxConfig {
                    profile: manifest.profile.clone(),
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    approval: config.sandbox_approval,
                    // The sandbox asks of bankgate what the manifest says the bank asks.
                    fapi: SandboxFapi {
                        client_jwks: keys.assertion.as_ref().map(|key| key.jwks()),
                        require_par: manifest
                            .oauth
                            .pushed_authorization_request_endpoint
                            .is_some(),
                        require_dpop: manifest.oauth.dpop,
                        refresh_needs_offline_access: manifest
                            .oauth
                            .extra_scopes
                            .iter()
                            .any(|scope| scope == "offline_access"),
                        consent_detail_type: manifest.oauth.consent_detail_type.clone(),
                        eidas: sandbox_eidas,
                        ..SandboxFapi::default()
                    },
                })
                .await?;
                manifest.rebase(&sandbox.origin);
                // The sandbox is reachable at exactly the address it bound, whatever the
                // egress policy says of loopback.
                egress = egress.allowing(sandbox.addr);
                sandboxes.push(sandbox);
                (client_id, Some(client_secret))
            }
            (Some(_), _) => continue,
            (None, _) => {
                let mut missing = vec![manifest.oauth.client_id_env.as_str()];
                missing.extend(secret_env.as_deref());
                return Err(StartError::Bank {
                    bank: manifest.id.clone(),
                    message: format!("set {}", missing.join(" and ")),
                });
            }
        };
        let version = register(store, auditor, &manifest).await?;
        // Endpoints the manifest leaves out, from the bank's metadata (stored as written).
        crate::adapters::bank_oauth::discovery::complete_manifest(&mut manifest, &egress).await?;
        let mut adapter = Adapter::new(manifest, client_id, client_secret, version, &egress)?;
        adapter.bank.keys = keys;
        adapter
            .bank
            .load_eidas(eidas_material, &|var: &str| registry.secret(var))
            .map_err(|error| StartError::Bank {
                bank: adapter.bank.id().to_owned(),
                message: error.to_string(),
            })?;
        registry.insert(adapter);
    }
    Ok((registry, sandboxes))
}

/// A test PKI for a bundled sandbox whose manifest has `[eidas]`: the sandbox's TLS certificate
/// and the CA it trusts, what it enforces (mutual TLS; request signatures where the standard
/// has them), and bankgate's QWAC and QSealC (`PSP_AI`, `PSP_PI`, a year).
fn test_pki_for(
    manifest: &Manifest,
) -> Result<(sandbox::eidas::SandboxEidas, adapters::eidas::Material), StartError> {
    use sandbox::pki::{Kind, PspCertificate, Role, TestPki};
    let failed = |error: sandbox::pki::PkiError| StartError::Bank {
        bank: manifest.id.clone(),
        message: format!("test PKI: {error}"),
    };
    let pki = TestPki::generate().map_err(failed)?;
    let server = pki
        .issue_server(&["127.0.0.1", "localhost"], 365)
        .map_err(failed)?;
    let roles = [Role::AccountInformation, Role::PaymentInitiation];
    let qwac = pki
        .issue_psp(&PspCertificate::new(Kind::Qwac, "bankgate", &roles, 365))
        .map_err(failed)?;
    let qseal = pki
        .issue_psp(&PspCertificate::new(Kind::Qsealc, "bankgate", &roles, 365))
        .map_err(failed)?;
    let signs = manifest
        .eidas
        .as_ref()
        .is_some_and(|spec| spec.qseal_cert_file_env.is_some());
    // STET: the bank finds the seal by its key id, as registered with it beforehand.
    let qseal_key_id = manifest
        .eidas
        .as_ref()
        .and_then(|spec| spec.qseal_key_id.clone())
        .unwrap_or_else(|| format!("urn:bankgate:test-qseal:{}", manifest.id));
    let requires_qwac = manifest
        .eidas
        .as_ref()
        .is_some_and(|spec| spec.qwac_cert_file_env.is_some());
    Ok((
        sandbox::eidas::SandboxEidas {
            ca_pem: pki.ca_pem.clone(),
            server_chain_pem: server.chain_pem,
            server_key_pem: server.key_pem,
            require_client_certificate: requires_qwac,
            require_signatures: signs,
            registered_seals: vec![(qseal_key_id.clone(), qseal.certificate_pem.clone())],
        },
        adapters::eidas::Material {
            qwac: requires_qwac.then_some((qwac.chain_pem, qwac.key_pem)),
            qseal: signs.then_some((qseal.certificate_pem, qseal.key_pem)),
            ca: Some(pki.ca_pem),
            qseal_key_id: Some(qseal_key_id),
        },
    ))
}

/// Stores a manifest version and audits it when it is new; returns the active version.
async fn register(
    store: &dyn Store,
    auditor: &Auditor,
    manifest: &Manifest,
) -> Result<i32, StartError> {
    let json = serde_json::to_value(manifest).map_err(|error| StartError::Bank {
        bank: manifest.id.clone(),
        message: error.to_string(),
    })?;
    let before = store
        .bank(&manifest.id)
        .await?
        .map(|version| version.version);
    let active = store.put_bank(&manifest.id, &json).await?;
    if before != Some(active.version) {
        let mut event = audit::Event::new(Action::AdapterRegistered, "operator", Decision::Allow);
        event.bank = Some(manifest.id.clone());
        event.reason = Some(format!("version {}", active.version));
        auditor.record(event).await?;
    }
    Ok(active.version)
}

/// A memory-store configuration for demos and tests: ephemeral ports, auto-approving sandboxes.
pub fn embedded_config() -> Config {
    let mut config = crate::config::RawConfig::default()
        .validate()
        .unwrap_or_else(|error| unreachable!("the default configuration is valid: {error}"));
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.sandbox_approval = sandbox::Approval::Auto;
    // The bundled sandbox banks, those tests register, and the platforms' test receivers
    // (webhooks, key sets) listen on loopback.
    config.allow_private_bank_hosts = true;
    config.allow_private_platform_hosts = true;
    // Demos and tests drive `lifecycle::Maintenance` themselves, at the times they choose.
    config.maintenance_interval = None;
    config
}
