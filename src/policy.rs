//! Purpose policies (`policies/*.toml`): what each purpose may see, for how long, how often,
//! where, and which purposes are refused outright (`policies/prohibited.toml`).
//!
//! Invariant: policy evaluation does no I/O. Loading reads files ([`load`]); granting
//! ([`PolicySet::grant`]) and deciding ([`PolicySet::decide`]) are pure functions of the set in
//! force and the request. The set in force is a [`Live`] handle that a reload swaps atomically.

mod live;
mod load;
pub mod signals;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::consent::{AuthorizationDetail, Consent};
use crate::model::WireName;
use crate::model::{Account, Scope};

pub use live::Live;
pub use load::{Diagnostic, PROHIBITED_FILE};

/// Errors loading a policy set: every problem found, each with its file and line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The files are invalid; one diagnostic per problem (`path:line: message`).
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The diagnostics, one per problem.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(diagnostics) => diagnostics,
        }
    }
}

fn join_lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a platform may process data. A policy lists the regions it allows; a registered
/// client says where it processes (`Client::region`).
pub const REGIONS: &[&str] = &[
    "EEA", "UK", "CH", "US", "CA", "AU", "NZ", "JP", "SG", "IN", "BR",
];

/// The region a client is registered with when it names none.
pub const DEFAULT_REGION: &str = "EEA";

/// The languages a policy may translate its title and description into (`[text.<lang>]`),
/// beside the English of its top-level `title` and `description`: those the consent screen
/// speaks.
pub const TEXT_LANGUAGES: &[&str] = &["fr"];

/// A purpose's title and description in one more language (`[text.<lang>]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalText {
    pub title: String,
    pub description: String,
}

/// A kind of record a policy can release fields of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Object {
    Account,
    Balance,
    Transaction,
    /// Who holds an account and how it is identified ([`IdentityRecord`]).
    Identity,
}

impl Object {
    /// The JSON field names of the canonical record (`model`, [`IdentityRecord`]).
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Object::Account => &[
                "id",
                "bank_id",
                "display_name",
                "type",
                "currency",
                "iban",
                "iban_masked",
                "bban",
                "sort_code",
                "account_number",
                "pan_masked",
                "holder_name",
                "status",
            ],
            Object::Balance => &[
                "account_id",
                "type",
                "amount",
                "currency",
                "credit_limit_included",
                "as_of",
            ],
            Object::Transaction => &[
                "id",
                "account_id",
                "status",
                "booking_date",
                "value_date",
                "amount",
                "currency",
                "description",
                "counterparty_name",
                "counterparty_country",
                "merchant_category_code",
                "bank_code",
            ],
            Object::Identity => &[
                "account_id",
                "holder_name",
                "iban",
                "iban_masked",
                "bban",
                "sort_code",
                "account_number",
                "pan_masked",
            ],
        }
    }

    /// The scope that releases records of this kind.
    pub fn scope(self) -> Scope {
        match self {
            Object::Account => Scope::Accounts,
            Object::Balance => Scope::Balances,
            Object::Transaction => Scope::Transactions,
            Object::Identity => Scope::Identity,
        }
    }

    /// The record kind a scope releases.
    pub fn of_scope(scope: Scope) -> Object {
        match scope {
            Scope::Accounts => Object::Account,
            Scope::Balances => Object::Balance,
            Scope::Transactions => Object::Transaction,
            Scope::Identity => Object::Identity,
        }
    }
}

impl WireName for Object {}

/// The identity view of an account: who holds it and how it is identified. This is what the
/// `identity` scope releases (`GET /v1/identity`); balances and movements are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityRecord {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iban_masked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bban: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
}

impl From<&Account> for IdentityRecord {
    fn from(account: &Account) -> Self {
        IdentityRecord {
            account_id: account.id.clone(),
            holder_name: account.holder_name.clone(),
            iban: account.iban.clone(),
            iban_masked: account.iban_masked.clone(),
            bban: account.bban.clone(),
            sort_code: account.sort_code.clone(),
            account_number: account.account_number.clone(),
            pan_masked: account.pan_masked.clone(),
        }
    }
}

/// The lawful basis of processing (GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "kebab-case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    /// The article it stands for.
    pub fn article(self) -> &'static str {
        match self {
            LegalBasis::Consent => "GDPR Art. 6(1)(a)",
            LegalBasis::Contract => "GDPR Art. 6(1)(b)",
            LegalBasis::LegalObligation => "GDPR Art. 6(1)(c)",
            LegalBasis::VitalInterests => "GDPR Art. 6(1)(d)",
            LegalBasis::PublicTask => "GDPR Art. 6(1)(e)",
            LegalBasis::LegitimateInterests => "GDPR Art. 6(1)(f)",
        }
    }
}

