//! Per-bank adapters: the [`Profile`] trait each standard implements, bank manifests, and the
//! registry of banks the gateway can reach.
//!
//! Invariant: Rust code never names a bank; banks are data (`adapters/*.toml`).

pub mod berlin_group;
pub mod common;
pub mod fdx;
pub mod manifest;
pub mod obie;
pub mod stet;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

pub use manifest::{Manifest, ManifestError};

use crate::model::{Account, Balance, Scope, Transaction};

/// Errors talking to a bank. Their text is for logs; callers see a generic bank error.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("bank unreachable: {0}")]
    Transport(String),
    #[error("bank timed out")]
    Timeout,
    #[error("bank answered HTTP {status}")]
    Status { status: u16 },
    #[error("bank payload not understood: {0}")]
    Decode(String),
    #[error("bank refused: {0}")]
    Refused(String),
    #[error("unknown account")]
    UnknownAccount,
}

impl From<reqwest::Error> for AdapterError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            AdapterError::Timeout
        } else if let Some(status) = error.status() {
            AdapterError::Status {
                status: status.as_u16(),
            }
        } else if error.is_decode() {
            AdapterError::Decode(error.to_string())
        } else {
            AdapterError::Transport(error.to_string())
        }
    }
}

/// What bankgate asks the bank to consent to, before sending the user there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub scopes: Vec<Scope>,
    /// Last day the bank-side consent is valid.
    pub valid_until: NaiveDate,
    /// Unattended accesses per day the bank should allow.
    pub frequency_per_day: u32,
    /// Whether access recurs (true for every purpose bankgate brokers today).
    pub recurring: bool,
}

/// The bank-side consent resource, for standards that create one before the redirect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BankConsent {
    /// The bank's consent id (Berlin Group `consentId`, OBIE `ConsentId`), if any.
    pub id: Option<String>,
    /// OAuth scopes to request at the bank's authorization endpoint.
    pub oauth_scopes: Vec<String>,
    /// Further authorization request parameters the standard needs, e.g. an OIDC `claims`
    /// request naming OBIE's consent, or RFC 9396 `authorization_details` for FDX.
    pub authorization_params: Vec<(String, String)>,
}

/// The credentials a data call presents to the bank for one consent.
#[derive(Clone, Copy)]
pub struct BankSession<'a> {
    pub access_token: &'a str,
    pub bank_consent_id: Option<&'a str>,
}

impl std::fmt::Debug for BankSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankSession")
            .field("access_token", &"<redacted>")
            .field("bank_consent_id", &self.bank_consent_id)
            .finish()
    }
}

/// An account as a bank listed it: the canonical account and the bank's own reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankAccount {
    /// The bank's resource id, used in later calls.
    pub bank_ref: String,
    pub account: Account,
}

/// One bank API standard: the consent dance and the data calls.
///
/// Implementations live in `adapters/<profile>.rs` with wire types in `adapters/<profile>/wire.rs`.
#[async_trait]
pub trait Profile: Send + Sync + 'static {
    /// The profile's manifest name, e.g. `berlin-group`.
    fn name(&self) -> &'static str;

    /// Creates the bank-side consent resource (if the standard has one) before the redirect.
    async fn create_consent(
        &self,
        bank: &Bank,
        request: &ConsentRequest,
    ) -> Result<BankConsent, AdapterError>;

    /// Lists the accounts the consent covers.
    async fn accounts(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
    ) -> Result<Vec<BankAccount>, AdapterError>;

    /// The balances of one account; `account_id` is the canonical id to stamp on them.
    async fn balances(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
        bank_ref: &str,
        account_id: &str,
    ) -> Result<Vec<Balance>, AdapterError>;

    /// The transactions of one account booked on or after `from` (all the bank gives if `None`).
    async fn transactions(
        &self,
        bank: &Bank,
        session: BankSession<'_>,
        bank_ref: &str,
        account_id: &str,
        from: Option<NaiveDate>,
    ) -> Result<Vec<Transaction>, AdapterError>;
}

