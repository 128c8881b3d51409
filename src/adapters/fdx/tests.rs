//! Tests of the FDX profile: the (synthetic, FDX-shaped) examples against reviewed
//! expectations in `tests/expected/fdx/`, synthetic edge cases, a property test of the wire
//! parsers and a round trip through the FDX sandbox bank.

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::wire::{self, AccountsResponse, TransactionsResponse};
use super::{Fdx, NAME};
use crate::adapters::common::parse_body;
use crate::adapters::testing::{self, arbitrary_json};
use crate::adapters::{AdapterError, History, Profile, account_id};
use crate::model::{AccountType, BalanceType, Scope, TransactionStatus};

const FIXTURES: &str = "fdx";
const BANK: &str = "test-bank";
const ACCOUNT: &str = "acc_test";

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, AdapterError> {
    parse_body(text.as_bytes(), wire::error_in_body)
}

/// Each balance's type and amount (as text).
fn kinds_and_amounts(balances: &[crate::model::Balance]) -> Vec<(BalanceType, String)> {
    balances
        .iter()
        .map(|b| (b.kind.clone(), b.amount.to_string()))
        .collect()
}

/// The canonical form of a fixture, by the endpoint its name says it answers.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    Ok(if name.contains("consent-grant") {
        json!(wire::ConsentState::try_from(parse::<wire::ConsentGrant>(
            text
        )?)?)
    } else if name.contains("get-accounts") {
        let list: AccountsResponse = parse(text)?;
        let accounts = wire::accounts(BANK, &list)?;
        json!({
            "accounts": accounts.iter().map(|a| json!({"bank_ref": a.bank_ref, "account": a.account})).collect::<Vec<_>>(),
            "next": format!("{:?}", list.next()),
        })
    } else if name.contains("-account-transactions") {
        // Transactions carry no currency: they are in the account's (USD in these examples).
        let list: TransactionsResponse = parse(text)?;
        json!({
            "transactions": wire::transactions(ACCOUNT, "USD", &list.transactions)?,
            "next": format!("{:?}", list.next()),
        })
    } else if name.contains("get-deposit-account") {
        let raw: Box<RawValue> = parse(text)?;
        let entity = wire::account_entity(&raw).map_err(AdapterError::Decode)?;
        let account = wire::account(BANK, &entity, "account")?
            .map(|a| json!({"bank_ref": a.bank_ref, "account": a.account}));
        json!({"account": account, "balances": wire::balances(ACCOUNT, &entity)?})
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_fixture_normalises_as_expected() {
    assert_eq!(testing::check_every_fixture(FIXTURES, normalise), 4);
}

#[test]
fn quirk_json_number_amounts_keep_their_text_and_memo_holds_are_pending_debits() {
    let list: TransactionsResponse = parse(&testing::fixture(
        FIXTURES,
        "synthetic_v6_get-account-transactions.json",
    ))
    .unwrap();
    let transactions = wire::transactions(ACCOUNT, "USD", &list.transactions).unwrap();
    let amounts: Vec<String> = transactions.iter().map(|t| t.amount.to_string()).collect();
    // 3100.0 stays 3100.0 (not 3100), 86.45 is a debit, the MEMO authorization a pending hold.
    assert_eq!(amounts, ["3100.0", "-86.45", "-4.75", "-250.0"]);
    assert_eq!(transactions[2].status, TransactionStatus::Pending);
    assert_eq!(transactions[2].booking_date, None);
    assert_eq!(
        transactions[3].counterparty_name.as_deref(),
        Some("J. SMITH")
    );
    assert_eq!(list.next(), Some(wire::Next::Key("tx-pk-0002".into())));
}

#[test]
fn quirk_deposit_balances_are_interim_and_missing_ones_stay_missing() {
    let raw: Box<RawValue> = parse(&testing::fixture(
        FIXTURES,
        "synthetic_v6_get-deposit-account.json",
    ))
    .unwrap();
    let entity = wire::account_entity(&raw).unwrap();
    let balances = wire::balances(ACCOUNT, &entity).unwrap();
    let view = kinds_and_amounts(&balances);
    assert_eq!(
        view,
        [
            (BalanceType::InterimBooked, "2480.17".into()),
            (BalanceType::InterimAvailable, "2311.5".into())
        ]
    );
    let only_current = json!({"accountId": "a", "accountCategory": "DEPOSIT_ACCOUNT",
        "currency": {"currencyCode": "USD"}, "currentBalance": 1})
    .to_string();
    let entity = wire::account_entity(&RawValue::from_string(only_current).unwrap()).unwrap();
    assert_eq!(
        wire::balances(ACCOUNT, &entity).unwrap().len(),
        1,
        "no availableBalance, no 0"
    );
}

#[test]
fn credit_line_balances_are_what_is_owed() {
    // Raw text: `json!` would read the numbers through f64.
    let card = r#"{"locAccount": {"accountId": "c1", "accountType": "CREDITCARD",
        "accountNumberDisplay": "...1111", "currency": {"currencyCode": "usd"},
        "currentBalance": 734.9, "availableCredit": 2265.10, "creditLine": 3000}}"#;
    let raw = RawValue::from_string(card.to_owned()).unwrap();
    let entity = wire::account_entity(&raw).unwrap();
    assert_eq!(
        entity.account_category.as_deref(),
        Some("LOC_ACCOUNT"),
        "FDX 5 wrapper"
    );
    let account = wire::account(BANK, &entity, "a").unwrap().unwrap();
    assert_eq!(
        (account.account.kind, account.account.pan_masked.as_deref()),
        (AccountType::Card, Some("...1111"))
    );
    assert_eq!(account.account.id, account_id(BANK, "accountId:c1"));
    let balances = wire::balances(ACCOUNT, &entity).unwrap();
    let view = kinds_and_amounts(&balances);
    assert_eq!(
        view,
        [
            (BalanceType::InterimBooked, "-734.9".into()),
            (BalanceType::InterimAvailable, "2265.10".into()),
            (BalanceType::CreditLimit, "3000".into()),
        ]
    );
}

