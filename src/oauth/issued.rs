//! What the authorization server issued and may revoke early: refresh tokens and access tokens
//! by record, and the `jti` replay cache ([`Tokens`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::store_error::StoreError;

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

/// Issued tokens and the `jti` replay cache.
#[async_trait]
pub trait Tokens: Send + Sync + 'static {
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
}
