//! Client registration by an operator (CLI `bankgate platforms add` and the admin API):
//! redirect URIs, purposes, region, the authentication method, DPoP-bound tokens, webhook URL.
//!
//! FAPI 2.0 by default: a client registers `private_key_jwt` (a JWK Set of public keys) with
//! DPoP-bound access tokens unless it says otherwise, and a platform — the role that reads
//! account data — may say otherwise (`client_secret_basic`, bearer tokens) only when the
//! gateway runs with `allow_insecure_clients` (development). Compliance and bank clients,
//! which the operator registers for management APIs and which never hold a consent's token,
//! may use `client_secret_basic` (the compliance console signs in with a secret).
//!
//! A client's keys come by value (`jwks`) or by reference (`jwks_uri`, RFC 7591 §2: a URL
//! bankgate may reach under the egress policy for platforms, fetched by
//! [`super::client_keys`]). Every client also gets a registration access token (RFC 7592),
//! shown once and stored as a digest, with which it reads its registration and replaces its
//! keys, redirect URIs, name and webhook URL at `/register/{client_id}` — key rotation
//! without the operator. What the operator decided (role, purposes, region, bank,
//! authentication method, DPoP) stays the operator's.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::crypto::{Sealer, SecretCheck};
use crate::egress::Egress;
use crate::jose::KeySet;
use crate::oauth::Clients;
use crate::oauth::{AuthMethod, Client, Role};
use crate::policy::PolicySet;
use crate::store_error::StoreError;

/// What an operator asks to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub client_id: String,
    pub name: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub allowed_purposes: Vec<String>,
    /// Where the platform processes data (one of `policy::REGIONS`; default `EEA`).
    #[serde(default = "default_region")]
    pub region: String,
    /// `private_key_jwt` (default; needs `jwks`) or `client_secret_basic`.
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public signing keys (a JWK Set).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set instead (https, at a public address).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Require DPoP-bound access tokens for this client (RFC 9449 §5.2). Unset: true for
    /// `private_key_jwt`, false for `client_secret_basic`.
    #[serde(default)]
    pub dpop_bound_access_tokens: Option<bool>,
    /// Where consent webhooks go: https, or http on loopback.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// For role `bank`: the one bank whose adapter the client may register and update.
    #[serde(default)]
    pub bank_id: Option<String>,
}

fn default_auth_method() -> AuthMethod {
    AuthMethod::PrivateKeyJwt
}

fn default_role() -> Role {
    Role::Platform
}

fn default_region() -> String {
    crate::policy::DEFAULT_REGION.to_owned()
}

impl Default for Registration {
    /// A FAPI 2.0 platform (`private_key_jwt`, DPoP) in the default region with nothing else
    /// set.
    fn default() -> Self {
        Registration {
            client_id: String::new(),
            name: String::new(),
            role: default_role(),
            redirect_uris: Vec::new(),
            allowed_purposes: Vec::new(),
            region: default_region(),
            token_endpoint_auth_method: default_auth_method(),
            jwks: None,
            jwks_uri: None,
            dpop_bound_access_tokens: None,
            webhook_url: None,
            bank_id: None,
        }
    }
}

/// A registered client and its secret, shown once.
#[derive(Serialize)]
pub struct Registered {
    pub client_id: String,
    /// Empty (and not serialised) for `private_key_jwt` clients, which have no secret.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_secret: String,
    pub role: Role,
    pub token_endpoint_auth_method: AuthMethod,
    pub dpop_bound_access_tokens: bool,
    /// The bank a `bank` client administers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_id: Option<String>,
    /// The bearer token of the client's configuration endpoint (RFC 7592), shown once.
    pub registration_access_token: String,
    /// The client's configuration endpoint.
    pub registration_client_uri: String,
}

/// What a client sends to `PUT /register/{client_id}` (RFC 7592 §2.2): the whole key source
/// (`jwks` or `jwks_uri`, one of them for a `private_key_jwt` client), and optionally a new
/// name, redirect URIs or webhook URL (omitted: unchanged). The fields the operator decided
/// may be sent only with their registered values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub allowed_purposes: Option<Vec<String>>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[serde(default)]
    pub dpop_bound_access_tokens: Option<bool>,
    #[serde(default)]
    pub bank_id: Option<String>,
}