#[track_caller]
fn check_transactions(list: &str, expected: Value) {
    // Raw text: `json!` would read the numbers through f64.
    let body = format!(r#"{{"transactions": {list}}}"#);
    let response: TransactionsResponse = parse(&body).unwrap();
    let actual = wire::transactions(ACCOUNT, "USD", &response.transactions)
        .map(|list| {
            list.iter()
                .map(|t| json!([t.amount.to_string(), t.status, t.merchant_category_code]))
                .collect::<Value>()
        })
        .unwrap_or_else(|error| json!({"error": error.to_string()}));
    assert_eq!(actual, expected);
}

#[test]
fn signs_come_from_debit_credit_memo() {
    check_transactions(
        r#"[
            {"transactionId": "1", "debitCreditMemo": "DEBIT", "status": "POSTED", "amount": -12.30,
             "postedTimestamp": "2025-01-02T00:00:00Z", "merchantCategoryCode": 742},
            {"transactionId": "2", "debitCreditMemo": "CREDIT", "status": "POSTED", "amount": "-5",
             "merchantCategoryCode": "5411"},
            {"transactionId": "3", "amount": -1.23456, "status": "PENDING"},
            {"transactionId": "4", "debitCreditMemo": "MEMO", "status": "POSTED", "amount": 1},
            {"transactionId": "5", "debitCreditMemo": "DEBIT", "status": "CANCELLED", "amount": 1},
            {"depositTransaction": {"transactionId": "6", "debitCreditMemo": "CREDIT", "status": "POSTED", "amount": 1e2}}
        ]"#,
        json!([
            ["-12.30", "booked", "0742"],
            ["5", "booked", "5411"],
            ["-1.23456", "pending", null],
            ["100.0", "booked", null],
        ]),
    );
    check_transactions(
        r#"[{"amount": 3, "status": "POSTED"}]"#,
        json!({"error": "bank payload not understood: transactions[0]: debitCreditMemo is missing and the amount is unsigned"}),
    );
    check_transactions(
        r#"[{"amount": 3, "debitCreditMemo": "UP"}]"#,
        json!({"error": "bank payload not understood: transactions[0].debitCreditMemo: neither DEBIT, CREDIT nor MEMO"}),
    );
    check_transactions(
        r#"[{"amount": "three", "debitCreditMemo": "DEBIT"}]"#,
        json!({"error": "bank payload not understood: transactions[0].amount: not a decimal number"}),
    );
    check_transactions(
        "[7]",
        json!({"error": "bank payload not understood: transactions[0]: a transaction is not an object"}),
    );
}

