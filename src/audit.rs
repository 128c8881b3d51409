//! The audit log: events, the hash chain that makes it tamper-evident, and the [`Auditor`]
//! that appends them durably.
//!
//! Invariant: no data leaves without a committed audit record. Callers await
//! [`Auditor::record`]; when it returns `Ok`, the event is committed.
//! Events never carry account data, balances or bank payloads.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    ConsentCreated,
    ConsentAuthorised,
    ConsentRejected,
    ConsentRevoked,
    ConsentExpired,
    DataAccess,
    TokenIssued,
    AdapterRegistered,
    PolicyLoaded,
    AuditQueried,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 10] = [
        Action::ConsentCreated,
        Action::ConsentAuthorised,
        Action::ConsentRejected,
        Action::ConsentRevoked,
        Action::ConsentExpired,
        Action::DataAccess,
        Action::TokenIssued,
        Action::AdapterRegistered,
        Action::PolicyLoaded,
        Action::AuditQueried,
    ];

    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ConsentCreated => "consent_created",
            Action::ConsentAuthorised => "consent_authorised",
            Action::ConsentRejected => "consent_rejected",
            Action::ConsentRevoked => "consent_revoked",
            Action::ConsentExpired => "consent_expired",
            Action::DataAccess => "data_access",
            Action::TokenIssued => "token_issued",
            Action::AdapterRegistered => "adapter_registered",
            Action::PolicyLoaded => "policy_loaded",
            Action::AuditQueried => "audit_queried",
        }
    }

    /// Parses the database name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed, but the bank failed: nothing was released.
    Error,
}

impl Decision {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Error => "error",
        }
    }

    /// Parses the database name.
    pub fn parse(name: &str) -> Option<Decision> {
        [Decision::Allow, Decision::Deny, Decision::Error]
            .into_iter()
            .find(|decision| decision.as_str() == name)
    }
}

/// One audit event before it has a place in the chain.
///
/// The field order is the canonical order: [`Event::canonical_bytes`] serialises the fields
/// in exactly this order, and that is what the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7) of the event.
    pub id: String,
    /// When it happened, truncated to microseconds (what PostgreSQL stores).
    pub time: DateTime<Utc>,
    /// Who caused it: a client id, `user`, `bank:<id>`, `operator` or `gateway`.
    pub actor: String,
    pub action: Action,
    pub platform: Option<String>,
    pub bank: Option<String>,
    pub consent: Option<String>,
    /// The platform's pseudonymous reference for the user.
    pub user_ref: Option<String>,
    pub purpose: Option<String>,
    /// Content hash of the purpose policy in force.
    pub policy_hash: Option<String>,
    /// Data categories concerned (scopes).
    pub categories: Vec<String>,
    /// Names of the fields released (data access only).
    pub fields: Vec<String>,
    /// Number of records released.
    pub n_records: u32,
    pub decision: Decision,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl Event {
    /// A new event of `action` by `actor`, now, everything else empty.
    pub fn new(action: Action, actor: impl Into<String>, decision: Decision) -> Event {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            time: Utc::now().trunc_subsecs(6),
            actor: actor.into(),
            action,
            platform: None,
            bank: None,
            consent: None,
            user_ref: None,
            purpose: None,
            policy_hash: None,
            categories: Vec::new(),
            fields: Vec::new(),
            n_records: 0,
            decision,
            reason: None,
            request_id: None,
        }
    }

    /// The bytes the chain hashes: compact JSON, fields in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising a plain struct of strings, numbers and vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Gapless position, starting at 1.
    pub position: i64,
    #[serde(with = "hex::serde")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex::serde")]
    pub hash: [u8; 32],
    #[serde(flatten)]
    pub event: Event,
}

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// `h_n = SHA-256(h_{n-1} ‖ n ‖ canonical bytes of event n)`, with `n` as 8 big-endian bytes.
pub fn chain_hash(prev: &[u8; 32], position: i64, canonical: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(32 + 8 + canonical.len());
    input.extend_from_slice(prev);
    input.extend_from_slice(&position.to_be_bytes());
    input.extend_from_slice(canonical);
    crate::crypto::sha256(&input)
}

