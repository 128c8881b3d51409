//! Notifications: platforms subscribe consents to events (`balance.changed`,
//! `transactions.created`, `fraud.signal`) and bankgate tells them, instead of the platform
//! polling.
//!
//! - The domain here: [`EventType`] (and which events a purpose's data allows), [`Subscription`]
//!   ([`Mode`]: thin or carrying the changed data), the refresh queue's [`Job`], and the
//!   [`Subscriptions`] storage trait (subscriptions, jobs, the shared unattended budget, the
//!   change-detection state).
//! - Fraud signals are policy (`policy::signals`, the `[[signals]]` of a purpose); the engine
//!   evaluates them on newly seen transactions and emits `fraud.signal`.
//! - `notify/detect.rs`: change detection without keeping the data — a keyed hash of an
//!   account's balance set, pseudonymised transaction ids and matching keys.
//! - `notify/engine.rs`: the refresh engine — claims due jobs, spends the consent's unattended
//!   budget, reads the bank through a [`engine::BankReader`], detects changes, audits what a
//!   delivery releases and hands it to an [`Outbox`] (signed Security Event Tokens through the
//!   webhook machinery).
//! - `notify/bank.rs`: the [`engine::BankReader`] over the live adapters.
//!
//! Nothing here takes the gateway's shared state: every part receives the narrow traits it
//! uses.

pub mod bank;
pub mod detect;
pub mod engine;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::consent::Consent;
use crate::model::Scope;
use crate::model::WireName;
use crate::policy::Policy;
use crate::store_error::StoreError;

pub use engine::{BankReader, Engine, RunReport};

/// An event a platform can subscribe to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum EventType {
    /// An account's balances changed.
    #[serde(rename = "balance.changed")]
    #[strum(serialize = "balance.changed")]
    BalanceChanged,
    /// New transactions appeared on an account.
    #[serde(rename = "transactions.created")]
    #[strum(serialize = "transactions.created")]
    TransactionsCreated,
    /// A fraud rule of the purpose's policy fired on a new transaction.
    #[serde(rename = "fraud.signal")]
    #[strum(serialize = "fraud.signal")]
    FraudSignal,
}

impl EventType {
    /// Whether a webhook event name is a notification (delivered only while its consent is
    /// authorised).
    pub fn is_notification(name: &str) -> bool {
        EventType::parse(name).is_some()
    }

    /// The scope whose data the event carries or describes.
    pub fn scope(self) -> Scope {
        match self {
            EventType::BalanceChanged => Scope::Balances,
            EventType::TransactionsCreated | EventType::FraudSignal => Scope::Transactions,
        }
    }

    /// Whether `policy` allows the data this event is about: its scope, and for fraud signals
    /// at least one `[[signals]]` rule of the purpose.
    pub fn allowed_by(self, policy: &Policy) -> bool {
        policy.scopes.contains(&self.scope())
            && (self != EventType::FraudSignal || !policy.signals.is_empty())
    }
}

impl WireName for EventType {}

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Mode {
    /// "Account X changed, fetch it": ids only, no account data.
    Thin,
    /// The changed data, filtered by the purpose's field allow-list (a release: audited
    /// before it is enqueued).
    Data,
}

impl WireName for Mode {}

/// A platform's subscription: one consent, or every consent of the platform for a purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub client_id: String,
    /// `None`: every consent of `client_id` for `purpose`, present and future.
    pub consent_id: Option<String>,
    pub purpose: String,
    /// Sorted, no duplicates, not empty.
    pub events: Vec<EventType>,
    pub mode: Mode,
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// Whether the subscription covers `consent`.
    pub fn covers(&self, consent: &Consent) -> bool {
        consent.client_id == self.client_id
            && match &self.consent_id {
                Some(id) => *id == consent.id,
                None => consent.purpose == self.purpose,
            }
    }

    /// Whether it asks for `event`.
    pub fn wants(&self, event: EventType) -> bool {
        self.events.contains(&event)
    }

    /// The subscription as platforms see it.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "consent_id": self.consent_id,
            "purpose": self.purpose,
            "events": self.events,
            "mode": self.mode,
            "created_at": self.created_at,
        })
    }
}

/// Why a subscription is refused; each kind has its problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionRefusal {
    #[error("name events to subscribe to")]
    NoEvents,
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("purpose {purpose} does not allow the data of {event}")]
    EventNotAllowed {
        purpose: String,
        event: &'static str,
    },
    #[error("the consent does not cover the data of {0}")]
    ScopeNotGranted(&'static str),
}

