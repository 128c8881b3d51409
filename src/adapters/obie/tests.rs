//! Tests of the OBIE profile: the published v3.1.11 and v4.0 examples (against reviewed
//! expectations in `tests/expected/obie/`), synthetic edge cases, a property test of the wire
//! parsers and round trips through the OBIE sandbox bank in both versions.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::wire::{self, AccountsData, BalancesData, ConsentData, Envelope, TransactionsData};
use super::{NAME, Obie};
use crate::adapters::common::parse_body;
use crate::adapters::testing::{self, arbitrary_json};
use crate::adapters::{
    AdapterError, BankAccount, BankConsent, BankSession, History, Profile, account_id,
};
use crate::model::{AccountType, BalanceType, Scope, TransactionStatus};

const FIXTURES: &str = "obie";
const BANK: &str = "test-bank";
const ACCOUNT: &str = "acc_test";

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<Envelope<T>, AdapterError> {
    parse_body(text.as_bytes(), wire::error_in_body)
}

/// The canonical form of a response fixture, by the endpoint its name says it answers.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    let example = name.split_once('_').map_or(name, |(_, example)| example);
    Ok(if example.starts_with("get-account-access-consent") {
        json!(wire::ConsentState::try_from(
            parse::<ConsentData>(text)?.data
        )?)
    } else if example.starts_with("post-account-access-consents_response") {
        let consent = BankConsent::try_from(parse::<ConsentData>(text)?.data)?;
        json!({"id": consent.id, "oauth_scopes": consent.oauth_scopes,
               "authorization_params": consent.authorization_params})
    } else if example.starts_with("get-account-balances") || example.starts_with("get-balances") {
        json!(wire::balances(
            ACCOUNT,
            None,
            parse::<BalancesData>(text)?.data
        )?)
    } else if example.starts_with("get-account-transactions")
        || example.starts_with("get-transactions")
    {
        json!(wire::transactions(
            ACCOUNT,
            None,
            parse::<TransactionsData>(text)?.data.transaction
        )?)
    } else if example.starts_with("get-account_") || example.starts_with("get-accounts") {
        let accounts = wire::accounts(BANK, parse::<AccountsData>(text)?.data)?;
        accounts
            .iter()
            .map(|a| json!({"bank_ref": a.bank_ref, "account": a.account}))
            .collect()
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_response_fixture_normalises_as_expected() {
    let responses = |name: &str| !name.contains("_request");
    assert_eq!(testing::check_fixtures(FIXTURES, responses, normalise), 17);
}

#[test]
fn quirk_v3_names_and_v4_codes_mean_the_same() {
    let v3 = normalise(
        "v3.1.11_get-balances_bulk.json",
        &testing::fixture(FIXTURES, "v3.1.11_get-balances_bulk.json"),
    )
    .unwrap();
    let v4 = normalise(
        "v4.0_get-balances_bulk.json",
        &testing::fixture(FIXTURES, "v4.0_get-balances_bulk.json"),
    )
    .unwrap();
    assert_eq!(v3, v4, "InterimAvailable/ITAV and InterimBooked/ITBD");
    assert_eq!(v3[0]["type"], "interim_available");
    assert_eq!(v3[2]["amount"], "-57.36", "Debit makes it negative");
}

#[test]
fn quirk_consent_statuses_of_both_versions_and_the_misspelt_rejection() {
    let state = |suffix: &str| {
        let data = parse::<ConsentData>(&testing::fixture(FIXTURES, suffix))
            .unwrap()
            .data;
        wire::ConsentState::try_from(data).unwrap()
    };
    assert_eq!(
        state("v3.1.11_get-account-access-consent_authorised.json").status,
        wire::ConsentStatus::Authorised
    );
    assert_eq!(
        state("v4.0_get-account-access-consent_AUTH.json").status,
        wire::ConsentStatus::Authorised
    );
    let awaiting = state("v4.0_get-account-access-consent_AWAU.json");
    assert_eq!(awaiting.status, wire::ConsentStatus::AwaitingAuthorisation);
    assert_eq!(
        awaiting.status_reasons,
        ["U036"],
        "StatusReason as an object"
    );
    let rejected = state("v4.0_get-account-access-consent_RJCT.json");
    assert_eq!(
        (rejected.status, rejected.status_original.as_str()),
        (wire::ConsentStatus::Rejected, "REJT")
    );
    // A rejected consent cannot be authorised.
    let data = parse::<ConsentData>(&testing::fixture(
        FIXTURES,
        "v4.0_get-account-access-consent_RJCT.json",
    ))
    .unwrap()
    .data;
    assert!(matches!(
        BankConsent::try_from(data),
        Err(AdapterError::Refused(_))
    ));
    // The schema's array form is read as well.
    let array = json!({"Data": {"ConsentId": "c", "Status": "AWAU",
        "StatusReason": [{"StatusReasonCode": "U036"}, {"StatusReasonCode": "U037"}]}});
    let data = parse::<ConsentData>(&array.to_string()).unwrap().data;
    assert_eq!(
        wire::ConsentState::try_from(data).unwrap().status_reasons,
        ["U036", "U037"]
    );
}

#[test]
fn quirk_single_balance_objects_and_credit_lines() {
    let text = testing::fixture(FIXTURES, "v3.1.11_get-account-balances_in-debit.json");
    let balances =
        wire::balances(ACCOUNT, None, parse::<BalancesData>(&text).unwrap().data).unwrap();
    assert_eq!(balances[0].amount.to_string(), "-100.00");
    assert_eq!(balances[0].credit_limit_included, Some(false));
    // The "Available" credit line is no limit; the pre-agreed one is.
    let limits: Vec<String> = balances[1..].iter().map(|b| b.amount.to_string()).collect();
    assert_eq!(limits, ["500.00"]);
    assert!(
        balances[1..]
            .iter()
            .all(|b| b.kind == BalanceType::CreditLimit)
    );
}

#[test]
fn quirk_non_iso_opening_date_and_country_are_not_read() {
    let text = testing::fixture(FIXTURES, "v4.0_get-accounts_bulk-detail.json");
    let accounts = wire::accounts(BANK, parse::<AccountsData>(&text).unwrap().data).unwrap();
    let account = &accounts[0].account;
    assert_eq!(
        account.id,
        account_id(BANK, "SortCodeAccountNumber:80200110203345")
    );
    assert_eq!(
        (
            account.sort_code.as_deref(),
            account.account_number.as_deref()
        ),
        (Some("802001"), Some("10203345"))
    );
    assert_eq!(account.kind, AccountType::Current);
    assert_eq!(account.holder_name.as_deref(), Some("Mr Kevin"));
}

#[test]
fn five_decimals_are_kept_and_signs_come_from_the_indicator() {
    let list = json!({"Data": {"Transaction": [
        {"TransactionId": "1", "Amount": {"Amount": "0.12345", "Currency": "GBP"},
         "CreditDebitIndicator": "Debit", "Status": "Booked", "BookingDateTime": "2025-03-01T10:00:00+00:00",
         "MerchantDetails": {"MerchantName": "Coffee", "MerchantCategoryCode": 742}},
        {"TransactionId": "2", "Amount": {"Amount": "1234567890123.12345", "Currency": "gbp"},
         "CreditDebitIndicator": "CRDT", "Status": "BOOK", "BookingDateTime": "2025-03-01T00:00:00Z",
         "DebtorAccount": {"Name": "Payer"}, "BankTransactionCode": {"Code": "ReceivedCreditTransfer", "SubCode": "DomesticCreditTransfer"}},
        {"Amount": {"Amount": "-4.5", "Currency": "GBP"}, "CreditDebitIndicator": "Credit",
         "Status": "PDNG", "BookingDateTime": "2025-03-02T00:00:00Z", "TransactionInformation": "hold"},
        {"TransactionId": "4", "Amount": {"Amount": "9", "Currency": "GBP"}, "CreditDebitIndicator": "Debit",
         "Status": "Rejected", "BookingDateTime": "2025-03-02T00:00:00Z"},
    ]}});
    let data = parse::<TransactionsData>(&list.to_string()).unwrap().data;
    let transactions = wire::transactions(ACCOUNT, None, data.transaction).unwrap();
    let view: Vec<Value> = transactions
        .iter()
        .map(|t| {
            json!([
                t.amount.to_string(),
                t.currency,
                t.status,
                t.booking_date,
                t.value_date,
                t.counterparty_name,
                t.merchant_category_code,
                t.bank_code
            ])
        })
        .collect();
    assert_eq!(
        Value::Array(view),
        json!([
            [
                "-0.12345",
                "GBP",
                "booked",
                "2025-03-01",
                null,
                "Coffee",
                "0742",
                null
            ],
            [
                "1234567890123.12345",
                "GBP",
                "booked",
                "2025-03-01",
                null,
                "Payer",
                null,
                "ReceivedCreditTransfer-DomesticCreditTransfer"
            ],
            [
                "4.5",
                "GBP",
                "pending",
                null,
                "2025-03-02",
                null,
                null,
                null
            ],
        ])
    );
    assert!(transactions[2].id.starts_with("txn_"));

    let broken = |entry: Value, message: &str| {
        let list = json!({"Data": {"Transaction": [entry]}}).to_string();
        let error = wire::transactions(
            ACCOUNT,
            None,
            parse::<TransactionsData>(&list).unwrap().data.transaction,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(message), "{error}");
    };
    broken(
        json!({"Amount": {"Amount": "1", "Currency": "GBP"}, "Status": "Booked"}),
        "CreditDebitIndicator is missing",
    );
    broken(
        json!({"Amount": {"Amount": "1", "Currency": "GBP"}, "Status": "Booked", "CreditDebitIndicator": "Up"}),
        "neither",
    );
    broken(
        json!({"Amount": {"Amount": "1.2.3", "Currency": "GBP"}, "Status": "Booked", "CreditDebitIndicator": "Debit"}),
        "not a decimal",
    );
    broken(
        json!({"CreditDebitIndicator": "Debit", "Status": "Booked"}),
        "Amount is missing",
    );
}

#[test]
fn every_balance_type_of_both_versions_is_mapped() {
    for (v3, v4, kind) in [
        ("ClosingBooked", "CLBD", BalanceType::ClosingBooked),
        ("OpeningBooked", "OPBD", BalanceType::OpeningBooked),
        ("InterimBooked", "ITBD", BalanceType::InterimBooked),
        ("InterimAvailable", "ITAV", BalanceType::InterimAvailable),
        ("Expected", "XPCD", BalanceType::Expected),
        ("ForwardAvailable", "FWAV", BalanceType::ForwardAvailable),
    ] {
        assert_eq!(wire::balance_type(v3), kind);
        assert_eq!(wire::balance_type(v4), kind);
    }
    for other in [
        "ClosingAvailable",
        "CLAV",
        "Information",
        "INFO",
        "PRCD",
        "ClosingCleared",
    ] {
        assert_eq!(wire::balance_type(other), BalanceType::Other(other.into()));
    }
}

#[test]
fn consent_requests_ask_for_the_permissions_of_the_scopes() {
    use Scope::*;
    assert_eq!(wire::permissions(&[Accounts]), ["ReadAccountsDetail"]);
    assert_eq!(
        wire::permissions(&[Balances]),
        ["ReadAccountsDetail", "ReadBalances"]
    );
    assert_eq!(
        wire::permissions(&[Accounts, Transactions]),
        [
            "ReadAccountsDetail",
            "ReadTransactionsDetail",
            "ReadTransactionsCredits",
            "ReadTransactionsDebits"
        ]
    );
    assert!(wire::permissions(&[]).is_empty());
    assert_eq!(wire::mask_pan("4895371234567421"), "489537******7421");
    assert_eq!(wire::mask_pan("489537******7421"), "489537******7421");
}

#[test]
fn error_responses_with_success_status_are_refused() {
    let refused = |body: &str| {
        matches!(
            parse::<AccountsData>(body),
            Err(AdapterError::Decode(_) | AdapterError::ErrorBody(_))
        )
    };
    assert!(refused(
        r#"{"Code": "500 Internal Server Error", "Id": "x", "Message": "m",
        "Errors": [{"ErrorCode": "UK.OBIE.UnexpectedError", "Message": "m"}]}"#
    ));
    assert!(refused(r#"{"Data": {"Account": [{"AccountId": 1}]}}"#));
    assert!(!refused(
        r#"{"Data": {"Account": []}, "Links": {"Self": "x"}}"#
    ));
}

proptest! {
    #[test]
    fn wire_parsers_never_panic_on_arbitrary_json(value in arbitrary_json()) {
        for candidate in [value.clone(), json!({"Data": value.clone()}),
                          json!({"Data": {"Account": [value.clone()]}}),
                          json!({"Data": {"Balance": value.clone()}}),
                          json!({"Data": {"Transaction": [value.clone()]}})] {
            let text = candidate.to_string();
            let _ = parse::<AccountsData>(&text).and_then(|e| wire::accounts(BANK, e.data));
            let _ = parse::<BalancesData>(&text).and_then(|e| wire::balances(ACCOUNT, Some("a"), e.data));
            let _ = parse::<TransactionsData>(&text)
                .and_then(|e| wire::transactions(ACCOUNT, None, e.data.transaction));
            let _ = parse::<ConsentData>(&text).and_then(|e| BankConsent::try_from(e.data));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sandbox bank

const ALL: &[Scope] = &[Scope::Accounts, Scope::Balances, Scope::Transactions];

#[tokio::test]
async fn consent_request_fixtures_are_accepted_by_the_sandbox() {
    for version in ["v3.1", "v4.0"] {
        let (_sandbox, bank) =
            testing::sandbox_bank(NAME, "obie-bank", &format!("/open-banking/{version}/aisp"))
                .await;
        let (_, token) = testing::answer(
            bank.http
                .post(&bank.manifest.oauth.token_endpoint)
                .basic_auth(&bank.client_id, bank.client_secret())
                .form(&[("grant_type", "client_credentials"), ("scope", "accounts")]),
        )
        .await;
        let token = token["access_token"].as_str().unwrap();
        let prefix = if version == "v3.1" { "v3.1.11" } else { "v4.0" };
        let name = format!("{prefix}_post-account-access-consents_request.json");
        let mut body: Value = serde_json::from_str(&testing::fixture(FIXTURES, &name)).unwrap();
        let post = |body: Value| {
            testing::answer(
                bank.http
                    .post(bank.url("/account-access-consents"))
                    .bearer_auth(token)
                    .json(&body),
            )
        };
        // As published, the example expires in 2017: refused.
        let (status, refusal) = post(body.clone()).await;
        // Dated into the future, it is accepted with every permission it names.
        body["Data"]["ExpirationDateTime"] = json!("2999-01-01T00:00:00+00:00");
        let (created, answer) = post(body).await;
        let actual = json!({
            "as_published": {"status": status, "errors": refusal["Errors"]},
            "dated_forward": {"status": created, "Status": answer["Data"]["Status"],
                              "Permissions": answer["Data"]["Permissions"]},
        });
        testing::check_expected(FIXTURES, &name, &actual);
    }
}

/// A consent authorised at the OBIE sandbox bank.
struct Authorised {
    _sandbox: bankgate_sandbox::Sandbox,
    bank: crate::adapters::Bank,
    consent_id: String,
    token: String,
}

impl Authorised {
    /// The session of the consent's data calls.
    fn session(&self) -> BankSession<'_> {
        BankSession {
            bank: &self.bank,
            access_token: &self.token,
            bank_consent_id: Some(&self.consent_id),
        }
    }
}

/// A consent for `scopes` created at the sandbox bank speaking `version` and authorised (by
/// `customer` when given).
async fn session_at(version: &str, scopes: &[Scope], customer: Option<&str>) -> Authorised {
    let (sandbox, bank) =
        testing::sandbox_bank(NAME, "obie-bank", &format!("/open-banking/{version}/aisp")).await;
    let consent = Obie
        .create_consent(&bank, &testing::consent_request(scopes))
        .await
        .unwrap();
    let consent_id = consent.id.clone().unwrap();
    assert_eq!(consent.oauth_scopes, ["openid", "accounts"]);
    let state = Obie.consent_state(&bank, &consent_id).await.unwrap();
    assert_eq!(state.status, wire::ConsentStatus::AwaitingAuthorisation);
    let tokens = testing::tokens(&bank, &consent, customer).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    Authorised {
        _sandbox: sandbox,
        bank,
        consent_id,
        token,
    }
}

/// Bob's consent for `scopes` at the sandbox bank speaking `version`, and his accounts there.
/// His current account, the first, has the same id whatever the scopes: it is keyed on the
/// IBAN.
async fn bobs_accounts(version: &str, scopes: &[Scope]) -> (Authorised, Vec<BankAccount>) {
    let at = session_at(version, scopes, Some("bob")).await;
    let accounts = Obie.accounts(at.session()).await.unwrap();
    assert_eq!(
        accounts[0].account.id,
        account_id("obie-bank", "GB62BKGT40051531926819")
    );
    (at, accounts)
}

#[tokio::test]
async fn round_trip_through_the_sandbox_bank_in_both_versions() {
    for version in ["v3.1", "v4.0"] {
        let at = session_at(version, ALL, None).await;
        let bank = &at.bank;
        let state = Obie.consent_state(bank, &at.consent_id).await.unwrap();
        assert_eq!(state.status, wire::ConsentStatus::Authorised);
        let session = at.session();

        let accounts = testing::alice_accounts(&Obie, session).await;
        let giro = &accounts[0].account;
        assert_eq!(giro.id, account_id("obie-bank", "DE92999900000012345601"));
        assert_eq!(
            (giro.kind, accounts[1].account.kind),
            (AccountType::Current, AccountType::Savings)
        );
        assert_eq!(giro.holder_name.as_deref(), Some("Alice Schmidt"));
        assert_eq!(
            accounts[2].account.pan_masked.as_deref(),
            Some("489537******7421")
        );

        let balances = Obie
            .balances(session, &testing::account("alice-giro", &giro.id))
            .await
            .unwrap();
        let closing = testing::balance(&balances, BalanceType::ClosingBooked);
        assert_eq!(closing.amount.to_string(), "-152.37", "{version}");
        let available = testing::balance(&balances, BalanceType::InterimAvailable);
        assert_eq!(
            (
                available.amount.to_string().as_str(),
                available.credit_limit_included
            ),
            ("1760.51", Some(true))
        );
        let limit = testing::balance(&balances, BalanceType::CreditLimit);
        assert_eq!(limit.amount.to_string(), "2000.00");

        // Five decimals in the savings accrual, as the bank keeps them.
        let all = testing::alice_history(&Obie, session, &accounts, "1.23456").await;
        let cafe = all.iter().find(|t| t.id == "tx-alice-giro-14").unwrap();
        assert_eq!(
            (
                cafe.amount.to_string().as_str(),
                cafe.merchant_category_code.as_deref()
            ),
            ("-23.80", Some("5812"))
        );
        assert_eq!(cafe.counterparty_name.as_deref(), Some("Café Einstein"));
        let pending: Vec<_> = all
            .iter()
            .filter(|t| t.status == TransactionStatus::Pending)
            .collect();
        assert_eq!(pending.len(), 2);
        assert!(
            pending
                .iter()
                .all(|t| t.booking_date.is_none() && t.value_date.is_some())
        );

        let forged = BankSession {
            bank,
            access_token: "forged",
            bank_consent_id: None,
        };
        assert!(matches!(
            Obie.accounts(forged).await,
            Err(AdapterError::Status { status: 401 })
        ));
        assert!(matches!(
            Obie.balances(session, &testing::account("bob-card", "x"))
                .await,
            Err(AdapterError::Status { status: 404 })
        ));
    }
}

#[tokio::test]
async fn permissions_bound_what_the_bank_serves() {
    let (at, accounts) = bobs_accounts("v4.0", &[Scope::Balances]).await;
    let session = at.session();
    let current = &accounts[0].account;
    let wallet = &accounts[1].account;
    assert_eq!(wallet.currency, "XXX");
    let balances = Obie
        .balances(session, &testing::account("bob-wallet", &wallet.id))
        .await
        .unwrap();
    let usd: Vec<String> = balances
        .iter()
        .filter(|b| b.currency == "USD")
        .map(|b| b.amount.to_string())
        .collect();
    assert_eq!(usd, ["-18.40", "-18.40"]);
    assert!(matches!(
        Obie.transactions(
            session,
            History {
                account: &testing::account("bob-current", &current.id),
                from: None
            }
        )
        .await,
        Err(AdapterError::Status { status: 403 })
    ));

    // Detail identifiers of a GB account: sort code and account number beside the IBAN.
    let (at, accounts) = bobs_accounts("v3.1", &[Scope::Accounts]).await;
    let session = at.session();
    let current = &accounts[0].account;
    assert_eq!(
        (
            current.sort_code.as_deref(),
            current.account_number.as_deref()
        ),
        (Some("400515"), Some("31926819"))
    );
    assert!(matches!(
        Obie.balances(session, &testing::account("bob-current", &current.id))
            .await,
        Err(AdapterError::Status { status: 403 })
    ));
}
