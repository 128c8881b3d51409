//! Tests of the Berlin Group profile: the official example payloads (data-driven, against
//! reviewed expectations in `tests/expected/berlin-group/`), synthetic edge cases, and a round
//! trip through the Berlin Group sandbox bank.
//!
//! The fixtures are read from `$BANKGATE_FIXTURES/berlin-group/` (default: `../shared/fixtures`
//! next to the crate). `UPDATE_EXPECT=1 cargo test` rewrites the expectations; review the diff.

use chrono::{Days, NaiveDate, NaiveTime, Utc};
use serde_json::{Value, json};

use super::wire::{self, AccountList, BalancesResponse, TransactionsResponse};
use super::{BerlinGroup, NAME, decode};
use crate::adapters::testing::{self, exchange};
use crate::adapters::{
    AdapterError, Bank, BankAccount, BankConsent, BankSession, ConsentRequest, History, Profile,
    account_id,
};
use crate::crypto;
use crate::model::{AccountStatus, AccountType, BalanceType, Scope, TransactionStatus};
use bankgate_sandbox::Sandbox;

const BANK: &str = "test-bank";
const ACCOUNT: &str = "acc_test";

// ---------------------------------------------------------------------------------------------
// The official examples

const FIXTURES: &str = "berlin-group";

#[track_caller]
fn fixtures() -> Vec<(String, String)> {
    testing::fixtures(FIXTURES)
}

#[track_caller]
fn fixture(suffix: &str) -> String {
    testing::fixture(FIXTURES, suffix)
}

#[track_caller]
fn check_expected(name: &str, actual: &Value) {
    testing::check_expected(FIXTURES, name, actual);
}

/// Which endpoint a fixture is an example of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AccountList,
    AccountDetails,
    CardAccountList,
    Balances,
    Transactions,
    TransactionDetails,
    ConsentInformation,
    ConsentStatus,
    ConsentCreated,
    /// A consent request: checked against the sandbox bank.
    ConsentRequest,
}

#[track_caller]
fn kind(name: &str) -> Kind {
    let example = name.split_once('_').map_or(name, |(_, example)| example);
    let kinds = [
        ("get-accounts_", Kind::AccountList),
        ("get-account-details_", Kind::AccountDetails),
        ("get-card-accounts_", Kind::CardAccountList),
        ("get-balances_", Kind::Balances),
        ("get-card-account-balances", Kind::Balances),
        ("get-transactions_", Kind::Transactions),
        ("get-transaction-details", Kind::TransactionDetails),
        ("get-consent_response", Kind::ConsentInformation),
        ("get-consent-status_", Kind::ConsentStatus),
        ("post-consents_response", Kind::ConsentCreated),
        ("post-consents_request", Kind::ConsentRequest),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| example.starts_with(prefix))
        .map(|(_, kind)| *kind)
        .unwrap_or_else(|| panic!("fixture {name} has no normaliser: add one to kind()"))
}

fn bank_account_json(account: &BankAccount) -> Value {
    json!({"bank_ref": account.bank_ref, "account": account.account})
}

/// The canonical form of a response fixture, as JSON.
fn normalise(kind: Kind, text: &str) -> Result<Value, AdapterError> {
    let body = text.as_bytes();
    Ok(match kind {
        Kind::AccountList => {
            let accounts = wire::accounts(BANK, decode(body)?)?;
            Value::Array(accounts.iter().map(bank_account_json).collect())
        }
        Kind::AccountDetails => match wire::account_details(BANK, decode(body)?)? {
            Some(account) => bank_account_json(&account),
            None => Value::Null,
        },
        Kind::CardAccountList => {
            let cards = wire::card_accounts(BANK, decode(body)?)?;
            cards
                .iter()
                .map(|card| {
                    json!({"account": bank_account_json(&card.account), "balances": card.balances})
                })
                .collect()
        }
        Kind::Balances => {
            let response: BalancesResponse = decode(body)?;
            json!(wire::balances(ACCOUNT, response.balances, "balances")?)
        }
        Kind::Transactions => {
            let response: TransactionsResponse = decode(body)?;
            json!(wire::transactions(
                ACCOUNT,
                response.transactions.unwrap_or_default()
            )?)
        }
        Kind::TransactionDetails => json!(wire::transaction_details(ACCOUNT, decode(body)?)?),
        Kind::ConsentInformation => {
            let information: wire::ConsentInformation = decode(body)?;
            json!(wire::ConsentState::try_from(information)?)
        }
        Kind::ConsentStatus => {
            let status: wire::ConsentStatusResponse = decode(body)?;
            json!({"consent_status": status.consent_status})
        }
        Kind::ConsentCreated => {
            let created: wire::ConsentCreated = decode(body)?;
            let consent = BankConsent::try_from(created)?;
            json!({"id": consent.id, "oauth_scopes": consent.oauth_scopes})
        }
        Kind::ConsentRequest => unreachable!("consent requests go to the sandbox"),
    })
}

