//! The command line: `serve`, `migrate`, `demo`, `platforms add`, `policies check`,
//! `adapters check`, `adapters normalise`, `audit verify | checkpoint | retention`, `sandbox`,
//! `keys`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, RawConfig, StoreConfig, env_var};
use crate::model::WireName;
use crate::telemetry::traces::Traces;
use crate::telemetry::{LogFormat, LogSettings};

/// bankgate: an open-banking aggregation gateway.
#[derive(Debug, Parser)]
#[command(name = "bankgate", version, about)]
struct Cli {
    /// Configuration file (TOML); environment variables override it. Default:
    /// `BANKGATE_CONFIG` (set but empty means unset).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log lines as `json` or `text`. Default: `BANKGATE_LOG_FORMAT`, else text when standard
    /// error (where logs go) is a terminal and JSON anywhere else; colours only on a terminal.
    #[arg(long, global = true, value_parser = LogFormat::parse)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (in-memory store and bundled sandbox banks unless DATABASE_URL is set).
    Serve,
    /// Apply database migrations (needs DATABASE_URL).
    Migrate,
    /// Walk one platform through the whole flow on an in-memory gateway and exit.
    Demo,
    /// Manage registered clients (needs DATABASE_URL).
    Platforms {
        #[command(subcommand)]
        command: PlatformsCommand,
    },
    /// Validate purpose policies.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// Validate bank adapter manifests.
    Adapters {
        #[command(subcommand)]
        command: AdaptersCommand,
    },
    /// Run one sandbox bank on its own.
    Sandbox {
        /// The standard it speaks.
        #[arg(long, default_value = "berlin-group")]
        profile: String,
        #[arg(long, default_value = "127.0.0.1:8091")]
        listen: SocketAddr,
        /// The OAuth client the sandbox accepts.
        #[arg(long, default_value = "bankgate")]
        client_id: String,
        /// The client's secret. Default: `SANDBOX_CLIENT_SECRET` (set but empty means unset).
        #[arg(long)]
        client_secret: Option<String>,
        /// Approve at once instead of showing the approval page.
        #[arg(long)]
        auto_approve: bool,
        /// Misbehave on paths starting with PATH (repeatable): `PATH=delay:MS`,
        /// `PATH=status:CODE`, `malformed`, `truncated`, `huge:BYTES`, `content-type`,
        /// `error-body:JSON` or `answer-lost` (the bank does what the request asks — a payment
        /// is created or executed — then cuts the connection before its answer is through, so
        /// the caller cannot know the outcome).
        #[arg(long = "fault", value_name = "PATH=KIND")]
        faults: Vec<String>,
    },
    /// Generate keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Verify and look after the audit log (needs DATABASE_URL).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A person's rights (needs DATABASE_URL and BANKGATE_GRANT_KEY).
    Subject {
        #[command(subcommand)]
        command: SubjectCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SubjectCommand {
    /// Subject access: everything bankgate holds and did about one person — a platform's user
    /// (--platform, --user-ref) or the person a bank knows (--bank, --bank-person: every
    /// platform user they approved consents as there) — as JSON (or a printable HTML page with
    /// --html); the report is audited before it is printed.
    Report {
        /// The platform's client id.
        #[arg(
            long,
            requires = "user_ref",
            required_unless_present = "bank",
            conflicts_with_all = ["bank", "bank_person"]
        )]
        platform: Option<String>,
        /// The platform's reference for the person.
        #[arg(long, requires = "platform")]
        user_ref: Option<String>,
        /// The bank's id (its manifest's `id`).
        #[arg(long, requires = "bank_person")]
        bank: Option<String>,
        /// The bank's own identifier for the person (the `sub` of its ID tokens).
        #[arg(long, requires = "bank")]
        bank_person: Option<String>,
        /// Print the printable HTML page instead of JSON.
        #[arg(long)]
        html: bool,
    },
    /// Erasure: destroys the key of one platform's user's audit pseudonym and deletes every
    /// operational record about them (consents, grants, tokens, codes, subscriptions, refresh
    /// state, webhooks); their audit events stay, unlinkable. Audited without naming them.
    Erase {
        /// The platform's client id.
        #[arg(long)]
        platform: String,
        /// The platform's reference for the person.
        #[arg(long)]
        user_ref: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain, check every signed checkpoint, and report the first broken
    /// position (exit code 1 if there is one). Progress goes to stderr.
    Verify {
        /// Start at this signed checkpoint (a JWS, or JSON with a `jws` member, e.g. one kept
        /// outside the database) instead of the first event.
        #[arg(long, value_name = "FILE")]
        from_checkpoint: Option<PathBuf>,
        /// The public keys that sign checkpoints: a JWKS file or URL (e.g. the gateway's
        /// `/.well-known/jwks.json`). Default: the configured signing key.
        #[arg(long, value_name = "FILE|URL")]
        jwks: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint at the current head now and print it (keep it outside the database
    /// to verify against later).
    Checkpoint,
    /// Archive and drop the partitions past retention now (needs an archive directory).
    Retention,
}

/// The registrar of the PostgreSQL store `config` names (migrated first), digesting secrets
/// under its grant key.
async fn registrar(config: &Config) -> anyhow::Result<crate::oauth::registration::Registrar> {
    let (StoreConfig::Postgres { url, .. }, Some((key_id, key))) =
        (&config.store, &config.grant_key)
    else {
        bail!(
            "set DATABASE_URL and BANKGATE_GRANT_KEY: the in-memory store lives only inside a \
             running gateway (use its admin API, /admin/clients)"
        );
    };
    crate::store::pg::migrate(url).await?;
    let store = crate::store::pg::connect(url, 2).await?;
    let sealer = crate::crypto::Sealer::from_base64(key_id, key)?;
    Ok(crate::oauth::registration::Registrar::new(
        std::sync::Arc::new(store),
        std::sync::Arc::new(sealer),
        config.registration(),
    ))
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum PlatformsCommand {
    /// Register a client; prints its secret once.
    Add {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        name: String,
        /// `platform`, `compliance` or `bank` (needs --bank-id).
        #[arg(long, default_value = "platform")]
        role: String,
        /// For `--role bank`: the one bank whose adapter this client may register and update.
        #[arg(long)]
        bank_id: Option<String>,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Purpose the platform is approved for (repeatable).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// Where the platform processes data (EEA, UK, US, …); purposes allow some regions.
        #[arg(long, default_value = crate::policy::DEFAULT_REGION)]
        region: String,
        /// `private_key_jwt` (needs --jwks-file) or `client_secret_basic` (compliance and bank
        /// clients; platforms only with `allow_insecure_clients`, for development).
        #[arg(long, default_value = "private_key_jwt")]
        token_endpoint_auth_method: String,
        /// A JSON file with the client's public keys (a JWK Set).
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Where the client publishes its public keys instead (https).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Whether this client's access tokens must be DPoP-bound (default: true with
        /// private_key_jwt, false with client_secret_basic; platforms need true unless
        /// `allow_insecure_clients` is on).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        dpop_bound_access_tokens: Option<bool>,
        /// Where consent webhooks are delivered (https).
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Issue a new secret for a `client_secret_basic` client and print it once; the previous
    /// one stops working (needs DATABASE_URL and the grant key).
    Secret {
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PoliciesCommand {
    /// Load and validate every policy in DIR.
    Check {
        #[arg(default_value = "policies")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AdaptersCommand {
    /// Validate a manifest file or every manifest in a directory (schema, profile, URLs,
    /// credential references, limits; for the mapping profile, every rule compiles).
    Check {
        #[arg(default_value = "adapters")]
        path: PathBuf,
    },
    /// Print the canonical JSON of a raw bank payload, to test a profile or a mapping offline.
    Normalise {
        /// The profile speaking the payload (berlin-group, stet, obie, fdx).
        #[arg(
            long,
            conflicts_with = "manifest",
            required_unless_present = "manifest"
        )]
        profile: Option<String>,
        /// A manifest whose profile (and, for mapping, rules) speak the payload.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// What the payload answers: accounts, balances or transactions.
        #[arg(long)]
        resource: String,
        /// The account's currency, for FDX transactions (which carry none).
        #[arg(long)]
        currency: Option<String>,
        /// The payload (JSON) as the bank sent it; `-` reads standard input.
        payload: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// A P-256 signing key (PKCS#8 PEM) for access tokens.
    Signing,
    /// A 256-bit grant key (base64) for BANKGATE_GRANT_KEY.
    Grant,
    /// A private key (PKCS#8 PEM) for bankgate at a bank: `client_key_file_env`
    /// (`private_key_jwt`) or `dpop_key_file_env`, in the algorithm the bank takes.
    Bank {
        /// ES256 (P-256), EdDSA (Ed25519) or PS256 (RSA, 2048 bits).
        #[arg(long, default_value = "ES256")]
        alg: String,
    },
    /// A test eIDAS PKI for the sandbox banks (NOT qualified): a test CA, a QWAC (mutual TLS)
    /// and a QSealC (request signatures) for bankgate with the ETSI PSD2 QC statement, and a
    /// TLS server certificate for the sandbox banks, as PEM files in `--out`.
    Pki(PkiArgs),
}

/// `bankgate keys pki`.
#[derive(Debug, clap::Args)]
struct PkiArgs {
    /// The directory to write to (created if missing): ca.pem, ca.key.pem, qwac.pem,
    /// qwac.key.pem, qseal.pem, qseal.key.pem, bank.pem, bank.key.pem. Certificate files hold
    /// the chain (the certificate, then the CA).
    #[arg(long)]
    out: PathBuf,
    /// Issue from the test CA in this directory (its ca.pem and ca.key.pem) instead of a new
    /// one: new certificates the banks already trust, e.g. to rotate them.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The PSP roles of the QWAC and the QSealC (ETSI TS 119 495): PSP_AI, PSP_PI, PSP_IC,
    /// PSP_AS.
    #[arg(long, value_delimiter = ',', default_value = "PSP_AI,PSP_PI")]
    roles: Vec<String>,
    /// The PSP's legal name (subject O and CN).
    #[arg(long, default_value = "bankgate")]
    organization: String,
    /// The PSP's authorisation number (organizationIdentifier), PSD<country>-<NCA>-<number>.
    #[arg(long, default_value = "PSDDE-BAFIN-999999")]
    organization_id: String,
    /// The national competent authority's name (nCAName).
    #[arg(long, default_value = "Federal Financial Supervisory Authority")]
    nca_name: String,
    /// The authority's identifier (nCAId).
    #[arg(long, default_value = "DE-BAFIN")]
    nca_id: String,
    /// Days the QWAC, QSealC and bank certificate are valid, from now.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
    let mut cli = Cli::parse();
    // An environment variable set but empty means unset, as everywhere in the configuration.
    cli.config = cli
        .config
        .or_else(|| env_var("BANKGATE_CONFIG").map(PathBuf::from));
    let log_format = match cli.log_format {
        Some(format) => Some(format),
        None => match env_var("BANKGATE_LOG_FORMAT").map(|text| LogFormat::parse(&text)) {
            Some(Ok(format)) => Some(format),
            Some(Err(error)) => {
                eprintln!("error: BANKGATE_LOG_FORMAT: {error}");
                return ExitCode::FAILURE;
            }
            None => None,
        },
    };
    // The demo prints its own walk-through; only warnings should interleave with it.
    let level = if matches!(cli.command, Command::Demo) {
        "warn"
    } else {
        "info"
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // `serve` reads its configuration first: it says whether spans are exported.
    let serve_config = match &cli.command {
        Command::Serve => match load_config(cli.config.as_ref()) {
            Ok(config) => Some(config),
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let traces = match serve_config
        .as_ref()
        .and_then(|config| config.otlp_endpoint.as_ref())
    {
        // The exporter's batch task runs on the runtime.
        Some(endpoint) => match runtime.block_on(async { Traces::otlp(endpoint) }) {
            Ok(traces) => traces,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
        None => Traces::local(),
    };
    // `RUST_LOG` (when set and not empty) wins over the command's level.
    let filter = env_var("RUST_LOG").unwrap_or_else(|| level.to_owned());
    crate::telemetry::init(&LogSettings::for_stderr(log_format, filter), &traces);
    let outcome = runtime.block_on(async {
        let outcome = match serve_config {
            Some(config) => serve(config).await,
            None => execute(cli).await,
        };
        // The spans still in the batch leave before the process does.
        traces.shutdown().await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let raw = match path {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    Ok(raw.with_env(env_var)?.validate()?)
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(load_config(cli.config.as_ref())?).await,
        Command::Migrate => {
            let config = load_config(cli.config.as_ref())?;
            let StoreConfig::Postgres { url, .. } = &config.store else {
                bail!("set DATABASE_URL to migrate a PostgreSQL database");
            };
            let report = crate::store::pg::migrate(url).await?;
            if report.applied.is_empty() {
                println!("schema is up to date");
            }
            for migration in &report.applied {
                println!("applied V{}__{}", migration.version, migration.name);
            }
            Ok(())
        }
        Command::Demo => crate::demo::run().await,
        Command::Platforms {
            command:
                PlatformsCommand::Add {
                    client_id,
                    name,
                    role,
                    bank_id,
                    redirect_uris,
                    purposes,
                    region,
                    token_endpoint_auth_method,
                    jwks_file,
                    jwks_uri,
                    dpop_bound_access_tokens,
                    webhook_url,
                },
        } => {
            let config = load_config(cli.config.as_ref())?;
            let registrar = registrar(&config).await?;
            let policies = crate::policy::PolicySet::load_dir(&config.policies_dir)?;
            let role = crate::oauth::Role::parse(&role)
                .context("role must be platform, compliance or bank")?;
            let registered = registrar
                .register(
                &policies,
                crate::oauth::registration::Registration {
                    client_id,
                    name,
                    role,
                    redirect_uris,
                    allowed_purposes: purposes,
                    region,
                    token_endpoint_auth_method: crate::oauth::AuthMethod::parse(
                        &token_endpoint_auth_method,
                    )
                    .context(
                        "token_endpoint_auth_method must be client_secret_basic or private_key_jwt",
                    )?,
                    jwks: jwks_file
                        .map(|path| -> anyhow::Result<serde_json::Value> {
                            let text = std::fs::read_to_string(&path)
                                .with_context(|| format!("reading {}", path.display()))?;
                            serde_json::from_str(&text)
                                .with_context(|| format!("{} is not JSON", path.display()))
                        })
                        .transpose()?,
                    jwks_uri,
                    dpop_bound_access_tokens,
                    webhook_url,
                    bank_id,
                },
            )
            .await?;
            println!("client_id:     {}", registered.client_id);
            if registered.client_secret.is_empty() {
                println!("auth method:   private_key_jwt (no secret)");
            } else {
                println!("client_secret: {}", registered.client_secret);
                println!("(only its digest is stored: it cannot be shown again)");
            }
            println!(
                "registration_access_token: {}",
                registered.registration_access_token
            );
            println!(
                "registration_client_uri: {} (RFC 7592: read the registration, rotate keys)",
                registered.registration_client_uri
            );
            Ok(())
        }
        Command::Platforms {
            command: PlatformsCommand::Secret { client_id },
        } => {
            let config = load_config(cli.config.as_ref())?;
            let secret = registrar(&config).await?.reissue_secret(&client_id).await?;
            println!("client_id:     {client_id}");
            println!("client_secret: {secret}");
            println!("(the previous secret no longer works; only this one's digest is stored)");
            Ok(())
        }
        Command::Policies {
            command: PoliciesCommand::Check { dir },
        } => check_policies(&dir),
        Command::Adapters {
            command: AdaptersCommand::Check { path },
        } => {
            let manifests = if path.is_dir() {
                crate::adapters::Manifest::load_dir(&path)?
            } else {
                vec![crate::adapters::Manifest::load(&path)?]
            };
            for manifest in manifests {
                let profile = crate::adapters::build_profile(&manifest)?;
                let scopes: Vec<&str> = profile.scopes().iter().map(|s| s.as_str()).collect();
                println!(
                    "ok  {:<20} {:<14} {:<44} {}",
                    manifest.id,
                    manifest.profile,
                    manifest.api_base_url,
                    scopes.join(",")
                );
            }
            Ok(())
        }
        Command::Adapters {
            command:
                AdaptersCommand::Normalise {
                    profile,
                    manifest,
                    resource,
                    currency,
                    payload,
                },
        } => normalise(
            profile.as_deref(),
            manifest.as_deref(),
            &resource,
            currency.as_deref(),
            &payload,
        ),
        Command::Sandbox {
            profile,
            listen,
            client_id,
            client_secret,
            auto_approve,
            faults,
        } => {
            let client_secret = client_secret
                .or_else(|| env_var("SANDBOX_CLIENT_SECRET"))
                .context("set --client-secret or SANDBOX_CLIENT_SECRET")?;
            let faults = faults
                .iter()
                .map(|rule| {
                    let (path, kind) = rule
                        .split_once('=')
                        .with_context(|| format!("--fault {rule}: expected PATH=KIND"))?;
                    let fault = bankgate_sandbox::faults::Fault::parse(kind)
                        .map_err(|error| anyhow::anyhow!("--fault {rule}: {error}"))?;
                    Ok((path.to_owned(), fault))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sandbox = bankgate_sandbox::start(bankgate_sandbox::SandboxConfig {
                profile: profile.clone(),
                addr: listen,
                client_id,
                client_secret,
                approval: if auto_approve {
                    bankgate_sandbox::Approval::Auto
                } else {
                    bankgate_sandbox::Approval::Page
                },
                fapi: bankgate_sandbox::SandboxFapi::default(),
            })
            .await?;
            for (path, fault) in faults {
                println!("  misbehaves on {path}*: {fault:?}");
                sandbox.faults.set(&path, fault);
            }
            println!("sandbox bank ({profile}) listening on {}", sandbox.origin);
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Command::Audit { command } => audit(cli.config.as_ref(), command).await,
        Command::Subject { command } => subject(cli.config.as_ref(), command).await,
        Command::Keys { command } => {
            match command {
                KeysCommand::Signing => {
                    print!("{}", crate::jose::keys::SigningKey::generate_pem()?)
                }
                KeysCommand::Bank { alg } => {
                    let alg = match alg.as_str() {
                        "ES256" => jsonwebtoken::Algorithm::ES256,
                        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
                        "PS256" => jsonwebtoken::Algorithm::PS256,
                        other => anyhow::bail!("--alg {other:?}: use ES256, EdDSA or PS256"),
                    };
                    print!("{}", crate::jose::ClientKey::generate_pkcs8_pem(alg)?)
                }
                KeysCommand::Pki(args) => write_test_pki(&args)?,
                KeysCommand::Grant => {
                    use base64::Engine;
                    let mut key = [0u8; 32];
                    aws_lc_rs::rand::fill(&mut key)
                        .map_err(|_| anyhow::anyhow!("random generator failed"))?;
                    println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
                }
            }
            Ok(())
        }
    }
}

/// `bankgate keys pki`: writes a test eIDAS PKI and says what it wrote.
fn write_test_pki(args: &PkiArgs) -> anyhow::Result<()> {
    use bankgate_sandbox::pki::{Kind, PspCertificate, Role, TestPki};
    if !(1..=3650).contains(&args.days) {
        bail!("--days must be 1..=3650");
    }
    let roles = args
        .roles
        .iter()
        .map(|name| Role::parse(name.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let pki = match &args.ca {
        Some(dir) => {
            let read = |name: &str| {
                let path = dir.join(name);
                std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))
            };
            TestPki::load(&read("ca.pem")?, &read("ca.key.pem")?)?
        }
        None => TestPki::generate()?,
    };
    let psp = |kind| {
        let mut request = PspCertificate::new(kind, &args.organization, &roles, args.days);
        request.organization_id.clone_from(&args.organization_id);
        request.statement.nca_name.clone_from(&args.nca_name);
        request.statement.nca_id.clone_from(&args.nca_id);
        pki.issue_psp(&request)
    };
    let qwac = psp(Kind::Qwac)?;
    let qseal = psp(Kind::Qsealc)?;
    let bank = pki.issue_server(&["localhost", "127.0.0.1"], args.days)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let files = [
        ("ca.pem", pki.ca_pem.as_str(), false),
        ("ca.key.pem", pki.ca_key_pem.as_str(), true),
        ("qwac.pem", qwac.chain_pem.as_str(), false),
        ("qwac.key.pem", qwac.key_pem.as_str(), true),
        ("qseal.pem", qseal.chain_pem.as_str(), false),
        ("qseal.key.pem", qseal.key_pem.as_str(), true),
        ("bank.pem", bank.chain_pem.as_str(), false),
        ("bank.key.pem", bank.key_pem.as_str(), true),
    ];
    for (name, text, private) in files {
        let path = args.out.join(name);
        write_file(&path, text, private).with_context(|| format!("{}", path.display()))?;
    }
    let roles: Vec<&str> = roles.iter().map(|role| role.name()).collect();
    println!(
        "test eIDAS PKI (NOT qualified) in {}: CA ca.pem; QWAC qwac.pem and QSealC qseal.pem \
         for {} ({}, roles {}), valid until {}; bank server certificate bank.pem",
        args.out.display(),
        args.organization,
        args.organization_id,
        roles.join(","),
        qwac.not_after.format("%Y-%m-%d"),
    );
    Ok(())
}

/// Writes `text` to `path`, readable by its owner only when `private`.
fn write_file(path: &std::path::Path, text: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// `bankgate adapters normalise`: the canonical JSON of a payload on stdout.
fn normalise(
    profile: Option<&str>,
    manifest: Option<&std::path::Path>,
    resource: &str,
    currency: Option<&str>,
    payload: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::adapters::normalise::{Resource, Speaker};
    let resource = Resource::parse(resource)
        .context("--resource must be accounts, balances or transactions")?;
    let body = if payload == std::path::Path::new("-") {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)?;
        body
    } else {
        std::fs::read(payload).with_context(|| format!("reading {}", payload.display()))?
    };
    let loaded = manifest.map(crate::adapters::Manifest::load).transpose()?;
    let speaker = match (&loaded, profile) {
        (Some(manifest), _) => Speaker::Manifest(manifest),
        (None, Some(profile)) => Speaker::Profile(profile),
        (None, None) => bail!("give --profile or --manifest"),
    };
    let canonical = crate::adapters::normalise::normalise(speaker, resource, &body, currency)
        .with_context(|| format!("{} does not normalise", payload.display()))?;
    println!("{}", serde_json::to_string_pretty(&canonical)?);
    Ok(())
}

/// `bankgate policies check DIR`: every problem as `path:line: message` on stderr and a
/// failure exit, or one line per purpose with its hash.
fn check_policies(dir: &std::path::Path) -> anyhow::Result<()> {
    let policies = match crate::policy::PolicySet::load_dir(dir) {
        Ok(policies) => policies,
        Err(error) => {
            for diagnostic in error.diagnostics() {
                eprintln!("{diagnostic}");
            }
            bail!(
                "{} problem(s) in {}; nothing was loaded",
                error.diagnostics().len(),
                dir.display()
            );
        }
    };
    for policy in policies.iter() {
        println!("ok          {:<26} {}", policy.id, policy.hash);
    }
    for prohibited in policies.prohibited() {
        println!("prohibited  {:<26} {}", prohibited.id, prohibited.title);
    }
    Ok(())
}

/// `bankgate audit …`. Verifying and checkpointing need only the database and the signing
/// key (not the grant key: whoever verifies the log need not hold it), so they read the raw
/// configuration; retention runs like the gateway and takes the validated one.
async fn audit(config_file: Option<&PathBuf>, command: AuditCommand) -> anyhow::Result<()> {
    use crate::audit::verifier::{VerifyOptions, verify_chain};
    use crate::jose::keys::SigningKey;

    let raw = match config_file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    }
    .with_env(env_var)?;
    let Some(url) = raw.database_url.clone() else {
        bail!("set DATABASE_URL: the audit log to work on is in PostgreSQL");
    };
    let store: std::sync::Arc<dyn crate::store::Store> =
        std::sync::Arc::new(crate::store::pg::connect(&url, 4).await?);
    let signing_key = match &raw.signing_key_file {
        Some(path) => Some(std::sync::Arc::new(SigningKey::load(path)?)),
        None => None,
    };
    match command {
        AuditCommand::Verify {
            from_checkpoint,
            jwks,
            json,
        } => {
            let keys = match (&jwks, &signing_key) {
                (Some(source), _) => load_jwks(source).await?,
                (None, Some(key)) => {
                    // The key in force and those it replaced: checkpoints signed before a
                    // rotation still verify.
                    let mut keys = crate::audit::VerifyingKeys::of(key);
                    for path in raw.previous_signing_key_files.iter().flatten() {
                        keys.insert(&crate::jose::keys::VerifyingKey::load(path)?);
                    }
                    keys
                }
                (None, None) => bail!(
                    "checkpoints cannot be checked without the public key: pass --jwks \
                     (a file or the gateway's /.well-known/jwks.json) or set \
                     BANKGATE_SIGNING_KEY_FILE"
                ),
            };
            let from = match &from_checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let jws = match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(value) => value["jws"]
                            .as_str()
                            .map(str::to_owned)
                            .context("the checkpoint JSON has no `jws`")?,
                        Err(_) => text,
                    };
                    Some(keys.open(&jws).with_context(|| {
                        format!("the checkpoint in {} does not verify", path.display())
                    })?)
                }
                None => None,
            };
            let options = VerifyOptions { keys, from };
            let report = verify_chain(store.as_ref(), &options, |progress| {
                let rate = progress.verified as f64 / progress.elapsed.as_secs_f64().max(1e-3);
                eprintln!(
                    "verifying: position {} of {} ({} events checked, {:.0} events/s)",
                    progress.position, progress.head, progress.verified, rate
                );
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            match &report.first_break {
                Some(broken) => bail!("{broken}"),
                None => Ok(()),
            }
        }
        AuditCommand::Checkpoint => {
            let Some(key) = signing_key else {
                bail!(
                    "set BANKGATE_SIGNING_KEY_FILE: checkpoints are signed with the gateway's key"
                );
            };
            let checkpointer = crate::audit::Checkpointer::new(store, Some(key), 1);
            match checkpointer.checkpoint_head().await? {
                Some(checkpoint) => println!("{}", serde_json::to_string_pretty(&checkpoint)?),
                None => println!("no new checkpoint: the log is empty or one is at its head"),
            }
            Ok(())
        }
        AuditCommand::Retention => {
            let config = raw.validate()?;
            let Some((id, key)) = &config.grant_key else {
                bail!("set BANKGATE_GRANT_KEY: the archive event pseudonymises like the gateway");
            };
            let auditor = crate::audit::Auditor::start(
                store.clone(),
                config.audit.clone(),
                signing_key,
                crate::audit::Pseudonymiser::new(
                    std::sync::Arc::new(crate::crypto::Sealer::from_base64(id, key)?),
                    store,
                ),
            );
            let now = chrono::Utc::now();
            crate::audit::retention::prepare_partitions(&auditor, now).await?;
            let archives = crate::audit::retention::apply(&auditor, now).await?;
            if archives.is_empty() {
                println!("no partition to archive");
            }
            for archive in &archives {
                println!(
                    "archived {} ({} events) to {} and dropped it",
                    archive.partition, archive.n_events, archive.file
                );
            }
            Ok(())
        }
    }
}

/// `bankgate subject report`: the report about one platform's user from the PostgreSQL store,
/// audited (actor `operator:cli`) before it is printed. `bankgate subject erase`: the erasure
/// of one platform's user, audited (actor `operator:cli`) without naming them.
async fn subject(config_file: Option<&PathBuf>, command: SubjectCommand) -> anyhow::Result<()> {
    use crate::subject::{
        Sources, Subject, audit_bank_person_report, audit_report, report, report_of_bank_person,
    };

    let config = match config_file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    }
    .with_env(env_var)?
    .validate()?;
    let (StoreConfig::Postgres { url, .. }, Some((key_id, key))) =
        (&config.store, &config.grant_key)
    else {
        bail!("set DATABASE_URL and BANKGATE_GRANT_KEY: the report reads the gateway's store");
    };
    let store: std::sync::Arc<dyn crate::store::Store> =
        std::sync::Arc::new(crate::store::pg::connect(url, 2).await?);
    let signing_key = match &config.signing_key_file {
        Some(path) => Some(std::sync::Arc::new(crate::jose::keys::SigningKey::load(
            path,
        )?)),
        None => None,
    };
    let auditor = crate::audit::Auditor::start(
        store.clone(),
        config.audit.clone(),
        signing_key,
        crate::audit::Pseudonymiser::new(
            std::sync::Arc::new(crate::crypto::Sealer::from_base64(key_id, key)?),
            store.clone(),
        ),
    );
    let (asked, html) = match command {
        SubjectCommand::Report {
            platform,
            user_ref,
            bank,
            bank_person,
            html,
        } => ((platform, user_ref, bank, bank_person), html),
        SubjectCommand::Erase { platform, user_ref } => {
            let (erased, record) = crate::lifecycle::erasure::erase(
                store.as_ref(),
                &auditor,
                "operator:cli",
                &platform,
                &user_ref,
                None,
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "erased": erased,
                    "position": record.position,
                }))?
            );
            return Ok(());
        }
    };
    let policies = crate::policy::PolicySet::load_dir(&config.policies_dir)?;
    let sources = Sources {
        consents: store.as_ref(),
        clients: store.as_ref(),
        webhooks: store.as_ref(),
        auditor: &auditor,
        policies: &policies,
    };
    let now = chrono::Utc::now();
    let (page, json) = match asked {
        (Some(platform), Some(user_ref), None, None) => {
            let report = report(&sources, &Subject { platform, user_ref }, now).await?;
            audit_report(&auditor, "operator:cli", &report, None).await?;
            (report.html(), serde_json::to_string_pretty(&report)?)
        }
        (None, None, Some(bank), Some(person)) => {
            let sealer = crate::crypto::Sealer::from_base64(key_id, key)?;
            let digest = sealer.bank_person(&bank, &person);
            let report = report_of_bank_person(&sources, &bank, &digest, now).await?;
            audit_bank_person_report(&auditor, "operator:cli", &report, None).await?;
            (report.html(), serde_json::to_string_pretty(&report)?)
        }
        _ => bail!("name the person by --platform and --user-ref, or by --bank and --bank-person"),
    };
    if html {
        print!("{page}");
    } else {
        println!("{json}");
    }
    Ok(())
}

/// Public keys from a JWKS file or URL.
async fn load_jwks(source: &str) -> anyhow::Result<crate::audit::VerifyingKeys> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        crate::crypto::http_client_builder()
            .build()?
            .get(source)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading {source}"))?
    };
    let keys = crate::audit::VerifyingKeys::from_jwks(&text)?;
    if keys.is_empty() {
        bail!("{source} holds no P-256 public key");
    }
    Ok(keys)
}

fn print_report(report: &crate::audit::verifier::Report) {
    let seconds = report.elapsed.as_secs_f64();
    let rate = report.n_events as f64 / seconds.max(1e-3);
    let from = if report.start == 0 {
        "the first event".to_owned()
    } else {
        format!("the checkpoint at position {}", report.start)
    };
    for (first, last) in &report.archived {
        println!("positions {first}..={last}: archived (bridged by a signed checkpoint)");
    }
    match &report.first_break {
        None => {
            println!(
                "audit log intact: {} events checked from {from} to position {}, {} signed \
                 checkpoints verified ({seconds:.2}s, {rate:.0} events/s)",
                report.n_events, report.last, report.n_checkpoints
            );
            println!("head hash: {}", report.last_hash);
        }
        Some(broken) => {
            println!(
                "audit log BROKEN at position {}: {}",
                broken.position, broken.what
            );
            println!(
                "before it: {} events checked from {from} to position {}, {} signed checkpoints \
                 verified",
                report.n_events, report.last, report.n_checkpoints
            );
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let memory = config.store == StoreConfig::Memory;
    if memory {
        tracing::warn!(
            "NOT FOR PRODUCTION: no DATABASE_URL, so state lives in memory and dies with the process"
        );
    }
    if config.allow_insecure_clients {
        tracing::warn!(
            "NOT FOR PRODUCTION: allow_insecure_clients is on, so platforms may authenticate \
             with client_secret_basic and get bearer tokens (FAPI 2.0 requires private_key_jwt \
             and DPoP)"
        );
    }
    if config.signing_key_file.is_none() {
        tracing::warn!(
            "no signing key configured: using an ephemeral key (tokens die with the process)"
        );
    }
    let gateway = crate::gateway::Gateway::start(config).await?;
    // `kill -HUP <pid>` reloads policies/ (as does POST /admin/policies/reload).
    crate::gateway::reload_policies_on_sighup(gateway.app.clone())?;
    let base = gateway.app.config.public_url.clone();
    let banks: Vec<String> = gateway
        .app
        .banks
        .iter()
        .map(|adapter| {
            format!(
                "{} ({}) at {}",
                adapter.bank.id(),
                adapter.bank.manifest.profile,
                adapter.bank.manifest.api_base_url
            )
        })
        .collect();
    println!(
        "bankgate listening on {base} ({} store)",
        gateway.app.store.kind()
    );
    if let Some((_, metrics)) = &gateway.metrics {
        println!("  metrics (operator only): http://{metrics}/metrics");
    }
    if memory {
        println!(
            "  !! in-memory store: NOT FOR PRODUCTION, everything is lost when the process stops"
        );
    }
    if gateway.app.config.allow_insecure_clients {
        println!(
            "  !! allow_insecure_clients: NOT FOR PRODUCTION, platforms may use client secrets \
             and bearer tokens"
        );
    }
    for bank in &banks {
        println!("  bank: {bank}");
    }
    println!(
        "\nTry it:\n  curl {base}/.well-known/oauth-authorization-server\n  \
         cargo run --release -- demo     # walks a platform through consent → bank → data → audit\n\
         Register a platform with `bankgate platforms add` (PostgreSQL) or POST {base}/admin/clients \
         (with BANKGATE_ADMIN_TOKEN)."
    );
    gateway.serve(stop_signal()).await?;
    Ok(())
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM (what a service manager or container
/// runtime sends): the gateway then drains and the trace exporter flushes.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
