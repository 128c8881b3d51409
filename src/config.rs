//! Configuration: an optional TOML file and environment variables ([`RawConfig`]) validated into
//! a [`Config`].
//!
//! Every key can be set in the file; environment variables override it:
//! `DATABASE_URL`, `BANKGATE_LISTEN`, `BANKGATE_PUBLIC_URL`, `BANKGATE_GRANT_KEY`,
//! `BANKGATE_SIGNING_KEY_FILE`, `BANKGATE_PREVIOUS_SIGNING_KEY_FILES` (comma-separated),
//! `BANKGATE_ADMIN_TOKEN`, `BANKGATE_AUDIT_ARCHIVE_DIR`, `BANKGATE_ALLOW_INSECURE_CLIENTS`
//! (`true` or `false`), `BANKGATE_METRICS_LISTEN`, `BANKGATE_OTLP_ENDPOINT`,
//! `BANKGATE_SIGN_IN_STARTS_PER_MINUTE` (a whole number). A variable set but empty is unset.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::registration::RegistrationSettings;

/// An environment variable's value; set but empty means unset (`BANKGATE_CONFIG=` is no
/// configuration file, not a file named "").
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// How long a connection may take to send a request head (and idle between requests).
    pub header_read_timeout: Duration,
    /// Open connections from one IP address at once; `None`: no cap.
    pub max_connections_per_ip: Option<usize>,
}

/// Errors reading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The configuration as written: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub database_url: Option<String>,
    pub database_max_connections: Option<usize>,
    pub policies_dir: Option<PathBuf>,
    pub adapters_dir: Option<PathBuf>,
    /// Base64 of 32 bytes: seals bank grants at rest.
    pub grant_key: Option<String>,
    pub grant_key_id: Option<String>,
    /// PKCS#8 PEM file of the P-256 key that signs access tokens.
    pub signing_key_file: Option<PathBuf>,
    /// Keys that signed before the current one (PKCS#8 PEM or public JWK files): they keep
    /// verifying tokens after a rotation. Drop one once `access_token_ttl_secs` has passed.
    pub previous_signing_key_files: Option<Vec<PathBuf>>,
    /// Seconds between maintenance runs (consent expiry, notices, webhooks); 0 turns it off.
    pub maintenance_interval_secs: Option<u64>,
    /// Seconds between refreshes of the bank adapters from the store (registrations made
    /// through other instances come into force within one); 0 turns it off.
    pub adapters_refresh_secs: Option<u64>,
    /// Whether adapters banks register may point at loopback, private or link-local addresses
    /// (and use `http` on loopback). Off in production: a registration must not turn the
    /// gateway into a proxy to its own network. The embedded default (demo, tests) allows it.
    pub allow_private_bank_hosts: Option<bool>,
    /// Whether platforms' webhook URLs and `jwks_uri`s may point at loopback, private or
    /// link-local addresses. Off in production for the same reason; the embedded default
    /// allows it (test receivers listen on loopback).
    pub allow_private_platform_hosts: Option<bool>,
    /// Development only: whether platforms may authenticate with `client_secret_basic` and get
    /// bearer (not DPoP-bound) access tokens. Off by default, also in the embedded setup:
    /// FAPI 2.0 asks for `private_key_jwt` and sender-constrained tokens.
    pub allow_insecure_clients: Option<bool>,
    /// Bearer token for the operator's admin API; the admin API is off without it.
    pub admin_token: Option<String>,
    /// Where `GET /metrics` (Prometheus) listens, apart from the API; unset: no metrics.
    pub metrics_listen: Option<String>,
    /// The base URL of an OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`): spans are
    /// exported to `<url>/v1/traces`; unset: no export.
    pub otlp_endpoint: Option<String>,
    pub request_timeout_ms: Option<u64>,
    pub max_body_bytes: Option<usize>,
    /// Payee verifications a platform may ask per minute, every instance counted together
    /// (`POST /v1/payee-verifications`; beyond it, 429).
    pub payee_verifications_per_minute: Option<u32>,
    /// Sign-ins one client address may start per minute (`GET /me/{bank_id}` without a
    /// session; beyond it, 429); 0 turns the limit off (behind a proxy, every start comes from
    /// the proxy's address).
    pub sign_in_starts_per_minute: Option<u32>,
    pub max_in_flight: Option<usize>,
    /// How long a connection may take to send a request head (and idle between requests)
    /// before it is closed.
    pub header_read_timeout_ms: Option<u64>,
    /// Open connections from one IP address at once; 0 turns the cap off (behind a proxy,
    /// every connection comes from the proxy's address).
    pub max_connections_per_ip: Option<usize>,
    pub access_token_ttl_secs: Option<i64>,
    /// Start the sandbox banks of `adapters/` manifests that have a `[sandbox]` section.
    pub start_sandboxes: Option<bool>,
    /// `page` (a person clicks approve) or `auto` (tests, demo).
    pub sandbox_approval: Option<String>,
    /// Audit events that may wait for a commit before requests are refused (503).
    pub audit_queue_capacity: Option<usize>,
    /// The most audit events one commit takes.
    pub audit_max_batch: Option<usize>,
    /// A signed audit checkpoint at least every this many events...
    pub audit_checkpoint_every: Option<u64>,
    /// ...and this often (seconds) when the log grew.
    pub audit_checkpoint_interval_secs: Option<u64>,
    /// How long audit events are kept (days, default 5 years, at least 30).
    pub audit_retention_days: Option<u32>,
    /// Where expired audit partitions are archived before they are dropped; without it they
    /// are kept.
    pub audit_archive_dir: Option<PathBuf>,
}

