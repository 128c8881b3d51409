//! The payee directory end to end: a payee's platform registers handles for her payee consent
//! (`p2p-payments-payee-check`) with the consent's own token, pointing at one of her accounts
//! by the id it was given; another user of the platform cannot take or re-point the handle,
//! another platform has its own namespace, and a revoked consent frees its handles at once —
//! on both stores.

use bankgate::audit::{Action, Decision, Filter};
use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use serde_json::{Value, json};

use crate::support::{StoreKind, TestGateway};

on_both_stores!(
    payees_register_list_and_delete_their_handles,
    handles_cannot_be_hijacked_and_go_with_their_consent,
    the_directory_needs_a_payee_consents_token,
);

const BANK: &str = "demo-bank";
const PURPOSE: &str = "p2p-payments-payee-check";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Identity];

/// A payee consent: its token, its id and the ids of its accounts the platform was shown.
struct Payee {
    token: String,
    consent_id: String,
    accounts: Vec<String>,
}

async fn connect(platform: &PlatformClient, user_ref: &str) -> Payee {
    let detail = account_information(BANK, PURPOSE, SCOPES, user_ref);
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let accounts: Vec<String> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|account| account["iban_masked"].is_string())
        .map(|account| account["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(accounts.len() >= 2, "{body}");
    Payee {
        token: token.access_token,
        consent_id: token.consent_id,
        accounts,
    }
}

async fn register(
    platform: &PlatformClient,
    token: &str,
    handle: &str,
    account_id: &str,
) -> (u16, Value) {
    let answer = platform
        .put_json(
            token,
            &format!("/v1/payees/{handle}"),
            &json!({ "account_id": account_id }),
        )
        .await
        .unwrap();
    (answer.status, answer.json())
}

async fn handles(platform: &PlatformClient, token: &str) -> Vec<(String, String)> {
    let (status, body) = platform.get(token, "/v1/payees").await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["payees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|payee| {
            (
                payee["handle"].as_str().unwrap().to_owned(),
                payee["account_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .unwrap_or("")
}

async fn payees_register_list_and_delete_their_handles(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway.another_platform("chat-a", &[PURPOSE]).await;
    let alice = connect(&chat, "u-alice").await;

    let (status, body) = register(&chat, &alice.token, "@alice", &alice.accounts[0]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["handle"], "@alice");
    assert_eq!(body["account_id"], alice.accounts[0].as_str());

    // The same consent re-points its handle at its other account; the handle is normalised.
    let (status, body) = register(&chat, &alice.token, "Alice", &alice.accounts[1]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["handle"], "@alice");
    let (status, _) = register(&chat, &alice.token, "@alice.s", &alice.accounts[0]).await;
    assert_eq!(status, 201);
    assert_eq!(
        handles(&chat, &alice.token).await,
        vec![
            ("@alice".to_owned(), alice.accounts[1].clone()),
            ("@alice.s".to_owned(), alice.accounts[0].clone()),
        ]
    );

    let (status, _) = chat
        .delete(&alice.token, "/v1/payees/@alice.s")
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, body) = chat
        .delete(&alice.token, "/v1/payees/@alice.s")
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        handles(&chat, &alice.token).await,
        vec![("@alice".to_owned(), alice.accounts[1].clone())]
    );

    // Each change is audited under the payee's consent, the handle named, no account.
    let events = gateway
        .app
        .auditor
        .events(&Filter {
            consent: Some(alice.consent_id.clone()),
            ..Filter::default()
        })
        .await
        .unwrap();
    let registered = events
        .iter()
        .filter(|record| record.event.action == Action::PayeeRegistered)
        .count();
    let removed: Vec<_> = events
        .iter()
        .filter(|record| record.event.action == Action::PayeeRemoved)
        .collect();
    assert_eq!(registered, 3);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].event.fields, vec!["handle:@alice.s".to_owned()]);
    assert_eq!(removed[0].event.purpose.as_deref(), Some(PURPOSE));
}

