//! The storage boundary: one [`Store`] trait, implemented on PostgreSQL ([`pg`]) and in memory
//! ([`memory`], the embedded default). Both pass the same conformance suite
//! (`tests/store/main.rs`).
//!
//! Invariant: nothing above this module knows which implementation it talks to.

pub mod memory;
pub mod pg;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::consent::{Consent, ConsentStatus};
use crate::crypto::Sealed;

/// Errors of a store, with SQLSTATEs turned into kinds callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: retry later.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A unique key already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A stored value could not be decoded (a bug or a tampered row).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("store query failed")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An internal invariant did not hold.
    #[error("store invariant violated: {0}")]
    Invariant(&'static str),
}

/// What a registered client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A social platform reading its users' data under consent.
    Platform,
    /// A compliance officer: reads the audit log, never account data.
    Compliance,
}

impl Role {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Compliance => "compliance",
        }
    }

    /// Parses the database name.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Platform, Role::Compliance]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// A registered OAuth client of bankgate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    /// Argon2id PHC string; the secret itself is never stored.
    pub secret_hash: String,
    pub role: Role,
    /// Exact redirect URIs (compared byte for byte).
    pub redirect_uris: Vec<String>,
    /// Purposes the platform is approved for.
    pub allowed_purposes: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// One version of a bank's adapter manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankVersion {
    pub bank_id: String,
    /// 1 for the first registration, then +1 for each change.
    pub version: i32,
    /// The manifest as JSON.
    pub manifest: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A pushed authorization request (RFC 9126), single use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    /// `urn:ietf:params:oauth:request_uri:…`
    pub request_uri: String,
    pub client_id: String,
    /// The validated request, as JSON.
    pub request: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// A redirect of the user to their bank that has not come back yet, keyed by `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAuthorization {
    pub state: String,
    pub consent_id: String,
    pub bank_id: String,
    /// The PKCE verifier, sealed (it is a secret until the code is exchanged).
    pub pkce_verifier: Sealed,
    /// The bank-side consent resource, when the standard has one.
    pub bank_consent_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// An authorization code bankgate issued to a platform, stored by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 (hex) of the code; the code itself is never stored.
    pub code_hash: String,
    pub consent_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of redeeming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// First use: here is the code.
    Fresh(AuthorizationCode),
    /// The code was used before: a replay.
    Replayed(AuthorizationCode),
    /// No such code.
    Unknown,
}

/// The bank's answer to bankgate for one consent (tokens), sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrant {
    pub consent_id: String,
    pub sealed: Sealed,
    pub updated_at: DateTime<Utc>,
}

/// The link between the opaque account id a platform sees and the bank's own reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub account_id: String,
    /// The bank's resource id for the account.
    pub bank_ref: String,
}

/// Everything bankgate keeps. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs: `postgres` or `memory`.
    fn kind(&self) -> &'static str;

    // Clients.
    /// Registers a client; `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    // Banks.
    /// Stores a new version of a bank's manifest unless it equals the active one; returns the
    /// active version.
    async fn put_bank(
        &self,
        bank_id: &str,
        manifest: &serde_json::Value,
    ) -> Result<BankVersion, StoreError>;
    /// The active (latest) version.
    async fn bank(&self, bank_id: &str) -> Result<Option<BankVersion>, StoreError>;
    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError>;

    // Pushed authorization requests.
    async fn insert_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError>;
    /// Removes and returns the request: a `request_uri` works once.
    async fn take_pushed_request(
        &self,
        request_uri: &str,
    ) -> Result<Option<PushedRequest>, StoreError>;

    // Consents.
    async fn insert_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError>;
    /// Moves a consent from `from` to `to` atomically; `false` if it was not in `from`.
    async fn transition_consent(
        &self,
        id: &str,
        from: ConsentStatus,
        to: ConsentStatus,
    ) -> Result<bool, StoreError>;

    // The bank leg of the flow.
    async fn insert_bank_authorization(
        &self,
        authorization: &BankAuthorization,
    ) -> Result<(), StoreError>;
    /// Removes and returns the pending authorization for `state`: a state works once.
    async fn take_bank_authorization(
        &self,
        state: &str,
    ) -> Result<Option<BankAuthorization>, StoreError>;
    /// Inserts or replaces the sealed bank grant of a consent.
    async fn put_grant(&self, grant: &StoredGrant) -> Result<(), StoreError>;
    async fn grant(&self, consent_id: &str) -> Result<Option<StoredGrant>, StoreError>;

    // Authorization codes.
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;
    /// Marks the code used and returns it; a second redemption reports `Replayed`.
    async fn redeem_code(&self, code_hash: &str) -> Result<Redeemed, StoreError>;

    // Accounts seen under a consent.
    /// Records (idempotently) the accounts a consent has seen.
    async fn put_account_refs(
        &self,
        consent_id: &str,
        refs: &[AccountRef],
    ) -> Result<(), StoreError>;
    async fn account_ref(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountRef>, StoreError>;

    // Audit log.
    /// Appends events to the chain in one commit; returns them with positions and hashes.
    async fn append_audit(
        &self,
        events: Vec<audit::Event>,
    ) -> Result<Vec<audit::Record>, StoreError>;
    /// Events matching `filter`, by ascending position, at most `filter.page_size()`.
    async fn audit_events(&self, filter: &audit::Filter) -> Result<Vec<audit::Record>, StoreError>;
}
