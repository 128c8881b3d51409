//! Bank-initiated revocation (issue 5, item 5 of "what it must do"): a bank principal (a
//! `bank` client bound to one bank) revokes a consent at its own bank; another bank's consent
//! is refused with 403 and the refusal is audited.

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(a_bank_revokes_consents_at_its_own_bank_only);

/// A `bank` client bound to `bank_id`, with its management token.
async fn bank_client(
    gateway: &TestGateway,
    client_id: &str,
    bank_id: &str,
) -> (PlatformClient, String) {
    let registered = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: client_id.into(),
                name: client_id.into(),
                role: Role::Bank,
                bank_id: Some(bank_id.into()),
                token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
                ..Registration::default()
            },
        )
        .await
        .expect("bank client registers");
    let client =
        PlatformClient::new(&gateway.base, client_id, &registered.client_secret, "").unwrap();
    let token = client.client_credentials().await.expect("bank token");
    (client, token)
}

async fn a_bank_revokes_consents_at_its_own_bank_only(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-bank-rev");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let (demo, demo_token) = bank_client(&gateway, "demo-bank-ops", "demo-bank").await;
    let (stet, stet_token) = bank_client(&gateway, "stet-bank-ops", "stet-bank").await;
    let at = |bank: &str| format!("/v1/banks/{bank}/consents/{}", token.consent_id);

    // Another bank may not: neither under its own path nor under the consent's bank.
    let (status, problem) = stet.delete(&stet_token, &at("stet-bank")).await.unwrap();
    assert_eq!(status, 403, "{problem}");
    let (status, problem) = stet.delete(&stet_token, &at("demo-bank")).await.unwrap();
    assert_eq!(status, 403, "{problem}");
    // Nor may a platform's management token use the bank's route.
    let management = gateway.platform.client_credentials().await.unwrap();
    let (status, _) = gateway
        .platform
        .delete(&management, &at("demo-bank"))
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, body) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "still authorised: {body}");
    // Each of the three refusals is on the record (see also tests/api/audit_refusals.rs).
    let refused: Vec<Value> = gateway
        .audit_of(&token.consent_id)
        .await
        .into_iter()
        .filter(|event| event["action"] == "consent_revoked")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused.iter().all(|event| event["decision"] == "deny"));
    let actors: Vec<&Value> = refused.iter().map(|event| &event["actor"]).collect();
    assert_eq!(actors, ["bank:stet-bank", "bank:stet-bank", "messenger"]);

    // The consent's own bank may; its next request is denied, and repeating is harmless.
    let (status, body) = demo.delete(&demo_token, &at("demo-bank")).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let (status, _) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = demo.delete(&demo_token, &at("demo-bank")).await.unwrap();
    assert_eq!(status, 204);
    let (status, consent) = gateway
        .platform
        .get(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(consent["status"], "revoked");
    let revoked: Vec<Value> = gateway
        .audit_of(&token.consent_id)
        .await
        .into_iter()
        .filter(|event| event["action"] == "consent_revoked" && event["decision"] == "allow")
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["actor"], "bank:demo-bank");
    assert_eq!(revoked[0]["reason"], "revoked by the bank");

    let (status, _) = demo
        .delete(&demo_token, "/v1/banks/demo-bank/consents/no-such-consent")
        .await
        .unwrap();
    assert_eq!(status, 404);
}
