//! The access decision for a data request: who asks ([`AccessClaims`]), for what
//! ([`DataPath`]), with the user present or not, against what the store knows
//! ([`AccessState`], read in one round trip) and the policy set in force → a [`Grant`] (what
//! may be released) or a typed [`Denial`].
//!
//! Pure: no I/O and no HTTP types. `http::access` reads the state, calls [`decide`], audits a
//! denial at once or hands the grant to the handler, which releases through
//! [`Facts::released`]. The audit record of every outcome is built from the same [`Facts`], so
//! it is as complete for a refused token as for a released balance.

#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDate, Utc};

use crate::adapters::StoredGrant;
use crate::audit::{Action, Decision, Event};
use crate::consent::{Consent, Unusable};
use crate::model::Scope;
use crate::model::WireName;
use crate::oauth::tokens::AccessClaims;
use crate::policy::{self, DataRequest, Obligations, PolicySet, Presence};
use crate::store::access::{
    AccessQuery, AccessState, BudgetSpend, DataQuery, ProofSpend, TokenState,
};

/// One data route: its path pattern (axum syntax, the router registers exactly these) and the
/// scope it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRoute {
    pub pattern: &'static str,
    pub scope: Scope,
}

/// The placeholder of an account id in a [`DataRoute`] pattern.
const ACCOUNT_ID: &str = "{account_id}";

/// Every data route. The router serves these patterns and nothing else under `/v1/accounts`;
/// [`DataPath::parse`] reads a path with the same table, so a path is a data path exactly
/// when it has a route.
pub const DATA_ROUTES: [DataRoute; 4] = [
    DataRoute {
        pattern: "/v1/accounts",
        scope: Scope::Accounts,
    },
    DataRoute {
        pattern: "/v1/accounts/{account_id}/balances",
        scope: Scope::Balances,
    },
    DataRoute {
        pattern: "/v1/accounts/{account_id}/transactions",
        scope: Scope::Transactions,
    },
    DataRoute {
        pattern: "/v1/identity",
        scope: Scope::Identity,
    },
];

/// What a data path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPath {
    pub scope: Scope,
    pub account_id: Option<String>,
}

impl DataPath {
    /// The data path `path` names, or `None` if no [`DATA_ROUTES`] pattern matches it.
    pub fn parse(path: &str) -> Option<DataPath> {
        DATA_ROUTES.iter().find_map(|route| {
            let mut account_id = None;
            let mut segments = path.split('/');
            for expected in route.pattern.split('/') {
                let segment = segments.next()?;
                if expected == ACCOUNT_ID && !segment.is_empty() {
                    account_id = Some(segment.to_owned());
                } else if expected != segment {
                    return None;
                }
            }
            segments.next().is_none().then_some(DataPath {
                scope: route.scope,
                account_id,
            })
        })
    }
}

/// A data request, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The verified access token.
    pub claims: &'a AccessClaims,
    pub path: &'a DataPath,
    pub presence: Presence,
    pub now: DateTime<Utc>,
    /// The request id, for the audit record.
    pub request_id: Option<&'a str>,
}

impl Request<'_> {
    /// What to read from the store for this request: the token, the proof to spend, the
    /// consent and, when the user is not present, one unit of the budget under the limits of
    /// `policies`.
    pub fn query(&self, proof: Option<ProofSpend>, policies: &PolicySet) -> AccessQuery {
        let budget = (self.presence == Presence::Unattended).then(|| BudgetSpend {
            day: self.now.date_naive(),
            limits: policies
                .iter()
                .map(|policy| (policy.id.clone(), policy.max_unattended_per_day))
                .collect(),
        });
        AccessQuery {
            jti: self.claims.jti.clone(),
            client_id: self.claims.client_id.clone(),
            proof,
            data: Some(DataQuery {
                consent_id: self.claims.sub.clone(),
                scope: self.path.scope,
                account_id: self.path.account_id.clone(),
                now: self.now,
                budget,
            }),
        }
    }
}

/// What an allowed data request may release, and everything the handler needs to fetch it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// What the audit record of the release says.
    pub facts: Facts,
    pub scope: Scope,
    pub consent: Consent,
    /// Field allow-list, history window, unattended limit (the policy in force).
    pub obligations: Obligations,
    /// The account the path names, and the bank's reference for it when the consent has
    /// seen it (otherwise the handler lists the consent's accounts once to find it).
    pub account_id: Option<String>,
    pub bank_ref: Option<String>,
    /// The consent's sealed bank grant.
    pub bank_grant: Option<StoredGrant>,
    /// The UTC day whose unattended budget this request spent a unit of, if it did: a denial
    /// found later (an account not in the consent) gives it back.
    pub budget_day: Option<NaiveDate>,
}

/// Why a data request is refused. Each kind is its own problem type (`error.rs`); the text is
/// safe to show the platform and is what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the access token was not issued by this gateway")]
    TokenUnknown,
    #[error("the access token was revoked")]
    TokenRevoked,
    #[error("the DPoP proof was already used")]
    ProofReplayed,
    /// No such consent, or another client's (reported alike).
    #[error("the token is not bound to a consent of this client")]
    ConsentNotFound,
    /// Not authorised, revoked or expired.
    #[error("{0}")]
    Consent(Unusable),
    /// The consent, or the token, does not cover the scope.
    #[error("the consent does not cover {0}")]
    ScopeNotGranted(Scope),
    #[error("the platform is no longer registered")]
    PlatformNotRegistered,
    /// The purpose's policy in force refuses the request.
    #[error("{0}")]
    Policy(policy::Refusal),
    #[error(
        "the unattended access budget of purpose {purpose} ({limit} a day) is spent for today; \
         requests made with the user present still pass: send X-User-Present: true and the \
         user's IP address in PSU-IP-Address"
    )]
    BudgetSpent {
        purpose: String,
        limit: u32,
        retry_after_secs: u64,
    },
    /// The store did not count an unattended request that everything else allows (it never
    /// should): refused rather than let through uncounted.
    #[error("the unattended access budget could not be counted; retry later")]
    BudgetUncounted,
    #[error("no such account under this consent")]
    AccountNotInConsent,
}

