//! The accounts a consent has seen: the opaque id a platform sees and the bank's own reference
//! ([`AccountRef`]), and their storage ([`AccountRefs`]).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::AdapterError;
use crate::store_error::StoreError;

/// The link between the opaque account id a platform sees and the bank's own reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    /// The id the platform sees, which data calls stamp on the balances and transactions they
    /// read.
    pub account_id: String,
    /// The bank's resource id for the account.
    pub bank_ref: String,
}

impl AccountRef {
    /// The bank's resource id as a segment of a path at the bank; refused
    /// ([`AdapterError::UnknownAccount`]) when it would not name one account there.
    pub fn segment(&self) -> Result<&str, AdapterError> {
        super::common::account_ref(&self.bank_ref)
    }
}

/// The accounts seen under each consent.
#[async_trait]
pub trait AccountRefs: Send + Sync + 'static {
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
}