/// Where the gateway keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In-memory: for trying bankgate, not for production.
    Memory,
    Postgres {
        url: String,
        max_connections: usize,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The issuer and audience of tokens; the base of redirect URIs.
    pub public_url: String,
    pub store: StoreConfig,
    pub policies_dir: PathBuf,
    pub adapters_dir: PathBuf,
    pub grant_key: Option<(String, String)>,
    pub signing_key_file: Option<PathBuf>,
    pub previous_signing_key_files: Vec<PathBuf>,
    /// `None`: no maintenance task (tests drive `lifecycle::Maintenance` themselves).
    pub maintenance_interval: Option<Duration>,
    /// `None`: adapters registered on other instances are not picked up.
    pub adapters_refresh_interval: Option<Duration>,
    pub allow_private_bank_hosts: bool,
    pub allow_private_platform_hosts: bool,
    /// Platforms may use `client_secret_basic` and bearer tokens (development only).
    pub allow_insecure_clients: bool,
    pub admin_token: Option<String>,
    /// The metrics listener's address; `None`: metrics off (nothing is recorded).
    pub metrics_listen: Option<SocketAddr>,
    /// The OTLP/HTTP collector spans are exported to; `None`: no export.
    pub otlp_endpoint: Option<url::Url>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Payee verifications a platform may ask per minute.
    pub payee_verifications_per_minute: u32,
    /// Sign-ins one client address may start per minute on this instance; 0: no limit.
    pub sign_in_starts_per_minute: u32,
    pub max_in_flight: usize,
    /// How connections are served (header-read timeout, per-IP cap).
    pub server: ServerSettings,
    pub access_token_ttl_secs: i64,
    pub start_sandboxes: bool,
    pub sandbox_approval: bankgate_sandbox::Approval,
    pub audit: crate::audit::AuditConfig,
}