#[test]
fn every_response_fixture_normalises_as_expected() {
    let n_checked = testing::check_fixtures(
        FIXTURES,
        |name| kind(name) != Kind::ConsentRequest,
        |name, text| normalise(kind(name), text),
    );
    assert!(n_checked >= 14, "only {n_checked} response fixtures");
}

/// GoCardless (ex-Nordigen) fronts Berlin Group banks: its account data goes through the
/// Berlin Group-shaped path. What it answers about its own bookkeeping (agreements,
/// requisitions, account metadata) is not account information and is only classified.
fn gocardless_kind(name: &str) -> Result<Kind, &'static str> {
    Ok(match name {
        "get-account-balances.json" => Kind::Balances,
        "get-account-details.json" => Kind::AccountDetails,
        "get-account-transactions.json" | "error_transactions-date-range-in-future.json" => {
            Kind::Transactions
        }
        "error_create-agreement-invalid-for-institution.json" => Kind::ConsentCreated,
        "get-account-metadata.json" => return Err("aggregator account metadata"),
        "get-enduser-agreement.json" | "list-enduser-agreements.json" => {
            return Err("aggregator end-user agreement (its consent bookkeeping)");
        }
        "get-requisition.json" => return Err("aggregator requisition (its consent bookkeeping)"),
        _ => panic!("GoCardless fixture {name} has no normaliser: add one to gocardless_kind()"),
    })
}

#[test]
fn every_gocardless_fixture_normalises_as_expected() {
    let mut n_normalised = 0;
    for (name, text) in testing::fixtures("gocardless") {
        let actual = match gocardless_kind(&name) {
            Ok(kind) => {
                n_normalised += 1;
                normalise(kind, &text).unwrap_or_else(|error| json!({"error": error.to_string()}))
            }
            Err(what) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert!(value.is_object(), "{name}");
                json!({"not_account_information": what})
            }
        };
        testing::check_expected("gocardless", &name, &actual);
    }
    assert_eq!(n_normalised, 5);
}

#[test]
fn quirk_gocardless_error_bodies_and_placeholder_currencies_are_clear_errors() {
    // An error body parsed as a transaction report would otherwise be "no transactions".
    let error = normalise(
        Kind::Transactions,
        &testing::fixture("gocardless", "error_transactions-date-range-in-future.json"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("status_code 400"), "{error}");
    // The mock's second entry has the currency "string": the answer is refused, naming it.
    let text = testing::fixture("gocardless", "get-account-transactions.json");
    let error = normalise(Kind::Transactions, &text)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("transactions.booked[1].transactionAmount"),
        "{error}"
    );
    // With real currency codes it converts; the pending entry gets a derived id.
    let repaired = text.replace(r#""currency": "string""#, r#""currency": "EUR""#);
    let transactions = normalise(Kind::Transactions, &repaired).unwrap();
    assert_eq!(transactions[0]["amount"], "45.00");
    assert_eq!(transactions[0]["counterparty_name"], "MON MOTHMA");
    assert!(transactions[2]["id"].as_str().unwrap().starts_with("txn_"));
}

#[tokio::test]
async fn consent_request_fixtures_are_accepted_by_the_sandbox() {
    let (sandbox, bank) = sandbox_bank().await;
    let mut n_checked = 0;
    for (name, text) in fixtures() {
        if kind(&name) != Kind::ConsentRequest {
            continue;
        }
        let mut body: Value = serde_json::from_str(&text).unwrap();
        // The examples date from 2017; a bank refuses a validUntil in the past.
        body["validUntil"] = json!("9999-12-31");
        let (status, created) = testing::answer(
            bank.http
                .post(format!("{}/v1/consents", sandbox.origin))
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
                .json(&body),
        )
        .await;
        let consent_id = created["consentId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {created}"));
        let (_, consent) = testing::answer(
            bank.http
                .get(format!("{}/v1/consents/{consent_id}", sandbox.origin))
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string()),
        )
        .await;
        let actual = json!({
            "status": status,
            "consentStatus": consent["consentStatus"],
            "recurringIndicator": consent["recurringIndicator"],
            "frequencyPerDay": consent["frequencyPerDay"],
            "access": consent["access"],
        });
        check_expected(&name, &actual);
        n_checked += 1;
    }
    assert_eq!(n_checked, 3);
}

#[test]
fn quirk_invalid_ibans_are_dropped_and_the_resource_id_identifies() {
    // Example 1 has 21-character German IBANs (22 are required): their check digits fail.
    let list: AccountList = decode(fixture("get-accounts_list-example1.json").as_bytes()).unwrap();
    let accounts = wire::accounts(BANK, list).unwrap();
    assert_eq!(accounts.len(), 2);
    for account in &accounts {
        assert_eq!(account.account.iban, None);
        assert_eq!(account.account.iban_masked, None);
        assert_eq!(account.account.id, account_id(BANK, &account.bank_ref));
        assert_eq!(
            account.account.status,
            AccountStatus::Enabled,
            "no status means enabled"
        );
    }
    assert_eq!(accounts[1].account.currency, "USD");
}