/// Checks the events asked for under `policy` (and the consent's scopes, when the
/// subscription names a consent): sorted and deduplicated, or the first refusal.
pub fn check_events(
    names: &[String],
    policy: &Policy,
    consent_scopes: Option<&[Scope]>,
) -> Result<Vec<EventType>, SubscriptionRefusal> {
    if names.is_empty() {
        return Err(SubscriptionRefusal::NoEvents);
    }
    let mut events = Vec::new();
    for name in names {
        let event = EventType::parse(name)
            .ok_or_else(|| SubscriptionRefusal::UnknownEvent(name.clone()))?;
        if !event.allowed_by(policy) {
            return Err(SubscriptionRefusal::EventNotAllowed {
                purpose: policy.id.clone(),
                event: event.as_str(),
            });
        }
        if let Some(scopes) = consent_scopes
            && !scopes.contains(&event.scope())
        {
            return Err(SubscriptionRefusal::ScopeNotGranted(event.as_str()));
        }
        events.push(event);
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// A consent's place in the refresh queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub consent_id: String,
    /// When it is due (while claimed: when its lease runs out).
    pub due_at: DateTime<Utc>,
    /// Failed refreshes in a row (the backoff's exponent).
    pub failures: i32,
    pub last_error: Option<String>,
    /// The consent's bank-side consent id at its bank, once a refresh read it (bank-pushed
    /// events name it).
    pub bank_consent_id: Option<String>,
}

/// What change detection keeps of one account of a consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// The keyed hash of its balance set as last seen; `None` if seen without balances.
    pub balance_digest: Option<String>,
    /// How many times it was stored (0 for the first).
    pub generation: i64,
}

/// A transaction already seen on an account, pseudonymised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seen {
    /// Keyed hash of the bank's transaction id.
    pub pseudonym: String,
    /// Keyed hash of its matching key (see [`detect::match_key`]).
    pub match_key: String,
}

/// Storage of notifications: subscriptions, the refresh queue, the shared unattended budget
/// and what change detection keeps per account. Implemented by `store/pg/notify.rs` and
/// `store/memory/notify.rs`.
#[async_trait]
pub trait Subscriptions: Send + Sync + 'static {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError>;
    /// A client's subscriptions, oldest first.
    async fn subscriptions_of(&self, client_id: &str) -> Result<Vec<Subscription>, StoreError>;
    /// Deletes a client's subscription; `false` if it has none with this id.
    async fn delete_subscription(&self, client_id: &str, id: &str) -> Result<bool, StoreError>;
    /// The subscriptions covering `consent` (its own and its platform's for its purpose).
    async fn subscriptions_for(&self, consent: &Consent) -> Result<Vec<Subscription>, StoreError>;

    /// Puts every authorised, unexpired consent some subscription covers in the queue (due at
    /// `now`) unless it is there; returns how many were added.
    async fn schedule_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Claims up to `limit` jobs due at `now` (`FOR UPDATE SKIP LOCKED`): each is hidden
    /// from other instances until `lease_until`, when it is due again unless finished.
    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError>;
    /// Puts a claimed job back, due at `due_at`.
    async fn finish_job(
        &self,
        consent_id: &str,
        due_at: DateTime<Utc>,
        failures: i32,
        last_error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Records the bank-side consent id of a job's consent at its bank.
    async fn note_bank_consent(
        &self,
        consent_id: &str,
        bank_id: &str,
        bank_consent_id: &str,
    ) -> Result<(), StoreError>;
    /// Makes the job whose consent has `bank_consent_id` at `bank_id` due at `now` (unless it
    /// is due earlier): a bank told of a change. Its consent id; `None` if no job has it.
    async fn due_for_bank_event(
        &self,
        bank_id: &str,
        bank_consent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    /// Takes a consent out of the queue and forgets its change-detection state (revoked,
    /// expired, or no longer subscribed).
    async fn drop_job(&self, consent_id: &str) -> Result<(), StoreError>;

    /// Spends one unit of the consent's unattended budget of `day` if fewer than `limit`
    /// were spent (by refreshes and platform calls together: the same count the data path
    /// spends); `false` when the budget is spent.
    async fn spend_unattended(
        &self,
        consent_id: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<bool, StoreError>;

    /// What change detection keeps of an account: `None` if it was never seen.
    async fn account_state(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountState>, StoreError>;
    /// Stores the account's balance digest (`None`: seen without reading balances) as
    /// generation `expected + 1` (`expected` `None`: the first), if its generation still is
    /// `expected` (compare-and-set: of two refreshes racing, one wins); `false` otherwise.
    async fn swap_account_state(
        &self,
        consent_id: &str,
        account_id: &str,
        expected: Option<i64>,
        balance_digest: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The transactions already seen on an account, with when each was first seen.
    async fn seen(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Vec<(Seen, DateTime<Utc>)>, StoreError>;
    /// Records transactions as seen, each first seen at its time; returns those that were not
    /// (each is announced by exactly one caller).
    async fn mark_seen(
        &self,
        consent_id: &str,
        account_id: &str,
        seen: &[(Seen, DateTime<Utc>)],
    ) -> Result<Vec<Seen>, StoreError>;
}

/// Where notifications go: signed Security Event Tokens through the webhook machinery
/// (retries, delivery log). Implemented by `lifecycle::webhooks::Sender`.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Whether the consent's platform registered a webhook (no webhook: nothing is read,
    /// released or enqueued).
    async fn has_webhook(&self, client_id: &str) -> Result<bool, OutboxError>;
    /// Signs `event` with `detail` for the consent's platform and enqueues it, once per
    /// `dedupe_key`; `false` if it was enqueued before or the platform has no webhook.
    async fn send(
        &self,
        consent: &Consent,
        event: &str,
        detail: serde_json::Value,
        dedupe_key: String,
        now: DateTime<Utc>,
    ) -> Result<bool, OutboxError>;
}

/// An outbox failure.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("webhook store: {0}")]
    Store(#[from] StoreError),
    #[error("signing the event: {0}")]
    Sign(String),
}

#[cfg(test)]
mod tests;
