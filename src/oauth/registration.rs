//! Client registration by an operator (CLI `bankgate platforms add` and the admin API).

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::policy::PolicySet;
use crate::store::{Client, Role, Store, StoreError};

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
}

fn default_role() -> Role {
    Role::Platform
}

/// A registered client and its secret, shown once.
#[derive(Serialize)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: String,
    pub role: Role,
}

/// Errors registering a client.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates a registration and stores the client with a fresh, hashed secret.
pub async fn register(
    store: &dyn Store,
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
    if registration.role == Role::Platform && registration.redirect_uris.is_empty() {
        return invalid("a platform needs at least one redirect URI".into());
    }
    for uri in &registration.redirect_uris {
        let parsed = url::Url::parse(uri)
            .map_err(|error| RegistrationError::Invalid(format!("{uri}: {error}")))?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return invalid(format!(
                "{uri}: redirect URIs must use https (http only on loopback)"
            ));
        }
        if parsed.fragment().is_some() {
            return invalid(format!("{uri}: redirect URIs must not have a fragment"));
        }
    }
    if let Some(unknown) = registration
        .allowed_purposes
        .iter()
        .find(|purpose| policies.get(purpose).is_none())
    {
        return invalid(format!("unknown purpose {unknown:?}"));
    }
    let secret = crate::crypto::random_token(32)
        .map_err(|error| RegistrationError::Invalid(error.to_string()))?;
    let secret_hash = crate::crypto::hash_secret(&secret)
        .map_err(|error| RegistrationError::Invalid(error.to_string()))?;
    store
        .insert_client(&Client {
            client_id: registration.client_id.clone(),
            name: registration.name,
            secret_hash,
            role: registration.role,
            redirect_uris: registration.redirect_uris,
            allowed_purposes: registration.allowed_purposes,
            created_at: Utc::now(),
        })
        .await?;
    Ok(Registered {
        client_id: registration.client_id,
        client_secret: secret,
        role: registration.role,
    })
}
