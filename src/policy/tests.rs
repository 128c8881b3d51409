//! Policy tests: data-driven tables over (policy, request) → decision + obligations, the
//! validation diagnostics with their lines, and a property test of the field allow-list.

use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::consent::ACCOUNT_INFORMATION;
use crate::model::{
    AccountStatus, AccountType, Balance, BalanceType, Transaction, TransactionStatus,
};

const BALANCE_ALERTS: &str = include_str!("../../policies/balance-alerts.toml");
const FRAUD_ALERTS: &str = include_str!("../../policies/fraud-alerts.toml");
const P2P_PAYMENT: &str = include_str!("../../policies/p2p-payment.toml");

fn bundled() -> PolicySet {
    PolicySet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .unwrap_or_else(|error| panic!("the bundled policies load:\n{error}"))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

/// Everything approved, processing in the EEA.
fn approved() -> Vec<String> {
    bundled().iter().map(|policy| policy.id.clone()).collect()
}

fn request(purpose: &str, scopes: &[Scope], days: u32, history: u32) -> AuthorizationDetail {
    AuthorizationDetail {
        kind: ACCOUNT_INFORMATION.into(),
        bank: "demo-bank".into(),
        purpose: purpose.into(),
        scopes: scopes.to_vec(),
        history_days: history,
        expires_in_days: days,
        user_ref: "u-1".into(),
        consent_id: None,
    }
}

// Consent time.

/// What a grant case expects: the clamped (lifetime, history) or a fragment of the refusal.
type GrantOutcome<'a> = Result<(u32, u32), &'a str>;

#[track_caller]
fn check_grant(
    purpose: &str,
    scopes: &[Scope],
    (days, history): (u32, u32),
    (approved, region): (&[String], &str),
    expected: GrantOutcome<'_>,
) {
    let set = bundled();
    let platform = Platform {
        approved_purposes: approved,
        region,
    };
    let got = set
        .grant(&request(purpose, scopes, days, history), &platform)
        .map(|grant| (grant.expires_in_days, grant.history_days));
    match expected {
        Ok(want) => assert_eq!(got, Ok(want)),
        Err(fragment) => assert!(
            got.as_ref()
                .is_err_and(|refusal| refusal.to_string().contains(fragment)),
            "{got:?} should be refused with {fragment:?}"
        ),
    }
}

#[test]
fn grants() {
    use Scope::*;
    let all = approved();
    let eea = (all.as_slice(), "EEA");
    // Within the policy: granted as asked.
    check_grant(
        "balance-alerts",
        &[Accounts, Balances],
        (30, 0),
        eea,
        Ok((30, 0)),
    );
    // Lifetime and history clamp to the policy's maxima; lifetime is at least a day.
    check_grant(
        "balance-alerts",
        &[Accounts, Balances],
        (365, 0),
        eea,
        Ok((90, 0)),
    );
    check_grant("balance-alerts", &[Balances], (0, 90), eea, Ok((1, 0)));
    check_grant(
        "personal-finance",
        &[Transactions],
        (400, 1000),
        eea,
        Ok((180, 365)),
    );
    check_grant(
        "fraud-alerts",
        &[Transactions],
        (180, 30),
        eea,
        Ok((180, 30)),
    );
    check_grant("kyc-verification", &[Identity], (90, 0), eea, Ok((1, 0)));
    // Scopes beyond the purpose are refused, not clamped.
    check_grant(
        "balance-alerts",
        &[Accounts, Transactions],
        (30, 0),
        eea,
        Err("does not allow scope transactions"),
    );
    check_grant(
        "kyc-verification",
        &[Accounts],
        (1, 0),
        eea,
        Err("scope accounts"),
    );
    check_grant(
        "p2p-payments-payee-check",
        &[Balances],
        (30, 0),
        eea,
        Err("scope balances"),
    );
    check_grant(
        "balance-alerts",
        &[],
        (30, 0),
        eea,
        Err("at least one scope"),
    );
    // Unknown and prohibited purposes.
    check_grant(
        "gossip",
        &[Accounts],
        (30, 0),
        eea,
        Err("unknown purpose \"gossip\""),
    );
    check_grant(
        "advertising",
        &[Accounts],
        (30, 0),
        eea,
        Err("purpose advertising is prohibited: bank data is not used"),
    );
    check_grant("data-selling", &[Accounts], (30, 0), eea, Err("prohibited"));
    check_grant(
        "marketing-profiling",
        &[Accounts],
        (30, 0),
        eea,
        Err("prohibited"),
    );
    // The platform must be approved for the purpose and process where the policy allows.
    let only_alerts = vec!["balance-alerts".to_owned()];
    check_grant(
        "fraud-alerts",
        &[Accounts],
        (30, 0),
        (&only_alerts, "EEA"),
        Err("client is not approved for purpose fraud-alerts"),
    );
    check_grant(
        "balance-alerts",
        &[Accounts],
        (30, 0),
        (&only_alerts, "UK"),
        Ok((30, 0)),
    );
    check_grant(
        "balance-alerts",
        &[Accounts],
        (30, 0),
        (&only_alerts, "US"),
        Err("allows processing only in EEA, UK; the client processes data in US"),
    );
}

#[test]
fn a_grant_names_the_policy_version() {
    let set = bundled();
    let all = approved();
    let grant = set
        .grant(
            &request("balance-alerts", &[Scope::Balances], 30, 0),
            &Platform {
                approved_purposes: &all,
                region: "EEA",
            },
        )
        .unwrap();
    assert_eq!(grant.policy_hash, set.get("balance-alerts").unwrap().hash);
}

// Data time.

/// A data request case: the consent's age and history, the presence and the platform.
struct Case<'a> {
    purpose: &'a str,
    scope: Scope,
    consent_age_days: i64,
    consent_history_days: u32,
    presence: Presence,
    region: &'a str,
}