impl WireName for LegalBasis {}

/// One validated purpose policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The purpose id (`balance-alerts`), also the file's name.
    pub id: String,
    /// Shown on the consent screen.
    pub title: String,
    /// Plain language, shown on the consent screen.
    pub description: String,
    /// The title and description in other languages (one of [`TEXT_LANGUAGES`] each), for
    /// the consent screen in that language.
    pub text: BTreeMap<String, LocalText>,
    pub legal_basis: LegalBasis,
    /// The law or article the purpose rests on, in words (optional).
    pub legal_reference: Option<String>,
    pub scopes: BTreeSet<Scope>,
    /// The longest consent this purpose may be granted.
    pub max_consent_days: u32,
    /// The oldest transaction this purpose may see, in days.
    pub max_history_days: u32,
    /// Requests per consent per UTC day made without the user present.
    pub max_unattended_per_day: u32,
    /// Where the platform may process the data.
    pub regions: BTreeSet<String>,
    /// How long the platform may keep what it received, in days (0: not at all).
    pub retention_days: u32,
    /// Whether the platform may pass the data on to third parties.
    pub onward_sharing: bool,
    /// Field allow-list per record kind.
    pub fields: BTreeMap<Object, BTreeSet<String>>,
    /// `[payment]`: the purpose initiates payments within these limits (and reads no data).
    pub payment: Option<crate::payments::PaymentLimits>,
    /// `[[signals]]`: the fraud rules notifications evaluate on new transactions.
    pub signals: Vec<signals::Signal>,
    /// `sha256:<hex>` of the file's bytes: which version was in force.
    pub hash: String,
}

/// A purpose refused outright, whoever asks (`policies/prohibited.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prohibited {
    pub id: String,
    pub title: String,
    /// Why, in words a platform and a user understand.
    pub reason: String,
}

/// What the policy needs to know about the platform asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform<'a> {
    /// Purposes the operator approved the platform for.
    pub approved_purposes: &'a [String],
    /// Where the platform processes data (one of [`REGIONS`]).
    pub region: &'a str,
}

/// Why a policy refuses a consent request or a data request. The text is safe to show the
/// platform and is what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown purpose {0:?}")]
    UnknownPurpose(String),
    #[error("purpose {id} is prohibited: {reason}")]
    Prohibited { id: String, reason: String },
    #[error("purpose {0} is no longer offered")]
    Withdrawn(String),
    #[error("client is not approved for purpose {0}")]
    NotApproved(String),
    #[error(
        "purpose {purpose} allows processing only in {allowed}; the client processes data in {region}"
    )]
    Region {
        purpose: String,
        region: String,
        allowed: String,
    },
    #[error("at least one scope is required")]
    NoScope,
    #[error("purpose {purpose} does not allow scope {scope}")]
    Scope { purpose: String, scope: Scope },
    #[error("purpose {purpose} now allows consents of at most {days} days; this one has run out")]
    ConsentTooOld { purpose: String, days: u32 },
}

/// What a consent request is granted under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Vec<Scope>,
    pub expires_in_days: u32,
    pub history_days: u32,
    /// The hash of the policy granted under.
    pub policy_hash: String,
}

/// Whether the user takes part in a data request (PSD2's "PSU present"): such a request does
/// not count against the unattended budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    UserPresent,
    Unattended,
}

/// A data request, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRequest<'a> {
    /// The consent's purpose.
    pub purpose: &'a str,
    pub scope: Scope,
    /// When the consent was granted and the history it was granted.
    pub consent_created_at: DateTime<Utc>,
    pub consent_history_days: u32,
    pub platform: Platform<'a>,
    pub presence: Presence,
    pub now: DateTime<Utc>,
}

impl<'a> DataRequest<'a> {
    /// A request for `scope` under `consent` (its purpose, when it was granted and the
    /// history it was granted).
    pub fn under(
        consent: &'a Consent,
        scope: Scope,
        platform: Platform<'a>,
        presence: Presence,
        now: DateTime<Utc>,
    ) -> DataRequest<'a> {
        DataRequest {
            purpose: &consent.purpose,
            scope,
            consent_created_at: consent.created_at,
            consent_history_days: consent.history_days,
            platform,
            presence,
            now,
        }
    }
}

