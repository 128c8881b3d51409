//! The command line: `serve`, `migrate`, `demo`, `platforms add`, `policies check`,
//! `adapters check`, `sandbox`, `keys`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Config, RawConfig, StoreConfig};

/// bankgate: an open-banking aggregation gateway.
#[derive(Debug, Parser)]
#[command(name = "bankgate", version, about)]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, global = true, env = "BANKGATE_CONFIG")]
    config: Option<PathBuf>,
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
        #[arg(long, env = "SANDBOX_CLIENT_SECRET")]
        client_secret: String,
        /// Approve at once instead of showing the approval page.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Generate keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PlatformsCommand {
    /// Register a client; prints its secret once.
    Add {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        name: String,
        /// `platform` or `compliance`.
        #[arg(long, default_value = "platform")]
        role: String,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Purpose the platform is approved for (repeatable).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// Where the platform processes data (EEA, UK, US, …); purposes allow some regions.
        #[arg(long, default_value = crate::policy::DEFAULT_REGION)]
        region: String,
        /// `client_secret_basic` (development) or `private_key_jwt` (needs --jwks-file).
        #[arg(long, default_value = "client_secret_basic")]
        token_endpoint_auth_method: String,
        /// A JSON file with the client's public keys (a JWK Set).
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// Require DPoP-bound access tokens for this client.
        #[arg(long)]
        dpop_bound_access_tokens: bool,
        /// Where consent webhooks are delivered (https).
        #[arg(long)]
        webhook_url: Option<String>,
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
    /// Validate a manifest file or every manifest in a directory.
    Check {
        #[arg(default_value = "adapters")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// A P-256 signing key (PKCS#8 PEM) for access tokens.
    Signing,
    /// A 256-bit grant key (base64) for BANKGATE_GRANT_KEY.
    Grant,
}

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own walk-through; only warnings should interleave with it.
    init_tracing(if matches!(cli.command, Command::Demo) {
        "warn"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let raw = match path {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    Ok(raw.with_env(|var| std::env::var(var).ok()).validate()?)
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
                    redirect_uris,
                    purposes,
                    region,
                    token_endpoint_auth_method,
                    jwks_file,
                    dpop_bound_access_tokens,
                    webhook_url,
                },
        } => {
            let config = load_config(cli.config.as_ref())?;
            let StoreConfig::Postgres { url, .. } = &config.store else {
                bail!(
                    "set DATABASE_URL: the in-memory store lives only inside a running gateway (use POST /admin/clients there)"
                );
            };
            crate::store::pg::migrate(url).await?;
            let store = crate::store::pg::connect(url, 2).await?;
            let policies = crate::policy::PolicySet::load_dir(&config.policies_dir)?;
            let role =
                crate::store::Role::parse(&role).context("role must be platform or compliance")?;
            let registered = crate::oauth::registration::register(
                &store,
                &policies,
                crate::oauth::registration::Registration {
                    client_id,
                    name,
                    role,
                    redirect_uris,
                    allowed_purposes: purposes,
                    region,
                    token_endpoint_auth_method: crate::store::AuthMethod::parse(
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
                    dpop_bound_access_tokens,
                    webhook_url,
                },
            )
            .await?;
            println!("client_id:     {}", registered.client_id);
            if registered.client_secret.is_empty() {
                println!("auth method:   private_key_jwt (no secret)");
            } else {
                println!("client_secret: {}", registered.client_secret);
                println!("(the secret is stored hashed and cannot be shown again)");
            }
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
                println!(
                    "ok  {:<20} {:<14} {}",
                    manifest.id, manifest.profile, manifest.api_base_url
                );
            }
            Ok(())
        }
        Command::Sandbox {
            profile,
            listen,
            client_id,
            client_secret,
            auto_approve,
        } => {
            let sandbox = crate::sandbox::start(crate::sandbox::SandboxConfig {
                profile: profile.clone(),
                addr: listen,
                client_id,
                client_secret,
                approval: if auto_approve {
                    crate::sandbox::Approval::Auto
                } else {
                    crate::sandbox::Approval::Page
                },
            })
            .await?;
            println!("sandbox bank ({profile}) listening on {}", sandbox.origin);
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
        Command::Keys { command } => {
            match command {
                KeysCommand::Signing => {
                    print!("{}", crate::oauth::keys::SigningKey::generate_pem()?)
                }
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let memory = config.store == StoreConfig::Memory;
    if memory {
        tracing::warn!(
            "NOT FOR PRODUCTION: no DATABASE_URL, so state lives in memory and dies with the process"
        );
    }
    if config.signing_key_file.is_none() {
        tracing::warn!(
            "no signing key configured: using an ephemeral key (tokens die with the process)"
        );
    }
    let gateway = crate::app::Gateway::start(config).await?;
    // `kill -HUP <pid>` reloads policies/ (as does POST /admin/policies/reload).
    crate::app::reload_policies_on_sighup(gateway.app.clone())?;
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
    if memory {
        println!(
            "  !! in-memory store: NOT FOR PRODUCTION, everything is lost when the process stops"
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
    gateway
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
