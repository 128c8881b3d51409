//! Tests of the STET profile: the published examples (against reviewed expectations in
//! `tests/expected/stet/`), synthetic edge cases, a property test of the wire parsers and a
//! round trip through the STET sandbox bank.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::wire::{self, AccountsResponse, BalancesResponse, TransactionsResponse};
use super::{NAME, SCOPE, Stet};
use crate::adapters::common::{follow_link, parse_body};
use crate::adapters::testing::{self, arbitrary_json};
use crate::adapters::{AdapterError, BankSession, ConsentRequest, History, Profile, account_id};
use crate::model::{AccountType, BalanceType, Scope, TransactionStatus};

const FIXTURES: &str = "stet";
const BANK: &str = "test-bank";
const ACCOUNT: &str = "acc_test";

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, AdapterError> {
    parse_body(text.as_bytes(), wire::error_in_body)
}

/// The canonical form of a response fixture, by the endpoint its name says it answers.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    Ok(if name.contains("get-accounts") {
        let accounts = wire::accounts(BANK, parse(text)?)?;
        accounts
            .iter()
            .map(|a| json!({"bank_ref": a.bank_ref, "account": a.account}))
            .collect()
    } else if name.contains("get-account-balances") {
        json!(wire::balances(ACCOUNT, parse(text)?)?)
    } else if name.contains("get-account-transactions") {
        let response: TransactionsResponse = parse(text)?;
        json!({
            "transactions": wire::transactions(ACCOUNT, response.transactions)?,
            "next": wire::next_href(response.links.as_ref()),
        })
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_response_fixture_normalises_as_expected() {
    let responses = |name: &str| !name.contains("_request");
    assert_eq!(testing::check_fixtures(FIXTURES, responses, normalise), 5);
}

#[test]
fn quirk_account_without_account_id_is_identified_by_its_resource_id() {
    // The published example has no accountId; its currency sits beside the account.
    let list: AccountsResponse =
        parse(&testing::fixture(FIXTURES, "v1.4_get-accounts.json")).unwrap();
    assert_eq!(
        wire::next_href(list.links.as_ref()),
        Some("v1/accounts?page=3")
    );
    let accounts = wire::accounts(BANK, list).unwrap();
    let account = &accounts[0].account;
    assert_eq!(account.id, account_id(BANK, "Alias1"));
    assert_eq!(
        (account.currency.as_str(), account.kind),
        ("EUR", AccountType::Current)
    );
    assert_eq!(account.iban, None);
}

#[test]
fn quirk_remittance_as_a_bare_array_and_pending_dated_by_transaction_date() {
    let response: TransactionsResponse = parse(&testing::fixture(
        FIXTURES,
        "synthetic_v1.4_get-account-transactions_booked-and-pending.json",
    ))
    .unwrap();
    let transactions = wire::transactions(ACCOUNT, response.transactions).unwrap();
    let amounts: Vec<String> = transactions.iter().map(|t| t.amount.to_string()).collect();
    assert_eq!(amounts, ["-52.25", "1800.00", "-4.80"]);
    assert_eq!(
        transactions[0].description.as_deref(),
        Some("CB SUPERMARCHE 03/03")
    );
    let pending = &transactions[2];
    assert_eq!(pending.status, TransactionStatus::Pending);
    assert_eq!(pending.booking_date, None);
    assert_eq!(
        pending.value_date.map(|d| d.to_string()).as_deref(),
        Some("2025-03-05")
    );
    assert!(pending.id.starts_with("txn_"), "derived id: {}", pending.id);
}

#[test]
fn quirk_relative_links_resolve_against_the_api_root() {
    let base = "https://bank.example/stet/psd2";
    let next = |href: &str| follow_link(base, href).map(|url| url.to_string());
    assert_eq!(
        next("v1/accounts/Alias1/transactions?page=3").unwrap(),
        "https://bank.example/stet/psd2/v1/accounts/Alias1/transactions?page=3"
    );
    assert_eq!(
        next("/stet/psd2/v1/accounts?page=2").unwrap(),
        "https://bank.example/stet/psd2/v1/accounts?page=2"
    );
    assert_eq!(
        next("https://bank.example/stet/psd2/v1/accounts?page=2").unwrap(),
        "https://bank.example/stet/psd2/v1/accounts?page=2"
    );
    assert!(matches!(
        next("https://evil.example/v1/accounts"),
        Err(AdapterError::Decode(_))
    ));
    assert!(matches!(
        next("//evil.example/x"),
        Err(AdapterError::Decode(_))
    ));
}

#[track_caller]
fn check_transactions(list: Value, expected: Value) {
    let body = json!({ "transactions": list }).to_string();
    let response: TransactionsResponse = parse(&body).unwrap();
    let actual = wire::transactions(ACCOUNT, response.transactions)
        .map(|transactions| {
            transactions
                .iter()
                .map(|t| {
                    json!([
                        t.amount.to_string(),
                        t.status,
                        t.description,
                        t.counterparty_name,
                        t.bank_code
                    ])
                })
                .collect::<Value>()
        })
        .unwrap_or_else(|error| json!({"error": error.to_string()}));
    assert_eq!(actual, expected);
}

#[test]
fn signs_come_from_the_indicator() {
    let eur = |amount: Value| json!({"currency": "EUR", "amount": amount});
    check_transactions(
        json!([
            {"entryReference": "1", "transactionAmount": eur(json!("12.30")), "creditDebitIndicator": "DBIT",
             "status": "BOOK", "bookingDate": "2025-01-02",
             "relatedParties": {"creditor": {"name": "Boulangerie"}, "debtor": {"name": "Moi"}},
             "remittanceInformation": {"unstructured": ["CB", "BOULANGERIE"]},
             "bankTransactionCode": {"domain": "PMNT", "family": "CCRD", "subFamily": "POSD"}},
            {"entryReference": "2", "transactionAmount": eur(json!("-5.00")), "creditDebitIndicator": "CRDT",
             "status": "BOOK", "bookingDate": "2025-01-02",
             "remittanceInformation": {"structured": [{"reference": "RF18539007547034"}]},
             "bankTransactionCode": {"code": "RCDT"}},
            {"entryReference": "3", "transactionAmount": eur(json!(-3)), "status": "PDNG",
             "remittanceInformation": "une ligne"},
            {"entryReference": "4", "transactionAmount": eur(json!("0.00001")), "creditDebitIndicator": "dbit",
             "bookingDate": "2025-01-02"},
            {"entryReference": "5", "transactionAmount": eur(json!("9.99")), "creditDebitIndicator": "DBIT",
             "status": "RJCT", "bookingDate": "2025-01-02"},
        ]),
        json!([
            [
                "-12.30",
                "booked",
                "CB BOULANGERIE",
                "Boulangerie",
                "PMNT-CCRD-POSD"
            ],
            ["5.00", "booked", "RF18539007547034", null, "RCDT"],
            ["-3", "pending", "une ligne", null, null],
            ["-0.00001", "booked", null, null, null],
        ]),
    );
    check_transactions(
        json!([{"transactionAmount": eur(json!("3")), "bookingDate": "2025-01-02"}]),
        json!({"error": "bank payload not understood: transactions[0]: creditDebitIndicator is missing and the amount is unsigned"}),
    );
    check_transactions(
        json!([{"transactionAmount": eur(json!("3")), "creditDebitIndicator": "PLUS"}]),
        json!({"error": "bank payload not understood: transactions[0].creditDebitIndicator: neither CRDT nor DBIT"}),
    );
    check_transactions(
        json!([{"transactionAmount": eur(json!("1,50")), "creditDebitIndicator": "DBIT"}]),
        json!({"error": "bank payload not understood: transactions[0].transactionAmount: not a decimal number"}),
    );
    check_transactions(json!([]), json!([]));
}

#[test]
fn balance_types_are_all_mapped() {
    let body = json!({"balances": [
        {"balanceType": "CLBD", "balanceAmount": {"currency": "EUR", "amount": "-1.50"}, "referenceDate": "2025-03-04"},
        {"balanceType": "XPCD", "balanceAmount": {"currency": "EUR", "amount": "2"}},
        {"balanceType": "VALU", "balanceAmount": {"currency": "EUR", "amount": "3.00"}},
        {"balanceType": "OTHR", "name": "Solde disponible", "balanceAmount": {"currency": "EUR", "amount": "4"}},
        {"balanceType": "OTHR", "balanceAmount": {"currency": "EUR", "amount": "5"}},
        {"balanceType": "ITAV", "balanceAmount": {"currency": "EUR", "amount": "6"}},
        {"balanceType": "CLBD"},
        {"name": "no type", "balanceAmount": {"currency": "EUR", "amount": "7"}},
    ]})
    .to_string();
    let balances = wire::balances(ACCOUNT, parse(&body).unwrap()).unwrap();
    let kinds: Vec<BalanceType> = balances.iter().map(|b| b.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            BalanceType::ClosingBooked,
            BalanceType::Expected,
            BalanceType::Other("VALU".into()),
            BalanceType::Other("Solde disponible".into()),
            BalanceType::Other("OTHR".into()),
            BalanceType::Other("ITAV".into()),
        ]
    );
    assert_eq!(balances[0].amount.to_string(), "-1.50");
    assert_eq!(
        balances[0].as_of.map(|t| t.to_rfc3339()).as_deref(),
        Some("2025-03-04T00:00:00+00:00")
    );
}