/// A client's registration as its configuration endpoint shows it (RFC 7592 §3): no secret,
/// no token.
pub fn client_metadata(client: &Client, public_url: &str) -> serde_json::Value {
    serde_json::json!({
        "client_id": client.client_id,
        "client_name": client.name,
        "name": client.name,
        "role": client.role,
        "redirect_uris": client.redirect_uris,
        "allowed_purposes": client.allowed_purposes,
        "region": client.region,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "webhook_url": client.webhook_url,
        "bank_id": client.bank_id,
        "registration_client_uri": registration_client_uri(public_url, &client.client_id),
    })
}

/// The configuration endpoint of `client_id`.
pub fn registration_client_uri(public_url: &str, client_id: &str) -> String {
    format!("{public_url}/register/{client_id}")
}

/// Whether `uri` may receive redirects or webhooks: https, or http on loopback; no fragment,
/// no credentials.
fn check_url(uri: &str, what: &str) -> Result<(), RegistrationError> {
    let invalid = |message: String| Err(RegistrationError::Invalid(message));
    let parsed = url::Url::parse(uri)
        .map_err(|error| RegistrationError::Invalid(format!("{uri}: {error}")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return invalid(format!(
            "{uri}: {what} must use https (http only on loopback)"
        ));
    }
    if parsed.fragment().is_some() {
        return invalid(format!("{uri}: {what} must not have a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return invalid(format!("{uri}: {what} must not carry credentials"));
    }
    Ok(())
}

/// Errors registering a client.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such client")]
    Unknown,
    /// The registration access token is missing, wrong, or not this client's.
    #[error("the registration access token is not valid for this client")]
    Unauthorized,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What registration needs of the configuration.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    /// Platforms may register `client_secret_basic` and bearer tokens (development:
    /// `allow_insecure_clients`).
    pub allow_insecure: bool,
    /// A `jwks_uri` may point at private addresses (`allow_private_platform_hosts`).
    pub allow_private_hosts: bool,
    /// The gateway's public URL: the base of configuration endpoints.
    pub public_url: String,
}

/// Registers clients: validates what an operator asks for and stores it with a fresh secret
/// (for `client_secret_basic`), of which only the digest is kept.
pub struct Registrar {
    store: Arc<dyn Clients>,
    /// Digests secrets (a key derived from the grant key).
    sealer: Arc<Sealer>,
    /// Platforms may register `client_secret_basic` and bearer tokens (development).
    allow_insecure: bool,
    /// Where a `jwks_uri` may point (the platforms' egress policy).
    egress: Egress,
    /// The gateway's public URL: the base of configuration endpoints.
    public_url: String,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}

impl Registrar {
    /// Registers clients in `store`, digesting secrets and registration tokens with
    /// `sealer`'s key; platforms must be FAPI 2.0 clients unless `settings` allow insecure
    /// clients (development), and `jwks_uri`s obey the platform egress policy they name.
    pub fn new(
        store: Arc<dyn Clients>,
        sealer: Arc<Sealer>,
        settings: RegistrationSettings,
    ) -> Registrar {
        Registrar {
            store,
            sealer,
            allow_insecure: settings.allow_insecure,
            egress: Egress::new(settings.allow_private_hosts),
            public_url: settings.public_url,
        }
    }

    /// The client whose registration access token `token` is (a constant amount of work,
    /// known client or not).
    pub async fn configured(
        &self,
        client_id: &str,
        token: &str,
    ) -> Result<Client, RegistrationError> {
        let client = self.store.client(client_id).await?;
        let check = self.sealer.check_secret(
            token,
            client
                .as_ref()
                .map(|client| client.registration_token_hash.as_str()),
        );
        match (client, check) {
            (Some(client), SecretCheck::Matches) => Ok(client),
            _ => Err(RegistrationError::Unauthorized),
        }
    }

    /// Applies a client's own update (RFC 7592 §2.2) to `client` (authenticated by
    /// [`Registrar::configured`]) and stores it; returns the stored client.
    pub async fn update(
        &self,
        mut client: Client,
        update: ClientUpdate,
    ) -> Result<Client, RegistrationError> {
        let invalid = |message: String| Err(RegistrationError::Invalid(message));
        if update.client_id != client.client_id {
            return invalid("client_id must be the one of the configuration endpoint".into());
        }
        let operators = |field: &str, same: bool| {
            if same {
                Ok(())
            } else {
                Err(RegistrationError::Invalid(format!(
                    "{field} is the operator's to change"
                )))
            }
        };
        operators("role", update.role.is_none_or(|role| role == client.role))?;
        operators(
            "allowed_purposes",
            update
                .allowed_purposes
                .as_ref()
                .is_none_or(|purposes| *purposes == client.allowed_purposes),
        )?;
        operators(
            "region",
            update
                .region
                .as_ref()
                .is_none_or(|region| *region == client.region),
        )?;
        operators(
            "token_endpoint_auth_method",
            update
                .token_endpoint_auth_method
                .is_none_or(|method| method == client.token_endpoint_auth_method),
        )?;
        operators(
            "dpop_bound_access_tokens",
            update
                .dpop_bound_access_tokens
                .is_none_or(|dpop| dpop == client.dpop_bound_access_tokens),
        )?;
        operators(
            "bank_id",
            update.bank_id.is_none() || update.bank_id == client.bank_id,
        )?;
        self.check_keys(
            client.token_endpoint_auth_method,
            update.jwks.as_ref(),
            update.jwks_uri.as_deref(),
        )
        .await?;
        if let Some(uris) = &update.redirect_uris {
            if client.role == Role::Platform && uris.is_empty() {
                return invalid("a platform needs at least one redirect URI".into());
            }
            for uri in uris {
                check_url(uri, "redirect URIs")?;
            }
        }
        if let Some(url) = &update.webhook_url {
            check_url(url, "webhook URLs")?;
        }
        client.jwks = update.jwks;
        client.jwks_uri = update.jwks_uri;
        if let Some(name) = update.name {
            client.name = name;
        }
        if let Some(uris) = update.redirect_uris {
            client.redirect_uris = uris;
        }
        if let Some(url) = update.webhook_url {
            client.webhook_url = Some(url);
        }
        if !self.store.update_client(&client).await? {
            return Err(RegistrationError::Unknown);
        }
        self.store
            .client(&client.client_id)
            .await?
            .ok_or(RegistrationError::Unknown)
    }

    /// The keys of a registration or an update: at most one source, one for
    /// `private_key_jwt`; a JWK Set of public keys; a `jwks_uri` at an address the egress
    /// policy allows (its name resolved now, as when it is fetched).
    async fn check_keys(
        &self,
        method: AuthMethod,
        jwks: Option<&serde_json::Value>,
        jwks_uri: Option<&str>,
    ) -> Result<(), RegistrationError> {
        let invalid = |message: String| Err(RegistrationError::Invalid(message));
        if jwks.is_some() && jwks_uri.is_some() {
            return invalid("send jwks or jwks_uri, not both (RFC 7591 §2)".into());
        }
        if let Some(jwks) = jwks {
            KeySet::parse(jwks)
                .map_err(|error| RegistrationError::Invalid(format!("jwks: {error}")))?;
        }
        if let Some(uri) = jwks_uri {
            check_url(uri, "jwks_uri")?;
            let parsed = url::Url::parse(uri)
                .map_err(|error| RegistrationError::Invalid(format!("{uri}: {error}")))?;
            if let Err(refused) = self.egress.check_url_resolved(&parsed).await {
                return invalid(format!("jwks_uri {uri}: {refused}"));
            }
        }
        if method == AuthMethod::PrivateKeyJwt && jwks.is_none() && jwks_uri.is_none() {
            return invalid(
                "private_key_jwt needs the client's public keys: jwks or jwks_uri".into(),
            );
        }
        Ok(())
    }

    /// Validates a registration against the purposes of `policies` and stores the client.
    pub async fn register(
        &self,
        policies: &PolicySet,
        registration: Registration,
    ) -> Result<Registered, RegistrationError> {
        register(self, policies, registration).await
    }

    /// Issues a new secret for a `client_secret_basic` client (shown once); the old one stops
    /// working at once. How a client whose secret predates the digests gets a usable one.
    pub async fn reissue_secret(&self, client_id: &str) -> Result<String, RegistrationError> {
        let mut client = self
            .store
            .client(client_id)
            .await?
            .ok_or(RegistrationError::Unknown)?;
        if client.token_endpoint_auth_method != AuthMethod::ClientSecretBasic {
            return Err(RegistrationError::Invalid(
                "this client authenticates with private_key_jwt: it has no secret".into(),
            ));
        }
        if let Some(refusal) = insecure_platform(client.role, false, self.allow_insecure) {
            return Err(RegistrationError::Invalid(refusal));
        }
        let secret = new_secret()?;
        client.secret_hash = self.sealer.digest_secret(&secret);
        if !self.store.update_client(&client).await? {
            return Err(RegistrationError::Unknown);
        }
        Ok(secret)
    }
}

/// A fresh 256-bit client secret.
fn new_secret() -> Result<String, RegistrationError> {
    crate::crypto::random_token(32).map_err(|error| RegistrationError::Invalid(error.to_string()))
}

/// Why a client of `role` that is not a FAPI 2.0 client (`fapi`: `private_key_jwt` and
/// DPoP-bound tokens) may not be one here, if it may not: a platform without
/// `allow_insecure`.
pub fn insecure_platform(role: Role, fapi: bool, allow_insecure: bool) -> Option<String> {
    (role == Role::Platform && !allow_insecure && !fapi).then(|| {
        "a platform must authenticate with private_key_jwt and use DPoP-bound access tokens \
         (FAPI 2.0); client_secret_basic and bearer tokens are for development only \
         (allow_insecure_clients)"
            .to_owned()
    })
}

/// Validates a registration and stores the client with a fresh secret's digest.
async fn register(
    registrar: &Registrar,
    policies: &PolicySet,
    registration: Registration,
) -> Result<Registered, RegistrationError> {
    let invalid = |message: String| Err(RegistrationError::Invalid(message));
    let id_ok = !registration.client_id.is_empty()
        && registration.client_id.len() <= 64
        && registration
            .client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok {
        return invalid("client_id must be 1-64 letters, digits, '-', '_' or '.'".into());
    }
    match (registration.role, &registration.bank_id) {
        (Role::Bank, None) => {
            return invalid("a bank client needs the bank_id it administers".into());
        }
        (Role::Bank, Some(bank_id)) if !crate::adapters::manifest::is_bank_id(bank_id) => {
            return invalid("bank_id must be 1-64 lowercase letters, digits and '-'".into());
        }
        (Role::Bank, Some(_)) | (_, None) => {}
        (_, Some(_)) => return invalid("only a bank client is bound to a bank_id".into()),
    }
    if registration.role == Role::Platform && registration.redirect_uris.is_empty() {
        return invalid("a platform needs at least one redirect URI".into());
    }
    for uri in &registration.redirect_uris {
        check_url(uri, "redirect URIs")?;
    }
    if let Some(url) = &registration.webhook_url {
        check_url(url, "webhook URLs")?;
    }
    let method = registration.token_endpoint_auth_method;
    let dpop = registration
        .dpop_bound_access_tokens
        .unwrap_or(method == AuthMethod::PrivateKeyJwt);
    let fapi = method == AuthMethod::PrivateKeyJwt && dpop;
    if let Some(refusal) = insecure_platform(registration.role, fapi, registrar.allow_insecure) {
        return invalid(refusal);
    }
    registrar
        .check_keys(
            method,
            registration.jwks.as_ref(),
            registration.jwks_uri.as_deref(),
        )
        .await?;
    for purpose in &registration.allowed_purposes {
        if let Err(refusal) = policies.lookup(purpose) {
            return invalid(refusal.to_string());
        }
    }
    if !crate::policy::REGIONS.contains(&registration.region.as_str()) {
        return invalid(format!(
            "unknown region {:?}; expected one of {}",
            registration.region,
            crate::policy::REGIONS.join(", ")
        ));
    }
    // Only clients that authenticate with a secret get one; an empty digest never matches.
    let (secret, secret_hash) = match registration.token_endpoint_auth_method {
        AuthMethod::ClientSecretBasic => {
            let secret = new_secret()?;
            let digest = registrar.sealer.digest_secret(&secret);
            (secret, digest)
        }
        AuthMethod::PrivateKeyJwt => (String::new(), String::new()),
    };
    let registration_access_token = new_secret()?;
    registrar
        .store
        .insert_client(&Client {
            client_id: registration.client_id.clone(),
            name: registration.name,
            secret_hash,
            role: registration.role,
            redirect_uris: registration.redirect_uris,
            allowed_purposes: registration.allowed_purposes,
            region: registration.region,
            created_at: Utc::now(),
            token_endpoint_auth_method: registration.token_endpoint_auth_method,
            jwks: registration.jwks,
            jwks_uri: registration.jwks_uri,
            registration_token_hash: registrar.sealer.digest_secret(&registration_access_token),
            dpop_bound_access_tokens: dpop,
            webhook_url: registration.webhook_url,
            bank_id: registration.bank_id.clone(),
        })
        .await?;
    Ok(Registered {
        registration_client_uri: registration_client_uri(
            &registrar.public_url,
            &registration.client_id,
        ),
        client_id: registration.client_id,
        client_secret: secret,
        role: registration.role,
        token_endpoint_auth_method: registration.token_endpoint_auth_method,
        dpop_bound_access_tokens: dpop,
        bank_id: registration.bank_id,
        registration_access_token,
    })
}
