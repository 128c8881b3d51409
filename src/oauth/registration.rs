//! Client registration by an operator (CLI `bankgate platforms add` and the admin API):
//! redirect URIs, purposes, region, the authentication method, DPoP-bound tokens, webhook URL.
//!
//! FAPI 2.0 by default: a client registers `private_key_jwt` (a JWK Set of public keys) with
//! DPoP-bound access tokens unless it says otherwise, and a platform — the role that reads
//! account data — may say otherwise (`client_secret_basic`, bearer tokens) only when the
//! gateway runs with `allow_insecure_clients` (development). Compliance and bank clients,
//! which the operator registers for management APIs and which never hold a consent's token,
//! may use `client_secret_basic` (the compliance console signs in with a secret).

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::jose::KeySet;
use crate::crypto::Sealer;
use crate::policy::PolicySet;
use crate::store::{AuthMethod, Client, Role, Store, StoreError};

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers clients: validates what an operator asks for and stores it with a fresh secret
/// (for `client_secret_basic`), of which only the digest is kept.
pub struct Registrar {
    store: Arc<dyn Store>,
    /// Digests secrets (a key derived from the grant key).
    sealer: Arc<Sealer>,
    /// Platforms may register `client_secret_basic` and bearer tokens (development).
    allow_insecure: bool,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}

impl Registrar {
    /// Registers clients in `store`, digesting secrets with `sealer`'s key; platforms must be
    /// FAPI 2.0 clients unless `allow_insecure` (the development setting
    /// `allow_insecure_clients`).
    pub fn new(store: Arc<dyn Store>, sealer: Arc<Sealer>, allow_insecure: bool) -> Registrar {
        Registrar {
            store,
            sealer,
            allow_insecure,
        }
    }

    /// Validates a registration against the purposes of `policies` and stores the client.
    pub async fn register(
        &self,
        policies: &PolicySet,
        registration: Registration,
    ) -> Result<Registered, RegistrationError> {
        register(
            self.store.as_ref(),
            &self.sealer,
            self.allow_insecure,
            policies,
            registration,
        )
        .await
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
    store: &dyn Store,
    sealer: &Sealer,
    allow_insecure: bool,
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
    if let Some(jwks) = &registration.jwks {
        KeySet::parse(jwks)
            .map_err(|error| RegistrationError::Invalid(format!("jwks: {error}")))?;
    }
    let method = registration.token_endpoint_auth_method;
    let dpop = registration
        .dpop_bound_access_tokens
        .unwrap_or(method == AuthMethod::PrivateKeyJwt);
    let fapi = method == AuthMethod::PrivateKeyJwt && dpop;
    if let Some(refusal) = insecure_platform(registration.role, fapi, allow_insecure) {
        return invalid(refusal);
    }
    if method == AuthMethod::PrivateKeyJwt && registration.jwks.is_none() {
        return invalid("private_key_jwt needs the client's public keys in jwks".into());
    }
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
            let digest = sealer.digest_secret(&secret);
            (secret, digest)
        }
        AuthMethod::PrivateKeyJwt => (String::new(), String::new()),
    };
    store
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
            dpop_bound_access_tokens: dpop,
            webhook_url: registration.webhook_url,
            bank_id: registration.bank_id.clone(),
        })
        .await?;
    Ok(Registered {
        client_id: registration.client_id,
        client_secret: secret,
        role: registration.role,
        token_endpoint_auth_method: registration.token_endpoint_auth_method,
        dpop_bound_access_tokens: dpop,
        bank_id: registration.bank_id,
    })
}
