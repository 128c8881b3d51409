//! The canonical JSON of a raw bank payload, offline: what `bankgate adapters normalise`
//! prints, so that a bank can test its payloads (and, with the `mapping` profile, its rules)
//! before it registers its adapter. Each profile's own wire functions do the work, exactly as
//! they do for a live call (the profile's error-in-body check included).
//!
//! The payload is normalised as if it came from [`EXAMPLE_BANK`] for the account
//! [`EXAMPLE_ACCOUNT`]; account lists also show each account's bank reference.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::common::parse_body;
use super::{AdapterError, BankAccount, Manifest, berlin_group, fdx, mapping, obie, stet};
use crate::model::WireName;

/// The bank id payloads are normalised for when no manifest names one.
pub const EXAMPLE_BANK: &str = "example-bank";
/// The canonical account id balances and transactions are stamped with.
pub const EXAMPLE_ACCOUNT: &str = "acc_example";

/// What a payload is the answer to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum Resource {
    Accounts,
    Balances,
    Transactions,
}

impl WireName for Resource {}

/// Who speaks the payload: a profile by name, or a manifest (required for `mapping`).
#[derive(Debug, Clone, Copy)]
pub enum Speaker<'a> {
    Profile(&'a str),
    Manifest(&'a Manifest),
}

/// Errors normalising a payload offline.
#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    #[error("the mapping profile needs its manifest (--manifest FILE)")]
    MappingNeedsManifest,
    #[error(transparent)]
    Manifest(#[from] super::ManifestError),
    #[error(transparent)]
    Payload(#[from] AdapterError),
}

/// The canonical JSON of `body`, an answer to `resource` in the speaker's API.
/// `currency` is the account's currency, for FDX transactions (which carry none); default USD.
pub fn normalise(
    speaker: Speaker<'_>,
    resource: Resource,
    body: &[u8],
    currency: Option<&str>,
) -> Result<Value, NormaliseError> {
    let (profile, bank_id) = match speaker {
        Speaker::Profile(name) => (name, EXAMPLE_BANK),
        Speaker::Manifest(manifest) => {
            manifest.validate()?;
            (manifest.profile.as_str(), manifest.id.as_str())
        }
    };
    let account = EXAMPLE_ACCOUNT;
    let value = match (profile, resource) {
        (mapping::NAME, _) => {
            let Speaker::Manifest(manifest) = speaker else {
                return Err(NormaliseError::MappingNeedsManifest);
            };
            let spec = manifest
                .mapping
                .as_ref()
                .ok_or(NormaliseError::MappingNeedsManifest)?;
            let compiled =
                mapping::Mapping::compile(spec).map_err(|error| super::ManifestError::Invalid {
                    bank: manifest.id.clone(),
                    message: error.to_string(),
                })?;
            mapping_payload(compiled.rules(), resource, bank_id, body)?
        }
        (berlin_group::NAME, Resource::Accounts) => {
            let list: berlin_group::wire::AccountList = berlin_group::decode(body)?;
            accounts_json(&berlin_group::wire::accounts(bank_id, list)?)
        }
        (berlin_group::NAME, Resource::Balances) => {
            let response: berlin_group::wire::BalancesResponse = berlin_group::decode(body)?;
            json!({"balances": berlin_group::wire::balances(account, response.balances, "balances")?})
        }
        (berlin_group::NAME, Resource::Transactions) => {
            let response: berlin_group::wire::TransactionsResponse = berlin_group::decode(body)?;
            let report = response.transactions.unwrap_or_default();
            json!({"transactions": berlin_group::wire::transactions(account, report)?})
        }
        (stet::NAME, Resource::Accounts) => {
            let list = parse_body(body, stet::wire::error_in_body)?;
            accounts_json(&stet::wire::accounts(bank_id, list)?)
        }
        (stet::NAME, Resource::Balances) => {
            let response = parse_body(body, stet::wire::error_in_body)?;
            json!({"balances": stet::wire::balances(account, response)?})
        }
        (stet::NAME, Resource::Transactions) => {
            let response: stet::wire::TransactionsResponse =
                parse_body(body, stet::wire::error_in_body)?;
            json!({"transactions": stet::wire::transactions(account, response.transactions)?})
        }
        (obie::NAME, Resource::Accounts) => {
            let envelope: obie::wire::Envelope<obie::wire::AccountsData> =
                parse_body(body, obie::wire::error_in_body)?;
            accounts_json(&obie::wire::accounts(bank_id, envelope.data)?)
        }
        (obie::NAME, Resource::Balances) => {
            let envelope: obie::wire::Envelope<obie::wire::BalancesData> =
                parse_body(body, obie::wire::error_in_body)?;
            json!({"balances": obie::wire::balances(account, None, envelope.data)?})
        }
        (obie::NAME, Resource::Transactions) => {
            let envelope: obie::wire::Envelope<obie::wire::TransactionsData> =
                parse_body(body, obie::wire::error_in_body)?;
            json!({"transactions": obie::wire::transactions(account, None, envelope.data.transaction)?})
        }
        (fdx::NAME, Resource::Accounts) => {
            let list: fdx::wire::AccountsResponse = parse_body(body, fdx::wire::error_in_body)?;
            accounts_json(&fdx::wire::accounts(bank_id, &list)?)
        }
        (fdx::NAME, Resource::Balances) => {
            // FDX balances are fields of the account (`GET /accounts/{accountId}`).
            let raw: Box<RawValue> = parse_body(body, fdx::wire::error_in_body)?;
            let entity = fdx::wire::account_entity(&raw)
                .map_err(|message| super::common::decode("account", message))?;
            json!({"balances": fdx::wire::balances(account, &entity)?})
        }
        (fdx::NAME, Resource::Transactions) => {
            let list: fdx::wire::TransactionsResponse = parse_body(body, fdx::wire::error_in_body)?;
            let currency = currency.unwrap_or("USD");
            json!({"transactions": fdx::wire::transactions(account, currency, &list.transactions)?})
        }
        (other, _) => return Err(NormaliseError::UnknownProfile(other.to_owned())),
    };
    Ok(value)
}

fn accounts_json(accounts: &[BankAccount]) -> Value {
    let bank_refs: BTreeMap<&str, &str> = accounts
        .iter()
        .map(|listed| (listed.account.id.as_str(), listed.bank_ref.as_str()))
        .collect();
    let accounts: Vec<_> = accounts.iter().map(|listed| &listed.account).collect();
    json!({"accounts": accounts, "bank_refs": bank_refs})
}

fn mapping_payload(
    rules: &mapping::rules::CompiledMapping,
    resource: Resource,
    bank_id: &str,
    body: &[u8],
) -> Result<Value, AdapterError> {
    if let Some(error) = rules
        .error_pointer
        .as_ref()
        .and_then(|pointer| mapping::wire::error_in_body(pointer, body))
    {
        return Err(AdapterError::ErrorBody(error));
    }
    let page = mapping::wire::parse(body)?;
    let missing =
        |what: &str| AdapterError::Refused(format!("the mapping has no [mapping.{what}] section"));
    Ok(match resource {
        Resource::Accounts => {
            accounts_json(&mapping::wire::accounts(&rules.accounts, bank_id, page)?)
        }
        Resource::Balances => {
            let endpoint = rules.balances.as_ref().ok_or_else(|| missing("balances"))?;
            json!({"balances": mapping::wire::balances(endpoint, EXAMPLE_ACCOUNT, page)?})
        }
        Resource::Transactions => {
            let endpoint = rules
                .transactions
                .as_ref()
                .ok_or_else(|| missing("transactions"))?;
            let mut ids = super::common::TransactionIds::default();
            json!({"transactions": mapping::wire::transactions(endpoint, EXAMPLE_ACCOUNT, page, &mut ids)?})
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::testing;

    /// The amounts (or bank references) of a normalised answer, in order.
    fn amounts(value: &Value, key: &str) -> Vec<String> {
        let records = match value {
            Value::Object(object) => object.get(key).cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        records
            .as_array()
            .map(|records| {
                records
                    .iter()
                    .map(|record| {
                        record["amount"]
                            .as_str()
                            .or(record["bank_ref"].as_str())
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    fn check(profile: &str, resource: Resource, fixture: (&str, &str), currency: Option<&str>) {
        let (dir, name) = fixture;
        let text = testing::fixture(dir, name);
        let actual = normalise(
            Speaker::Profile(profile),
            resource,
            text.as_bytes(),
            currency,
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        let path = format!("{}/tests/expected/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (key, actual_list) = match resource {
            Resource::Accounts => {
                let refs: Vec<String> = actual["bank_refs"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect();
                ("accounts", refs)
            }
            Resource::Balances => ("balances", amounts(&actual, "balances")),
            Resource::Transactions => ("transactions", amounts(&actual, "transactions")),
        };
        let mut expected_list = amounts(&expected, key);
        let mut actual_list = actual_list;
        if resource == Resource::Accounts {
            expected_list.sort();
            actual_list.sort();
        }
        assert!(!expected_list.is_empty(), "{name}");
        assert_eq!(actual_list, expected_list, "{profile} {name}");
    }

    #[test]
    fn every_profile_normalises_offline_as_it_does_online() {
        let bg = "berlin-group";
        check(
            bg,
            Resource::Accounts,
            (bg, "v1.3.11_get-accounts_list-example3.json"),
            None,
        );
        check(
            bg,
            Resource::Balances,
            (bg, "v1.3.11_get-balances_regular-account.json"),
            None,
        );
        check(
            bg,
            Resource::Transactions,
            (bg, "v1.3.11_get-transactions_regular-account.json"),
            None,
        );
        check(
            "stet",
            Resource::Accounts,
            ("stet", "v1.4_get-accounts.json"),
            None,
        );
        check(
            "stet",
            Resource::Balances,
            ("stet", "synthetic_v1.4_get-account-balances_multi.json"),
            None,
        );
        check(
            "stet",
            Resource::Transactions,
            ("stet", "v1.4_get-account-transactions.json"),
            None,
        );
        check(
            "obie",
            Resource::Accounts,
            ("obie", "v3.1.11_get-accounts_bulk-detail.json"),
            None,
        );
        check(
            "obie",
            Resource::Balances,
            ("obie", "v3.1.11_get-balances_bulk.json"),
            None,
        );
        check(
            "obie",
            Resource::Transactions,
            ("obie", "v3.1.11_get-transactions_bulk.json"),
            None,
        );
        check(
            "fdx",
            Resource::Accounts,
            ("fdx", "synthetic_v6_get-accounts.json"),
            None,
        );
        check(
            "fdx",
            Resource::Balances,
            ("fdx", "synthetic_v6_get-deposit-account.json"),
            None,
        );
        check(
            "fdx",
            Resource::Transactions,
            ("fdx", "synthetic_v6_get-account-transactions.json"),
            Some("USD"),
        );
    }

    #[test]
    fn mapping_needs_its_manifest_and_unknown_profiles_are_named() {
        let body = br#"{"result": {"items": []}, "error": null}"#;
        let error = normalise(Speaker::Profile("mapping"), Resource::Accounts, body, None);
        assert!(matches!(error, Err(NormaliseError::MappingNeedsManifest)));
        let error = normalise(Speaker::Profile("swift"), Resource::Accounts, body, None);
        assert_eq!(error.unwrap_err().to_string(), "unknown profile \"swift\"");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/nova-bank.toml");
        let manifest = Manifest::load(std::path::Path::new(path)).unwrap();
        let listed =
            normalise(Speaker::Manifest(&manifest), Resource::Accounts, body, None).unwrap();
        assert_eq!(listed["accounts"], json!([]));
        let error = normalise(
            Speaker::Manifest(&manifest),
            Resource::Accounts,
            br#"{"result": null, "error": {"code": "E1"}}"#,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(error, NormaliseError::Payload(AdapterError::ErrorBody(_))),
            "{error}"
        );
    }
}
