//! End-to-end tests: the HTTP API through the whole flow, with the bundled sandbox bank, once
//! on the in-memory store and once on PostgreSQL.

/// Runs each scenario on both stores (defined before the modules, which use it too).
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::StoreKind::Memory).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::StoreKind::Postgres).await;
            })*
        }
    };
}

mod access;
mod account_ids;
mod audit_refusals;
mod bank_fapi;
mod bank_person;
mod bank_revocation;
mod banks;
mod client_authentication;
mod client_keys;
mod compliance;
mod connected_apps;
mod egress;
mod eidas;
mod eidas_banks;
mod erasure;
mod export_completeness;
mod fapi;
mod faults;
mod logs;
mod metrics;
mod nul_input;
mod oauth_refusals;
mod openapi;
mod operator;
mod par_binding;
mod pay_handle;
mod payee_verification;
mod payees;
mod payments;
mod policy;
mod problems;
mod readiness;
mod reconsent;
mod registration;
mod security;
mod serve;
mod subject;
mod support;
mod token_endpoint;
mod traces;

use bankgate::demo::account_information;
use bankgate::model::Scope;
use support::{StoreKind, TestGateway};

on_both_stores!(
    consent_flow_reads_balances_and_denies_out_of_purpose,
    par_refuses_scopes_beyond_the_purpose,
    codes_are_single_use_and_bound_to_pkce,
    tokens_are_bound_to_their_platform,
    compliance_and_authentication_boundaries,
);

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

