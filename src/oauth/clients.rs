//! The clients registered with the authorization server: their records ([`Client`], [`Role`],
//! [`AuthMethod`]) and their storage ([`Clients`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::jose::AuthMethod;
use crate::model::WireName;
use crate::policy::Platform;
use crate::store_error::StoreError;

/// What a registered client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// A social platform reading its users' data under consent.
    Platform,
    /// A compliance officer: reads the audit log, never account data.
    Compliance,
    /// A bank: registers and updates the adapter of the one bank it is bound to
    /// ([`Client::bank_id`]).
    Bank,
}

impl WireName for Role {}

/// A registered OAuth client of bankgate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// The digest of the client's secret (`hmac-sha256:<key id>:…`, see
    /// [`crate::crypto::Sealer::digest_secret`]); empty for clients without one. The secret
    /// itself is never stored.
    pub secret_hash: String,
    pub role: Role,
    /// Exact redirect URIs (compared byte for byte).
    pub redirect_uris: Vec<String>,
    /// Purposes the platform is approved for.
    pub allowed_purposes: Vec<String>,
    /// Where the platform processes data (`policy::REGIONS`); a purpose's policy lists the
    /// regions it allows.
    pub region: String,
    pub created_at: DateTime<Utc>,
    /// How the client authenticates at the token and PAR endpoints.
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public keys (a JWK Set), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set instead (never both).
    pub jwks_uri: Option<String>,
    /// Every access token of this client must be DPoP-bound (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// Where consent events are delivered (signed webhooks), if anywhere.
    pub webhook_url: Option<String>,
    /// The one bank a `bank` client administers (set exactly for role `bank`).
    pub bank_id: Option<String>,
    /// The digest of the client's registration access token (RFC 7592), like `secret_hash`;
    /// empty when none was issued.
    pub registration_token_hash: String,
}

#[cfg(test)]
impl Client {
    /// A platform `app` that authenticates with `private_key_jwt` by its keys `jwks` or those
    /// published at `jwks_uri`, for tests.
    pub(crate) fn with_keys(jwks: Option<serde_json::Value>, jwks_uri: Option<String>) -> Client {
        Client {
            client_id: "app".into(),
            name: "App".into(),
            secret_hash: String::new(),
            role: Role::Platform,
            redirect_uris: vec![],
            allowed_purposes: vec![],
            region: "EEA".into(),
            created_at: Utc::now(),
            token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
            jwks,
            jwks_uri,
            dpop_bound_access_tokens: true,
            webhook_url: None,
            bank_id: None,
            registration_token_hash: String::new(),
        }
    }
}

impl Client {
    /// The platform as the purpose policies see it: what it is approved for, where it is.
    pub fn platform(&self) -> Platform<'_> {
        Platform {
            approved_purposes: &self.allowed_purposes,
            region: &self.region,
        }
    }
}

/// Registered clients.
#[async_trait]
pub trait Clients: Send + Sync + 'static {
    /// Registers a client; `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// Replaces what may change of a registered client (all but its id, role, bank and
    /// registration time); `false` if there is no such client.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
}