async fn handles_cannot_be_hijacked_and_go_with_their_consent(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway.another_platform("chat-a", &[PURPOSE]).await;
    let social = gateway.another_platform("social-b", &[PURPOSE]).await;
    let alice = connect(&chat, "u-alice").await;
    let mallory = connect(&chat, "u-mallory").await;
    let (status, body) = register(&chat, &alice.token, "@alice", &alice.accounts[0]).await;
    assert_eq!(status, 201, "{body}");

    // Another user of the same platform can neither take nor re-point it, in any spelling.
    for spelling in ["@alice", "alice", "@ALICE"] {
        for account in &mallory.accounts {
            let (status, body) = register(&chat, &mallory.token, spelling, account).await;
            assert_eq!(status, 409, "{spelling}: {body}");
            assert_eq!(problem_type(&body), "payee-handle-taken", "{body}");
        }
    }
    let (status, _) = chat
        .delete(&mallory.token, "/v1/payees/@alice")
        .await
        .unwrap();
    assert_eq!(status, 404, "only its holder deletes a handle");
    assert!(handles(&chat, &mallory.token).await.is_empty());
    assert_eq!(
        handles(&chat, &alice.token).await,
        vec![("@alice".to_owned(), alice.accounts[0].clone())]
    );
    // The refusals are audited as denials under the consent that tried.
    let denied = gateway
        .app
        .auditor
        .events(&Filter {
            action: Some(Action::PayeeRegistered),
            consent: Some(mallory.consent_id.clone()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 3 * mallory.accounts.len());
    assert!(denied.iter().all(|record| {
        record.event.decision == Decision::Deny
            && record.event.reason.as_deref() == Some("payee-handle-taken")
    }));

    // Another platform has its own namespace: its @alice is its own user's.
    let bob = connect(&social, "u-bob").await;
    let (status, body) = register(&social, &bob.token, "@alice", &bob.accounts[0]).await;
    assert_eq!(status, 201, "{body}");
    // An account id of another platform is not one of this consent's accounts.
    let (status, body) = register(&chat, &mallory.token, "@mallory", &bob.accounts[0]).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(problem_type(&body), "account-not-in-consent");
    assert_eq!(
        handles(&chat, &alice.token).await,
        vec![("@alice".to_owned(), alice.accounts[0].clone())],
        "the other platform's registration left chat's @alice alone"
    );

    // Alice revokes her consent: her handle is gone at once, free for another user.
    let (status, _) = chat
        .delete(&alice.token, &format!("/v1/consents/{}", alice.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, body) = register(&chat, &mallory.token, "@alice", &mallory.accounts[0]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        handles(&chat, &mallory.token).await,
        vec![("@alice".to_owned(), mallory.accounts[0].clone())]
    );
    // The revoked consent's token is refused by the directory too.
    let (status, _) = chat.get(&alice.token, "/v1/payees").await.unwrap();
    assert_eq!(status, 401);
}

async fn the_directory_needs_a_payee_consents_token(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway
        .another_platform("chat-a", &[PURPOSE, "balance-alerts"])
        .await;
    let alice = connect(&chat, "u-alice").await;

    // A consent of another purpose.
    let detail = account_information(BANK, "balance-alerts", &[Scope::Accounts], "u-alice");
    let (other, _) = chat.connect(&detail).await.unwrap();
    let (status, body) = register(&chat, &other.access_token, "@alice", &alice.accounts[0]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(problem_type(&body), "forbidden");
    let (status, _) = chat.get(&other.access_token, "/v1/payees").await.unwrap();
    assert_eq!(status, 403);

    // The platform's management token is no payee's.
    let management = chat.client_credentials().await.unwrap();
    let (status, body) = register(&chat, &management, "@alice", &alice.accounts[0]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = chat.get("not-a-token", "/v1/payees").await.unwrap();
    assert_eq!(status, 401);

    // Malformed handles and bodies.
    for handle in [
        "@",
        "@-x",
        "@al%20ice",
        "@%C3%A9",
        "@abcdefghijklmnopqrstuvwxyz012345",
    ] {
        let (status, body) = register(&chat, &alice.token, handle, &alice.accounts[0]).await;
        assert_eq!(status, 400, "{handle}: {body}");
        assert_eq!(problem_type(&body), "invalid-request", "{body}");
    }
    let answer = chat
        .put_json(&alice.token, "/v1/payees/@alice", &json!({"iban": "DE92"}))
        .await
        .unwrap();
    assert!(matches!(answer.status, 400 | 422), "{}", answer.status);
    assert!(handles(&chat, &alice.token).await.is_empty());
}