impl<'a> Case<'a> {
    fn new(purpose: &'a str, scope: Scope) -> Self {
        Case {
            purpose,
            scope,
            consent_age_days: 1,
            consent_history_days: 3650,
            presence: Presence::Unattended,
            region: "EEA",
        }
    }
}

/// What a data case expects: the object, the allowed fields (a subset to check for and a set
/// that must be absent), the history window and the unattended limit — or a refusal fragment.
struct Expect<'a> {
    object: Object,
    has: &'a [&'a str],
    lacks: &'a [&'a str],
    history_days: u32,
    unattended_limit: Option<u32>,
}

#[track_caller]
fn check(set: &PolicySet, case: Case<'_>, expected: Result<Expect<'_>, &str>) {
    let approved: Vec<String> = set.iter().map(|policy| policy.id.clone()).collect();
    let got = set.decide(&DataRequest {
        purpose: case.purpose,
        scope: case.scope,
        consent_created_at: now() - Duration::days(case.consent_age_days),
        consent_history_days: case.consent_history_days,
        platform: Platform {
            approved_purposes: &approved,
            region: case.region,
        },
        presence: case.presence,
        now: now(),
    });
    match (got, expected) {
        (Ok(allowed), Ok(want)) => {
            let obligations = allowed.obligations;
            assert_eq!(allowed.policy.id, case.purpose);
            assert_eq!(obligations.object, want.object);
            for field in want.has {
                assert!(obligations.fields.contains(*field), "{field} allowed");
            }
            for field in want.lacks {
                assert!(!obligations.fields.contains(*field), "{field} not allowed");
            }
            assert_eq!(
                obligations.history_days, want.history_days,
                "history window"
            );
            assert_eq!(
                obligations.unattended_limit, want.unattended_limit,
                "budget"
            );
        }
        (Err(refusal), Err(fragment)) => {
            assert!(refusal.to_string().contains(fragment), "{refusal}");
        }
        (got, Ok(_)) => panic!("expected an allow, got {got:?}"),
        (got, Err(fragment)) => panic!("expected a refusal with {fragment:?}, got {got:?}"),
    }
}

