//! Bank-initiated revocation: a bank principal (a `bank` client bound to one bank) revokes a
//! consent at its own bank; another bank's consent is refused with 403 and the refusal is
//! audited. And a consent the bank ends on its own side (the user revokes it in the bank's
//! app, the bank expires it) is revoked at the next data call that meets it: audited once,
//! `consent.revoked` with the reason, `consent-revoked-by-bank` to the platform — also when
//! three instances meet it at once.

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use serde_json::Value;

use super::fapi::{receiver, verify_delivery};
use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    a_bank_revokes_consents_at_its_own_bank_only,
    a_consent_ended_at_the_bank_is_revoked_with_the_reason,
);

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

/// The sandbox origin of a bundled bank.
fn origin_of(gateway: &TestGateway, bank_id: &str) -> String {
    let adapter = gateway.app.banks.get(bank_id).expect("a bundled bank");
    adapter
        .bank
        .manifest
        .oauth
        .issuer
        .clone()
        .expect("an issuer")
}

/// Ends the one usable consent at the sandbox bank at `origin`, as its customer revoking it in
/// the bank's app (`revoke`) or the bank expiring it (`expire`) would.
async fn end_at_bank(origin: &str, how: &str) {
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{origin}/sandbox/consents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usable: Vec<&Value> = listed["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|consent| consent["usable"] == true)
        .collect();
    assert_eq!(usable.len(), 1, "{listed}");
    let id = usable[0]["id"].as_str().unwrap();
    let ended = http
        .post(format!("{origin}/sandbox/consents/{id}/{how}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
}

/// The `consent_revoked` events that took effect (`allow`) for a consent.
async fn revocations(gateway: &TestGateway, consent_id: &str) -> Vec<Value> {
    gateway
        .audit_of(consent_id)
        .await
        .into_iter()
        .filter(|event| event["action"] == "consent_revoked" && event["decision"] == "allow")
        .collect()
}

#[track_caller]
fn assert_problem(status: u16, body: &Value, expected_status: u16, slug: &str) {
    assert_eq!(status, expected_status, "{body}");
    let kind = body["type"].as_str().unwrap_or_default();
    assert!(kind.ends_with(&format!("/{slug}")), "{body}");
}

/// Each standard's way of saying so reaches bankgate: Berlin Group `CONSENT_EXPIRED` (the
/// demo bank expires the consent), and for STET and UK OBIE, whose banks revoke the tokens
/// with the consent, the 401 on a token bankgate held for alive, then `invalid_grant` on the
/// refresh it tries.
async fn a_consent_ended_at_the_bank_is_revoked_with_the_reason(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let management = gateway.platform.client_credentials().await.unwrap();
    let cases = [
        ("demo-bank", "expire", "expired at the bank"),
        ("stet-bank", "revoke", "revoked at the bank"),
        ("obie-bank", "revoke", "revoked at the bank"),
    ];
    for (bank_id, how, reason) in cases {
        let user = format!("u-ended-{bank_id}");
        let detail = account_information(bank_id, "balance-alerts", BALANCE_SCOPES, &user);
        let (token, _) = gateway.platform.connect(&detail).await.unwrap();
        let (status, body) = gateway
            .platform
            .get(&token.access_token, "/v1/accounts")
            .await
            .unwrap();
        assert_eq!(status, 200, "{bank_id}: {body}");

        end_at_bank(&origin_of(&gateway, bank_id), how).await;

        // The request that meets it is told what happened…
        let (status, body) = gateway
            .platform
            .get(&token.access_token, "/v1/accounts")
            .await
            .unwrap();
        assert_problem(status, &body, 403, "consent-revoked-by-bank");
        let detail_text = body["detail"].as_str().unwrap();
        assert!(detail_text.contains(bank_id), "{body}");
        // …the next one finds the consent's tokens revoked, and the consent says so.
        let (status, body) = gateway
            .platform
            .get(&token.access_token, "/v1/accounts")
            .await
            .unwrap();
        assert_problem(status, &body, 401, "token-revoked");
        let (status, consent) = gateway
            .platform
            .get(&management, &format!("/v1/consents/{}", token.consent_id))
            .await
            .unwrap();
        assert_eq!(status, 200, "{consent}");
        assert_eq!(consent["status"], "revoked", "{bank_id}");

        let revoked = revocations(&gateway, &token.consent_id).await;
        assert_eq!(revoked.len(), 1, "{bank_id}: {revoked:?}");
        assert_eq!(revoked[0]["actor"], format!("bank:{bank_id}"));
        assert_eq!(revoked[0]["reason"], reason);
    }
}

/// Three instances on one database meet the same consent revoked in the bank's app at once
/// (Berlin Group: `CONSENT_INVALID`, confirmed by the consent's status `revokedByPsu`): every
/// answer says so (or, after the revocation, that the consent or its token is revoked), the
/// revocation is audited once and the platform gets one signed `consent.revoked` with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_the_banks_app_reaches_the_platform_once_across_three_instances() {
    let first = TestGateway::start(StoreKind::Postgres).await;
    let second = first.second_instance().await;
    let third = first.second_instance().await;
    let hooks = receiver(Vec::new()).await;
    let platform = first.fapi_platform("bank-watcher", Some(&hooks.url)).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-app");
    let (token, _) = platform.connect(&detail).await.unwrap();
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    end_at_bank(&origin_of(&first, "demo-bank"), "revoke").await;

    let clients = [
        platform.via(&first.base).unwrap(),
        platform.via(&second.base).unwrap(),
        platform.via(&third.base).unwrap(),
    ];
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .map(|client| client.get(&token.access_token, "/v1/accounts")),
    )
    .await;
    let mut told = 0;
    for answer in answers {
        let (status, body) = answer.unwrap();
        let kind = body["type"].as_str().unwrap_or_default().to_owned();
        if kind.ends_with("/consent-revoked-by-bank") {
            assert_eq!(status, 403, "{body}");
            told += 1;
        } else if kind.ends_with("/consent-revoked") {
            // A request that reads the consent after another instance revoked it, and before
            // that instance revoked its tokens, meets the revoked consent.
            assert_problem(status, &body, 403, "consent-revoked");
        } else {
            assert_problem(status, &body, 401, "token-revoked");
        }
    }
    assert!(told >= 1, "at least the first to meet it is told why");

    let revoked = revocations(&first, &token.consent_id).await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["actor"], "bank:demo-bank");
    assert_eq!(revoked[0]["reason"], "revoked at the bank");

    // Every instance's maintenance runs; one delivery reaches the platform.
    let mut delivered = 0;
    for gateway in [&first, &second, &third] {
        let maintenance = gateway.app.maintenance().unwrap();
        let report = maintenance.run_once(chrono::Utc::now()).await.unwrap();
        delivered += report.deliveries.delivered;
    }
    assert_eq!(delivered, 1);
    let received = hooks.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let claims = verify_delivery(&first, &received[0].1, "bank-watcher").await;
    let event = &claims["events"]["https://bankgate.dev/events/consent.revoked"];
    assert_eq!(event["consent_id"], token.consent_id.as_str());
    assert_eq!(event["reason"], "revoked at the bank");
}
