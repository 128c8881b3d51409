//! Private account ids: the id a platform sees is keyed per platform, so it can neither be
//! enumerated back to the account number nor joined with another platform's; it stays the
//! same across re-consent; and the unkeyed ids of earlier versions, recorded with their
//! consents, keep resolving.

use std::collections::{HashMap, HashSet};

use bankgate::adapters::{AccountRef, account_id};
use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

on_both_stores!(account_ids_are_private_per_platform_and_stable);

const BANK: &str = "demo-bank";
const PURPOSE: &str = "p2p-payments-payee-check";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Identity];
/// The sandbox bank's code (BLZ) in its German IBANs.
const BANK_CODE: &str = "99990000";
/// The synthetic customer's accounts with an IBAN (`crates/sandbox/customers.toml`, Alice).
const KNOWN_IBANS: &[&str] = &["DE92999900000012345601", "DE65999900000012345602"];

/// A German IBAN of `BANK_CODE` and a ten-digit account number, check digits computed
/// (ISO 13616: the BBAN, then `DE00` as digits, mod 97).
fn german_iban(account_number: u64) -> String {
    let bban = format!("{BANK_CODE}{account_number:010}");
    let digits: u128 = format!("{bban}131400").parse().unwrap();
    format!("DE{:02}{bban}", 98 - digits % 97)
}

/// What anyone can compute without a key: every id of the unkeyed scheme over a slice of
/// the bank's account-number space (100,000 numbers around the customer's), back to its IBAN.
fn enumerate_unkeyed_ids() -> HashMap<String, String> {
    (12_300_000..12_400_000)
        .map(|number| {
            let iban = german_iban(number);
            (account_id(BANK, &iban), iban)
        })
        .collect()
}

/// The accounts a platform lists: `iban_masked` → id.
async fn list(platform: &PlatformClient, user_ref: &str) -> (String, HashMap<String, String>) {
    let detail = account_information(BANK, PURPOSE, SCOPES, user_ref);
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let accounts: HashMap<String, String> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|account| account["iban_masked"].is_string())
        .map(|account| {
            let id = account["id"].as_str().unwrap();
            assert!(
                id.starts_with("acc_") && id.len() == 28,
                "opaque ids keep their form: {id}"
            );
            (
                account["iban_masked"].as_str().unwrap().to_owned(),
                id.to_owned(),
            )
        })
        .collect();
    assert_eq!(accounts.len(), KNOWN_IBANS.len(), "{body}");
    (token.access_token, accounts)
}

async fn account_information_of(
    platform: &PlatformClient,
    token: &str,
    account_id: &str,
) -> (u16, Value) {
    let (status, body) = platform
        .get(token, &format!("/v1/accounts/{account_id}/balances"))
        .await
        .unwrap();
    (status, body)
}

async fn account_ids_are_private_per_platform_and_stable(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway.another_platform("chat-a", &[PURPOSE]).await;
    let social = gateway.another_platform("social-b", &[PURPOSE]).await;
    assert_eq!(
        german_iban(12_345_601),
        KNOWN_IBANS[0],
        "the IBAN generator"
    );

    let space = enumerate_unkeyed_ids();
    assert_eq!(space.len(), 100_000);

    // The unkeyed ids earlier versions released give the account number away: enumerating the
    // bank's account numbers finds each one, and with it the full IBAN.
    for iban in KNOWN_IBANS {
        assert_eq!(space.get(&account_id(BANK, iban)), Some(&iban.to_string()));
    }

    let (_, chat_ids) = list(&chat, "u-1").await;
    let (_, social_ids) = list(&social, "u-1").await;

    // The keyed ids are not in the enumeration: the id gives no account number away.
    for id in chat_ids.values().chain(social_ids.values()) {
        assert!(!space.contains_key(id), "{id} enumerated");
    }

    // One account, two platforms, two unrelated ids: they cannot join their users.
    assert_eq!(
        chat_ids.keys().collect::<HashSet<_>>(),
        social_ids.keys().collect::<HashSet<_>>(),
        "both platforms see the same accounts"
    );
    let chat_set: HashSet<&String> = chat_ids.values().collect();
    let social_set: HashSet<&String> = social_ids.values().collect();
    assert!(
        chat_set.is_disjoint(&social_set),
        "{chat_ids:?} {social_ids:?}"
    );

    // A new consent for the same platform (re-consent) lists the same ids.
    let (again_token, again_ids) = list(&chat, "u-1").await;
    assert_eq!(again_ids, chat_ids);
    for id in again_ids.values() {
        let (status, body) = account_information_of(&chat, &again_token, id).await;
        // p2p-payments-payee-check has no balances scope: refused by scope, not as unknown.
        assert_eq!(status, 403, "{body}");
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .ends_with("/scope-not-granted"),
            "{body}"
        );
    }

    // An id of the unkeyed scheme is not an id of a new consent...
    let balance_detail = account_information(
        BANK,
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-1",
    );
    let (balances_token, _) = gateway
        .platform
        .connect(&balance_detail)
        .await
        .expect("consent flow");
    let legacy = account_id(BANK, KNOWN_IBANS[0]);
    let (status, body) =
        account_information_of(&gateway.platform, &balances_token.access_token, &legacy).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/account-not-in-consent"),
        "{body}"
    );

    // ...but one recorded with a consent by an earlier version (its listing stored the
    // unkeyed id in the consent's account references) keeps resolving to the same account.
    let claims = gateway
        .app
        .tokens
        .verify(&balances_token.access_token)
        .unwrap();
    let consent_id = claims.sub;
    let keyed = gateway.app.sealer.account_id("messenger", &legacy);
    let (status, keyed_body) =
        account_information_of(&gateway.platform, &balances_token.access_token, &keyed).await;
    assert_eq!(status, 200, "{keyed_body}");
    let bank_ref = gateway
        .app
        .store
        .account_ref(&consent_id, &keyed)
        .await
        .unwrap()
        .expect("the keyed id is recorded")
        .bank_ref;
    gateway
        .app
        .store
        .put_account_refs(
            &consent_id,
            &[AccountRef {
                account_id: legacy.clone(),
                bank_ref,
            }],
        )
        .await
        .unwrap();
    let (status, legacy_body) =
        account_information_of(&gateway.platform, &balances_token.access_token, &legacy).await;
    assert_eq!(status, 200, "{legacy_body}");
    let amounts = |body: &Value| -> Vec<Value> {
        body["balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|balance| balance["amount"].clone())
            .collect()
    };
    assert!(!amounts(&legacy_body).is_empty());
    assert_eq!(amounts(&legacy_body), amounts(&keyed_body));
    assert_eq!(legacy_body["balances"][0]["account_id"], legacy.as_str());
}