#[test]
fn decisions() {
    use Scope::*;
    let set = bundled();
    let unattended = |limit| Some(limit);

    // balance-alerts: accounts and balances, never full identifiers, names or transactions.
    check(
        &set,
        Case::new("balance-alerts", Accounts),
        Ok(Expect {
            object: Object::Account,
            has: &["id", "iban_masked", "currency"],
            lacks: &["iban", "holder_name", "bban", "account_number"],
            history_days: 0,
            unattended_limit: unattended(4),
        }),
    );
    check(
        &set,
        Case::new("balance-alerts", Balances),
        Ok(Expect {
            object: Object::Balance,
            has: &["amount", "currency", "type"],
            lacks: &[],
            history_days: 0,
            unattended_limit: unattended(4),
        }),
    );
    check(
        &set,
        Case::new("balance-alerts", Transactions),
        Err("purpose balance-alerts does not allow scope transactions"),
    );
    check(
        &set,
        Case::new("balance-alerts", Identity),
        Err("does not allow scope identity"),
    );
    // The user being present lifts the budget.
    check(
        &set,
        Case {
            presence: Presence::UserPresent,
            ..Case::new("balance-alerts", Balances)
        },
        Ok(Expect {
            object: Object::Balance,
            has: &["amount"],
            lacks: &[],
            history_days: 0,
            unattended_limit: None,
        }),
    );
    // History: the smaller of the consent's and the policy's window.
    check(
        &set,
        Case::new("fraud-alerts", Transactions),
        Ok(Expect {
            object: Object::Transaction,
            has: &["amount", "counterparty_name", "merchant_category_code"],
            lacks: &["bank_code"],
            history_days: 30,
            unattended_limit: unattended(24),
        }),
    );
    check(
        &set,
        Case {
            consent_history_days: 7,
            ..Case::new("fraud-alerts", Transactions)
        },
        Ok(Expect {
            object: Object::Transaction,
            has: &["amount"],
            lacks: &[],
            history_days: 7,
            unattended_limit: unattended(24),
        }),
    );
    check(
        &set,
        Case::new("personal-finance", Transactions),
        Ok(Expect {
            object: Object::Transaction,
            has: &["counterparty_name", "bank_code"],
            lacks: &[],
            history_days: 365,
            unattended_limit: unattended(4),
        }),
    );
    // Identity purposes: names and masked identifiers, nothing more.
    check(
        &set,
        Case::new("p2p-payments-payee-check", Identity),
        Ok(Expect {
            object: Object::Identity,
            has: &["holder_name", "iban_masked", "account_id"],
            lacks: &["iban", "bban", "account_number", "sort_code"],
            history_days: 0,
            unattended_limit: unattended(20),
        }),
    );
    check(
        &set,
        Case::new("p2p-payments-payee-check", Accounts),
        Ok(Expect {
            object: Object::Account,
            has: &["id", "iban_masked"],
            lacks: &["holder_name", "iban", "display_name"],
            history_days: 0,
            unattended_limit: unattended(20),
        }),
    );
    check(
        &set,
        Case::new("p2p-payments-payee-check", Balances),
        Err("does not allow scope balances"),
    );
    check(
        &set,
        Case {
            consent_age_days: 0,
            presence: Presence::UserPresent,
            ..Case::new("kyc-verification", Identity)
        },
        Ok(Expect {
            object: Object::Identity,
            has: &["holder_name"],
            lacks: &["iban"],
            history_days: 0,
            unattended_limit: None,
        }),
    );
    // kyc-verification has no unattended budget at all: limit 0.
    check(
        &set,
        Case {
            consent_age_days: 0,
            ..Case::new("kyc-verification", Identity)
        },
        Ok(Expect {
            object: Object::Identity,
            has: &["holder_name"],
            lacks: &[],
            history_days: 0,
            unattended_limit: unattended(0),
        }),
    );
    check(
        &set,
        Case::new("credit-assessment", Balances),
        Ok(Expect {
            object: Object::Balance,
            has: &["amount", "credit_limit_included"],
            lacks: &[],
            history_days: 365,
            unattended_limit: unattended(4),
        }),
    );
    // The lifetime of the version in force bounds old consents too.
    check(
        &set,
        Case {
            consent_age_days: 31,
            ..Case::new("credit-assessment", Balances)
        },
        Err("at most 30 days"),
    );
    check(
        &set,
        Case {
            consent_age_days: 2,
            ..Case::new("kyc-verification", Identity)
        },
        Err("at most 1 days"),
    );
    // Region and withdrawal.
    check(
        &set,
        Case {
            region: "US",
            ..Case::new("balance-alerts", Balances)
        },
        Err("allows processing only in EEA, UK"),
    );
    check(
        &set,
        Case::new("advertising", Balances),
        Err("purpose advertising is no longer offered"),
    );
    check(
        &set,
        Case::new("retired-purpose", Balances),
        Err("no longer offered"),
    );
}

