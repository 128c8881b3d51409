//! Tests of the mapping profile: rules that do not compile (each error naming its rule),
//! every transform case by case, whole payloads through the bundled Nova Bank manifest, a
//! property test that random payloads never panic the engine, and a round trip through the
//! proprietary sandbox bank.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::rules::{self, FieldRule, Kind, MappingSpec};
use super::{Mapping, wire};
use crate::adapters::common::TransactionIds;
use crate::adapters::testing::{self, arbitrary_json};
use crate::adapters::{AdapterError, ConsentRequest, History, Manifest, Profile, account_id};
use crate::model::{BalanceType, Scope, TransactionStatus};

const BANK: &str = "nova-bank";
const ACCOUNT: &str = "acc_test";

/// The bundled manifest of the Nova Bank sandbox: the reference mapping.
fn nova() -> Manifest {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/nova-bank.toml");
    Manifest::load(std::path::Path::new(path)).unwrap()
}

fn nova_spec() -> MappingSpec {
    nova().mapping.unwrap()
}

fn nova_rules() -> rules::CompiledMapping {
    rules::compile(&nova_spec()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Rules that do not compile

#[track_caller]
fn check_refused(edit: impl FnOnce(&mut MappingSpec), expected: &str) {
    let mut spec = nova_spec();
    edit(&mut spec);
    let error = rules::compile(&spec).unwrap_err().to_string();
    assert!(
        error.contains(expected),
        "expected {expected:?} in {error:?}"
    );
}

fn rule(toml_text: &str) -> FieldRule {
    #[derive(serde::Deserialize)]
    struct One {
        rule: FieldRule,
    }
    toml::from_str::<One>(&format!("rule = {toml_text}"))
        .unwrap_or_else(|error| panic!("{toml_text}: {error}"))
        .rule
}

#[test]
fn the_bundled_mapping_compiles() {
    let rules = nova_rules();
    assert_eq!(rules.accounts.fields.len(), 8);
    assert_eq!(rules.scopes[&Scope::Balances], ["balances:read"]);
    assert_eq!(
        rules.transactions.as_ref().unwrap().from_param.as_deref(),
        Some("since")
    );
}

#[test]
fn rules_that_do_not_compile_are_named() {
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert("amout".into(), rule(r#""/x""#));
        },
        "mapping rule mapping.balances.fields.amout: unknown field; expected one of type, amount",
    );
    check_refused(
        |spec| {
            spec.balances.as_mut().unwrap().fields.remove("amount");
        },
        "mapping.balances.fields.amount: is required",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert("amount".into(), rule(r#""amountMinor""#));
        },
        "mapping.balances.fields.amount: \"amountMinor\" is not a JSON pointer",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert("amount".into(), rule(r#"{ pointer = "/a~2b" }"#));
        },
        "~ must be followed by 0 or 1",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "type".into(),
                rule(r#"{ pointer = "/kind", values = { LEDGER = "booked" } }"#),
            );
        },
        "mapping.balances.fields.type: value \"booked\" is not one of closing_booked",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "as_of".into(),
                rule(r#"{ pointer = "/asOf", format = "%d.%m.%Y %Q" }"#),
            );
        },
        "mapping.balances.fields.as_of: \"%d.%m.%Y %Q\" is not a valid strftime format",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "currency".into(),
                rule(r#"{ pointer = "/ccy", minor_units = "currency" }"#),
            );
        },
        "mapping.balances.fields.currency: minor_units and sign are for amounts only",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "amount".into(),
                rule(r#"{ pointer = "/a", minor_units = "cents" }"#),
            );
        },
        "minor_units \"cents\": expected \"currency\" or an exponent",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "amount".into(),
                rule(r#"{ pointer = "/a", sign = { pointer = "/dc", debit = ["D"], credit = ["D"] } }"#),
            );
        },
        "a value cannot be both debit and credit",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert("currency".into(), rule(r#"{ value = "EURO" }"#));
        },
        "mapping.balances.fields.currency: value \"EURO\": currency is not an ISO 4217 code",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert("amount".into(), rule(r#"{ value = "12.00" }"#));
        },
        "an amount cannot be a constant",
    );
    check_refused(
        |spec| {
            let fields = &mut spec.balances.as_mut().unwrap().fields;
            fields.insert(
                "currency".into(),
                rule(r#"{ pointer = "/c", value = "EUR" }"#),
            );
        },
        "give a pointer or a value, not both",
    );
    check_refused(
        |spec| spec.balances.as_mut().unwrap().path = "/me/accounts/positions".into(),
        "mapping.balances.path: must contain the segment {account} exactly once",
    );
    check_refused(
        |spec| spec.accounts.path = "/me/{account}/accounts".into(),
        "mapping.accounts.path: lists accounts: no {account} here",
    );
    check_refused(
        |spec| spec.accounts.path = "/me/acc-{id}".into(),
        "the only placeholder is the whole segment {account}",
    );
    check_refused(
        |spec| spec.transactions.as_mut().unwrap().from_format = Some("%H:%M".into()),
        "mapping.transactions.from_format: \"%H:%M\" cannot write a day",
    );
    check_refused(
        |spec| {
            spec.headers
                .insert("Authorization".into(), "Bearer abc".into());
        },
        "mapping.headers.Authorization: may not be set by a mapping",
    );
    check_refused(
        |spec| {
            spec.scopes.insert("payments".into(), "pay".into());
        },
        "mapping.scopes.payments: not a canonical scope",
    );
}

#[test]
fn a_manifest_with_a_bad_rule_is_a_manifest_error_naming_the_rule() {
    let mut manifest = nova();
    let fields = &mut manifest.mapping.as_mut().unwrap().accounts.fields;
    fields.insert(
        "type".into(),
        rule(r#"{ pointer = "/product", default = "cheque" }"#),
    );
    let error = manifest.validate().unwrap_err().to_string();
    assert!(
        error.contains("nova-bank: mapping rule mapping.accounts.fields.type: default \"cheque\""),
        "{error}"
    );
    // Unknown keys in a rule are refused with the rule's own words.
    let error = toml::from_str::<Manifest>(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/adapters/nova-bank.toml"
        ))
        .unwrap()
        .replace("id = \"/movementId\"", "id = { pointr = \"/movementId\" }"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("unknown field `pointr`"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// One field, case by case

/// Applies a rule for a field of `kind` to `item`; the result as text (`-` for missing,
/// `error: …` for a refusal).
#[track_caller]
fn check(kind: Kind, rule_toml: &str, item: Value, expected: &str) {
    check_text(kind, rule_toml, &item.to_string(), expected);
}

/// [`check`] on the item's JSON text as the bank wrote it (numbers beyond `f64` included).
#[track_caller]
fn check_text(kind: Kind, rule_toml: &str, item: &str, expected: &str) {
    let compiled = rules::compile_rule(kind, &rule(rule_toml))
        .unwrap_or_else(|error| panic!("{rule_toml}: {error}"));
    let raw = serde_json::value::RawValue::from_string(item.to_owned()).unwrap();
    let parsed: Value = serde_json::from_str(item).unwrap();
    let currency = parsed["ccy"].as_str();
    let actual = match kind {
        Kind::Amount => compiled
            .amount(&raw, currency)
            .map(|amount| amount.map(|amount| amount.to_string())),
        Kind::Date => compiled
            .date(&raw)
            .map(|date| date.map(|date| date.to_string())),
        Kind::DateTime => compiled
            .date_time(&raw)
            .map(|time| time.map(|time| time.to_rfc3339())),
        Kind::Bool => compiled
            .boolean(&raw)
            .map(|value| value.map(|value| value.to_string())),
        _ => compiled.text(&raw),
    };
    let actual = match actual {
        Ok(Some(value)) => value,
        Ok(None) => "-".to_owned(),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(actual, expected, "{rule_toml} on {item}");
}

const MINOR: &str = r#"{ pointer = "/v", minor_units = "currency", sign = { pointer = "/dc", debit = ["D", "DR"], credit = ["C"] } }"#;

#[test]
fn amounts_in_minor_units_take_the_currency_exponent_and_the_indicator_sign() {
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 15237, "ccy": "EUR", "dc": "D"}),
        "-152.37",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": "15237", "ccy": "EUR", "dc": "C"}),
        "152.37",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 500, "ccy": "EUR", "dc": "DR"}),
        "-5.00",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 1500, "ccy": "JPY", "dc": "D"}),
        "-1500",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 1500, "ccy": "KWD", "dc": "C"}),
        "1.500",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 0, "ccy": "EUR", "dc": "D"}),
        "0.00",
    );
    // A bank that signs anyway: the indicator wins, the magnitude counts.
    check(
        Kind::Amount,
        MINOR,
        json!({"v": -250, "ccy": "EUR", "dc": "C"}),
        "2.50",
    );
    // Numbers are read from their text: beyond f64's precision and in exponent form.
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 12345678901234567u64, "ccy": "EUR", "dc": "C"}),
        "123456789012345.67",
    );
    check_text(
        Kind::Amount,
        r#"{ pointer = "/v" }"#,
        r#"{"v": 0.1000000000000000055511151231}"#,
        "0.1000000000000000055511151231",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": "1.5e3", "ccy": "EUR", "dc": "C"}),
        "15.00",
    );
    check(
        Kind::Amount,
        r#"{ pointer = "/v", minor_units = 3 }"#,
        json!({"v": "-1234"}),
        "-1.234",
    );
    check(Kind::Amount, r#""/v""#, json!({"v": "-12.30"}), "-12.30");
    check(Kind::Amount, MINOR, json!({"ccy": "EUR", "dc": "D"}), "-");
    check(Kind::Amount, MINOR, json!({"v": null, "ccy": "EUR"}), "-");
    check(
        Kind::Amount,
        MINOR,
        json!({"v": "12.5", "ccy": "EUR", "dc": "D"}),
        "error: an amount in minor units must be a whole number",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 100, "ccy": "XAU", "dc": "D"}),
        "error: the record's currency has no minor unit",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 100, "ccy": "EUR", "dc": "X"}),
        "error: sign indicator \"X\" is neither debit nor credit",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": 100, "ccy": "EUR"}),
        "error: the sign indicator is missing",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": "12,50", "ccy": "EUR", "dc": "C"}),
        "error: not a decimal number",
    );
    check(
        Kind::Amount,
        MINOR,
        json!({"v": {"units": 1}, "ccy": "EUR", "dc": "C"}),
        "error: is an object or array, not a value",
    );
}