#[test]
fn quirk_multicurrency_accounts_keep_xxx_and_distinct_ids() {
    let list: AccountList = decode(fixture("get-accounts_list-example3.json").as_bytes()).unwrap();
    let accounts = wire::accounts(BANK, list).unwrap();
    let currencies: Vec<&str> = accounts
        .iter()
        .map(|a| a.account.currency.as_str())
        .collect();
    assert_eq!(currencies, ["XXX", "EUR", "USD"]);
    let mut ids: Vec<&str> = accounts.iter().map(|a| a.account.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // The `_links` of the first account name another resource; bankgate uses resourceId.
    assert_eq!(accounts[0].bank_ref, "3dc3d5b3-7023-4848-9853-f5400a64e80f");
}

#[test]
fn quirk_card_balances_skip_the_stray_element_and_keep_non_invoiced() {
    let response: BalancesResponse =
        decode(fixture("get-card-account-balances.json").as_bytes()).unwrap();
    assert_eq!(response.balances.len(), 3);
    let balances = wire::balances(ACCOUNT, response.balances, "balances").unwrap();
    assert_eq!(balances.len(), 2);
    assert_eq!(balances[0].kind, BalanceType::InterimBooked);
    assert_eq!(balances[1].kind, BalanceType::Other("nonInvoiced".into()));
    assert_eq!(balances[1].amount.to_string(), "4175.86");
}

#[test]
fn quirk_card_account_credit_limit_without_decimals_stays_exact() {
    let list = decode(fixture("get-card-accounts_list.json").as_bytes()).unwrap();
    let cards = wire::card_accounts(BANK, list).unwrap();
    let card = &cards[0];
    assert_eq!(card.account.account.kind, AccountType::Card);
    assert_eq!(
        card.account.account.pan_masked.as_deref(),
        Some("525412******3241")
    );
    let limit = testing::balance(&card.balances, BalanceType::CreditLimit);
    assert_eq!(limit.amount.to_string(), "15000");
}

#[test]
fn quirk_amount_without_decimals_and_creditor_of_a_credit() {
    let response: TransactionsResponse =
        decode(fixture("get-transactions_multicurrency-account.json").as_bytes()).unwrap();
    let transactions = wire::transactions(ACCOUNT, response.transactions.unwrap()).unwrap();
    let usd = transactions.iter().find(|t| t.currency == "USD").unwrap();
    assert_eq!(usd.amount.to_string(), "100");

    // The regular-account example credits +256.67 but names only the creditor.
    let response: TransactionsResponse =
        decode(fixture("get-transactions_regular-account.json").as_bytes()).unwrap();
    let transactions = wire::transactions(ACCOUNT, response.transactions.unwrap()).unwrap();
    assert_eq!(transactions[0].amount.to_string(), "256.67");
    assert_eq!(
        transactions[0].counterparty_name.as_deref(),
        Some("John Miles")
    );
    let pending = transactions
        .iter()
        .find(|t| t.status == TransactionStatus::Pending)
        .unwrap();
    assert_eq!(pending.booking_date, None);
    assert_eq!(pending.amount.to_string(), "-100.03");
}

#[test]
fn quirk_recurring_indicator_as_string() {
    let information: wire::ConsentInformation =
        decode(fixture("get-consent_response.json").as_bytes()).unwrap();
    let state = wire::ConsentState::try_from(information).unwrap();
    assert_eq!(state.recurring, Some(true));
    assert_eq!(state.frequency_per_day, Some(4));
}

// ---------------------------------------------------------------------------------------------
// Synthetic edge cases

#[track_caller]
fn check_amount(amount: &str, expected: Option<&str>) {
    let body = format!(
        r#"{{"balances": [{{"balanceType": "closingBooked",
            "balanceAmount": {{"currency": "EUR", "amount": {amount}}}}}]}}"#
    );
    let response: BalancesResponse = decode(body.as_bytes()).unwrap();
    let result = wire::balances(ACCOUNT, response.balances, "balances");
    match (result, expected) {
        (Ok(balances), Some(expected)) => assert_eq!(balances[0].amount.to_string(), expected),
        (Err(AdapterError::Decode(_)), None) => {}
        (result, expected) => panic!("{amount}: got {result:?}, expected {expected:?}"),
    }
}