#[test]
fn a_stricter_version_applies_to_existing_consents() {
    use Scope::*;
    let before = bundled();
    let stricter_text = FRAUD_ALERTS
        .replace("max_history_days = 30", "max_history_days = 7")
        .replace("\"counterparty_name\", ", "")
        .replace("max_unattended_per_day = 24", "max_unattended_per_day = 2");
    let stricter = Policy::parse(Path::new("fraud-alerts.toml"), &stricter_text).unwrap();
    let after = PolicySet::new(
        before
            .iter()
            .filter(|policy| policy.id != "fraud-alerts")
            .map(|policy| (**policy).clone())
            .chain([stricter.clone()]),
        before.prohibited().map(|entry| (**entry).clone()),
    );
    let case = || Case::new("fraud-alerts", Transactions);
    check(
        &before,
        case(),
        Ok(Expect {
            object: Object::Transaction,
            has: &["counterparty_name"],
            lacks: &[],
            history_days: 30,
            unattended_limit: Some(24),
        }),
    );
    check(
        &after,
        case(),
        Ok(Expect {
            object: Object::Transaction,
            has: &["amount"],
            lacks: &["counterparty_name"],
            history_days: 7,
            unattended_limit: Some(2),
        }),
    );
    let changes = after.changes_from(&before);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(matches!(&changes[0], Change::Changed { policy, previous }
            if policy.hash == stricter.hash && *previous == before.get("fraud-alerts").unwrap().hash));
}

#[test]
fn changes_name_added_and_removed_purposes() {
    let before = bundled();
    let after = PolicySet::new(
        before
            .iter()
            .filter(|policy| policy.id != "credit-assessment")
            .map(|policy| (**policy).clone()),
        [],
    );
    assert_eq!(
        after.changes_from(&before),
        [Change::Removed {
            id: "credit-assessment".into(),
            hash: before.get("credit-assessment").unwrap().hash.clone(),
        }]
    );
    assert!(matches!(
        before.changes_from(&after).as_slice(),
        [Change::Added(policy)] if policy.id == "credit-assessment"
    ));
    assert!(before.changes_from(&before).is_empty());
}

#[test]
fn retry_after_counts_to_the_next_utc_day() {
    let at = |h, m, s| Utc.with_ymd_and_hms(2025, 6, 1, h, m, s).unwrap();
    assert_eq!(seconds_until_next_utc_day(at(0, 0, 0)), 86_400);
    assert_eq!(seconds_until_next_utc_day(at(23, 59, 0)), 60);
    assert_eq!(seconds_until_next_utc_day(at(23, 59, 59)), 1);
    let almost = at(23, 59, 59) + Duration::milliseconds(999);
    assert_eq!(seconds_until_next_utc_day(almost), 1);
    assert_eq!(
        seconds_until_next_utc_day(at(12, 0, 0) + Duration::milliseconds(500)),
        43_200
    );
}

// Loading and validation.

#[test]
fn the_bundled_set_is_complete() {
    let set = bundled();
    let ids: Vec<&str> = set.iter().map(|policy| policy.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "balance-alerts",
            "credit-assessment",
            "fraud-alerts",
            "kyc-verification",
            "p2p-payment",
            "p2p-payments-payee-check",
            "personal-finance",
        ]
    );
    let prohibited: Vec<&str> = set.prohibited().map(|entry| entry.id.as_str()).collect();
    assert_eq!(
        prohibited,
        ["advertising", "data-selling", "marketing-profiling"]
    );
    for policy in set.iter() {
        assert!(policy.hash.starts_with("sha256:"));
        assert!(!policy.regions.is_empty());
        // Every bundled purpose speaks French on the consent screen.
        let (title, description, translated) = policy.text_in("fr");
        assert!(translated, "{} has no [text.fr]", policy.id);
        assert!(title != policy.title && description != policy.description);
    }
    let alerts = set.get("balance-alerts").unwrap();
    assert_eq!(alerts.text_in("fr").0, "Alertes de solde");
    assert_eq!(
        alerts.text_in("en"),
        (alerts.title.as_str(), alerts.description.as_str(), true)
    );
    assert!(
        !alerts.text_in("de").2,
        "no German: the English text, said so"
    );
    let kyc = set.get("kyc-verification").unwrap();
    assert_eq!(kyc.scopes, [Scope::Identity].into());
    assert_eq!(kyc.legal_basis, LegalBasis::LegalObligation);
    assert_eq!(set.get("personal-finance").unwrap().max_history_days, 365);
    assert!(set.get("p2p-payments-payee-check").unwrap().onward_sharing);
}