/// The profile implementing a manifest's `profile` name.
pub fn profile(name: &str) -> Option<Arc<dyn Profile>> {
    match name {
        berlin_group::NAME => Some(Arc::new(berlin_group::BerlinGroup)),
        stet::NAME => Some(Arc::new(stet::Stet)),
        obie::NAME => Some(Arc::new(obie::Obie)),
        fdx::NAME => Some(Arc::new(fdx::Fdx)),
        _ => None,
    }
}

/// The stable opaque account id: derived from the bank and the account's strongest identifier
/// (IBAN when there is one), so it survives re-consent at the same bank.
pub fn account_id(bank_id: &str, identifier: &str) -> String {
    let digest = crate::crypto::sha256(format!("{bank_id}\0{identifier}").as_bytes());
    format!("acc_{}", hex::encode(&digest[..12]))
}

/// Masks an IBAN for display: country and check digits, then the last four characters.
pub fn mask_iban(iban: &str) -> String {
    let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let n = compact.len();
    if n <= 8 {
        return "*".repeat(n);
    }
    let head: String = compact[..4].iter().collect();
    let tail: String = compact[n - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

/// A bank the gateway can reach: its manifest, resolved credentials and HTTP client.
pub struct Bank {
    pub manifest: Manifest,
    /// The OAuth client id bankgate has at this bank.
    pub client_id: String,
    client_secret: String,
    /// Client for back-channel calls: never follows redirects, bounded by the bank's timeout.
    pub http: reqwest::Client,
}

impl std::fmt::Debug for Bank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bank")
            .field("id", &self.manifest.id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Bank {
    /// Builds a bank from a manifest and its resolved credentials.
    pub fn new(
        manifest: Manifest,
        client_id: String,
        client_secret: String,
    ) -> Result<Bank, AdapterError> {
        let http = crate::crypto::http_client_builder()
            .timeout(Duration::from_millis(manifest.limits.timeout_ms))
            .build()
            .map_err(|error| AdapterError::Transport(error.to_string()))?;
        Ok(Bank {
            manifest,
            client_id,
            client_secret,
            http,
        })
    }

    /// The bank's id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The client secret, for the OAuth client only.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// `api_base_url` joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.manifest.api_base_url.trim_end_matches('/'))
    }
}

/// A bank together with the profile that speaks its API.
pub struct Adapter {
    pub bank: Bank,
    pub profile: Arc<dyn Profile>,
}

/// Every bank the gateway can reach, by id.
#[derive(Default)]
pub struct Registry {
    adapters: BTreeMap<String, Arc<Adapter>>,
}

impl Registry {
    /// Adds (or replaces) a bank.
    pub fn insert(&mut self, adapter: Adapter) {
        self.adapters
            .insert(adapter.bank.id().to_owned(), Arc::new(adapter));
    }

    /// The adapter of a bank.
    pub fn get(&self, bank_id: &str) -> Option<Arc<Adapter>> {
        self.adapters.get(bank_id).cloned()
    }

    /// All banks, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Adapter>> {
        self.adapters.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_masking_keeps_country_and_last_four() {
        assert_eq!(
            mask_iban("DE89 3704 0044 0532 0130 00"),
            "DE89**************3000"
        );
        assert_eq!(mask_iban("short"), "*****");
        assert_eq!(mask_iban("ÄÖ12345678901234"), "ÄÖ12********1234");
    }

    #[test]
    fn account_ids_are_stable_and_opaque() {
        let id = account_id("demo-bank", "DE89370400440532013000");
        assert_eq!(id, account_id("demo-bank", "DE89370400440532013000"));
        assert_ne!(id, account_id("other-bank", "DE89370400440532013000"));
        assert!(id.starts_with("acc_") && !id.contains("DE89"));
    }
}