/// An allowed data request: the policy that allowed it and what the release must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub policy: Arc<Policy>,
    pub obligations: Obligations,
}

/// What an allowed data request must do before release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligations {
    /// The record kind released.
    pub object: Object,
    /// Only these fields of each record leave the gateway.
    pub fields: BTreeSet<String>,
    /// No older data than this many days is requested from the bank (the smaller of the
    /// consent's and the policy's).
    pub history_days: u32,
    /// `Some(limit)`: the request counts against the consent's unattended budget of `limit`
    /// per UTC day; `None`: the user is present and it does not count.
    pub unattended_limit: Option<u32>,
}

impl Obligations {
    /// Strips every field outside the allow-list from each record; returns the records and the
    /// sorted names of the fields actually released.
    pub fn apply<T: Serialize>(&self, records: &[T]) -> (Vec<serde_json::Value>, Vec<String>) {
        let mut released = BTreeSet::new();
        let values = records
            .iter()
            .map(|record| {
                let mut value = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
                if let serde_json::Value::Object(map) = &mut value {
                    map.retain(|key, _| self.allows(key));
                    released.extend(map.keys().cloned());
                } else {
                    value = serde_json::Value::Null;
                }
                value
            })
            .collect();
        (values, released.into_iter().collect())
    }

    /// Whether `key` may leave the gateway.
    pub fn allows(&self, key: &str) -> bool {
        // `type_original` travels with `type` (an unknown balance type's bank name).
        let key = if key == "type_original" { "type" } else { key };
        self.fields.contains(key)
    }
}

impl Policy {
    /// The title and description in `lang` (an ISO 639-1 code), and whether they are in it:
    /// the translation when the policy has one, the English text otherwise.
    pub fn text_in(&self, lang: &str) -> (&str, &str, bool) {
        match self.text.get(lang) {
            Some(text) => (text.title.as_str(), text.description.as_str(), true),
            None => (self.title.as_str(), self.description.as_str(), lang == "en"),
        }
    }