async fn consent_flow_reads_balances_and_denies_out_of_purpose(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-81f3");
    let (token, trace) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("consent flow");
    assert!(
        trace.consent_screen.contains("Balance alerts"),
        "the consent screen names the purpose"
    );
    assert!(
        trace
            .bank_authorization_url
            .contains("code_challenge_method=S256")
    );
    assert!(trace.platform_redirect.starts_with(support::REDIRECT_URI));
    assert_eq!(token.token_type, "Bearer");
    assert!(token.expires_in <= 300);
    assert_eq!(token.scope, "accounts balances");
    assert_eq!(token.authorization_details[0].purpose, "balance-alerts");

    // The access token is an RFC 9068 JWT bound to the consent.
    let header = jsonwebtoken::decode_header(&token.access_token).expect("jwt");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let claims = gateway
        .app
        .tokens
        .verify(&token.access_token)
        .expect("verifies");
    assert_eq!(claims.sub, token.consent_id);
    assert_eq!(claims.client_id, "messenger");

    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let accounts = accounts["accounts"].as_array().expect("accounts").clone();
    assert!(accounts.len() >= 2, "several synthetic accounts");
    for account in &accounts {
        // balance-alerts never sees full account numbers or holder names.
        assert!(account.get("iban").is_none(), "{account}");
        assert!(account.get("holder_name").is_none(), "{account}");
        assert!(account["id"].as_str().unwrap().starts_with("acc_"));
    }

    let mut saw_negative = false;
    for account in &accounts {
        let id = account["id"].as_str().unwrap();
        let (status, body) = gateway
            .platform
            .get(&token.access_token, &format!("/v1/accounts/{id}/balances"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        for balance in body["balances"].as_array().unwrap() {
            let amount = balance["amount"].as_str().expect("amounts are strings");
            let parsed: rust_decimal::Decimal = amount.parse().expect("decimal");
            saw_negative |= parsed.is_sign_negative();
            assert_eq!(balance["account_id"], account["id"]);
        }
    }
    assert!(
        saw_negative,
        "the synthetic customer has a negative balance"
    );

    let first = accounts[0]["id"].as_str().unwrap();
    let (status, problem) = gateway
        .platform
        .get(
            &token.access_token,
            &format!("/v1/accounts/{first}/transactions"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert_eq!(problem["status"], 403);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/scope-not-granted"),
        "{problem}"
    );
    assert!(
        problem["instance"]
            .as_str()
            .unwrap()
            .starts_with("urn:request:")
    );

    // The audit trail has every step, each with purpose and policy hash.
    let events = gateway.audit_of(&token.consent_id).await;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &actions[..3],
        &[
            ("consent_created", "allow"),
            ("consent_authorised", "allow"),
            ("token_issued", "allow")
        ]
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == ("data_access", "allow"))
            .count(),
        1 + accounts.len()
    );
    assert_eq!(actions.last(), Some(&("data_access", "deny")));
    let policy_hash = gateway
        .app
        .policies
        .get("balance-alerts")
        .unwrap()
        .hash
        .clone();
    // The log holds the user reference pseudonymised, never as the platform sent it.
    let pseudonym = gateway
        .app
        .auditor
        .pseudonym("messenger", "u-81f3")
        .await
        .unwrap();
    assert!(pseudonym.starts_with("up_") && !pseudonym.contains("u-81f3"));
    for event in &events {
        assert_eq!(event["purpose"], "balance-alerts");
        assert_eq!(event["user_ref"], pseudonym.as_str());
        if event["action"] == "data_access" {
            assert_eq!(event["policy_hash"], policy_hash.as_str());
            assert!(
                event["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty())
            );
        }
    }
    // Compliance finds them by the reference the platform knows: the filter is hashed alike.
    let token = gateway.compliance.client_credentials().await.unwrap();
    let (status, by_user) = gateway
        .compliance
        .get(&token, "/v1/audit/events?user_ref=u-81f3&limit=1000")
        .await
        .unwrap();
    assert_eq!(status, 200, "{by_user}");
    assert_eq!(
        by_user["events"].as_array().map(Vec::len),
        Some(events.len())
    );
    let denial = events.last().unwrap();
    assert_eq!(denial["categories"], serde_json::json!(["transactions"]));
    assert!(
        denial["reason"].as_str().unwrap().contains("transactions"),
        "{denial}"
    );
    let balances_read = events
        .iter()
        .find(|e| e["categories"] == serde_json::json!(["balances"]))
        .unwrap();
    assert!(
        balances_read["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "amount")
    );
    assert!(balances_read["n_records"].as_u64().unwrap() > 0);

    // The chain verifies from the first event to the last.
    let all = gateway
        .app
        .store
        .audit_events(&bankgate::audit::Filter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    bankgate::audit::verify(0, bankgate::audit::GENESIS, &all).expect("chain verifies");
}

async fn par_refuses_scopes_beyond_the_purpose(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let mut detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Transactions],
        "u-1",
    );
    let error = gateway
        .platform
        .push(&detail)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("invalid_authorization_details") && error.contains("transactions"),
        "{error}"
    );

    detail.scopes = BALANCE_SCOPES.to_vec();
    detail.purpose = "advertising".into();
    let error = gateway
        .platform
        .push(&detail)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("purpose advertising is prohibited"),
        "{error}"
    );
    detail.purpose = "gossip".into();
    let error = gateway
        .platform
        .push(&detail)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("unknown purpose"), "{error}");

    // Lifetime and history are clamped to the policy.
    detail.purpose = "balance-alerts".into();
    detail.expires_in_days = 3650;
    detail.history_days = 400;
    let (token, _) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("granted, clamped");
    assert_eq!(token.authorization_details[0].expires_in_days, 90);
    assert_eq!(token.authorization_details[0].history_days, 0);
}

async fn codes_are_single_use_and_bound_to_pkce(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-2");
    let pushed = gateway.platform.push(&detail).await.unwrap();
    let code = gateway
        .platform
        .approve(&pushed, &mut Default::default())
        .await
        .unwrap();

    let wrong = bankgate::demo::Pushed {
        request_uri: pushed.request_uri.clone(),
        code_verifier: "x".repeat(43),
        state: pushed.state.clone(),
    };
    let error = gateway
        .platform
        .exchange(&code, &wrong)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
    // The failed attempt left the code: the correct verifier redeems it, once.
    gateway.platform.exchange(&code, &pushed).await.unwrap();
    let error = gateway
        .platform
        .exchange(&code, &pushed)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");

    // A request_uri works once.
    let mut trace = Default::default();
    let error = gateway
        .platform
        .approve(&pushed, &mut trace)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("400"), "{error}");
}

