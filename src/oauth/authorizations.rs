//! The single-use steps of an authorization: pushed requests (RFC 9126) and authorization
//! codes, and their storage ([`Authorizations`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store_error::StoreError;

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

/// Pushed requests and authorization codes.
#[async_trait]
pub trait Authorizations: Send + Sync + 'static {
    async fn insert_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError>;
    /// Removes and returns the request: a `request_uri` works once.
    async fn take_pushed_request(
        &self,
        request_uri: &str,
    ) -> Result<Option<PushedRequest>, StoreError>;
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
}