#[test]
fn consent_requests_name_the_data_clusters() {
    let details: Value = serde_json::from_str(&wire::authorization_details(
        &[Scope::Accounts, Scope::Balances, Scope::Transactions],
        90,
    ))
    .unwrap();
    assert_eq!(
        details,
        json!([{"type": "fdx_v1.0", "consentRequest": {"durationType": "TIME_BOUND", "durationPeriod": 90,
            "resources": [{"resourceType": "ACCOUNT", "dataClusters": ["ACCOUNT_BASIC", "ACCOUNT_DETAILED", "TRANSACTIONS"]}]}}])
    );
    let refused = |body: &str| {
        matches!(
            parse::<AccountsResponse>(body),
            Err(AdapterError::ErrorBody(_))
        )
    };
    assert!(refused(
        r#"{"code": "701", "message": "Account not found"}"#
    ));
    assert!(!refused(r#"{"accounts": []}"#));
}

proptest! {
    #[test]
    fn wire_parsers_never_panic_on_arbitrary_json(value in arbitrary_json()) {
        for candidate in [value.clone(), json!({"accounts": [value.clone()]}),
                          json!({"transactions": [value.clone()]}),
                          json!({"depositAccount": value.clone()})] {
            let text = candidate.to_string();
            if let Ok(list) = parse::<AccountsResponse>(&text) {
                let _ = wire::accounts(BANK, &list);
                let _ = list.next();
            }
            if let Ok(list) = parse::<TransactionsResponse>(&text) {
                let _ = wire::transactions(ACCOUNT, "USD", &list.transactions);
            }
            if let Ok(raw) = parse::<Box<RawValue>>(&text)
                && let Ok(entity) = wire::account_entity(&raw)
            {
                let _ = wire::account(BANK, &entity, "a");
                let _ = wire::balances(ACCOUNT, &entity);
            }
            let _ = parse::<wire::ConsentGrant>(&text).and_then(wire::ConsentState::try_from);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox bank

#[tokio::test]
async fn round_trip_through_the_sandbox_bank() {
    let (_sandbox, bank) = testing::sandbox_bank(NAME, "fdx-bank", "/fdx/v6").await;
    let consent = Fdx
        .create_consent(
            &bank,
            &testing::consent_request(&[Scope::Accounts, Scope::Balances, Scope::Transactions]),
        )
        .await
        .unwrap();
    let tokens = testing::tokens(&bank, &consent, None).await;
    let grant_id = tokens["grant_id"].as_str().unwrap().to_owned();
    let session = testing::session(&bank, &tokens, None);
    let state = Fdx.consent_state(session, &grant_id).await.unwrap();
    assert_eq!(
        (state.status.as_str(), state.duration_days),
        ("ACTIVE", Some(91))
    );
    assert_eq!(state.resources.len(), 3);

    let accounts = testing::alice_accounts(&Fdx, session).await;
    let giro = &accounts[0].account;
    assert_eq!(giro.id, account_id("fdx-bank", "accountId:alice-giro"));
    assert_eq!(
        (
            giro.kind,
            accounts[1].account.kind,
            accounts[2].account.kind
        ),
        (
            AccountType::Current,
            AccountType::Savings,
            AccountType::Card
        )
    );

    let balances = Fdx
        .balances(session, &testing::account("alice-giro", &giro.id))
        .await
        .unwrap();
    let view = kinds_and_amounts(&balances);
    assert_eq!(
        view,
        [
            (BalanceType::InterimBooked, "-152.37".to_owned()),
            (BalanceType::InterimAvailable, "1760.51".to_owned()),
        ]
    );
    let card = &accounts[2].account;
    let card_balances = Fdx
        .balances(session, &testing::account("alice-card", &card.id))
        .await
        .unwrap();
    let view = kinds_and_amounts(&card_balances);
    assert_eq!(
        view,
        [
            (BalanceType::InterimBooked, "-734.90".to_owned()),
            (BalanceType::InterimAvailable, "2052.65".to_owned()),
            (BalanceType::CreditLimit, "3000.00".to_owned()),
        ]
    );

    let all = testing::alice_history(&Fdx, session, &accounts, "1.23456").await;
    let lidl = all.iter().find(|t| t.id == "tx-alice-giro-16").unwrap();
    assert_eq!(
        (lidl.amount.to_string().as_str(), lidl.status),
        ("-54.20", TransactionStatus::Pending)
    );
    assert_eq!(
        (
            lidl.currency.as_str(),
            lidl.merchant_category_code.as_deref()
        ),
        ("EUR", Some("5411"))
    );
    let salary = all.iter().find(|t| t.id == "tx-alice-giro-11").unwrap();
    assert_eq!(salary.amount.to_string(), "3120.44");

    // Revoking the grant ends access.
    let revoked = bank
        .http
        .put(bank.url(&format!("/consents/{grant_id}/revocation")))
        .bearer_auth(session.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert!(matches!(
        Fdx.accounts(session).await,
        Err(AdapterError::Status { status: 401 })
    ));
}

#[tokio::test]
async fn data_clusters_bound_what_the_bank_serves() {
    let (_sandbox, bank) = testing::sandbox_bank(NAME, "fdx-bank", "/fdx/v6").await;
    let consent = Fdx
        .create_consent(&bank, &testing::consent_request(&[Scope::Accounts]))
        .await
        .unwrap();
    let tokens = testing::tokens(&bank, &consent, Some("carol")).await;
    let session = testing::session(&bank, &tokens, None);
    let accounts = Fdx.accounts(session).await.unwrap();
    assert_eq!(accounts[0].account.currency, "USD");
    assert_eq!(
        accounts[2].account.status,
        crate::model::AccountStatus::Blocked
    );
    // ACCOUNT_BASIC only: the account, but no balances.
    assert_eq!(
        Fdx.balances(session, &testing::account("carol-usd", "x"))
            .await
            .unwrap(),
        []
    );
    assert!(matches!(
        Fdx.transactions(
            session,
            History {
                account: &testing::account("carol-usd", "x"),
                from: None
            }
        )
        .await,
        Err(AdapterError::Status { status: 403 })
    ));
}
