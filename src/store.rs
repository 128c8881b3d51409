//! The storage boundary: one [`Store`] trait, implemented on PostgreSQL ([`pg`]) and in memory
//! ([`memory`], the embedded default). Both pass the same conformance suite
//! (`tests/store/main.rs`).
//!
//! Invariant: nothing above this module knows which implementation it talks to.

pub mod access;
pub mod memory;
pub mod pg;

pub use crate::store_error::StoreError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::consent::{Consent, ConsentStatus};
use crate::crypto::Sealed;

/// What a registered client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A social platform reading its users' data under consent.
    Platform,
    /// A compliance officer: reads the audit log, never account data.
    Compliance,
    /// A bank: registers and updates the adapter of the one bank it is bound to
    /// ([`Client::bank_id`]).
    Bank,
}

impl Role {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Platform => "platform",
            Role::Compliance => "compliance",
            Role::Bank => "bank",
        }
    }

    /// Parses the database name.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Platform, Role::Compliance, Role::Bank]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

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

/// How a client authenticates at bankgate's token and PAR endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with a gateway-generated secret.
    #[default]
    ClientSecretBasic,
    /// A JWT signed with one of the client's registered keys (RFC 7523, FAPI 2.0).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses the wire and database name.
    pub fn parse(name: &str) -> Option<AuthMethod> {
        [AuthMethod::ClientSecretBasic, AuthMethod::PrivateKeyJwt]
            .into_iter()
            .find(|method| method.as_str() == name)
    }
}

/// A refresh token issued to a platform, stored by its hash; bound to client and consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 (hex) of the token; the token itself is never stored.
    pub token_hash: String,
    pub client_id: String,
    pub consent_id: String,
    pub created_at: DateTime<Utc>,
    /// Never after the consent's own expiry.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An access token bankgate issued, remembered by `jti` so that it can be revoked early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub jti: String,
    pub client_id: String,
    /// The consent it is bound to (none for management and compliance tokens).
    pub consent_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the last retry.
    Failed,
}

impl DeliveryStatus {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the database name.
    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// One webhook delivery to a platform, and its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: String,
    pub client_id: String,
    /// `consent.revoked`, `consent.expired` or `consent.expiring`.
    pub event: String,
    pub consent_id: String,
    /// Enqueueing the same key twice stores one delivery (e.g. `consent.expiring:<id>`).
    pub dedupe_key: String,
    pub url: String,
    /// The signed Security Event Token that is POSTed.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Give up.
    Failed {
        error: String,
    },
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
    /// The DPoP key the token request must prove possession of (bound at PAR, RFC 9449 §10;
    /// migration V6).
    pub dpop_jkt: Option<String>,
}

/// A code as the store holds it, looked up without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCode {
    /// Not redeemed yet.
    Unused(AuthorizationCode),
    /// Redeemed: it produced tokens, so presenting it again is a replay.
    Redeemed(AuthorizationCode),
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

/// The outcome of counting one access against a consent's daily budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessCount {
    /// The access was within the budget and was counted.
    pub admitted: bool,
    /// Accesses counted for the consent that day, this one included when admitted.
    pub used: u32,
}

/// Everything bankgate keeps. Implementations are cheap to share (`Arc<dyn Store>`). Payments
/// have their own trait beside their domain ([`crate::payments::Payments`]).
#[async_trait]
pub trait Store: access::AccessReads + crate::audit::AuditLog + crate::payments::Payments {
    /// A short name for logs: `postgres` or `memory`.
    fn kind(&self) -> &'static str;

    // Clients.
    /// Registers a client; `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// Replaces what may change of a registered client (all but its id, role, bank and
    /// registration time); `false` if there is no such client.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;

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
    /// The active version of every bank, by bank id.
    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError>;
    /// Every version of one bank's manifest, oldest first.
    async fn bank_versions(&self, bank_id: &str) -> Result<Vec<BankVersion>, StoreError>;

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
    /// Extends an authorised consent that has not expired at `now`: its new expiry and the
    /// policy version it is now granted under. Compare-and-set: `false` (and nothing changed)
    /// if the consent is not authorised or expired meanwhile.
    async fn extend_consent(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        policy_hash: &str,
        now: DateTime<Utc>,
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
    /// The code and whether it was redeemed; changes nothing, so a token request that fails
    /// its checks leaves the code as it was.
    async fn code(&self, code_hash: &str) -> Result<StoredCode, StoreError>;
    /// Marks an unused code redeemed, atomically: `true` for exactly one of any number of
    /// concurrent or successive callers; `false` when it was redeemed already (or is unknown).
    async fn redeem_code(&self, code_hash: &str) -> Result<bool, StoreError>;
    /// Marks a redeemed code unused again: the gateway failed after redeeming it and issued
    /// nothing, so the client's retry must not be taken for a replay.
    async fn release_code(&self, code_hash: &str) -> Result<(), StoreError>;

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

    // FAPI: replay cache, platform tokens, consent lifecycle, webhooks (migration V5).
    /// Remembers `jti` in `scope` until `expires_at`; `false` if it was already there and has
    /// not expired (a replay). Atomic across instances.
    async fn remember_jti(
        &self,
        scope: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Forgets expired `jti`s and expired access-token records; returns how many rows went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;
    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError>;
    /// Remembers an issued access token (for early revocation).
    async fn record_access_token(&self, token: &IssuedToken) -> Result<(), StoreError>;
    /// Revokes one access token; `false` if it is unknown or was already revoked.
    async fn revoke_access_token(&self, jti: &str) -> Result<bool, StoreError>;
    /// Revokes every access and refresh token bound to a consent; returns how many.
    async fn revoke_consent_tokens(&self, consent_id: &str) -> Result<u64, StoreError>;
    /// One platform's consents for one user, newest first.
    async fn consents_of(
        &self,
        client_id: &str,
        user_ref: &str,
    ) -> Result<Vec<Consent>, StoreError>;
    /// Moves every authorised consent whose `expires_at` is before `now` to `expired` and
    /// returns them: of several instances running this at once, each consent is returned once.
    async fn expire_consents(&self, now: DateTime<Utc>) -> Result<Vec<Consent>, StoreError>;
    /// Authorised consents expiring in `[from, until)`.
    async fn consents_expiring(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Consent>, StoreError>;
    /// Replaces a consent's sealed grant only if it is still `expected` (compare-and-set on
    /// `updated_at`): of two instances refreshing one bank token, one wins.
    async fn replace_grant(
        &self,
        expected: &StoredGrant,
        grant: &StoredGrant,
    ) -> Result<bool, StoreError>;
    /// Enqueues a delivery; `false` if one with its `dedupe_key` exists.
    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError>;
    /// Claims up to `limit` pending deliveries due at `now`: each is counted as attempted and
    /// hidden from other workers until `lease_until`.
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Records the outcome of an attempt.
    async fn finish_webhook(
        &self,
        id: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A client's deliveries, newest first (the delivery log).
    async fn webhook_deliveries(&self, client_id: &str)
    -> Result<Vec<WebhookDelivery>, StoreError>;
    /// What the metrics endpoint samples from the store: consents by state, webhook
    /// deliveries still pending.
    async fn operational_counts(&self) -> Result<OperationalCounts, StoreError>;
}

/// Counts the metrics endpoint reads from the store at each scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationalCounts {
    /// Consents per state (`authorised`, `revoked`, …); states without one are absent.
    pub consents_by_state: Vec<(String, i64)>,
    /// Webhook deliveries not yet delivered nor given up.
    pub webhooks_pending: i64,
}