#[test]
fn accounts_are_identified_by_iban_then_other_identification() {
    let body = json!({"accounts": [
        {"resourceId": "r1", "accountId": {"iban": "FR76 3000 6000 0112 3456 7890 189", "currency": "eur"},
         "name": "Compte", "cashAccountType": "CACC"},
        {"resourceId": "r2", "accountId": {"other": {"identification": "489537******7421", "schemeName": "CPAN"}, "currency": "EUR"},
         "product": "Visa"},
        {"resourceId": "r3", "accountId": {"iban": "FR00BAD", "currency": "USD"}},
        {"name": "nothing identifies me"},
    ]})
    .to_string();
    let accounts = wire::accounts(BANK, parse(&body).unwrap()).unwrap();
    assert_eq!(accounts.len(), 3);
    assert_eq!(
        accounts[0].account.id,
        account_id(BANK, "FR7630006000011234567890189")
    );
    assert_eq!(accounts[0].account.currency, "EUR");
    assert_eq!(
        accounts[1].account.id,
        account_id(BANK, "CPAN:489537******7421")
    );
    assert_eq!(accounts[1].account.kind, AccountType::Card);
    assert_eq!(
        accounts[1].account.pan_masked.as_deref(),
        Some("489537******7421")
    );
    assert_eq!(accounts[2].account.iban, None, "a bad IBAN is dropped");
    assert_eq!(accounts[2].account.id, account_id(BANK, "r3"));
}

