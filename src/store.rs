//! The storage implementations: every domain's storage trait (see [`Store`], their umbrella)
//! implemented on PostgreSQL ([`pg`]) and in memory ([`memory`], the embedded default), one
//! file per aggregate. Both pass the same conformance suite (`tests/store/`).
//!
//! Invariant: nothing above this module knows which implementation it talks to.

pub mod access;
pub mod memory;
pub mod pg;

pub use crate::store_error::StoreError;

use async_trait::async_trait;

/// Declares a trait that is the sum of `bounds` and implements it for every type that
/// implements them all: a trait alias (stable Rust has none), with its list written once.
macro_rules! trait_alias {
    ($(#[$meta:meta])* $vis:vis trait $name:ident = $($bounds:tt)+) => {
        $(#[$meta])*
        $vis trait $name: $($bounds)+ {}

        impl<T> $name for T where T: $($bounds)+ {}
    };
}

trait_alias! {
    /// Everything bankgate keeps: the umbrella of the per-aggregate traits, each defined beside
    /// its domain, for wiring only (`Arc<dyn Store>` is built once in `gateway` and handed down
    /// as the one narrow trait each part uses). Implemented by every type that implements them
    /// all.
    pub trait Store = access::AccessReads
        + crate::audit::AuditLog
        + crate::audit::SubjectKeys
        + crate::lifecycle::erasure::Erasure
        + crate::consent::Consents
        + crate::oauth::Clients
        + crate::oauth::Authorizations
        + crate::oauth::Tokens
        + crate::adapters::Banks
        + crate::adapters::Grants
        + crate::adapters::AccountRefs
        + crate::lifecycle::Webhooks
        + crate::payments::Payments
        + crate::payments::verification::VerificationCounts
        + crate::payments::payees::Payees
        + crate::notify::Subscriptions
        + crate::lifecycle::retention::Retention
        + Operational
}

/// What an operator reads of a store as a whole: its kind and the counts the metrics sample.
#[async_trait]
pub trait Operational: Send + Sync + 'static {
    /// A short name for logs: `postgres` or `memory`.
    fn kind(&self) -> &'static str;
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