impl Config {
    /// What client registration needs of it.
    pub fn registration(&self) -> RegistrationSettings {
        RegistrationSettings {
            allow_insecure: self.allow_insecure_clients,
            allow_private_hosts: self.allow_private_platform_hosts,
            public_url: self.public_url.clone(),
        }
    }
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
        toml::from_str(&text).map_err(|error| file_error(error.to_string()))
    }

    /// Overrides fields with the environment variables that are set. A flag's variable holds
    /// `true` or `false`; another value is an error.
    pub fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RawConfig, ConfigError> {
        let set = |slot: &mut Option<String>, var: &str| {
            if let Some(value) = env(var).filter(|value| !value.is_empty()) {
                *slot = Some(value);
            }
        };
        set(&mut self.database_url, "DATABASE_URL");
        set(&mut self.listen, "BANKGATE_LISTEN");
        set(&mut self.public_url, "BANKGATE_PUBLIC_URL");
        set(&mut self.grant_key, "BANKGATE_GRANT_KEY");
        set(&mut self.admin_token, "BANKGATE_ADMIN_TOKEN");
        set(&mut self.metrics_listen, "BANKGATE_METRICS_LISTEN");
        set(&mut self.otlp_endpoint, "BANKGATE_OTLP_ENDPOINT");
        if let Some(file) = env("BANKGATE_SIGNING_KEY_FILE").filter(|value| !value.is_empty()) {
            self.signing_key_file = Some(file.into());
        }
        if let Some(files) =
            env("BANKGATE_PREVIOUS_SIGNING_KEY_FILES").filter(|value| !value.is_empty())
        {
            self.previous_signing_key_files = Some(
                files
                    .split(',')
                    .map(str::trim)
                    .filter(|file| !file.is_empty())
                    .map(PathBuf::from)
                    .collect(),
            );
        }
        if let Some(dir) = env("BANKGATE_AUDIT_ARCHIVE_DIR").filter(|value| !value.is_empty()) {
            self.audit_archive_dir = Some(dir.into());
        }
        if let Some(limit) =
            env("BANKGATE_SIGN_IN_STARTS_PER_MINUTE").filter(|value| !value.is_empty())
        {
            self.sign_in_starts_per_minute =
                Some(limit.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: "sign_in_starts_per_minute",
                    message: format!(
                        "BANKGATE_SIGN_IN_STARTS_PER_MINUTE={limit:?}: expected a whole number"
                    ),
                })?);
        }
        if let Some(flag) = env("BANKGATE_ALLOW_INSECURE_CLIENTS").filter(|value| !value.is_empty())
        {
            self.allow_insecure_clients = Some(match flag.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "allow_insecure_clients",
                        message: format!(
                            "BANKGATE_ALLOW_INSECURE_CLIENTS={other:?}: expected true or false"
                        ),
                    });
                }
            });
        }
        Ok(self)
    }

    /// Validates and fills defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let audit = self.audit_config()?;
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .map_err(|error| invalid("listen", format!("{error}")))?;
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .map(str::parse::<SocketAddr>)
            .transpose()
            .map_err(|error| invalid("metrics_listen", format!("{error}")))?;
        let otlp_endpoint = self
            .otlp_endpoint
            .as_deref()
            .map(|text| match url::Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
                Ok(_) => Err(invalid(
                    "otlp_endpoint",
                    "must be an http or https URL".into(),
                )),
                Err(error) => Err(invalid("otlp_endpoint", error.to_string())),
            })
            .transpose()?;
        let public_url = self
            .public_url
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        url::Url::parse(&public_url).map_err(|error| invalid("public_url", error.to_string()))?;
        let store = match self.database_url {
            Some(url) => StoreConfig::Postgres {
                url,
                max_connections: self.database_max_connections.unwrap_or(16),
            },
            None => StoreConfig::Memory,
        };
        let grant_key = self
            .grant_key
            .map(|key| (self.grant_key_id.unwrap_or_else(|| "k1".to_owned()), key));
        if let Some((id, key)) = &grant_key {
            crate::crypto::Sealer::from_base64(id, key)
                .map_err(|error| invalid("grant_key", error.to_string()))?;
        }
        if matches!(store, StoreConfig::Postgres { .. }) && grant_key.is_none() {
            return Err(invalid(
                "grant_key",
                "BANKGATE_GRANT_KEY is required with PostgreSQL: bank grants must stay readable \
                 across restarts and instances (generate one with `bankgate keys grant`)"
                    .into(),
            ));
        }
        let sandbox_approval = match self.sandbox_approval.as_deref().unwrap_or("page") {
            "page" => bankgate_sandbox::Approval::Page,
            "auto" => bankgate_sandbox::Approval::Auto,
            other => {
                return Err(invalid(
                    "sandbox_approval",
                    format!("{other:?}: expected \"page\" or \"auto\""),
                ));
            }
        };
        let header_read_timeout_ms = self.header_read_timeout_ms.unwrap_or(10_000);
        if header_read_timeout_ms == 0 {
            return Err(invalid(
                "header_read_timeout_ms",
                "must be at least 1".into(),
            ));
        }
        let ttl = self.access_token_ttl_secs.unwrap_or(300);
        if !(1..=300).contains(&ttl) {
            return Err(invalid("access_token_ttl_secs", "must be 1..=300".into()));
        }
        Ok(Config {
            listen,
            public_url,
            store,
            policies_dir: self.policies_dir.unwrap_or_else(|| "policies".into()),
            adapters_dir: self.adapters_dir.unwrap_or_else(|| "adapters".into()),
            grant_key,
            signing_key_file: self.signing_key_file,
            previous_signing_key_files: self.previous_signing_key_files.unwrap_or_default(),
            maintenance_interval: match self.maintenance_interval_secs.unwrap_or(30) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            allow_private_bank_hosts: self.allow_private_bank_hosts.unwrap_or(false),
            allow_private_platform_hosts: self.allow_private_platform_hosts.unwrap_or(false),
            allow_insecure_clients: self.allow_insecure_clients.unwrap_or(false),
            adapters_refresh_interval: match self.adapters_refresh_secs.unwrap_or(10) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            admin_token: self.admin_token,
            metrics_listen,
            otlp_endpoint,
            request_timeout: Duration::from_millis(self.request_timeout_ms.unwrap_or(30_000)),
            max_body_bytes: self.max_body_bytes.unwrap_or(64 * 1024),
            payee_verifications_per_minute: self
                .payee_verifications_per_minute
                .unwrap_or(crate::payments::verification::DEFAULT_PER_MINUTE),
            sign_in_starts_per_minute: self
                .sign_in_starts_per_minute
                .unwrap_or(crate::broker::sign_in::DEFAULT_STARTS_PER_MINUTE),
            max_in_flight: self.max_in_flight.unwrap_or(1024),
            server: ServerSettings {
                header_read_timeout: Duration::from_millis(header_read_timeout_ms),
                max_connections_per_ip: match self.max_connections_per_ip.unwrap_or(256) {
                    0 => None,
                    max => Some(max),
                },
            },
            access_token_ttl_secs: ttl,
            start_sandboxes: self.start_sandboxes.unwrap_or(true),
            sandbox_approval,
            audit,
        })
    }

    fn audit_config(&self) -> Result<crate::audit::AuditConfig, ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_owned(),
        };
        let defaults = crate::audit::AuditConfig::default();
        let retention_days = self.audit_retention_days.unwrap_or(5 * 365 + 1);
        if retention_days < 30 {
            return Err(invalid("audit_retention_days", "must be at least 30"));
        }
        let positive = |value: Option<usize>, key, default| match value {
            Some(0) => Err(invalid(key, "must be at least 1")),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        Ok(crate::audit::AuditConfig {
            queue_capacity: positive(
                self.audit_queue_capacity,
                "audit_queue_capacity",
                defaults.queue_capacity,
            )?,
            max_batch: positive(self.audit_max_batch, "audit_max_batch", defaults.max_batch)?,
            checkpoint_every: match self.audit_checkpoint_every {
                Some(0) => return Err(invalid("audit_checkpoint_every", "must be at least 1")),
                Some(every) => every,
                None => defaults.checkpoint_every,
            },
            checkpoint_interval: self
                .audit_checkpoint_interval_secs
                .map_or(defaults.checkpoint_interval, Duration::from_secs),
            retention: chrono::Duration::days(i64::from(retention_days)),
            archive_dir: self.audit_archive_dir.clone(),
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_memory_setup() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url, "http://127.0.0.1:8080");
        assert_eq!(config.store, StoreConfig::Memory);
        assert_eq!(config.access_token_ttl_secs, 300);
        assert_eq!(config.audit.retention, chrono::Duration::days(5 * 365 + 1));
        assert_eq!(config.audit.archive_dir, None);
    }

    #[test]
    fn audit_settings_are_validated() {
        let raw = RawConfig {
            audit_retention_days: Some(7),
            ..RawConfig::default()
        };
        assert!(raw.validate().is_err());
        let raw: RawConfig = toml::from_str(
            "audit_checkpoint_every = 500\naudit_checkpoint_interval_secs = 5\n\
             audit_archive_dir = \"/var/lib/bankgate/audit\"",
        )
        .unwrap();
        let audit = raw.validate().unwrap().audit;
        assert_eq!(audit.checkpoint_every, 500);
        assert_eq!(audit.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(audit.archive_dir, Some("/var/lib/bankgate/audit".into()));
    }

    #[test]
    fn env_overrides_and_postgres_needs_a_grant_key() {
        let env = |var: &str| (var == "DATABASE_URL").then(|| "postgres://x/y".to_owned());
        let error = RawConfig::default()
            .with_env(env)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("BANKGATE_GRANT_KEY"), "{error}");
    }

    #[test]
    fn insecure_clients_are_off_unless_set_in_the_file_or_the_environment() {
        let config = RawConfig::default().validate().unwrap();
        assert!(
            !config.allow_insecure_clients,
            "FAPI 2.0 clients by default"
        );
        let raw: RawConfig = toml::from_str("allow_insecure_clients = true").unwrap();
        assert!(raw.validate().unwrap().allow_insecure_clients);
        let env = |value: &'static str| {
            move |var: &str| (var == "BANKGATE_ALLOW_INSECURE_CLIENTS").then(|| value.to_owned())
        };
        let raw = RawConfig::default().with_env(env("true")).unwrap();
        assert!(raw.validate().unwrap().allow_insecure_clients);
        let raw = RawConfig {
            allow_insecure_clients: Some(true),
            ..RawConfig::default()
        };
        assert!(
            !raw.with_env(env("false"))
                .unwrap()
                .validate()
                .unwrap()
                .allow_insecure_clients
        );
        let error = RawConfig::default().with_env(env("yes")).unwrap_err();
        assert!(
            error.to_string().contains("expected true or false"),
            "{error}"
        );
    }

    #[test]
    fn the_otlp_endpoint_is_an_http_url_from_the_file_or_the_environment() {
        assert_eq!(RawConfig::default().validate().unwrap().otlp_endpoint, None);
        let raw: RawConfig = toml::from_str("otlp_endpoint = \"http://collector:4318\"").unwrap();
        let endpoint = raw.validate().unwrap().otlp_endpoint.unwrap();
        assert_eq!(endpoint.as_str(), "http://collector:4318/");
        let env = |value: &'static str| {
            move |var: &str| (var == "BANKGATE_OTLP_ENDPOINT").then(|| value.to_owned())
        };
        let raw = RawConfig::default()
            .with_env(env("https://otel.example"))
            .unwrap();
        assert!(raw.validate().unwrap().otlp_endpoint.is_some());
        // Set but empty is unset.
        let raw = RawConfig::default().with_env(env("")).unwrap();
        assert_eq!(raw.validate().unwrap().otlp_endpoint, None);
        for bad in ["collector:4318", "grpc://collector:4317", "not a url"] {
            let raw = RawConfig::default().with_env(env(bad)).unwrap();
            let error = raw.validate().unwrap_err();
            assert!(
                error.to_string().starts_with("otlp_endpoint"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn sign_in_starts_are_limited_by_default_from_the_file_or_the_environment() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(config.sign_in_starts_per_minute, 10);
        let raw: RawConfig = toml::from_str("sign_in_starts_per_minute = 0").unwrap();
        assert_eq!(raw.validate().unwrap().sign_in_starts_per_minute, 0);
        let env = |value: &'static str| {
            move |var: &str| (var == "BANKGATE_SIGN_IN_STARTS_PER_MINUTE").then(|| value.to_owned())
        };
        let raw: RawConfig = toml::from_str("sign_in_starts_per_minute = 3").unwrap();
        let raw = raw.with_env(env("25")).unwrap();
        assert_eq!(raw.validate().unwrap().sign_in_starts_per_minute, 25);
        for bad in ["-1", "ten", "1.5"] {
            let error = RawConfig::default().with_env(env(bad)).unwrap_err();
            assert!(
                error.to_string().starts_with("sign_in_starts_per_minute"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<RawConfig>("lisen = \"x\"").is_err());
        let raw = RawConfig {
            access_token_ttl_secs: Some(3600),
            ..RawConfig::default()
        };
        assert!(raw.validate().is_err());
    }
}