/// Decides a data request from the store's state and the policy set in force.
pub fn decide(
    request: &Request<'_>,
    state: &AccessState,
    policies: &PolicySet,
) -> Result<Grant, Denial> {
    match state.token {
        TokenState::Active => {}
        TokenState::Revoked => return Err(Denial::TokenRevoked),
        TokenState::Unknown => return Err(Denial::TokenUnknown),
    }
    if state.proof_fresh == Some(false) {
        return Err(Denial::ProofReplayed);
    }
    let consent = owned_consent(request.claims, state).ok_or(Denial::ConsentNotFound)?;
    let scope = request.path.scope;
    consent.check_usable(request.now).map_err(Denial::Consent)?;
    // Only a consent-bound token carries data scopes (a management or compliance token never
    // does, whatever its subject).
    let token_scope = request.claims.scopes().any(|s| s == scope.as_str());
    if !consent.scopes.contains(&scope) || !token_scope {
        return Err(Denial::ScopeNotGranted(scope));
    }
    let client = state.client.as_ref().ok_or(Denial::PlatformNotRegistered)?;
    let allowed = policies
        .decide(&DataRequest::under(
            consent,
            scope,
            client.platform(),
            request.presence,
            request.now,
        ))
        .map_err(Denial::Policy)?;
    let budget_day = match (allowed.obligations.unattended_limit, state.budget) {
        (None, _) => None,
        (Some(_), Some(count)) if count.admitted => Some(request.now.date_naive()),
        (Some(limit), Some(_)) => {
            return Err(Denial::BudgetSpent {
                purpose: consent.purpose.clone(),
                limit,
                retry_after_secs: policy::seconds_until_next_utc_day(request.now),
            });
        }
        (Some(_), None) => return Err(Denial::BudgetUncounted),
    };
    Ok(Grant {
        facts: Facts::of(request, state, policies),
        scope,
        consent: consent.clone(),
        obligations: allowed.obligations,
        account_id: request.path.account_id.clone(),
        bank_ref: state
            .account
            .as_ref()
            .map(|account| account.bank_ref.clone()),
        bank_grant: state.bank_grant.clone(),
        budget_day,
    })
}

/// The consent of the state if it belongs to the token's client.
fn owned_consent<'a>(claims: &AccessClaims, state: &'a AccessState) -> Option<&'a Consent> {
    state
        .consent
        .as_ref()
        .filter(|consent| consent.client_id == claims.client_id)
}

/// Whether the store spent a unit of the budget for this request: a denial decided after the
/// read gives it back.
pub fn spent_budget(request: &Request<'_>, state: &AccessState) -> Option<NaiveDate> {
    state
        .budget
        .filter(|count| count.admitted)
        .map(|_| request.now.date_naive())
}

/// What the audit record of a data request says about it, whatever the outcome: who asked,
/// for which consent, bank, user, purpose and policy version, which category, which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub actor: String,
    pub consent: String,
    pub bank: Option<String>,
    /// In the clear here; the auditor pseudonymises it.
    pub user_ref: Option<String>,
    pub purpose: Option<String>,
    /// The hash of the purpose's policy in force (none once the purpose is withdrawn).
    pub policy_hash: Option<String>,
    pub category: Scope,
    pub request_id: Option<String>,
}

impl Facts {
    /// The facts of `request` given what the store returned; the consent's details only when
    /// it belongs to the token's client.
    pub fn of(request: &Request<'_>, state: &AccessState, policies: &PolicySet) -> Facts {
        let consent = owned_consent(request.claims, state);
        let purpose = consent.map(|consent| consent.purpose.clone());
        Facts {
            actor: request.claims.client_id.clone(),
            consent: request.claims.sub.clone(),
            bank: consent.map(|consent| consent.bank_id.clone()),
            user_ref: consent.map(|consent| consent.user_ref.clone()),
            policy_hash: purpose
                .as_deref()
                .and_then(|purpose| policies.get(purpose))
                .map(|policy| policy.hash.clone()),
            purpose,
            category: request.path.scope,
            request_id: request.request_id.map(str::to_owned),
        }
    }

    /// The record of a release: these fields of `n_records` records.
    pub fn released(&self, fields: Vec<String>, n_records: u32) -> Event {
        let mut event = self.event(Decision::Allow, None);
        event.fields = fields;
        event.n_records = n_records;
        event
    }

    /// The record of a denial.
    pub fn denied(&self, denial: &Denial) -> Event {
        self.event(Decision::Deny, Some(denial.to_string()))
    }

    /// The record of an allowed request that released nothing (the bank or the gateway
    /// failed), with the kind of failure.
    pub fn failed(&self, reason: String) -> Event {
        self.event(Decision::Error, Some(reason))
    }

    fn event(&self, decision: Decision, reason: Option<String>) -> Event {
        let mut event = Event::new(Action::DataAccess, self.actor.as_str(), decision);
        event.platform = Some(self.actor.clone());
        event.consent = Some(self.consent.clone());
        event.bank = self.bank.clone();
        event.user_ref = self.user_ref.clone();
        event.purpose = self.purpose.clone();
        event.policy_hash = self.policy_hash.clone();
        event.categories = vec![self.category.as_str().to_owned()];
        event.reason = reason;
        event.request_id = self.request_id.clone();
        event
    }
}
