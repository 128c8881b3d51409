//! In-memory store: the embedded default for trying bankgate without PostgreSQL. Everything
//! is lost when the process ends.
//!
//! It keeps the PostgreSQL store's semantics (the conformance suite runs against both):
//! single-use takes, compare-and-set transitions, every manifest version kept, one audit chain,
//! timestamps kept to the microsecond.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

mod access;
mod accounts;
mod audit;
mod authorizations;
mod banks;
mod clients;
mod consents;
mod grants;
mod notify;
mod payees;
mod payments;
mod retention;
mod subjects;
mod tokens;
mod verification;
mod webhooks;

use crate::adapters::{AccountRef, BankAuthorization, BankVersion, StoredGrant};
use crate::consent::{Consent, ConsentStatus};
use crate::lifecycle::{DeliveryOutcome, DeliveryStatus, WebhookDelivery};
use crate::model::WireName;
use crate::oauth::{
    AuthorizationCode, Client, IssuedToken, PushedRequest, RefreshToken, StoredCode,
};
use crate::store::StoreError;

/// Every storage trait ([`crate::store::Store`]) in process memory.
///
/// Each aggregate has its own lock; no lock is held across an `.await` (no method awaits).
#[derive(Debug, Default)]
pub struct MemoryStore {
    clients: Mutex<HashMap<String, Client>>,
    /// Every version of every bank, oldest first; ordered by bank id for listing.
    banks: Mutex<BTreeMap<String, Vec<BankVersion>>>,
    pushed_requests: Mutex<HashMap<String, PushedRequest>>,
    consents: Mutex<HashMap<String, Consent>>,
    /// The person who authorised each consent, as [`crate::consent::Consents::set_bank_person`]
    /// recorded it (a keyed digest), by consent id; dropped with its consent.
    bank_persons: Mutex<HashMap<String, String>>,
    bank_authorizations: Mutex<HashMap<String, BankAuthorization>>,
    grants: Mutex<HashMap<String, StoredGrant>>,
    /// Codes by hash, with whether they were redeemed.
    codes: Mutex<HashMap<String, (AuthorizationCode, bool)>>,
    account_refs: Mutex<HashMap<(String, String), AccountRef>>,
    audit: Mutex<audit::Chain>,
    /// Unattended accesses counted per consent and UTC day.
    access_counts: Mutex<HashMap<(String, NaiveDate), u32>>,
    /// `(scope, jti)` → expiry.
    jtis: Mutex<HashMap<(String, String), DateTime<Utc>>>,
    refresh_tokens: Mutex<HashMap<String, RefreshToken>>,
    /// Access tokens by `jti`, with when they were revoked.
    access_tokens: Mutex<HashMap<String, RevocableToken>>,
    /// Webhook deliveries in enqueue order.
    webhooks: Mutex<Vec<WebhookDelivery>>,
    payments: Mutex<payments::PaymentRows>,
    notify: Mutex<notify::NotifyRows>,
    /// Payee verifications counted per platform and minute.
    verification_counts: Mutex<HashMap<(String, DateTime<Utc>), u32>>,
    /// The payee directory: `(platform, handle)` → entry.
    payees: Mutex<HashMap<(String, String), crate::payments::payees::PayeeEntry>>,
    /// Sealed audit pseudonym keys by platform and user reference.
    subject_keys: Mutex<HashMap<(String, String), crate::crypto::Sealed>>,
}

/// An issued access token and when it was revoked, if it was.
type RevocableToken = (IssuedToken, Option<DateTime<Utc>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

/// Locks `mutex`. A poisoned lock is still consistent: every critical section below is a
/// single insert, remove or push that cannot panic halfway.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What PostgreSQL keeps of a timestamp: microseconds.
fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

/// Inserts `value` under `key` unless the key exists: `Conflict(what)`.
fn insert_new<V>(
    map: &Mutex<HashMap<String, V>>,
    key: &str,
    value: V,
    what: &'static str,
) -> Result<(), StoreError> {
    let mut map = lock(map);
    if map.contains_key(key) {
        return Err(StoreError::Conflict(what));
    }
    map.insert(key.to_owned(), value);
    Ok(())
}

#[async_trait]
impl crate::store::Operational for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn operational_counts(&self) -> Result<super::OperationalCounts, StoreError> {
        let mut by_state = std::collections::BTreeMap::<&'static str, i64>::new();
        for consent in lock(&self.consents).values() {
            *by_state.entry(consent.status.as_str()).or_default() += 1;
        }
        let webhooks_pending = lock(&self.webhooks)
            .iter()
            .filter(|delivery| delivery.status == DeliveryStatus::Pending)
            .count();
        Ok(super::OperationalCounts {
            consents_by_state: by_state
                .into_iter()
                .map(|(state, n)| (state.to_owned(), n))
                .collect(),
            webhooks_pending: i64::try_from(webhooks_pending).unwrap_or(i64::MAX),
        })
    }
}