    /// Checks the platform may use this purpose: approved for it, processing in an allowed
    /// region.
    pub fn admits(&self, platform: &Platform<'_>) -> Result<(), Refusal> {
        if !platform.approved_purposes.contains(&self.id) {
            return Err(Refusal::NotApproved(self.id.clone()));
        }
        if !self.regions.contains(platform.region) {
            return Err(Refusal::Region {
                purpose: self.id.clone(),
                region: platform.region.to_owned(),
                allowed: self.regions.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    /// Decides what a consent request for this purpose may be granted: requested scopes beyond
    /// the policy are refused; lifetime and history are clamped to the policy's maxima.
    pub fn grant(
        &self,
        requested: &AuthorizationDetail,
        platform: &Platform<'_>,
    ) -> Result<Grant, Refusal> {
        self.admits(platform)?;
        if requested.scopes.is_empty() {
            return Err(Refusal::NoScope);
        }
        if let Some(scope) = requested.scopes.iter().find(|s| !self.scopes.contains(s)) {
            return Err(Refusal::Scope {
                purpose: self.id.clone(),
                scope: *scope,
            });
        }
        let scopes: BTreeSet<Scope> = requested.scopes.iter().copied().collect();
        Ok(Grant {
            scopes: scopes.into_iter().collect(),
            expires_in_days: requested.expires_in_days.clamp(1, self.max_consent_days),
            history_days: requested.history_days.min(self.max_history_days),
            policy_hash: self.hash.clone(),
        })
    }

    /// Decides a data request under this version of the policy, whichever version the
    /// consent was granted under: a stricter version applies at once.
    pub fn decide(&self, request: &DataRequest<'_>) -> Result<Obligations, Refusal> {
        self.admits(&request.platform)?;
        if !self.scopes.contains(&request.scope) {
            return Err(Refusal::Scope {
                purpose: self.id.clone(),
                scope: request.scope,
            });
        }
        let lifetime = Duration::days(i64::from(self.max_consent_days));
        if request.now >= request.consent_created_at + lifetime {
            return Err(Refusal::ConsentTooOld {
                purpose: self.id.clone(),
                days: self.max_consent_days,
            });
        }
        let object = Object::of_scope(request.scope);
        Ok(Obligations {
            object,
            fields: self.fields.get(&object).cloned().unwrap_or_default(),
            history_days: request.consent_history_days.min(self.max_history_days),
            unattended_limit: match request.presence {
                Presence::UserPresent => None,
                Presence::Unattended => Some(self.max_unattended_per_day),
            },
        })
    }
}

/// One difference between two policy sets (what a reload audits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A purpose that was not offered before.
    Added(Arc<Policy>),
    /// A new version of a purpose; `previous` is the old hash.
    Changed {
        policy: Arc<Policy>,
        previous: String,
    },
    /// A purpose no longer offered, with its last hash.
    Removed { id: String, hash: String },
}

/// The set of policies in force, and the prohibited purposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
    prohibited: BTreeMap<String, Arc<Prohibited>>,
}

impl PolicySet {
    /// A set of the given policies and prohibitions (already validated).
    pub fn new(
        policies: impl IntoIterator<Item = Policy>,
        prohibited: impl IntoIterator<Item = Prohibited>,
    ) -> PolicySet {
        PolicySet {
            policies: policies
                .into_iter()
                .map(|policy| (policy.id.clone(), Arc::new(policy)))
                .collect(),
            prohibited: prohibited
                .into_iter()
                .map(|prohibited| (prohibited.id.clone(), Arc::new(prohibited)))
                .collect(),
        }
    }

    /// The policy of a purpose.
    pub fn get(&self, purpose: &str) -> Option<Arc<Policy>> {
        self.policies.get(purpose).cloned()
    }

    /// All policies, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values()
    }

    /// The purposes refused outright, by id.
    pub fn prohibited(&self) -> impl Iterator<Item = &Arc<Prohibited>> {
        self.prohibited.values()
    }

    /// The prohibition of a purpose, if it is prohibited.
    pub fn prohibition(&self, purpose: &str) -> Option<&Arc<Prohibited>> {
        self.prohibited.get(purpose)
    }

    /// The policy of a purpose a platform asks for, or why there is none.
    pub fn lookup(&self, purpose: &str) -> Result<Arc<Policy>, Refusal> {
        if let Some(prohibited) = self.prohibited.get(purpose) {
            return Err(Refusal::Prohibited {
                id: prohibited.id.clone(),
                reason: prohibited.reason.clone(),
            });
        }
        self.get(purpose)
            .ok_or_else(|| Refusal::UnknownPurpose(purpose.to_owned()))
    }

    /// Consent time (PAR): the purpose exists and is not prohibited, the platform is approved
    /// for it and processes in an allowed region, and the scopes, lifetime and history are
    /// refused or clamped per its policy.
    pub fn grant(
        &self,
        requested: &AuthorizationDetail,
        platform: &Platform<'_>,
    ) -> Result<Grant, Refusal> {
        self.lookup(&requested.purpose)?.grant(requested, platform)
    }

    /// Data time: allow (with obligations) or refuse, under the version in force now.
    pub fn decide(&self, request: &DataRequest<'_>) -> Result<Allowed, Refusal> {
        let policy = self
            .get(request.purpose)
            .ok_or_else(|| Refusal::Withdrawn(request.purpose.to_owned()))?;
        let obligations = policy.decide(request)?;
        Ok(Allowed {
            policy,
            obligations,
        })
    }

    /// What changed from `previous` to `self`: added, changed (by hash) and removed purposes.
    pub fn changes_from(&self, previous: &PolicySet) -> Vec<Change> {
        let mut changes = Vec::new();
        for (id, policy) in &self.policies {
            match previous.policies.get(id) {
                None => changes.push(Change::Added(policy.clone())),
                Some(old) if old.hash != policy.hash => changes.push(Change::Changed {
                    policy: policy.clone(),
                    previous: old.hash.clone(),
                }),
                Some(_) => {}
            }
        }
        for (id, old) in &previous.policies {
            if !self.policies.contains_key(id) {
                changes.push(Change::Removed {
                    id: id.clone(),
                    hash: old.hash.clone(),
                });
            }
        }
        changes
    }
}

/// Seconds from `now` to the start of the next UTC day (at least 1): when an unattended
/// budget refills.
pub fn seconds_until_next_utc_day(now: DateTime<Utc>) -> u64 {
    let tomorrow = now
        .date_naive()
        .succ_opt()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc());
    tomorrow
        .map(|midnight| (midnight - now).num_milliseconds())
        .and_then(|millis| u64::try_from(millis).ok())
        .map_or(1, |millis| millis.div_ceil(1000))
        .max(1)
}
