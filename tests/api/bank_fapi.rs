//! The bank side of FAPI 2.0 (issue 5, item 6): a bank whose manifest asks for pushed
//! authorization requests, `private_key_jwt` and DPoP gets all three from bankgate — tested
//! against a real sandbox bank that enforces them — and a revoked consent ends the bank-side
//! consent resource too (Berlin Group `DELETE /v1/consents/{id}`).

use std::path::PathBuf;

use bankgate::adapters::bank_oauth::BankGrant;
use bankgate::demo::account_information;
use bankgate::jose::ClientKey;
use bankgate::model::Scope;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::support::{Options, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    a_fapi_bank_gets_par_private_key_jwt_and_dpop,
    revocation_terminates_the_berlin_group_consent_at_the_bank,
);

/// A gateway whose only bank is the test-only FAPI sandbox bank (`fapi-bank/fapi-bank.toml`).
async fn fapi_gateway(kind: StoreKind) -> TestGateway {
    let adapters = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/fapi-bank");
    TestGateway::start_with(
        kind,
        Options {
            adapters_dir: Some(adapters),
            ..Options::default()
        },
    )
    .await
}

/// The consent's bank grant, unsealed.
async fn grant_of(gateway: &TestGateway, consent_id: &str) -> BankGrant {
    let stored = gateway.app.store.grant(consent_id).await.unwrap().unwrap();
    let plaintext = gateway
        .app
        .sealer
        .open(consent_id.as_bytes(), &stored.sealed)
        .unwrap();
    serde_json::from_slice(&plaintext).unwrap()
}

/// `GET url` at the bank with the grant's token: as bearer, or as DPoP with a proof by `key`.
async fn bank_call(url: &str, grant: &BankGrant, key: Option<&ClientKey>) -> u16 {
    let mut request = reqwest::Client::new()
        .get(url)
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .header(
            "consent-id",
            grant.bank_consent_id.clone().unwrap_or_default(),
        );
    request = match key {
        None => request.bearer_auth(&grant.access_token),
        Some(key) => request
            .header("authorization", format!("DPoP {}", grant.access_token))
            .header(
                "dpop",
                key.dpop_proof("GET", url, Some(&grant.access_token), None)
                    .unwrap(),
            ),
    };
    request.send().await.unwrap().status().as_u16()
}

/// The Berlin Group consent status at the bank.
async fn bank_consent_status(origin: &str, bank_consent_id: &str) -> Value {
    let answer: Value = reqwest::Client::new()
        .get(format!("{origin}/v1/consents/{bank_consent_id}/status"))
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["consentStatus"].clone()
}

async fn a_fapi_bank_gets_par_private_key_jwt_and_dpop(kind: StoreKind) {
    let gateway = fapi_gateway(kind).await;
    let adapter = gateway.app.banks.get("fapi-bank").expect("the FAPI bank");
    let bank = &adapter.bank;
    let origin = bank.manifest.oauth.issuer.clone().unwrap();
    let http = reqwest::Client::new();

    // The sandbox asks what the manifest says the bank asks.
    let metadata: Value = http
        .get(format!("{origin}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["require_pushed_authorization_requests"], true);
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );

    // The whole flow: bankgate pushes its request to the bank, and the user's browser carries
    // nothing of it but `client_id` and `request_uri`.
    let detail = account_information("fapi-bank", "balance-alerts", BALANCE_SCOPES, "u-fapi-bank");
    let (token, trace) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("consent flow through a FAPI bank");
    let to_bank = url::Url::parse(&trace.bank_authorization_url).unwrap();
    let names: Vec<String> = to_bank
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{to_bank}");

    // Data calls go with DPoP proofs…
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");

    // …because the bank bound its token to bankgate's DPoP key: as a bearer token, or with a
    // proof by any other key, it opens nothing.
    let grant = grant_of(&gateway, &token.consent_id).await;
    let accounts_url = bank.url("/v1/accounts");
    let own_key = bank.keys.dpop.clone().expect("bankgate's DPoP key");
    let stranger = ClientKey::generate_es256().unwrap();
    assert_eq!(bank_call(&accounts_url, &grant, None).await, 401);
    assert_eq!(bank_call(&accounts_url, &grant, Some(&stranger)).await, 401);
    assert_eq!(bank_call(&accounts_url, &grant, Some(&own_key)).await, 200);

    // The bank refuses what bankgate no longer does: a plain authorization request, and the
    // client secret instead of a client assertion.
    let mut plain = url::Url::parse(&bank.manifest.oauth.authorization_endpoint).unwrap();
    plain
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &bank.client_id)
        .append_pair("redirect_uri", &gateway.app.callback_url())
        .append_pair("scope", "AIS:x")
        .append_pair(
            "code_challenge",
            &bankgate::crypto::pkce_s256(&"v".repeat(43)),
        )
        .append_pair("code_challenge_method", "S256");
    let refused = http.get(plain).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("pushed authorization")
    );
    let with_secret = http
        .post(&bank.manifest.oauth.token_endpoint)
        .basic_auth(&bank.client_id, Some(bank.client_secret()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret.status(), 401);

    // A refresh authenticates with a fresh assertion and proves the key again: the bank token
    // bankgate stores after it is bound too.
    let stored = gateway
        .app
        .store
        .grant(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    let mut expiring = grant.clone();
    expiring.expires_at = Some(Utc::now() - Duration::minutes(1));
    let sealed = gateway
        .app
        .sealer
        .seal(
            token.consent_id.as_bytes(),
            &serde_json::to_vec(&expiring).unwrap(),
        )
        .unwrap();
    gateway
        .app
        .store
        .put_grant(&bankgate::adapters::StoredGrant {
            sealed,
            updated_at: Utc::now(),
            ..stored
        })
        .await
        .unwrap();
    let (status, body) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let refreshed = grant_of(&gateway, &token.consent_id).await;
    assert_ne!(refreshed.access_token, grant.access_token, "refreshed");
    assert_eq!(bank_call(&accounts_url, &refreshed, None).await, 401);
    assert_eq!(
        bank_call(&accounts_url, &refreshed, Some(&own_key)).await,
        200
    );

    // Revocation reaches the bank with private_key_jwt: its tokens stop working there, and
    // its consent is terminated.
    let management = gateway.platform.client_credentials().await.unwrap();
    let (status, body) = gateway
        .platform
        .delete(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        bank_call(&accounts_url, &refreshed, Some(&own_key)).await,
        401
    );
    let bank_consent_id = refreshed.bank_consent_id.clone().unwrap();
    assert_eq!(
        bank_consent_status(&origin, &bank_consent_id).await,
        "terminatedByTpp"
    );
}

/// Issue 5, item 2: revoking a consent at a Berlin Group bank (the bundled demo bank, plain
/// OAuth) also deletes the bank-side consent, which the bank then reports `terminatedByTpp`.
async fn revocation_terminates_the_berlin_group_consent_at_the_bank(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-bg-end");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let grant = grant_of(&gateway, &token.consent_id).await;
    let bank_consent_id = grant
        .bank_consent_id
        .clone()
        .expect("a Berlin Group consent");
    let origin = gateway
        .app
        .banks
        .get("demo-bank")
        .unwrap()
        .bank
        .manifest
        .oauth
        .issuer
        .clone()
        .unwrap();
    assert_eq!(
        bank_consent_status(&origin, &bank_consent_id).await,
        "valid"
    );

    let (status, body) = gateway
        .platform
        .delete(
            &token.access_token,
            &format!("/v1/consents/{}", token.consent_id),
        )
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        bank_consent_status(&origin, &bank_consent_id).await,
        "terminatedByTpp"
    );
}
