//! What bankgate holds as a client of a bank: the redirects to a bank not back yet
//! ([`BankAuthorization`]) and the sealed bank grant of each consent ([`StoredGrant`]), and
//! their storage ([`Grants`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::crypto::Sealed;
use crate::store_error::StoreError;

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

/// The bank's answer to bankgate for one consent (tokens), sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGrant {
    pub consent_id: String,
    pub sealed: Sealed,
    pub updated_at: DateTime<Utc>,
}

/// Bank authorizations (single use) and sealed bank grants.
#[async_trait]
pub trait Grants: Send + Sync + 'static {
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
    /// Replaces a consent's sealed grant only if it is still `expected` (compare-and-set on
    /// `updated_at`): of two instances refreshing one bank token, one wins.
    async fn replace_grant(
        &self,
        expected: &StoredGrant,
        grant: &StoredGrant,
    ) -> Result<bool, StoreError>;
}
