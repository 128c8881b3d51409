//! The payee directory: handles (`@alice`) a platform registers for its users' payee consents,
//! so that a payer can pay a friend by handle without ever seeing her account number.
//!
//! A handle belongs to one platform (each platform has its own namespace) and points at one
//! consent under the [`PAYEE_PURPOSE`] purpose and one of that consent's accounts, by the
//! platform-private account id. It lives as long as the consent: a handle whose consent was
//! revoked or expired is not resolved, is freed for others, and is deleted where it is met
//! ([`Payees`]); the store's row goes with its consent (`ON DELETE CASCADE`). Another consent
//! cannot re-point a handle that is held by a consent still alive ([`Registered::Taken`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store_error::StoreError;

/// The purpose a payee consents under: the accounts and the name on them, for people paying her.
pub const PAYEE_PURPOSE: &str = "p2p-payments-payee-check";

/// The longest handle, `@` included.
pub const MAX_HANDLE_CHARS: usize = 32;

/// A handle as bankgate keeps it: `@`, then 1 to 31 of lower-case ASCII letters, digits, `.`,
/// `_` and `-`, starting with a letter or digit. Parsing lower-cases ASCII letters and adds a
/// missing `@`, so `Alice`, `@alice` and `@ALICE` are one handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Handle(String);

/// Why a handle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a handle is `@` then 1 to 31 letters a-z, digits, `.`, `_` or `-`, starting with a letter \
     or digit"
)]
pub struct InvalidHandle;

impl Handle {
    /// Parses and normalises a handle.
    pub fn parse(raw: &str) -> Result<Handle, InvalidHandle> {
        let name = raw.strip_prefix('@').unwrap_or(raw);
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !first_ok || !rest_ok || name.len() + 1 > MAX_HANDLE_CHARS {
            return Err(InvalidHandle);
        }
        Ok(Handle(format!("@{}", name.to_ascii_lowercase())))
    }

    /// The handle, `@` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One handle of a platform: the payee consent it resolves through and the consent's account
/// that receives money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayeeEntry {
    /// The platform whose namespace holds the handle.
    pub client_id: String,
    pub handle: Handle,
    pub consent_id: String,
    /// The platform-private id of the account that receives money (`Sealer::account_id`).
    pub account_id: String,
    pub created_at: DateTime<Utc>,
}

/// What registering a handle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The handle was free (or held by a consent that ended): it is now the consent's.
    Created,
    /// The consent already held it: it now points at the account given.
    Updated,
    /// Another consent, still alive, holds it: nothing changed.
    Taken,
}

/// The payee directory's storage, implemented by both stores (`tests/store/payees.rs`).
///
/// A consent is *alive* at `now` when it is authorised and `now` is before its expiry.
#[async_trait]
pub trait Payees: Send + Sync + 'static {
    /// Registers `entry.handle` on `entry.client_id` for `entry.consent_id`, or re-points the
    /// consent's own handle at `entry.account_id`. A handle held by another consent alive at
    /// `now` is [`Registered::Taken`]; one held by a consent that ended is freed first.
    async fn put_payee(
        &self,
        entry: &PayeeEntry,
        now: DateTime<Utc>,
    ) -> Result<Registered, StoreError>;

    /// The handle on `client_id`'s namespace if its consent is alive at `now`. A handle whose
    /// consent ended is deleted here and answered `None`.
    async fn payee(
        &self,
        client_id: &str,
        handle: &Handle,
        now: DateTime<Utc>,
    ) -> Result<Option<PayeeEntry>, StoreError>;

    /// The handles of one consent, by handle.
    async fn payees_of(&self, consent_id: &str) -> Result<Vec<PayeeEntry>, StoreError>;

    /// Deletes `handle` from `client_id`'s namespace if `consent_id` holds it: whether it did.
    async fn delete_payee(
        &self,
        client_id: &str,
        handle: &Handle,
        consent_id: &str,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_normalised_or_refused() {
        for (raw, parsed) in [
            ("@alice", "@alice"),
            ("alice", "@alice"),
            ("@Alice.Schmidt", "@alice.schmidt"),
            ("@a", "@a"),
            ("@9lives_-x", "@9lives_-x"),
            (
                "@abcdefghijklmnopqrstuvwxyz01234",
                "@abcdefghijklmnopqrstuvwxyz01234",
            ),
        ] {
            assert_eq!(Handle::parse(raw).unwrap().as_str(), parsed, "{raw}");
        }
        for raw in [
            "",
            "@",
            "@@alice",
            "@.alice",
            "@_alice",
            "@ali ce",
            "@alïce",
            "@alice/bob",
            "@abcdefghijklmnopqrstuvwxyz012345",
            "@alice\u{0}",
        ] {
            assert_eq!(Handle::parse(raw), Err(InvalidHandle), "{raw:?}");
        }
    }
}
