//! The state of one authenticated request, read (and spent) in one round trip: the token's
//! record, the DPoP proof's `jti`, the client, and for a data request the consent, its
//! unattended budget, its sealed bank grant and the account it names.
//!
//! [`AccessReads::access_state`] is one statement on PostgreSQL (`store/pg/access.rs`) and one
//! critical section in memory (`store/memory/access.rs`). It spends two things as it reads:
//! - the DPoP proof's `jti` (always: a replayed proof is refused whatever else holds);
//! - one unit of the consent's unattended budget, but only when the request is unattended and
//!   everything the store can see allows it ([`AccessQuery::budget`]): a token on record and
//!   not revoked, a fresh proof, the client's authorised, unexpired consent covering the scope,
//!   and a limit for the consent's purpose. What only the policy can refuse (platform approval,
//!   region, the policy's scopes and lifetime) is decided after the read, and such a refusal
//!   gives the unit back ([`AccessReads::refund_access`]).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::StoreError;
use crate::adapters::{AccountRef, StoredGrant};
use crate::consent::Consent;
use crate::model::Scope;
use crate::oauth::Client;

/// What to read for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessQuery {
    /// The access token's `jti`.
    pub jti: String,
    /// The token's client.
    pub client_id: String,
    /// The DPoP proof to spend, if the token is bound.
    pub proof: Option<ProofSpend>,
    /// Data requests only: the consent and what is asked of it.
    pub data: Option<DataQuery>,
}

/// A DPoP proof's `jti`, remembered in `scope` until `expires_at` (the replay cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofSpend {
    pub scope: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

/// The data part of a request's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataQuery {
    /// The token's subject.
    pub consent_id: String,
    pub scope: Scope,
    /// The account a path names, if it names one.
    pub account_id: Option<String>,
    /// The time the decision is made at (consent expiry is checked against it).
    pub now: DateTime<Utc>,
    /// Unattended requests only: the budget to spend.
    pub budget: Option<BudgetSpend>,
}

/// One unit of a consent's unattended budget, spent on `day` if the consent's purpose has a
/// limit in `limits` and fewer than that many were spent that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSpend {
    pub day: NaiveDate,
    /// `(purpose, max_unattended_per_day)` of every purpose in force.
    pub limits: Vec<(String, u32)>,
}

/// What the store knows about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessState {
    pub token: TokenState,
    /// `Some(true)` when the proof's `jti` was new (and is now spent); `Some(false)` for a
    /// replay; `None` without a proof.
    pub proof_fresh: Option<bool>,
    pub client: Option<Client>,
    /// The consent named by the query, whoever owns it.
    pub consent: Option<Consent>,
    /// The budget's count, when the store counted (the request was eligible): `admitted`
    /// says whether this request took a unit.
    pub budget: Option<AccessCount>,
    /// The consent's sealed bank grant (its owner's requests only).
    pub bank_grant: Option<StoredGrant>,
    /// The account the query names, if the consent has seen it (its owner's requests only).
    pub account: Option<AccountRef>,
}

impl AccessState {
    /// Nothing known: what a request's facts are built from when the read failed.
    pub fn empty() -> AccessState {
        AccessState {
            token: TokenState::Unknown,
            proof_fresh: None,
            client: None,
            consent: None,
            budget: None,
            bank_grant: None,
            account: None,
        }
    }
}

/// An access token's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Issued by this gateway and not revoked.
    Active,
    /// Revoked early (RFC 7009, a revoked consent, a replayed code).
    Revoked,
    /// Never recorded: not a token this gateway issued.
    Unknown,
}

/// The request-state read. Part of the [`super::Store`] umbrella; a layer that needs only this receives
/// `Arc<dyn AccessReads>`.
#[async_trait]
pub trait AccessReads: Send + Sync + 'static {
    /// Reads (and spends) a request's state in one round trip; see the module docs.
    async fn access_state(&self, query: &AccessQuery) -> Result<AccessState, StoreError>;

    /// Gives back one unit of `consent_id`'s budget of `day`, spent by a request that was
    /// then refused.
    async fn refund_access(&self, consent_id: &str, day: NaiveDate) -> Result<(), StoreError>;
}

/// The outcome of counting one access against a consent's daily budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessCount {
    /// The access was within the budget and was counted.
    pub admitted: bool,
    /// Accesses counted for the consent that day, this one included when admitted.
    pub used: u32,
}