#[test]
fn dates_and_times_follow_the_rule_format() {
    let day = |rule, item, expected| check(Kind::Date, rule, item, expected);
    day(
        r#"{ pointer = "/d", format = "%d.%m.%Y" }"#,
        json!({"d": "14.03.2025"}),
        "2025-03-14",
    );
    day(r#""/d""#, json!({"d": "2025-03-14"}), "2025-03-14");
    day(
        r#""/d""#,
        json!({"d": "2025-03-14T10:00:00Z"}),
        "2025-03-14",
    );
    day(
        r#"{ pointer = "/d", format = "%Y%m%d" }"#,
        json!({"d": 20250314}),
        "2025-03-14",
    );
    day(
        r#"{ pointer = "/d", format = "unix" }"#,
        json!({"d": 1741910400}),
        "2025-03-14",
    );
    day(
        r#"{ pointer = "/d", format = "unix_ms" }"#,
        json!({"d": "1741910400000"}),
        "2025-03-14",
    );
    day(r#""/d""#, json!({"d": ""}), "-");
    day(
        r#"{ pointer = "/d", format = "%d.%m.%Y" }"#,
        json!({"d": "2025-03-14"}),
        "error: not a date in the format \"%d.%m.%Y\"",
    );
    day(
        r#"{ pointer = "/d", format = "unix" }"#,
        json!({"d": "99999999999999999999"}),
        "error: not a whole number of seconds",
    );
    let time = |rule, item, expected| check(Kind::DateTime, rule, item, expected);
    time(
        r#"{ pointer = "/t", format = "%d.%m.%Y %H:%M" }"#,
        json!({"t": "14.03.2025 09:26"}),
        "2025-03-14T09:26:00+00:00",
    );
    time(
        r#"{ pointer = "/t", format = "%Y-%m-%d %H:%M:%S %z" }"#,
        json!({"t": "2025-03-14 10:26:00 +0100"}),
        "2025-03-14T09:26:00+00:00",
    );
    time(
        r#""/t""#,
        json!({"t": "2025-03-14T09:26:00+01:00"}),
        "2025-03-14T08:26:00+00:00",
    );
    time(
        r#""/t""#,
        json!({"t": "2025-03-14"}),
        "2025-03-14T00:00:00+00:00",
    );
    time(
        r#"{ pointer = "/t", format = "%d.%m.%Y" }"#,
        json!({"t": "14.03.2025"}),
        "2025-03-14T00:00:00+00:00",
    );
}

#[test]
fn codes_map_through_tables_defaults_and_constants() {
    let table = r#"{ pointer = "/k", values = { LEDGER = "closing_booked", AVAIL = "interim_available" } }"#;
    let balance_type =
        |item, expected| check(Kind::Enum(rules::BALANCE_TYPES), table, item, expected);
    balance_type(json!({"k": "LEDGER"}), "closing_booked");
    balance_type(json!({"k": " AVAIL "}), "interim_available");
    // Not in the table and no default: the bank's code (the record keeps it as `other`).
    balance_type(json!({"k": "UNBILLED"}), "UNBILLED");
    balance_type(json!({}), "-");
    let with_default = r#"{ pointer = "/p", values = { GIRO = "current" }, default = "other" }"#;
    check(
        Kind::Enum(rules::ACCOUNT_TYPES),
        with_default,
        json!({"p": "GIRO"}),
        "current",
    );
    check(
        Kind::Enum(rules::ACCOUNT_TYPES),
        with_default,
        json!({"p": "LOAN"}),
        "other",
    );
    check(
        Kind::Enum(rules::ACCOUNT_TYPES),
        with_default,
        json!({}),
        "other",
    );
    check(
        Kind::Text,
        r#"{ value = "Nova Bank" }"#,
        json!({"x": 1}),
        "Nova Bank",
    );
    check(Kind::Currency, r#"{ value = "EUR" }"#, json!({}), "EUR");
    check(
        Kind::Text,
        r#""/a/0/b~1c""#,
        json!({"a": [{"b/c": "deep"}]}),
        "deep",
    );
    check(Kind::Text, r#""/a/01""#, json!({"a": ["x", "y"]}), "-");
    check(Kind::Text, r#""/a/b""#, json!({"a": "scalar"}), "-");
    check(Kind::Text, r#""/n""#, json!({"n": 12.50}), "12.5");
    check(Kind::Text, r#""/n""#, json!({"n": true}), "true");
    let flag = r#"{ pointer = "/f", values = { Y = "true", N = "false" } }"#;
    check(Kind::Bool, flag, json!({"f": "Y"}), "true");
    check(Kind::Bool, flag, json!({"f": "N"}), "false");
    check(
        Kind::Bool,
        flag,
        json!({"f": "maybe"}),
        "error: not true or false",
    );
    check(Kind::Bool, r#""/f""#, json!({"f": false}), "false");
}

// ---------------------------------------------------------------------------------------------
// Whole payloads through the Nova Bank mapping

fn raw(value: Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(value.to_string()).unwrap()
}

#[test]
fn accounts_are_identified_typed_and_skipped_when_unreadable() {
    let rules = nova_rules();
    let body = raw(json!({"result": {"items": [
        {"accountRef": "alice-giro", "label": "Main Account", "product": "GIRO", "ccy": "EUR",
         "ibanCode": "DE92 9999 0000 0012 3456 01", "state": "ACTIVE", "owner": "Alice Schmidt"},
        {"accountRef": "alice-card", "label": "Credit Card", "product": "CARD", "ccy": "EUR",
         "maskedCard": "489537******7421", "state": "LOCKED"},
        {"accountRef": "wallet", "product": "FX", "ccy": "MULTI", "ibanCode": "DE00123"},
        {"label": "no reference"},
    ], "next": null}, "error": null}));
    let accounts = wire::accounts(&rules.accounts, BANK, &body).unwrap();
    assert_eq!(accounts.len(), 3, "the one without a reference is skipped");
    let giro = &accounts[0];
    assert_eq!(giro.bank_ref, "alice-giro");
    assert_eq!(giro.account.id, account_id(BANK, "DE92999900000012345601"));
    assert_eq!(giro.account.iban.as_deref(), Some("DE92999900000012345601"));
    assert_eq!(
        giro.account.iban_masked.as_deref(),
        Some("DE92**************5601")
    );
    assert_eq!(
        serde_json::to_value(giro.account.kind).unwrap(),
        json!("current")
    );
    assert_eq!(giro.account.holder_name.as_deref(), Some("Alice Schmidt"));
    let card = &accounts[1];
    assert_eq!(card.account.id, account_id(BANK, "PAN:489537******7421"));
    assert_eq!(
        serde_json::to_value(card.account.status).unwrap(),
        json!("blocked")
    );
    let wallet = &accounts[2];
    assert_eq!(wallet.account.currency, "XXX");
    assert_eq!(wallet.account.iban, None, "a bad IBAN is dropped");
    assert_eq!(wallet.account.id, account_id(BANK, "wallet"));
    assert_eq!(
        serde_json::to_value(wallet.account.kind).unwrap(),
        json!("other")
    );
}

#[test]
fn balances_keep_unknown_kinds_and_skip_incomplete_entries() {
    let rules = nova_rules();
    let endpoint = rules.balances.as_ref().unwrap();
    let body = raw(json!({"result": {"positions": [
        {"kind": "LEDGER", "amountMinor": 15237, "ccy": "EUR", "dc": "D", "asOf": "13.03.2025 23:59", "creditIncluded": "N"},
        {"kind": "UNBILLED", "amountMinor": 21245, "ccy": "EUR", "dc": "D", "asOf": "14.03.2025 09:26"},
        {"kind": "AVAILABLE", "ccy": "EUR", "dc": "C"},
        {"amountMinor": 1, "ccy": "EUR", "dc": "C"},
    ]}, "error": null}));
    let balances = wire::balances(endpoint, ACCOUNT, &body).unwrap();
    assert_eq!(balances.len(), 2, "{balances:?}");
    assert_eq!(balances[0].kind, BalanceType::ClosingBooked);
    assert_eq!(balances[0].amount.to_string(), "-152.37");
    assert_eq!(balances[0].credit_limit_included, Some(false));
    assert_eq!(
        balances[0].as_of.map(|time| time.to_rfc3339()).as_deref(),
        Some("2025-03-13T23:59:00+00:00")
    );
    assert_eq!(balances[1].kind, BalanceType::Other("UNBILLED".into()));
    assert_eq!(balances[1].credit_limit_included, None);
    // A balance with a currency the bank cannot spell is refused, naming the entry.
    let bad = raw(json!({"result": {"positions": [
        {"kind": "LEDGER", "amountMinor": 1, "ccy": "€", "dc": "C"},
    ]}, "error": null}));
    let error = wire::balances(endpoint, ACCOUNT, &bad)
        .unwrap_err()
        .to_string();
    assert!(error.contains("balances[0].currency"), "{error}");
}

#[test]
fn transactions_get_status_sign_dates_and_deterministic_ids() {
    let rules = nova_rules();
    let endpoint = rules.transactions.as_ref().unwrap();
    let body = raw(json!({"result": {"movements": [
        {"movementId": "tx-1", "state": "POSTED", "postedOn": "09.03.2025", "valueOn": "09.03.2025",
         "amountMinor": "115000", "ccy": "EUR", "dc": "D", "text": "Miete", "party": "Hausverwaltung", "code": "PMNT-ICDT-STDO"},
        {"state": "HELD", "valueOn": "14.03.2025", "amountMinor": "5420", "ccy": "EUR", "dc": "D",
         "text": "Lidl", "mcc": "5411"},
        {"state": "HELD", "valueOn": "14.03.2025", "amountMinor": "5420", "ccy": "EUR", "dc": "D",
         "text": "Lidl", "mcc": "5411"},
    ], "next": null}, "error": null}));
    let transactions =
        wire::transactions(endpoint, ACCOUNT, &body, &mut TransactionIds::default()).unwrap();
    assert_eq!(transactions[0].id, "tx-1");
    assert_eq!(transactions[0].amount.to_string(), "-1150.00");
    assert_eq!(transactions[0].status, TransactionStatus::Booked);
    assert_eq!(
        transactions[0].booking_date.unwrap().to_string(),
        "2025-03-09"
    );
    assert_eq!(transactions[1].status, TransactionStatus::Pending);
    assert_eq!(transactions[1].booking_date, None);
    assert_eq!(
        transactions[1].merchant_category_code.as_deref(),
        Some("5411")
    );
    assert!(transactions[1].id.starts_with("txn_"));
    assert_ne!(
        transactions[1].id, transactions[2].id,
        "identical entries are told apart"
    );
    let again =
        wire::transactions(endpoint, ACCOUNT, &body, &mut TransactionIds::default()).unwrap();
    assert_eq!(transactions, again, "ids are deterministic");

    let unsigned = raw(json!({"result": {"movements": [
        {"movementId": "tx-2", "amountMinor": "100", "ccy": "EUR", "valueOn": "14.03.2025"},
    ]}, "error": null}));
    let error = wire::transactions(endpoint, ACCOUNT, &unsigned, &mut TransactionIds::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("transactions[0].amount: the sign indicator is missing"),
        "{error}"
    );
}

#[test]
fn error_bodies_and_missing_lists_are_clear_errors() {
    let rules = nova_rules();
    let pointer = rules.error_pointer.as_ref().unwrap();
    let error_body = br#"{"result": null, "error": {"code": "E503", "message": "maintenance"}}"#;
    assert!(wire::error_in_body(pointer, error_body).is_some());
    assert_eq!(
        wire::error_in_body(pointer, br#"{"result": {"items": []}, "error": null}"#),
        None
    );
    assert_eq!(wire::error_in_body(pointer, b"not json"), None);
    let body = raw(json!({"result": {"positions": "none"}}));
    let error = wire::balances(rules.balances.as_ref().unwrap(), ACCOUNT, &body).unwrap_err();
    assert!(matches!(error, AdapterError::Decode(_)), "{error}");
    let body = raw(json!({"result": {}}));
    let error = wire::accounts(&rules.accounts, BANK, &body).unwrap_err();
    assert!(
        error.to_string().contains("no list at \"/result/items\""),
        "{error}"
    );
    let empty = raw(json!({"result": {"items": null}}));
    assert!(
        wire::accounts(&rules.accounts, BANK, &empty)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn consents_ask_for_the_mapped_scopes_only_of_what_the_bank_offers() {
    let mut spec = nova_spec();
    spec.transactions = None;
    let mapping = Mapping::compile(&spec).unwrap();
    assert_eq!(
        mapping.scopes(),
        [Scope::Accounts, Scope::Balances, Scope::Identity]
    );
    let (_sandbox, bank) = testing::sandbox_bank("mapping", BANK, "/api/v2").await;
    let request = |scopes: &[Scope]| ConsentRequest {
        scopes: scopes.to_vec(),
        valid_until: chrono::Utc::now().date_naive(),
        frequency_per_day: 4,
        recurring: true,
    };
    let consent = mapping
        .create_consent(
            &bank,
            &request(&[Scope::Accounts, Scope::Identity, Scope::Balances]),
        )
        .await
        .unwrap();
    assert_eq!(consent.oauth_scopes, ["accounts:read", "balances:read"]);
    let refused = mapping
        .create_consent(&bank, &request(&[Scope::Transactions]))
        .await
        .unwrap_err();
    assert!(matches!(refused, AdapterError::Refused(_)), "{refused}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_payloads_never_panic_the_mapping_engine(value in arbitrary_json()) {
        let rules = nova_rules();
        let balances = rules.balances.as_ref().unwrap();
        let transactions = rules.transactions.as_ref().unwrap();
        let wrapped = [
            value.clone(),
            json!({"result": {"items": [value.clone()], "positions": [value.clone()],
                              "movements": [value.clone()], "next": value.clone()},
                   "error": value.clone()}),
            json!({"result": {"items": value.clone(), "positions": value.clone(),
                              "movements": value.clone()}}),
        ];
        for payload in wrapped {
            let text = payload.to_string();
            if let Ok(page) = wire::parse(text.as_bytes()) {
                let _ = wire::accounts(&rules.accounts, BANK, page);
                let _ = wire::balances(balances, ACCOUNT, page);
                let _ = wire::transactions(transactions, ACCOUNT, page, &mut TransactionIds::default());
                if let Some(next) = &transactions.next {
                    let _ = wire::next_link(page, next);
                }
            }
            if let Some(pointer) = &rules.error_pointer {
                let _ = wire::error_in_body(pointer, text.as_bytes());
            }
        }
    }

    #[test]
    fn random_rules_compile_or_are_refused_without_panicking(
        pointer in "(/[a-z~0-9]{0,4}){0,3}|[a-z]{1,3}",
        format in prop_oneof![Just("iso".to_owned()), Just("unix".to_owned()), ".{0,8}"],
        value in ".{0,6}",
        exponent in 0u32..30,
    ) {
        let texts = [
            format!(r#"{{ pointer = "{pointer}", format = {format:?} }}"#),
            format!(r#"{{ pointer = "{pointer}", minor_units = {exponent} }}"#),
            format!(r#"{{ value = {value:?}, format = {format:?} }}"#),
            format!(r#"{{ value = {value:?} }}"#),
        ];
        for text in texts {
            let Ok(parsed) = toml::from_str::<toml::Table>(&format!("rule = {text}")) else { continue };
            let Ok(one) = FieldRule::deserialize_from(parsed) else { continue };
            for kind in [Kind::Text, Kind::Currency, Kind::Amount, Kind::Date, Kind::DateTime,
                         Kind::Bool, Kind::Enum(rules::BALANCE_TYPES)] {
                if let Ok(compiled) = rules::compile_rule(kind, &one) {
                    let item = raw(json!({"a": value.clone(), "b": [1, {"c": value.clone()}]}));
                    let _ = compiled.text(&item);
                    let _ = compiled.amount(&item, Some("EUR"));
                    let _ = compiled.date(&item);
                    let _ = compiled.date_time(&item);
                }
            }
        }
    }
}

impl FieldRule {
    fn deserialize_from(table: toml::Table) -> Result<FieldRule, toml::de::Error> {
        use serde::Deserialize;
        let value = table
            .get("rule")
            .cloned()
            .unwrap_or(toml::Value::Boolean(false));
        FieldRule::deserialize(value)
    }
}

// ---------------------------------------------------------------------------------------------
// A round trip through the proprietary sandbox bank

#[tokio::test]
async fn the_bundled_mapping_reads_the_proprietary_sandbox() {
    let (_sandbox, test_bank) = testing::sandbox_bank("mapping", BANK, "/api/v2").await;
    // The bundled manifest, pointed at this sandbox, with the test bank's credentials.
    let mut manifest = nova();
    manifest.sandbox = None;
    manifest.api_base_url = test_bank.manifest.api_base_url.clone();
    manifest.oauth = crate::adapters::manifest::OAuthEndpoints {
        client_id_env: manifest.oauth.client_id_env.clone(),
        client_secret_env: manifest.oauth.client_secret_env.clone(),
        ..test_bank.manifest.oauth.clone()
    };
    let adapter = crate::adapters::Adapter::new(
        manifest,
        test_bank.client_id.clone(),
        test_bank.client_secret().map(str::to_owned),
        1,
        &crate::egress::Egress::new(true),
    )
    .unwrap();
    let (bank, profile) = (&adapter.bank, &adapter.profile);
    let consent = profile
        .create_consent(
            bank,
            &ConsentRequest {
                scopes: vec![Scope::Accounts, Scope::Balances, Scope::Transactions],
                valid_until: chrono::Utc::now().date_naive(),
                frequency_per_day: 4,
                recurring: true,
            },
        )
        .await
        .unwrap();
    let tokens = testing::tokens(bank, &consent, None).await;
    assert_eq!(
        tokens["scope"],
        "accounts:read balances:read transactions:read"
    );
    let session = testing::session(bank, &tokens, None);
    let accounts = profile.accounts(session).await.unwrap();
    let names: Vec<_> = accounts
        .iter()
        .map(|listed| listed.account.display_name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Main Account", "Savings", "Credit Card"]);
    let giro = &accounts[0];
    let balances = profile
        .balances(session, &giro.account_ref())
        .await
        .unwrap();
    let booked = balances
        .iter()
        .find(|balance| balance.kind == BalanceType::ClosingBooked)
        .unwrap();
    assert_eq!(booked.amount.to_string(), "-152.37");
    assert_eq!(booked.account_id, giro.account.id);

    // Transactions page (ten to a page) and are asked for from a day (`since=yyyymmdd`).
    let all = profile
        .transactions(
            session,
            History {
                account: &giro.account_ref(),
                from: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 16, "two pages");
    let from = chrono::Utc::now().date_naive() - chrono::Days::new(30);
    let recent = profile
        .transactions(
            session,
            History {
                account: &giro.account_ref(),
                from: Some(from),
            },
        )
        .await
        .unwrap();
    assert_eq!(recent.len(), 9);
    let rent = recent.iter().find(|t| t.id == "tx-alice-giro-12").unwrap();
    assert_eq!(rent.amount.to_string(), "-1150.00");
    let savings = &accounts[1];
    let accrual = profile
        .transactions(
            session,
            History {
                account: &savings.account_ref(),
                from: Some(from),
            },
        )
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == "tx-alice-sav-11")
        .unwrap();
    assert_eq!(
        accrual.amount.to_string(),
        "1.23",
        "whole cents at this bank"
    );
    assert_eq!(accrual.status, TransactionStatus::Pending);
}
