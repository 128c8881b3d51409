//! One user, five banks of four standards and one proprietary API (through the `mapping`
//! profile): the platform consents at each bundled sandbox bank
//! through the gateway and reads normalised balances and transactions, exact to the bank's
//! precision and signed as money in and out.

use bankgate::demo::account_information;
use bankgate::model::Scope;
use serde_json::Value;

use crate::support::{StoreKind, TestGateway};

on_both_stores!(one_user_reads_four_standards_through_one_api);

const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances, Scope::Transactions];

/// What each bank shows of the same customer: the giro account's booked balance (by its
/// canonical type) and the savings accrual at the standard's precision.
const BANKS: &[(&str, &str, &str)] = &[
    ("demo-bank", "closing_booked", "1.235"),
    ("stet-bank", "closing_booked", "1.23"),
    ("obie-bank", "closing_booked", "1.23456"),
    ("fdx-bank", "interim_booked", "1.23456"),
    // A proprietary API through the declarative mapping profile (amounts in whole cents).
    ("nova-bank", "closing_booked", "1.23"),
];

async fn one_user_reads_four_standards_through_one_api(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    for (bank, booked_type, accrual) in BANKS {
        let mut detail = account_information(bank, "fraud-alerts", SCOPES, "u-banks");
        detail.history_days = 30;
        let (token, trace) = gateway
            .platform
            .connect(&detail)
            .await
            .unwrap_or_else(|error| panic!("{bank}: consent flow: {error}"));
        assert!(
            trace
                .bank_authorization_url
                .contains("code_challenge_method=S256"),
            "{bank}"
        );
        let get = |path: String| {
            let token = token.access_token.clone();
            let platform = &gateway.platform;
            async move {
                let (status, body) = platform.get(&token, &path).await.unwrap();
                assert_eq!(status, 200, "{bank} {path}: {body}");
                body
            }
        };

        let accounts = get("/v1/accounts".into()).await;
        let accounts = accounts["accounts"].as_array().unwrap().clone();
        assert_eq!(accounts.len(), 3, "{bank}: {accounts:?}");
        let named = |name: &str| -> Value {
            accounts
                .iter()
                .find(|a| a["display_name"] == name)
                .unwrap_or_else(|| panic!("{bank}: no account {name}: {accounts:?}"))
                .clone()
        };
        let giro = named("Main Account");
        let giro_id = giro["id"].as_str().unwrap();
        assert!(
            giro.get("iban").is_none(),
            "{bank}: fraud-alerts never sees full IBANs"
        );
        assert_eq!(giro["type"], "current", "{bank}");

        let balances = get(format!("/v1/accounts/{giro_id}/balances")).await;
        let balances = balances["balances"].as_array().unwrap();
        let booked = balances
            .iter()
            .find(|b| b["type"] == *booked_type)
            .unwrap_or_else(|| panic!("{bank}: no {booked_type}: {balances:?}"));
        assert_eq!(booked["amount"], "-152.37", "{bank}");
        assert_eq!(booked["currency"], "EUR", "{bank}");

        // The last 30 days of fraud-alerts: 7 booked and 2 pending, signed by direction.
        let transactions = get(format!("/v1/accounts/{giro_id}/transactions")).await;
        let transactions = transactions["transactions"].as_array().unwrap();
        assert_eq!(transactions.len(), 9, "{bank}: {transactions:?}");
        let by_id = |id: &str| -> &Value {
            transactions
                .iter()
                .find(|t| t["id"] == id)
                .unwrap_or_else(|| panic!("{bank}: no {id}: {transactions:?}"))
        };
        assert_eq!(
            by_id("tx-alice-giro-12")["amount"],
            "-1150.00",
            "{bank}: rent"
        );
        assert_eq!(
            by_id("tx-alice-giro-11")["amount"],
            "3120.44",
            "{bank}: salary"
        );
        let lidl = by_id("tx-alice-giro-16");
        assert_eq!(
            (&lidl["amount"], &lidl["status"]),
            (&Value::from("-54.20"), &Value::from("pending")),
            "{bank}"
        );

        let savings = named("Savings");
        let savings_id = savings["id"].as_str().unwrap();
        let savings = get(format!("/v1/accounts/{savings_id}/transactions")).await;
        let accrued = savings["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "tx-alice-sav-11")
            .unwrap_or_else(|| panic!("{bank}: no accrual: {savings}"));
        assert_eq!(
            accrued["amount"], *accrual,
            "{bank}: the standard's precision"
        );
    }
}