#[test]
fn amounts_keep_the_banks_precision_and_never_pass_through_floats() {
    check_amount(r#""-12.30""#, Some("-12.30"));
    check_amount("-12.30", Some("-12.30"));
    check_amount("0.1", Some("0.1"));
    check_amount(r#""100""#, Some("100"));
    check_amount(r#""12.345""#, Some("12.345"));
    check_amount(r#"" +7.10 ""#, Some("7.10"));
    check_amount(r#""-0.00""#, Some("0.00"));
    check_amount("1.5E+3", Some("1500"));
    check_amount(
        "123456789012345678.123456789",
        Some("123456789012345678.123456789"),
    );
    check_amount(r#""1,000.00""#, None);
    check_amount(r#""12,30""#, None);
    check_amount(r#""12.""#, None);
    check_amount(r#""abc""#, None);
    check_amount(r#""""#, None);
    check_amount("true", None);
    check_amount("null", None);
    check_amount(r#"{"value": 1}"#, None);
    check_amount(r#""79228162514264337593543950336""#, None);
    check_amount("1e999999999", None);
    check_amount("1e-99999", None);
    check_amount(&"9".repeat(400), None);
    check_amount(r#""0x1F""#, None);
    check_amount(r#""NaN""#, None);
}

#[track_caller]
fn check_balances(balances: Value, expected: Value) {
    let body = json!({ "balances": balances }).to_string();
    let response: BalancesResponse = decode(body.as_bytes()).unwrap();
    let actual = wire::balances(ACCOUNT, response.balances, "balances")
        .map(|balances| json!(balances))
        .unwrap_or_else(|error| json!({"error": error.to_string()}));
    assert_eq!(actual, expected);
}

#[test]
fn balances_edge_cases() {
    let eur = |amount: &str| json!({"currency": "EUR", "amount": amount});
    // Negative amount, string boolean, date-only and zone-less date-times.
    check_balances(
        json!([
            {"balanceType": "closingBooked", "balanceAmount": eur("-12.30"),
             "creditLimitIncluded": "false", "referenceDate": "2024-03-01"},
            {"balanceType": "expected", "balanceAmount": {"currency": "eur", "amount": "5"},
             "lastChangeDateTime": "2024-03-01T10:15:00"},
        ]),
        json!([
            {"account_id": ACCOUNT, "type": "closing_booked", "amount": "-12.30",
             "currency": "EUR", "credit_limit_included": false, "as_of": "2024-03-01T00:00:00Z"},
            {"account_id": ACCOUNT, "type": "expected", "amount": "5", "currency": "EUR",
             "as_of": "2024-03-01T10:15:00Z"},
        ]),
    );
    // Unknown types are kept by name; a balance missing its amount or type is skipped.
    check_balances(
        json!([
            {"balanceType": "nonInvoiced", "balanceAmount": eur("1.00")},
            {"balanceType": "interimAvailable"},
            {"balanceAmount": eur("2.00")},
            {"debitAccounting": true},
            {"balanceType": "creditLimit", "balanceAmount": eur("500")},
            {"balanceType": "authorised", "balanceAmount": eur("7.5")},
            {"balanceType": "forwardAvailable", "balanceAmount": eur("3.00")},
        ]),
        json!([
            {"account_id": ACCOUNT, "type": "other", "type_original": "nonInvoiced",
             "amount": "1.00", "currency": "EUR"},
            {"account_id": ACCOUNT, "type": "credit_limit", "amount": "500", "currency": "EUR"},
            {"account_id": ACCOUNT, "type": "authorised", "amount": "7.5", "currency": "EUR"},
            {"account_id": ACCOUNT, "type": "forward_available", "amount": "3.00",
             "currency": "EUR"},
        ]),
    );
    check_balances(json!([]), json!([]));
    let broken = |balance: Value, message: &str| {
        let body = json!({ "balances": [balance] }).to_string();
        let response: BalancesResponse = decode(body.as_bytes()).unwrap();
        let error = wire::balances(ACCOUNT, response.balances, "balances").unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    };
    broken(
        json!({"balanceType": "expected", "balanceAmount": {"amount": "1.00"}}),
        "currency",
    );
    broken(
        json!({"balanceType": "expected", "balanceAmount": {"currency": "EURO", "amount": "1"}}),
        "ISO 4217",
    );
    broken(
        json!({"balanceType": "expected", "balanceAmount": eur("1"), "referenceDate": "01.03.2024"}),
        "referenceDate",
    );
}

#[track_caller]
fn check_transactions(report: Value, expected: Value) {
    let body = json!({ "transactions": report }).to_string();
    let response: TransactionsResponse = decode(body.as_bytes()).unwrap();
    let actual = wire::transactions(ACCOUNT, response.transactions.unwrap_or_default())
        .map(|transactions| json!(transactions))
        .unwrap_or_else(|error| json!({"error": error.to_string()}));
    assert_eq!(actual, expected);
}

#[test]
fn transactions_edge_cases() {
    // Counterparty by sign, remittance fallbacks, MCC as a number, date-times as dates.
    check_transactions(
        json!({
            "booked": [
                {"transactionId": "t1", "bookingDate": "2024-01-02T00:00:00",
                 "transactionAmount": {"currency": "EUR", "amount": "-4.20"},
                 "creditorName": "Café", "debtorName": "Me", "merchantCategoryCode": 742,
                 "remittanceInformationUnstructuredArray": ["line 1", "line 2"],
                 "proprietaryBankTransactionCode": "POS"},
                {"transactionId": "t2", "bookingDate": "2024-01-03", "valueDate": "2024-01-04",
                 "transactionAmount": {"currency": "EUR", "amount": 10},
                 "ultimateDebtor": "Employer", "creditorName": "Me",
                 "remittanceInformationStructured": {"reference": "RF18539007547034"},
                 "bankTransactionCode": "PMNT-RCDT-ESCT", "merchantCategoryCode": "5411"},
            ],
            "pending": [
                {"transactionId": " ", "valueDate": "2024-01-05",
                 "transactionAmount": {"currency": "USD", "amount": "-1"},
                 "additionalInformation": "card hold"},
            ],
        }),
        json!([
            {"id": "t1", "account_id": ACCOUNT, "status": "booked", "booking_date": "2024-01-02",
             "amount": "-4.20", "currency": "EUR", "description": "line 1 line 2",
             "counterparty_name": "Café", "merchant_category_code": "0742", "bank_code": "POS"},
            {"id": "t2", "account_id": ACCOUNT, "status": "booked", "booking_date": "2024-01-03",
             "value_date": "2024-01-04", "amount": "10", "currency": "EUR",
             "description": "RF18539007547034", "counterparty_name": "Employer",
             "merchant_category_code": "5411", "bank_code": "PMNT-RCDT-ESCT"},
            {"id": derived_id("2024-01-05", "-1", "USD", "card hold", 0), "account_id": ACCOUNT,
             "status": "pending", "value_date": "2024-01-05", "amount": "-1", "currency": "USD",
             "description": "card hold"},
        ]),
    );
    check_transactions(json!({}), json!([]));
    check_transactions(
        json!({"booked": [{"transactionId": "t", "bookingDate": "2024-01-02"}]}),
        json!({"error": "bank payload not understood: transactions.booked[0]: transactionAmount is missing"}),
    );
    check_transactions(
        json!({"booked": [{"bookingDate": "2 Jan 2024",
                           "transactionAmount": {"currency": "EUR", "amount": "1"}}]}),
        json!({"error": "bank payload not understood: transactions.booked[0].bookingDate: not an ISO date"}),
    );
}

fn derived_id(date: &str, amount: &str, currency: &str, description: &str, n: usize) -> String {
    let mut key = format!("{ACCOUNT}\0{date}\0{amount}\0{currency}\0{description}");
    if n > 0 {
        key = format!("{key}\0{n}");
    }
    format!("txn_{}", hex::encode(&crypto::sha256(key.as_bytes())[..12]))
}

#[test]
fn transactions_without_ids_get_stable_distinct_ids() {
    let coffee = json!({"bookingDate": "2024-01-02", "remittanceInformationUnstructured": "Coffee",
                        "transactionAmount": {"currency": "EUR", "amount": "-3.00"}});
    let body = json!({"transactions": {"booked": [coffee, coffee]}}).to_string();
    let ids = || {
        let response: TransactionsResponse = decode(body.as_bytes()).unwrap();
        wire::transactions(ACCOUNT, response.transactions.unwrap())
            .unwrap()
            .into_iter()
            .map(|transaction| transaction.id)
            .collect::<Vec<_>>()
    };
    let first = ids();
    assert_eq!(first, ids(), "ids are deterministic");
    assert_ne!(first[0], first[1], "identical entries are told apart");
    assert_eq!(
        first[0],
        derived_id("2024-01-02", "-3.00", "EUR", "Coffee", 0)
    );
}

#[track_caller]
fn check_account(details: Value, expected: Value) {
    let body = json!({ "accounts": [details] }).to_string();
    let accounts = wire::accounts(BANK, decode(body.as_bytes()).unwrap()).unwrap();
    let actual: Vec<Value> = accounts.iter().map(bank_account_json).collect();
    assert_eq!(Value::Array(actual), expected);
}

#[test]
fn account_mapping() {
    let iban = "DE89370400440532013000";
    check_account(
        json!({"resourceId": "r1", "iban": "de89 3704 0044 0532 0130 00", "currency": "eur",
               "cashAccountType": "SVGS", "name": "Nest egg", "product": "Tagesgeld",
               "status": "blocked", "ownerName": "Heike Mustermann"}),
        json!([{"bank_ref": "r1", "account": {
            "id": account_id(BANK, iban), "bank_id": BANK, "display_name": "Nest egg",
            "type": "savings", "currency": "EUR", "iban": iban,
            "iban_masked": "DE89**************3000", "holder_name": "Heike Mustermann",
            "status": "blocked"}}]),
    );
    check_account(
        json!({"resourceId": "r2", "bban": "0532013000", "product": "Loan", "status": "frozen"}),
        json!([{"bank_ref": "r2", "account": {
            "id": account_id(BANK, "r2"), "bank_id": BANK, "display_name": "Loan",
            "type": "other", "currency": "XXX", "bban": "0532013000", "status": "blocked"}}]),
    );
    check_account(json!({"name": "nothing identifies me"}), json!([]));

    for (code, kind) in [
        (Some("CACC"), AccountType::Current),
        (Some("CurrentAccount"), AccountType::Current),
        (Some("SLRY"), AccountType::Current),
        (Some("SVGS"), AccountType::Savings),
        (Some("CARD"), AccountType::Card),
        (Some("LOAN"), AccountType::Loan),
        (Some("MOMA"), AccountType::Other),
        (None, AccountType::Other),
    ] {
        assert_eq!(wire::account_type(code), kind, "{code:?}");
    }
}

#[test]
fn accounts_sharing_an_iban_are_told_apart_by_currency() {
    let iban = "DE89370400440532013000";
    let body = json!({"accounts": [
        {"resourceId": "agg", "iban": iban, "currency": "XXX"},
        {"resourceId": "eur", "iban": iban, "currency": "EUR"},
        {"resourceId": "usd", "iban": iban, "currency": "USD"},
        {"resourceId": "solo", "iban": "GB29NWBK60161331926819", "currency": "GBP"},
    ]})
    .to_string();
    let accounts = wire::accounts(BANK, decode(body.as_bytes()).unwrap()).unwrap();
    let ids: Vec<String> = accounts.into_iter().map(|a| a.account.id).collect();
    assert_eq!(
        ids,
        [
            account_id(BANK, &format!("{iban} XXX")),
            account_id(BANK, &format!("{iban} EUR")),
            account_id(BANK, &format!("{iban} USD")),
            account_id(BANK, "GB29NWBK60161331926819"),
        ]
    );
}

#[test]
fn iban_validation() {
    assert_eq!(
        wire::normalise_iban("gb29 nwbk 6016 1331 9268 19").as_deref(),
        Some("GB29NWBK60161331926819")
    );
    assert_eq!(wire::normalise_iban("GB28NWBK60161331926819"), None);
    assert_eq!(wire::normalise_iban("DE2310010010123456789"), None);
    assert_eq!(wire::normalise_iban("DE89-3704"), None);
    assert_eq!(wire::normalise_iban("ÄÖ89370400440532013000"), None);
}

#[track_caller]
fn check_error_body(body: &str, ok: bool) {
    let result = decode::<AccountList>(body.as_bytes());
    match result {
        Ok(_) => assert!(ok, "{body} was accepted"),
        Err(AdapterError::ErrorBody(_) | AdapterError::Decode(_)) => {
            assert!(!ok, "{body} was refused")
        }
        Err(error) => panic!("{body}: unexpected {error}"),
    }
}

#[test]
fn success_answers_with_error_bodies_are_refused() {
    check_error_body(r#"{"accounts": []}"#, true);
    check_error_body(
        r#"{"accounts": [], "tppMessages": [{"category": "WARNING", "code": "WARNING"}]}"#,
        true,
    );
    check_error_body(
        r#"{"tppMessages": [{"category": "ERROR", "code": "CONSENT_INVALID"}]}"#,
        false,
    );
    check_error_body(
        r#"{"accounts": [], "tppMessages": [{"code": "INTERNAL_SERVER_ERROR"}]}"#,
        false,
    );
    check_error_body(r#"{"error": "server_error"}"#, false);
    check_error_body(r#"{}"#, false);
    check_error_body("[]", false);
    check_error_body("<html>Service unavailable</html>", false);
    check_error_body("", false);
    check_error_body(r#"{"accounts": [{"currency": 978}]}"#, false);
}

#[track_caller]
fn check_consent_request(scopes: &[Scope], recurring: bool, expected: Value) {
    let request = ConsentRequest {
        scopes: scopes.to_vec(),
        valid_until: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(),
        frequency_per_day: 4,
        recurring,
    };
    let body = wire::ConsentRequest::new(&request).unwrap();
    assert_eq!(serde_json::to_value(body).unwrap(), expected);
}

#[test]
fn consent_requests_ask_for_exactly_the_scopes() {
    use Scope::*;
    let body = |access: Value, recurring: bool, frequency: u32| {
        json!({"access": access, "recurringIndicator": recurring, "validUntil": "2025-06-30",
               "frequencyPerDay": frequency, "combinedServiceIndicator": false})
    };
    check_consent_request(
        &[Accounts, Balances, Transactions],
        true,
        body(
            json!({"accounts": [], "balances": [], "transactions": []}),
            true,
            4,
        ),
    );
    check_consent_request(&[Balances], true, body(json!({"balances": []}), true, 4));
    check_consent_request(
        &[Accounts, Identity],
        true,
        body(
            json!({"accounts": [], "additionalInformation": {"ownerName": []}}),
            true,
            4,
        ),
    );
    check_consent_request(
        &[Accounts],
        false,
        body(json!({"availableAccounts": "allAccounts"}), false, 1),
    );
    check_consent_request(
        &[Accounts, Identity],
        false,
        body(
            json!({"availableAccounts": "allAccountsWithOwnerName"}),
            false,
            1,
        ),
    );
    check_consent_request(
        &[Transactions],
        false,
        body(json!({"transactions": []}), false, 1),
    );
    let empty = ConsentRequest {
        scopes: Vec::new(),
        valid_until: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(),
        frequency_per_day: 4,
        recurring: true,
    };
    assert!(matches!(
        wire::ConsentRequest::new(&empty),
        Err(AdapterError::Refused(_))
    ));
}

#[test]
fn consent_answers_need_an_id_and_must_not_be_rejected() {
    let created = |body: &str| {
        decode::<wire::ConsentCreated>(body.as_bytes()).and_then(BankConsent::try_from)
    };
    let consent = created(r#"{"consentStatus": "received", "consentId": "c-1"}"#).unwrap();
    assert_eq!(consent.oauth_scopes, ["AIS:c-1"]);
    assert!(matches!(
        created(r#"{"consentStatus": "received"}"#),
        Err(AdapterError::Decode(_))
    ));
    assert!(matches!(
        created(r#"{"consentStatus": "rejected", "consentId": "c-2"}"#),
        Err(AdapterError::Refused(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// A round trip through the sandbox bank

async fn sandbox_bank() -> (Sandbox, Bank) {
    testing::sandbox_bank(NAME, "demo-bank", "").await
}

async fn authorize(bank: &Bank, consent: &BankConsent, verifier: &str) -> String {
    testing::authorize(bank, consent, verifier, None).await
}

fn consent_request(scopes: &[Scope], recurring: bool) -> ConsentRequest {
    ConsentRequest {
        recurring,
        ..testing::consent_request(scopes)
    }
}

/// Creates a consent, authorises it and returns (consent id, access token).
async fn authorised(bank: &Bank, request: &ConsentRequest) -> (String, String) {
    let consent = BerlinGroup.create_consent(bank, request).await.unwrap();
    let consent_id = consent.id.clone().unwrap();
    assert_eq!(consent.oauth_scopes, [format!("AIS:{consent_id}")]);
    let verifier = crypto::random_token(32).unwrap();
    let code = authorize(bank, &consent, &verifier).await;
    let (status, tokens) = exchange(bank, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], format!("AIS:{consent_id}"));
    (
        consent_id,
        tokens["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn round_trip_through_the_sandbox_bank() {
    let (_sandbox, bank) = sandbox_bank().await;
    let profile = BerlinGroup;
    let request = consent_request(
        &[Scope::Accounts, Scope::Balances, Scope::Transactions],
        true,
    );
    let (consent_id, access_token) = authorised(&bank, &request).await;
    let state = profile.consent_state(&bank, &consent_id).await.unwrap();
    assert_eq!(state.status, "valid");
    assert_eq!(state.valid_until, Some(request.valid_until));
    let session = BankSession {
        bank: &bank,
        access_token: &access_token,
        bank_consent_id: Some(&consent_id),
    };

    let accounts = testing::alice_accounts(&profile, session).await;
    let giro = &accounts[0].account;
    assert_eq!(giro.id, account_id("demo-bank", "DE92999900000012345601"));
    assert_eq!(giro.iban_masked.as_deref(), Some("DE92**************5601"));
    assert_eq!(giro.kind, AccountType::Current);
    assert_eq!(giro.display_name.as_deref(), Some("Main Account"));
    assert_eq!(giro.holder_name, None, "identity was not consented");
    assert_eq!(accounts[1].account.kind, AccountType::Savings);
    let card = &accounts[2].account;
    assert_eq!(card.kind, AccountType::Card);
    assert_eq!(card.pan_masked.as_deref(), Some("489537******7421"));
    assert_eq!(card.iban, None);

    let balances = profile
        .balances(session, &testing::account("alice-giro", &giro.id))
        .await
        .unwrap();
    let closing = testing::balance(&balances, BalanceType::ClosingBooked);
    assert_eq!(closing.amount.to_string(), "-152.37");
    assert_eq!(closing.account_id, giro.id);
    assert_eq!(closing.credit_limit_included, Some(false));
    let yesterday = Utc::now().date_naive() - Days::new(1);
    assert_eq!(
        closing.as_of,
        Some(yesterday.and_time(NaiveTime::MIN).and_utc())
    );
    let card_balances = profile
        .balances(session, &testing::account("alice-card", &card.id))
        .await
        .unwrap();
    let non_invoiced = testing::balance(&card_balances, BalanceType::Other("nonInvoiced".into()));
    assert_eq!(non_invoiced.amount.to_string(), "-212.45");

    // All history: 14 booked (two pages) and 2 pending.
    let all = profile
        .transactions(
            session,
            History {
                account: &testing::account("alice-giro", &giro.id),
                from: None,
            },
        )
        .await
        .unwrap();
    let n_booked = all
        .iter()
        .filter(|t| t.status == TransactionStatus::Booked)
        .count();
    let n_pending = all
        .iter()
        .filter(|t| t.status == TransactionStatus::Pending)
        .count();
    assert_eq!((n_booked, n_pending), (14, 2));
    let spotify = all.iter().find(|t| t.id == "tx-alice-giro-05").unwrap();
    assert_eq!(spotify.amount.to_string(), "-12.30");
    assert_eq!(spotify.merchant_category_code.as_deref(), Some("5815"));
    assert_eq!(spotify.counterparty_name.as_deref(), Some("Spotify AB"));
    let salary = all.iter().find(|t| t.id == "tx-alice-giro-11").unwrap();
    assert_eq!(
        salary.counterparty_name.as_deref(),
        Some("Acme Software GmbH")
    );
    assert_eq!(salary.bank_code.as_deref(), Some("PMNT-RCDT-ESCT"));
    assert!(all.iter().all(|t| t.account_id == giro.id));

    // The last 30 days: 7 booked and the 2 pending.
    let from = Utc::now().date_naive() - Days::new(30);
    let recent = profile
        .transactions(
            session,
            History {
                account: &testing::account("alice-giro", &giro.id),
                from: Some(from),
            },
        )
        .await
        .unwrap();
    assert_eq!(recent.len(), 9);
    assert!(recent.iter().all(|t| {
        t.booking_date
            .or(t.value_date)
            .is_some_and(|date| date >= from)
    }));

    // What the bank refuses.
    let forged = BankSession {
        bank: &bank,
        access_token: "forged",
        bank_consent_id: Some(&consent_id),
    };
    assert!(matches!(
        profile.accounts(forged).await,
        Err(AdapterError::Status { status: 401 })
    ));
    for unknown in ["alice-nope", "bob-card"] {
        assert!(matches!(
            profile
                .balances(session, &testing::account(unknown, "acc_x"))
                .await,
            Err(AdapterError::Status { status: 404 })
        ));
    }
    assert!(matches!(
        profile
            .balances(session, &testing::account("..", "acc_x"))
            .await,
        Err(AdapterError::UnknownAccount)
    ));
    let no_consent = BankSession {
        bank: &bank,
        access_token: &access_token,
        bank_consent_id: None,
    };
    assert!(matches!(
        profile.accounts(no_consent).await,
        Err(AdapterError::Refused(_))
    ));
}

#[tokio::test]
async fn narrower_consents_through_the_sandbox_bank() {
    let (_sandbox, bank) = sandbox_bank().await;
    let profile = BerlinGroup;

    // Accounts with the owner's name: no balances.
    let request = consent_request(&[Scope::Accounts, Scope::Identity], true);
    let (consent_id, token) = authorised(&bank, &request).await;
    let session = BankSession {
        bank: &bank,
        access_token: &token,
        bank_consent_id: Some(&consent_id),
    };
    let accounts = profile.accounts(session).await.unwrap();
    assert_eq!(
        accounts[0].account.holder_name.as_deref(),
        Some("Alice Schmidt")
    );
    // CONSENT_INVALID for a resource the consent does not cover: its status at the bank is
    // still valid, so this is a refusal of the resource, not a consent ended at the bank.
    assert!(matches!(
        profile
            .balances(session, &testing::account("alice-giro", "acc"))
            .await,
        Err(AdapterError::Status { status: 403 })
    ));

    // A one-off account list (availableAccounts).
    let request = consent_request(&[Scope::Accounts], false);
    let (consent_id, token) = authorised(&bank, &request).await;
    let session = BankSession {
        bank: &bank,
        access_token: &token,
        bank_consent_id: Some(&consent_id),
    };
    assert_eq!(profile.accounts(session).await.unwrap().len(), 3);
    let state = profile.consent_state(&bank, &consent_id).await.unwrap();
    assert_eq!(
        (state.recurring, state.frequency_per_day),
        (Some(false), Some(1))
    );
}

#[tokio::test]
async fn token_endpoint_rejects_a_wrong_verifier_and_a_reused_code() {
    let (_sandbox, bank) = sandbox_bank().await;
    let request = consent_request(&[Scope::Balances], true);

    let consent = BerlinGroup.create_consent(&bank, &request).await.unwrap();
    let verifier = crypto::random_token(32).unwrap();
    let code = authorize(&bank, &consent, &verifier).await;
    let other_verifier = crypto::random_token(32).unwrap();
    let (status, error) = exchange(&bank, &code, &other_verifier).await;
    assert_eq!((status, &error["error"]), (400, &json!("invalid_grant")));

    let consent = BerlinGroup.create_consent(&bank, &request).await.unwrap();
    let code = authorize(&bank, &consent, &verifier).await;
    let (status, tokens) = exchange(&bank, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, error) = exchange(&bank, &code, &verifier).await;
    assert_eq!((status, &error["error"]), (400, &json!("invalid_grant")));
    // The replay revoked the tokens issued from the code.
    let consent_id = consent.id.unwrap();
    let session = testing::session(&bank, &tokens, Some(&consent_id));
    assert!(matches!(
        BerlinGroup.accounts(session).await,
        Err(AdapterError::Status { status: 401 })
    ));
}