#[test]
fn success_answers_with_error_bodies_are_refused() {
    let refused = |body: &str| {
        matches!(
            parse::<BalancesResponse>(body),
            Err(AdapterError::ErrorBody(_) | AdapterError::Decode(_))
        )
    };
    assert!(refused(
        r#"{"status": 403, "error": "Forbidden", "message": "no"}"#
    ));
    assert!(refused(r#"{"error": "invalid_token"}"#));
    assert!(refused("<html>down</html>"));
    assert!(!refused(r#"{"balances": []}"#));
}

proptest! {
    #[test]
    fn wire_parsers_never_panic_on_arbitrary_json(value in arbitrary_json()) {
        let text = value.to_string();
        let _ = parse::<AccountsResponse>(&text).and_then(|list| wire::accounts(BANK, list));
        let _ = parse::<BalancesResponse>(&text).and_then(|list| wire::balances(ACCOUNT, list));
        let _ = parse::<TransactionsResponse>(&text)
            .and_then(|list| wire::transactions(ACCOUNT, list.transactions));
        for wrapped in [json!({"accounts": [value.clone()]}), json!({"balances": [value.clone()]}),
                        json!({"transactions": [value.clone()]})] {
            let text = wrapped.to_string();
            let _ = parse::<AccountsResponse>(&text).and_then(|list| wire::accounts(BANK, list));
            let _ = parse::<BalancesResponse>(&text).and_then(|list| wire::balances(ACCOUNT, list));
            let _ = parse::<TransactionsResponse>(&text)
                .and_then(|list| wire::transactions(ACCOUNT, list.transactions));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox bank

#[tokio::test]
async fn put_consents_request_fixture_is_checked_by_the_sandbox() {
    let (_sandbox, bank) = testing::sandbox_bank(NAME, "stet-bank", "").await;
    let consent = Stet.create_consent(&bank, &request()).await.unwrap();
    let tokens = testing::tokens(&bank, &consent, None).await;
    let token = tokens["access_token"].as_str().unwrap();
    let put = |body: Value| {
        let bank = &bank;
        async move {
            let response = bank
                .http
                .put(bank.url("/v1/consents"))
                .header("X-Request-ID", "r-1")
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            json!({"status": status, "message": body["message"]})
        }
    };
    let name = "v1.4_put-consents_request.json";
    let fixture: Value = serde_json::from_str(&testing::fixture(FIXTURES, name)).unwrap();
    // The example's IBAN ("YY64…", 34 characters) is no account of the customer.
    testing::check_expected(FIXTURES, name, &put(fixture.clone()).await);
    let mut own = fixture;
    own["balances"][0]["iban"] = json!("DE92999900000012345601");
    assert_eq!(put(own).await["status"], 201);
}

fn request() -> ConsentRequest {
    testing::consent_request(&[Scope::Accounts, Scope::Balances, Scope::Transactions])
}

#[tokio::test]
async fn round_trip_through_the_sandbox_bank() {
    let (_sandbox, bank) = testing::sandbox_bank(NAME, "stet-bank", "").await;
    let consent = Stet.create_consent(&bank, &request()).await.unwrap();
    assert_eq!(
        (consent.id.as_deref(), &consent.oauth_scopes[..]),
        (None, &[SCOPE.to_owned()][..])
    );
    let tokens = testing::tokens(&bank, &consent, None).await;
    assert_eq!(tokens["scope"], SCOPE);
    let session = testing::session(&bank, &tokens, None);

    // Three accounts over two pages.
    let accounts = testing::alice_accounts(&Stet, session).await;
    let giro = &accounts[0].account;
    assert_eq!(giro.id, account_id("stet-bank", "DE92999900000012345601"));
    let card = &accounts[2].account;
    assert_eq!(
        (card.kind, card.pan_masked.as_deref()),
        (AccountType::Card, Some("489537******7421"))
    );

    let balances = Stet
        .balances(session, &testing::account("alice-giro", &giro.id))
        .await
        .unwrap();
    let summary: Vec<(String, String)> = balances
        .iter()
        .map(|b| {
            (
                serde_json::to_value(&b.kind).unwrap().to_string(),
                b.amount.to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                r#"{"type":"closing_booked"}"#.to_owned(),
                "-152.37".to_owned()
            ),
            (
                r#"{"type":"other","type_original":"Solde d'ouverture"}"#.into(),
                "1204.55".into()
            ),
            (
                r#"{"type":"other","type_original":"Solde disponible"}"#.into(),
                "1760.51".into()
            ),
            (r#"{"type":"expected"}"#.into(), "-239.49".into()),
        ]
    );

    // All history: 16 entries over two pages, signed by their indicator; the sub-cent accrual
    // of the savings account is rounded to STET's two decimals.
    let all = testing::alice_history(&Stet, session, &accounts, "1.23").await;
    let rent = all.iter().find(|t| t.id == "tx-alice-giro-12").unwrap();
    assert_eq!(rent.amount.to_string(), "-1150.00");
    assert_eq!(
        rent.counterparty_name.as_deref(),
        Some("Hausverwaltung Berlin GmbH")
    );
    assert_eq!(rent.bank_code.as_deref(), Some("PMNT-ICDT-STDO"));
    let salary = all.iter().find(|t| t.id == "tx-alice-giro-11").unwrap();
    assert_eq!(salary.amount.to_string(), "3120.44");
    assert_eq!(
        all.iter()
            .filter(|t| t.status == TransactionStatus::Pending)
            .count(),
        2
    );
    // PUT /v1/consents narrows the accesses to the giro account's balances.
    Stet.put_consents(
        session,
        &wire::ConsentsRequest {
            balances: vec![wire::AccountIdentification {
                iban: Some("DE92999900000012345601".into()),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        Stet.balances(session, &testing::account("alice-giro", &giro.id))
            .await
            .is_ok()
    );
    for denied in [
        Stet.balances(session, &testing::account("alice-card", &card.id))
            .await
            .map(|_| ()),
        Stet.transactions(
            session,
            History {
                account: &testing::account("alice-giro", &giro.id),
                from: None,
            },
        )
        .await
        .map(|_| ()),
    ] {
        assert!(
            matches!(denied, Err(AdapterError::Status { status: 403 })),
            "{denied:?}"
        );
    }
    assert!(matches!(
        Stet.balances(session, &testing::account("bob-card", "x"))
            .await,
        Err(AdapterError::Status { status: 404 })
    ));
    let forged = BankSession {
        bank: &bank,
        access_token: "forged",
        bank_consent_id: None,
    };
    assert!(matches!(
        Stet.accounts(forged).await,
        Err(AdapterError::Status { status: 401 })
    ));
}

#[tokio::test]
async fn another_customer_signs_in_with_a_login_hint() {
    let (_sandbox, bank) = testing::sandbox_bank(NAME, "stet-bank", "").await;
    let consent = Stet.create_consent(&bank, &request()).await.unwrap();
    let tokens = testing::tokens(&bank, &consent, Some("bob")).await;
    let session = testing::session(&bank, &tokens, None);
    let accounts = Stet.accounts(session).await.unwrap();
    let wallet = &accounts[1].account;
    assert_eq!(
        (wallet.currency.as_str(), wallet.kind),
        ("XXX", AccountType::Current)
    );
    let balances = Stet
        .balances(session, &testing::account("bob-wallet", &wallet.id))
        .await
        .unwrap();
    let currencies: Vec<&str> = balances.iter().map(|b| b.currency.as_str()).collect();
    assert_eq!(currencies, ["GBP", "EUR", "USD", "EUR", "USD"]);
}
