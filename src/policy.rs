//! Purpose policies (`policies/*.toml`): what each purpose may see, for how long.
//!
//! Invariant: policy evaluation does no I/O. Loading reads files; deciding is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::consent::AuthorizationDetail;
use crate::model::Scope;

/// Errors loading a policy set.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: duplicate purpose id {id:?}")]
    Duplicate { path: PathBuf, id: String },
    #[error("{0}: no policies found")]
    Empty(PathBuf),
}

/// A kind of record a policy can release fields of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Object {
    Account,
    Balance,
    Transaction,
}

impl Object {
    /// The JSON field names of the canonical record (`model`).
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
                "merchant_category_code",
                "bank_code",
            ],
        }
    }

    /// The scope that releases records of this kind.
    pub fn scope(self) -> Scope {
        match self {
            Object::Account => Scope::Accounts,
            Object::Balance => Scope::Balances,
            Object::Transaction => Scope::Transactions,
        }
    }

    /// The record kind a scope releases, if it releases records.
    pub fn of_scope(scope: Scope) -> Option<Object> {
        match scope {
            Scope::Accounts => Some(Object::Account),
            Scope::Balances => Some(Object::Balance),
            Scope::Transactions => Some(Object::Transaction),
            Scope::Identity => None,
        }
    }
}

/// A purpose policy file, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    title: String,
    description: String,
    legal_basis: String,
    scopes: Vec<Scope>,
    max_consent_days: u32,
    max_history_days: u32,
    #[serde(default)]
    fields: BTreeMap<Object, Vec<String>>,
}

/// One validated purpose policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub id: String,
    pub title: String,
    pub description: String,
    pub legal_basis: String,
    pub scopes: BTreeSet<Scope>,
    pub max_consent_days: u32,
    pub max_history_days: u32,
    /// Field allow-list per record kind.
    pub fields: BTreeMap<Object, BTreeSet<String>>,
    /// `sha256:<hex>` of the file's bytes: which version was in force.
    pub hash: String,
}

impl Policy {
    /// Parses and validates one policy file's text.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        for (object, fields) in &raw.fields {
            if !raw.scopes.contains(&object.scope()) && !fields.is_empty() {
                return Err(invalid(format!(
                    "fields.{} allows fields but scope {:?} is not allowed",
                    serde_plain(object),
                    object.scope().as_str()
                )));
            }
            for field in fields {
                if !object.fields().contains(&field.as_str()) {
                    return Err(invalid(format!(
                        "fields.{}: unknown field {field:?}",
                        serde_plain(object)
                    )));
                }
            }
        }
        if raw.max_consent_days == 0 {
            return Err(invalid("max_consent_days must be at least 1".into()));
        }
        Ok(Policy {
            id: raw.id,
            title: raw.title,
            description: raw.description,
            legal_basis: raw.legal_basis,
            scopes: raw.scopes.into_iter().collect(),
            max_consent_days: raw.max_consent_days,
            max_history_days: raw.max_history_days,
            fields: raw
                .fields
                .into_iter()
                .map(|(object, fields)| (object, fields.into_iter().collect()))
                .collect(),
            hash: format!("sha256:{}", crate::crypto::sha256_hex(text.as_bytes())),
        })
    }

    /// Decides what a consent for this purpose may be granted: requested scopes beyond the
    /// policy are refused; lifetime and history are clamped to the policy's maxima.
    pub fn grant(&self, requested: &AuthorizationDetail) -> Result<Grant, String> {
        if requested.scopes.is_empty() {
            return Err("at least one scope is required".into());
        }
        if let Some(scope) = requested.scopes.iter().find(|s| !self.scopes.contains(s)) {
            return Err(format!("purpose {} does not allow scope {scope}", self.id));
        }
        let scopes: BTreeSet<Scope> = requested.scopes.iter().copied().collect();
        Ok(Grant {
            scopes: scopes.into_iter().collect(),
            expires_in_days: requested.expires_in_days.clamp(1, self.max_consent_days),
            history_days: requested.history_days.min(self.max_history_days),
        })
    }

    /// Decides a data request for `scope` under this policy.
    pub fn decide(&self, scope: Scope) -> Result<Obligations, String> {
        if !self.scopes.contains(&scope) {
            return Err(format!("purpose {} does not allow {scope}", self.id));
        }
        let object = Object::of_scope(scope);
        let fields = object
            .and_then(|object| self.fields.get(&object))
            .cloned()
            .unwrap_or_default();
        Ok(Obligations {
            object,
            fields,
            history_days: self.max_history_days,
        })
    }
}

fn serde_plain(object: &Object) -> &'static str {
    match object {
        Object::Account => "account",
        Object::Balance => "balance",
        Object::Transaction => "transaction",
    }
}

/// What a consent request is granted under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Vec<Scope>,
    pub expires_in_days: u32,
    pub history_days: u32,
}