async fn tokens_are_bound_to_their_platform(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-3");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();

    // Another platform's token for its own consent cannot be pointed at this consent: tokens
    // carry the consent as subject, so forge one with the other client's id and our consent.
    let other = gateway
        .another_platform("other-app", &["balance-alerts"])
        .await;
    let (forged, claims) = gateway
        .app
        .tokens
        .issue(&other.client_id, &token.consent_id, "accounts balances")
        .unwrap();
    // Recorded, as if the gateway had issued it: the consent check is what refuses it.
    gateway
        .app
        .store
        .record_access_token(&bankgate::oauth::IssuedToken {
            jti: claims.jti.clone(),
            client_id: claims.client_id.clone(),
            consent_id: Some(claims.sub.clone()),
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap(),
        })
        .await
        .unwrap();
    let (status, body) = other.get(&forged, "/v1/accounts").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/consent-not-found"),
        "{body}"
    );

    // A platform not approved for a purpose cannot even push a request for it.
    let detail = account_information("demo-bank", "fraud-alerts", BALANCE_SCOPES, "u-3");
    let error = other.push(&detail).await.err().unwrap().to_string();
    assert!(error.contains("not approved"), "{error}");
}

async fn compliance_and_authentication_boundaries(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-4");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();

    // Platforms cannot read the audit log.
    let (status, _) = gateway
        .platform
        .get(&token.access_token, "/v1/audit/events")
        .await
        .unwrap();
    assert_eq!(status, 403);
    // Compliance officers cannot read account data.
    let compliance_token = gateway.compliance.client_credentials().await.unwrap();
    let (status, _) = gateway
        .compliance
        .get(&compliance_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 403);
    // A platform's client-credentials token manages its consents; it reads neither the audit
    // log nor account data.
    let management = gateway.platform.client_credentials().await.unwrap();
    for path in ["/v1/audit/events", "/v1/accounts"] {
        let (status, body) = gateway.platform.get(&management, path).await.unwrap();
        assert_eq!(status, 403, "{path}: {body}");
    }

    // No token, a garbage token, a token with a flipped signature byte: 401 problem+json.
    let response = gateway
        .platform
        .http
        .get(format!("{}/v1/accounts", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    for bad in ["garbage", &format!("{}x", token.access_token)] {
        let (status, body) = gateway.platform.get(bad, "/v1/accounts").await.unwrap();
        assert_eq!(status, 401, "{body}");
    }

    // Filters narrow the trail; keyset pagination walks it.
    let (status, denied) = gateway
        .compliance
        .get(&compliance_token, "/v1/audit/events?decision=deny")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        denied["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["decision"] == "deny")
    );
    let (_, page) = gateway
        .compliance
        .get(&compliance_token, "/v1/audit/events?limit=2")
        .await
        .unwrap();
    let next = page["next_after"].as_i64().expect("more pages");
    let (_, second) = gateway
        .compliance
        .get(
            &compliance_token,
            &format!("/v1/audit/events?limit=2&after={next}"),
        )
        .await
        .unwrap();
    assert!(second["events"][0]["position"].as_i64().unwrap() > next);
    let (status, problem) = gateway
        .compliance
        .get(&compliance_token, "/v1/audit/events?decision=maybe")
        .await
        .unwrap();
    assert_eq!(status, 400, "{problem}");

    // Metadata tells the truth.
    let metadata: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gateway.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], gateway.base.as_str());
    assert_eq!(metadata["require_pushed_authorization_requests"], true);
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let jwks: serde_json::Value = reqwest::get(format!("{}/.well-known/jwks.json", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], gateway.app.signing_key.kid.as_str());
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private key material"
    );
}