/// Parses `text` as `p.toml` and expects a diagnostic at `line` containing `fragment`.
#[track_caller]
fn check_invalid(text: &str, line: usize, fragment: &str) {
    let error = Policy::parse(Path::new("p.toml"), text).unwrap_err();
    let found = error
        .diagnostics()
        .iter()
        .any(|diagnostic| diagnostic.line == Some(line) && diagnostic.message.contains(fragment));
    assert!(found, "expected p.toml:{line}: …{fragment}…, got:\n{error}");
    assert!(error.to_string().starts_with("p.toml:"), "{error}");
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .map(|index| index + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

/// Replaces `from` (which `text` holds) by `to` and expects a diagnostic at the first line of
/// the result containing `at` that contains `fragment`.
#[track_caller]
fn check_edited(text: &str, (from, to): (&str, &str), at: &str, fragment: &str) {
    assert!(text.contains(from), "{from:?} not in the text");
    let edited = text.replace(from, to);
    check_invalid(&edited, line_of(&edited, at), fragment);
}

#[test]
fn invalid_policies_name_file_and_line() {
    let text = BALANCE_ALERTS;
    let long_title = format!("title = \"{}\"", "é".repeat(81));
    let cases = [
        // Unknown keys, at the key.
        (
            (
                "onward_sharing = false",
                "onward_sharing = false\nextra = 1",
            ),
            "extra = 1",
            "unknown field `extra`",
        ),
        (
            ("account = [", "acount = ["),
            "acount = [",
            "unknown field `acount`",
        ),
        // Unknown fields and scopes, at the value.
        (
            ("\"iban_masked\"", "\"ibann\""),
            "\"ibann\"",
            "fields.account: unknown field \"ibann\"",
        ),
        (
            ("\"balances\"]", "\"gossip\"]"),
            "scopes =",
            "unknown scope \"gossip\"",
        ),
        // A scope allowed without a field list.
        (
            ("\"balances\"]", "\"balances\", \"transactions\"]"),
            "scopes =",
            "scope \"transactions\" is allowed but [fields] has no transaction list",
        ),
        // Holder names are identity data.
        (
            (
                "\"iban_masked\", \"status\"]",
                "\"holder_name\", \"status\"]",
            ),
            "\"holder_name\"",
            "needs scope \"identity\"",
        ),
        // Bad numbers: out of range, wrong type, history without transactions.
        (
            ("max_consent_days = 90", "max_consent_days = 0"),
            "max_consent_days",
            "max_consent_days must be between 1 and 730, not 0",
        ),
        (
            ("retention_days = 30", "retention_days = -1"),
            "retention_days =",
            "retention_days must be between 0 and 3650",
        ),
        (
            (
                "max_unattended_per_day = 4",
                "max_unattended_per_day = \"four\"",
            ),
            "max_unattended_per_day =",
            "invalid type",
        ),
        (
            ("max_history_days = 0", "max_history_days = 30"),
            "max_history_days",
            "scope \"transactions\" is not allowed",
        ),
        // Regions, legal basis, duplicates.
        (
            ("[\"EEA\", \"UK\"]", "[\"EEA\", \"Mars\"]"),
            "regions =",
            "unknown region \"Mars\"",
        ),
        (
            ("legal_basis = \"consent\"", "legal_basis = \"because\""),
            "legal_basis",
            "unknown legal_basis",
        ),
        (
            ("\"status\"]", "\"status\", \"id\"]"),
            "\"status\", \"id\"]",
            "\"id\" is listed twice",
        ),
        // Translations: known languages only, the same limits as the English text.
        (
            ("[text.fr]", "[text.de]"),
            "[text.de]",
            "[text.de]: unknown language; expected one of fr",
        ),
        (
            ("title = \"Alertes de solde\"", "title = \"  \""),
            "title = \"  \"",
            "text.fr.title must not be empty",
        ),
        (
            ("title = \"Alertes de solde\"", long_title.as_str()),
            "éé",
            "text.fr.title must be at most 80 characters",
        ),
        (
            ("[text.fr]\n", "[text.fr]\nsubtitle = \"x\"\n"),
            "subtitle",
            "unknown field `subtitle`",
        ),
    ];
    for (edit, at, fragment) in cases {
        check_edited(text, edit, at, fragment);
    }
    // A field allowed whose scope is not.
    let contradiction = format!("{text}transaction = [\"amount\"]\n");
    check_invalid(
        &contradiction,
        line_of(&contradiction, "transaction = ["),
        "fields.transaction allows fields but scope \"transactions\" is not allowed",
    );
    // A missing key.
    let missing = text.replace("onward_sharing = false\n", "");
    let error = Policy::parse(Path::new("p.toml"), &missing).unwrap_err();
    assert!(
        error.to_string().contains("missing field `onward_sharing`"),
        "{error}"
    );
}

#[test]
fn several_problems_are_reported_at_once() {
    let text = BALANCE_ALERTS
        .replace("max_consent_days = 90", "max_consent_days = 0")
        .replace("\"iban_masked\"", "\"ibann\"")
        .replace("[\"EEA\", \"UK\"]", "[\"EEA\", \"Mars\"]");
    let error = Policy::parse(Path::new("p.toml"), &text).unwrap_err();
    assert_eq!(error.diagnostics().len(), 3, "{error}");
}

#[test]
fn the_set_rejects_prohibited_ids_duplicates_and_misnamed_files() {
    let dir = std::env::temp_dir().join(format!("bankgate-policy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    assert!(PolicySet::load_dir(&dir).is_ok());

    let advertising = BALANCE_ALERTS.replace("id = \"balance-alerts\"", "id = \"advertising\"");
    std::fs::write(dir.join("advertising.toml"), &advertising).unwrap();
    std::fs::write(dir.join("copy.toml"), BALANCE_ALERTS).unwrap();
    let error = PolicySet::load_dir(&dir).unwrap_err().to_string();
    let id_line = line_of(BALANCE_ALERTS, "id = ");
    let advertising_path = dir.join("advertising.toml");
    assert!(
        error.contains(&format!(
            "{}:{id_line}: purpose \"advertising\" is prohibited",
            advertising_path.display()
        )),
        "{error}"
    );
    let copy = dir.join("copy.toml");
    assert!(
        error.contains(&format!(
            "{}:{id_line}: id \"balance-alerts\" does not match the file name",
            copy.display()
        )),
        "{error}"
    );
    assert!(
        error.contains("duplicate purpose id \"balance-alerts\""),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// The field allow-list, as a property.

fn arb_policy() -> impl Strategy<Value = Policy> {
    let subset = |object: Object| {
        proptest::sample::subsequence(object.fields().to_vec(), 0..=object.fields().len()).prop_map(
            |fields| {
                fields
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<BTreeSet<_>>()
            },
        )
    };
    (
        subset(Object::Account),
        subset(Object::Balance),
        subset(Object::Transaction),
        subset(Object::Identity),
    )
        .prop_map(|(account, balance, transaction, identity)| Policy {
            id: "random".into(),
            title: "Random".into(),
            description: "Random".into(),
            text: BTreeMap::new(),
            legal_basis: LegalBasis::Consent,
            legal_reference: None,
            scopes: Scope::ALL.iter().copied().collect(),
            max_consent_days: 90,
            max_history_days: 30,
            max_unattended_per_day: 4,
            regions: ["EEA".to_owned()].into(),
            retention_days: 0,
            onward_sharing: false,
            fields: [
                (Object::Account, account),
                (Object::Balance, balance),
                (Object::Transaction, transaction),
                (Object::Identity, identity),
            ]
            .into(),
            payment: None,
            signals: Vec::new(),
            hash: "sha256:random".into(),
        })
}

fn arb_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ]{0,12}"
}

fn arb_account() -> impl Strategy<Value = Account> {
    let optional = || proptest::option::of(arb_text());
    (
        (arb_text(), arb_text(), optional(), "[A-Z]{3}"),
        (optional(), optional(), optional(), optional()),
        (optional(), optional(), optional()),
    )
        .prop_map(
            |(
                (id, bank_id, display_name, currency),
                (iban, iban_masked, bban, sort_code),
                (account_number, pan_masked, holder_name),
            )| Account {
                id,
                bank_id,
                display_name,
                kind: AccountType::Current,
                currency,
                iban,
                iban_masked,
                bban,
                sort_code,
                account_number,
                pan_masked,
                holder_name,
                status: AccountStatus::Enabled,
            },
        )
}

fn arb_balance() -> impl Strategy<Value = Balance> {
    (
        arb_text(),
        proptest::option::of(arb_text()),
        any::<i64>(),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0i64..4_000_000_000),
    )
        .prop_map(|(account_id, other, cents, included, as_of)| Balance {
            account_id,
            kind: other.map_or(BalanceType::ClosingBooked, BalanceType::Other),
            amount: rust_decimal::Decimal::new(cents, 2),
            currency: "EUR".into(),
            credit_limit_included: included,
            as_of: as_of.and_then(|secs| DateTime::from_timestamp(secs, 0)),
        })
}

fn arb_transaction() -> impl Strategy<Value = Transaction> {
    let optional = || proptest::option::of(arb_text());
    (
        (arb_text(), arb_text(), any::<bool>(), any::<i64>()),
        (optional(), optional(), optional(), optional()),
        proptest::option::of(0i64..20_000),
    )
        .prop_map(
            |(
                (id, account_id, booked, cents),
                (description, counterparty_name, merchant_category_code, bank_code),
                days,
            )| {
                let date = days.map(|days| {
                    chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + Duration::days(days)
                });
                Transaction {
                    id,
                    account_id,
                    status: if booked {
                        TransactionStatus::Booked
                    } else {
                        TransactionStatus::Pending
                    },
                    booking_date: date,
                    value_date: date,
                    amount: rust_decimal::Decimal::new(cents, 2),
                    currency: "EUR".into(),
                    description,
                    counterparty_name,
                    counterparty_country: None,
                    merchant_category_code,
                    bank_code,
                }
            },
        )
}

/// Every key of every released record is on the allow-list (`type_original` counts as `type`),
/// and the reported field names are exactly the keys released.
fn assert_only_allowed<T: Serialize>(policy: &Policy, scope: Scope, records: &[T]) {
    let all: Vec<String> = vec![policy.id.clone()];
    let obligations = policy
        .decide(&DataRequest {
            purpose: &policy.id,
            scope,
            consent_created_at: now(),
            consent_history_days: 0,
            platform: Platform {
                approved_purposes: &all,
                region: "EEA",
            },
            presence: Presence::Unattended,
            now: now(),
        })
        .unwrap();
    let list = &policy.fields[&Object::of_scope(scope)];
    let (values, released) = obligations.apply(records);
    let mut seen = BTreeSet::new();
    for value in &values {
        let map = value.as_object().expect("records stay objects");
        for key in map.keys() {
            let as_listed = if key == "type_original" { "type" } else { key };
            assert!(list.contains(as_listed), "{key} released but not allowed");
            seen.insert(key.clone());
        }
    }
    assert_eq!(released, seen.into_iter().collect::<Vec<_>>());
    assert_eq!(values.len(), records.len());
}

proptest! {
    #[test]
    fn nothing_outside_the_allow_list_is_released(
        policy in arb_policy(),
        accounts in proptest::collection::vec(arb_account(), 0..4),
        balances in proptest::collection::vec(arb_balance(), 0..4),
        transactions in proptest::collection::vec(arb_transaction(), 0..4),
    ) {
        let identities: Vec<IdentityRecord> = accounts.iter().map(IdentityRecord::from).collect();
        assert_only_allowed(&policy, Scope::Accounts, &accounts);
        assert_only_allowed(&policy, Scope::Balances, &balances);
        assert_only_allowed(&policy, Scope::Transactions, &transactions);
        assert_only_allowed(&policy, Scope::Identity, &identities);
    }
}

#[test]
fn obligations_strip_fields() {
    let obligations = Obligations {
        object: Object::Balance,
        fields: ["account_id", "amount", "type"].map(String::from).into(),
        history_days: 0,
        unattended_limit: None,
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
    let a = Policy::parse(Path::new("balance-alerts.toml"), BALANCE_ALERTS).unwrap();
    let b = Policy::parse(
        Path::new("balance-alerts.toml"),
        &BALANCE_ALERTS.replace("max_consent_days = 90", "max_consent_days = 60"),
    )
    .unwrap();
    assert_ne!(a.hash, b.hash);
    assert!(a.hash.starts_with("sha256:"));
}

#[test]
fn payment_purposes_have_limits() {
    let set = bundled();
    let p2p = set.get("p2p-payment").unwrap();
    assert!(p2p.scopes.is_empty());
    let limits = p2p.payment.as_ref().expect("p2p-payment has [payment]");
    assert_eq!(limits.max_amount_per_payment.to_string(), "250.00");
    assert_eq!(limits.max_amount_per_day.to_string(), "500.00");
    assert_eq!(
        limits.currencies,
        ["EUR".to_owned(), "GBP".to_owned()].into()
    );
    assert!(limits.instant_allowed);
    assert!(set.get("balance-alerts").unwrap().payment.is_none());
}

#[test]
fn invalid_payment_limits_name_file_and_line() {
    let cases = [
        (
            ("\"250.00\"", "250.0"),
            "max_amount_per_payment",
            "invalid type: floating point",
        ),
        (
            ("\"250.00\"", "\"0\""),
            "max_amount_per_payment",
            "payment.max_amount_per_payment must be an amount greater than zero",
        ),
        (
            ("\"500.00\"", "\"lots\""),
            "max_amount_per_day",
            "payment.max_amount_per_day must be an amount greater than zero",
        ),
        (
            ("\"500.00\"", "\"100.00\""),
            "max_amount_per_day",
            "must be at least max_amount_per_payment",
        ),
        (
            ("[\"EUR\", \"GBP\"]", "[\"EUR\", \"XYZ\"]"),
            "currencies =",
            "unknown currency \"XYZ\"",
        ),
        (
            ("[\"EUR\", \"GBP\"]", "[\"EUR\", \"EUR\"]"),
            "currencies =",
            "listed twice",
        ),
        (
            ("[\"EUR\", \"GBP\"]", "[]"),
            "currencies =",
            "payment.currencies must name at least one currency",
        ),
        (
            ("scopes = []", "scopes = [\"accounts\"]"),
            "scopes =",
            "scopes must be []",
        ),
        (
            ("[payment]", "[paiement]"),
            "[paiement]",
            "unknown field `paiement`",
        ),
        (
            ("instant_allowed = true\n", ""),
            "[payment]",
            "missing field `instant_allowed`",
        ),
    ];
    for (edit, at, fragment) in cases {
        check_edited(P2P_PAYMENT, edit, at, fragment);
    }
}

#[test]
fn the_fraud_alerts_signals_load() {
    let policy = Policy::parse(Path::new("fraud-alerts.toml"), FRAUD_ALERTS).unwrap();
    let ids: Vec<&str> = policy
        .signals
        .iter()
        .map(|signal| signal.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "large-debit",
            "new-payee",
            "burst",
            "low-balance",
            "new-country"
        ]
    );
    assert_eq!(
        policy.signals[4].rule,
        super::signals::Rule::CountryNotSeen { days: 30 }
    );
    assert_eq!(
        policy.signals[2].rule,
        super::signals::Rule::DebitsWithin {
            count: 3,
            minutes: 120
        }
    );
    // balance-alerts has none: no fraud signals for it.
    let balance = Policy::parse(Path::new("balance-alerts.toml"), BALANCE_ALERTS).unwrap();
    assert!(balance.signals.is_empty());
}

#[test]
fn invalid_signals_name_file_and_line() {
    let text = FRAUD_ALERTS;
    let cases = [
        (
            ("when = \"debit_above\"", "when = \"debit_over\""),
            "debit_over",
            "unknown rule \"debit_over\"",
        ),
        (
            ("amount = \"500.00\"", "amount = \"-5\""),
            "amount = \"-5\"",
            "signals.large-debit.amount must be an amount greater than zero",
        ),
        (
            ("minutes = 120", "minutes = 0"),
            "minutes = 0",
            "signals.burst.minutes must be between 1 and 10080",
        ),
        (
            ("\ndays = 30", "\ndays = 4000"),
            "days = 4000",
            "signals.new-country.days must be between 1 and 3650",
        ),
    ];
    for (edit, at, fragment) in cases {
        check_edited(text, edit, at, fragment);
    }
    let swap = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    };
    let twice = swap("id = \"new-payee\"", "id = \"large-debit\"");
    let second = twice
        .match_indices("id = \"large-debit\"")
        .nth(1)
        .map(|(at, _)| twice[..at].matches('\n').count() + 1)
        .unwrap();
    check_invalid(&twice, second, "signals: id \"large-debit\" is used twice");
    // A rule's parameter that another rule takes, at the signal's table.
    for ((from, to), signal, fragment) in [
        (
            ("count = 3", "count = 3\namount = \"1.00\""),
            "id = \"burst\"",
            "signals.burst: debits_within takes no amount",
        ),
        (
            ("\ndays = 30", "\ncount = 30"),
            "id = \"new-country\"",
            "signals.new-country: country_not_seen takes no count",
        ),
        (
            ("minutes = 120", "minutes = 120\ndays = 2"),
            "id = \"burst\"",
            "signals.burst: debits_within takes no days",
        ),
    ] {
        let edited = swap(from, to);
        check_invalid(&edited, line_of(&edited, signal) - 1, fragment);
    }
    // A transaction rule needs the transactions scope.
    let without = BALANCE_ALERTS.to_owned()
        + "\n[[signals]]\nid = \"big\"\ntitle = \"Big\"\nwhen = \"debit_above\"\namount = \"1.00\"\n";
    check_invalid(
        &without,
        line_of(&without, "when = \"debit_above\""),
        "signals.big: debit_above looks at transactions",
    );
}