/// Links `events` onto a chain whose head is (`head_position`, `head_hash`).
pub fn link(head_position: i64, head_hash: [u8; 32], events: Vec<Event>) -> Vec<Record> {
    let mut prev = head_hash;
    let mut position = head_position;
    events
        .into_iter()
        .map(|event| {
            position += 1;
            let hash = chain_hash(&prev, position, &event.canonical_bytes());
            let record = Record {
                position,
                prev_hash: prev,
                hash,
                event,
            };
            prev = hash;
            record
        })
        .collect()
}

/// Where a chain stops being valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at position {position}: {what}")]
pub struct ChainBreak {
    pub position: i64,
    pub what: &'static str,
}

/// Verifies consecutive records starting after (`head_position`, `head_hash`); returns the new
/// head.
pub fn verify(
    head_position: i64,
    head_hash: [u8; 32],
    records: &[Record],
) -> Result<(i64, [u8; 32]), ChainBreak> {
    let (mut position, mut prev) = (head_position, head_hash);
    for record in records {
        let fail = |what| ChainBreak {
            position: record.position,
            what,
        };
        if record.position != position + 1 {
            return Err(fail("gap or reordering"));
        }
        if record.prev_hash != prev {
            return Err(fail("previous hash does not match"));
        }
        if chain_hash(&prev, record.position, &record.event.canonical_bytes()) != record.hash {
            return Err(fail("hash does not match the event"));
        }
        (position, prev) = (record.position, record.hash);
    }
    Ok((position, prev))
}

/// Filters for audit queries; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub platform: Option<String>,
    pub bank: Option<String>,
    pub consent: Option<String>,
    pub user_ref: Option<String>,
    pub purpose: Option<String>,
    pub action: Option<Action>,
    pub decision: Option<Decision>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset pagination: only positions strictly greater.
    pub after: Option<i64>,
    /// Page size (the store caps it).
    pub limit: Option<u32>,
}

impl Filter {
    /// The largest page a query returns.
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size in force.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `record` matches (the in-memory store's query and a check for tests).
    pub fn matches(&self, record: &Record) -> bool {
        let event = &record.event;
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|want| have.as_ref() == Some(want))
        };
        eq(&self.platform, &event.platform)
            && eq(&self.bank, &event.bank)
            && eq(&self.consent, &event.consent)
            && eq(&self.user_ref, &event.user_ref)
            && eq(&self.purpose, &event.purpose)
            && self.action.is_none_or(|action| action == event.action)
            && self
                .decision
                .is_none_or(|decision| decision == event.decision)
            && self.from.is_none_or(|from| event.time >= from)
            && self.to.is_none_or(|to| event.time < to)
            && self.after.is_none_or(|after| record.position > after)
    }
}

/// Appends events durably. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn Store>,
}

impl Auditor {
    /// An auditor writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Auditor {
        Auditor { store }
    }

    /// Appends `event` and returns once it is committed.
    pub async fn record(&self, event: Event) -> Result<Record, StoreError> {
        let mut records = self.store.append_audit(vec![event]).await?;
        records
            .pop()
            .ok_or(StoreError::Invariant("append returned no record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut event = Event::new(Action::DataAccess, "platform-a", Decision::Allow);
                event.n_records = i as u32;
                event
            })
            .collect()
    }

    #[test]
    fn linked_chain_verifies_and_detects_an_edit() {
        let mut records = link(0, GENESIS, events(5));
        assert_eq!(verify(0, GENESIS, &records).unwrap().0, 5);
        records[2].event.n_records = 99;
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
    }

    #[test]
    fn detects_deletion_and_reordering() {
        let mut records = link(0, GENESIS, events(4));
        records.remove(1);
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
        let mut records = link(0, GENESIS, events(4));
        records.swap(1, 2);
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
    }

    #[test]
    fn batches_continue_a_chain() {
        let first = link(0, GENESIS, events(3));
        let head = first.last().unwrap();
        let second = link(head.position, head.hash, events(2));
        assert_eq!(second[0].position, 4);
        assert_eq!(second[0].prev_hash, head.hash);
        let all: Vec<Record> = first.into_iter().chain(second).collect();
        assert!(verify(0, GENESIS, &all).is_ok());
    }

    #[test]
    fn canonical_bytes_are_stable_through_json() {
        let event = events(1).pop().unwrap();
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back.canonical_bytes(), event.canonical_bytes());
    }
}