/// What an allowed data request must do before release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligations {
    /// The record kind released (none for scopes without records).
    pub object: Option<Object>,
    /// Only these fields of each record leave the gateway.
    pub fields: BTreeSet<String>,
    /// No older data than this many days is requested from the bank.
    pub history_days: u32,
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

    fn allows(&self, key: &str) -> bool {
        // `type_original` travels with `type` (an unknown balance type's bank name).
        let key = if key == "type_original" { "type" } else { key };
        self.fields.contains(key)
    }
}

/// The set of policies in force.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
}

impl PolicySet {
    /// Loads and validates every `*.toml` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let read_error = |path: &Path, source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| read_error(dir, source))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        let mut set = PolicySet::default();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|source| read_error(&path, source))?;
            let policy = Policy::parse(&path, &text)?;
            if set.policies.contains_key(&policy.id) {
                return Err(PolicyError::Duplicate {
                    path,
                    id: policy.id,
                });
            }
            set.policies.insert(policy.id.clone(), Arc::new(policy));
        }
        if set.policies.is_empty() {
            return Err(PolicyError::Empty(dir.to_owned()));
        }
        Ok(set)
    }

    /// The policy of a purpose.
    pub fn get(&self, purpose: &str) -> Option<Arc<Policy>> {
        self.policies.get(purpose).cloned()
    }

    /// All policies, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ACCOUNT_INFORMATION;
    use crate::model::{Balance, BalanceType};

    const BALANCE_ALERTS: &str = include_str!("../policies/balance-alerts.toml");

    fn policy() -> Policy {
        Policy::parse(Path::new("balance-alerts.toml"), BALANCE_ALERTS).unwrap()
    }

    fn request(scopes: &[Scope], days: u32, history: u32) -> AuthorizationDetail {
        AuthorizationDetail {
            kind: ACCOUNT_INFORMATION.into(),
            bank: "demo-bank".into(),
            purpose: "balance-alerts".into(),
            scopes: scopes.to_vec(),
            history_days: history,
            expires_in_days: days,
            user_ref: "u-1".into(),
        }
    }

    #[track_caller]
    fn check_grant(scopes: &[Scope], days: u32, history: u32, expected: Result<(u32, u32), &str>) {
        let got = policy()
            .grant(&request(scopes, days, history))
            .map(|grant| (grant.expires_in_days, grant.history_days));
        match expected {
            Ok(want) => assert_eq!(got, Ok(want)),
            Err(fragment) => assert!(got.as_ref().is_err_and(|e| e.contains(fragment)), "{got:?}"),
        }
    }

    #[test]
    fn grants() {
        use Scope::*;
        check_grant(&[Accounts, Balances], 30, 0, Ok((30, 0)));
        check_grant(&[Accounts, Balances], 365, 0, Ok((90, 0)));
        check_grant(&[Balances], 0, 90, Ok((1, 0)));
        check_grant(
            &[Accounts, Transactions],
            30,
            0,
            Err("does not allow scope transactions"),
        );
        check_grant(&[], 30, 0, Err("at least one scope"));
    }

    #[track_caller]
    fn check_invalid(text: &str, fragment: &str) {
        let error = Policy::parse(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(error.contains(fragment), "{error}");
        assert!(error.starts_with("p.toml"), "{error}");
    }

    #[test]
    fn invalid_policies() {
        check_invalid(&format!("extra = 1\n{BALANCE_ALERTS}"), "unknown field");
        check_invalid(
            &BALANCE_ALERTS.replace("\"iban_masked\"", "\"ibann\""),
            "unknown field \"ibann\"",
        );
        check_invalid(
            &format!("{BALANCE_ALERTS}transaction = [\"amount\"]\n"),
            "scope \"transactions\" is not allowed",
        );
        check_invalid(
            &BALANCE_ALERTS.replace("\"balances\"]", "\"gossip\"]"),
            "unknown variant",
        );
    }

    #[test]
    fn decide_allows_only_policy_scopes() {
        let policy = policy();
        let obligations = policy.decide(Scope::Balances).unwrap();
        assert_eq!(obligations.object, Some(Object::Balance));
        assert!(policy.decide(Scope::Transactions).is_err());
    }

    #[test]
    fn obligations_strip_fields() {
        let obligations = Obligations {
            object: Some(Object::Balance),
            fields: ["account_id", "amount", "type"].map(String::from).into(),
            history_days: 0,
        };
        let balance = Balance {
            account_id: "a".into(),
            kind: BalanceType::Other("nonInvoiced".into()),
            amount: "1.50".parse().unwrap(),
            currency: "EUR".into(),
            credit_limit_included: Some(true),
            as_of: None,
        };
        let (values, fields) = obligations.apply(&[balance]);
        assert_eq!(
            values[0],
            serde_json::json!({"account_id": "a", "amount": "1.50", "type": "other", "type_original": "nonInvoiced"})
        );
        assert_eq!(fields, ["account_id", "amount", "type", "type_original"]);
    }

    #[test]
    fn hash_changes_with_content() {
        let a = policy();
        let b = Policy::parse(Path::new("x"), &BALANCE_ALERTS.replace("90", "60")).unwrap();
        assert_ne!(a.hash, b.hash);
        assert!(a.hash.starts_with("sha256:"));
    }
}
