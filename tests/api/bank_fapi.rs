//! The bank side of FAPI 2.0 (issue 5, item 6): a bank whose manifest asks for pushed
//! authorization requests, `private_key_jwt` and DPoP gets all three from bankgate — tested
//! against a real sandbox bank that enforces them — and a revoked consent ends the bank-side
//! consent resource too (Berlin Group `DELETE /v1/consents/{id}`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bankgate::adapters::Manifest;
use bankgate::adapters::bank_oauth::BankGrant;
use bankgate::demo::account_information;
use bankgate::jose::ClientKey;
use bankgate::model::Scope;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use bankgate_sandbox::{self as sandbox, Approval, Sandbox, SandboxConfig, SandboxFapi};

use super::registration::{bank_principal, put_adapter};
use super::support::{Options, StoreKind, TestGateway};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

on_both_stores!(
    a_fapi_bank_gets_par_private_key_jwt_and_dpop,
    a_private_key_jwt_bank_needs_no_client_secret,
    a_short_lived_bank_token_is_not_refreshed_on_every_call,
    a_certified_bank_gets_offline_access_resource_and_the_consent_as_authorization_details,
    a_resource_server_demanding_dpop_nonces_gets_them,
    bankgate_signs_at_a_bank_in_the_algorithm_it_takes,
    endpoints_are_read_from_the_issuer_alone,
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
        .append_pair("redirect_uri", &gateway.app.broker().callback_url())
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
        .basic_auth(&bank.client_id, bank.client_secret())
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

/// A Berlin Group sandbox bank that takes `private_key_jwt` and PAR and knows no secret of
/// bankgate's, issuing access tokens of `token_lifetime`, registered at run time as `bank_id`
/// (live check included) with a manifest that names no `client_secret_env`; only the client id
/// and the key file are provisioned. Returns the sandbox and the key file to remove.
async fn register_keyed_bank(
    gateway: &TestGateway,
    bank_id: &str,
    token_lifetime: Option<std::time::Duration>,
) -> (Sandbox, PathBuf) {
    let prefix = Manifest::registered_reference_prefix(bank_id);

    // bankgate's assertion key at the bank, in the file its variable names.
    let pem = bankgate::jose::keys::SigningKey::generate_pem().unwrap();
    let key_file =
        std::env::temp_dir().join(format!("bankgate-{bank_id}-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, &pem).unwrap();
    let key = bankgate::adapters::bank_oauth::auth::load_pem(&key_file).unwrap();

    // The bank knows bankgate's public key and a secret bankgate was never told.
    let sandbox = sandbox::start(SandboxConfig {
        profile: "berlin-group".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: "bankgate".into(),
        client_secret: bankgate::crypto::random_token(24).unwrap(),
        approval: Approval::Auto,
        fapi: SandboxFapi {
            client_jwks: Some(key.jwks()),
            require_par: true,
            access_token_lifetime: token_lifetime,
            ..SandboxFapi::default()
        },
    })
    .await
    .unwrap();

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/fapi-bank/fapi-bank.toml");
    let mut manifest = Manifest::load(&path).unwrap();
    manifest.rebase(&sandbox.origin);
    manifest.sandbox = None;
    manifest.id = bank_id.into();
    manifest.oauth.client_id_env = format!("{prefix}CLIENT_ID");
    manifest.oauth.client_secret_env = None;
    manifest.oauth.client_key_file_env = Some(format!("{prefix}CLIENT_KEY_FILE"));
    manifest.oauth.dpop = false;
    manifest.oauth.dpop_key_file_env = None;
    let json = serde_json::to_value(&manifest).unwrap();
    assert!(json["oauth"].get("client_secret_env").is_none(), "{json}");

    let secrets: BTreeMap<String, String> = [
        (format!("{prefix}CLIENT_ID"), "bankgate".to_owned()),
        (
            format!("{prefix}CLIENT_KEY_FILE"),
            key_file.display().to_string(),
        ),
    ]
    .into();
    gateway.app.banks.set_secrets(Arc::new(secrets));

    let principal = bank_principal(gateway, &format!("{bank_id}-admin"), bank_id).await;
    let admin = principal.client_credentials().await.unwrap();
    let (status, _, body) = put_adapter(gateway, Some(&admin), bank_id, "?check=live", &json).await;
    assert_eq!(status, 201, "{body}");
    (sandbox, key_file)
}

/// Issue 19, item 1: a bank that takes `private_key_jwt` needs no client secret. Its manifest
/// names none (`client_secret_env` absent), none is set, and it is registered at run time
/// (live check included), completes a consent at a FAPI sandbox bank that refuses secrets and
/// serves data through it.
async fn a_private_key_jwt_bank_needs_no_client_secret(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (_sandbox, key_file) = register_keyed_bank(&gateway, "keyed-bank", None).await;
    let adapter = gateway.app.banks.get("keyed-bank").expect("registered");
    assert_eq!(adapter.bank.client_secret(), None);

    let detail = account_information("keyed-bank", "balance-alerts", BALANCE_SCOPES, "u-keyed");
    let (token, _) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("consent flow with private_key_jwt and no secret");
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let _ = std::fs::remove_file(&key_file);
}

/// Issue 19, item 7: a bank token of 20 s is refreshed in its last 2 s (a tenth of its
/// lifetime), not on every call as under a flat 30 s margin. The sandbox counts the calls to
/// its token endpoint.
async fn a_short_lived_bank_token_is_not_refreshed_on_every_call(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let lifetime = std::time::Duration::from_secs(20);
    let (sandbox, key_file) = register_keyed_bank(&gateway, "brief-bank", Some(lifetime)).await;
    let detail = account_information("brief-bank", "balance-alerts", BALANCE_SCOPES, "u-brief");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let grant = grant_of(&gateway, &token.consent_id).await;
    let (Some(issued_at), Some(expires_at)) = (grant.issued_at, grant.expires_at) else {
        panic!("the grant keeps the token's lifetime: {grant:?}");
    };
    assert_eq!(expires_at - issued_at, Duration::seconds(20));

    // The code exchange was the last token call; three data calls make none.
    let token_calls = sandbox.faults.hits("/oauth/token");
    for _ in 0..3 {
        let (status, body) = gateway
            .platform
            .get(&token.access_token, "/v1/accounts")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sandbox.faults.hits("/oauth/token"), token_calls);

    // Within its margin (here: past its expiry) the token is refreshed, once.
    let stored = gateway
        .app
        .store
        .grant(&token.consent_id)
        .await
        .unwrap()
        .unwrap();
    let mut expiring = grant.clone();
    expiring.issued_at = Some(Utc::now() - Duration::seconds(21));
    expiring.expires_at = Some(Utc::now() - Duration::seconds(1));
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
    // (The fourth call: the purpose's unattended budget is four a day.)
    let (status, body) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(sandbox.faults.hits("/oauth/token"), token_calls + 1);
    let refreshed = grant_of(&gateway, &token.consent_id).await;
    assert_ne!(refreshed.access_token, grant.access_token, "refreshed");
    let _ = std::fs::remove_file(&key_file);
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

/// The resource indicator the certified sandbox bank binds its tokens to (RFC 8707).
const CERTIFIED_RESOURCE: &str = "https://api.certified-bank.example/psd2";

/// Registers `bank_id` at run time (live check included) for the Berlin Group sandbox at
/// `sandbox`, with bankgate's secret at it (`secrets["bankgate"]`; the bank's credentials are
/// added to `secrets`, which the gateway then reads): the bundled demo bank's manifest,
/// changed by `tweak`. Returns the registration's status and body.
async fn register_at(
    gateway: &TestGateway,
    sandbox: &Sandbox,
    secrets: &mut BTreeMap<String, String>,
    bank_id: &str,
    tweak: impl FnOnce(&mut Manifest),
) -> (u16, Value) {
    let prefix = Manifest::registered_reference_prefix(bank_id);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("adapters/demo-bank.toml");
    let mut manifest = Manifest::load(&path).unwrap();
    manifest.rebase(&sandbox.origin);
    manifest.sandbox = None;
    manifest.id = bank_id.into();
    manifest.oauth.client_id_env = format!("{prefix}CLIENT_ID");
    manifest.oauth.client_secret_env = Some(format!("{prefix}CLIENT_SECRET"));
    tweak(&mut manifest);
    let secret = secrets["bankgate"].clone();
    secrets.insert(format!("{prefix}CLIENT_ID"), "bankgate".into());
    secrets.insert(format!("{prefix}CLIENT_SECRET"), secret);
    gateway.app.banks.set_secrets(Arc::new(secrets.clone()));
    let principal = bank_principal(gateway, &format!("{bank_id}-admin"), bank_id).await;
    let admin = principal.client_credentials().await.unwrap();
    let json = serde_json::to_value(&manifest).unwrap();
    let (status, _, body) = put_adapter(gateway, Some(&admin), bank_id, "?check=live", &json).await;
    (status, body)
}

/// Issue 19, certified-server items 2 and 3: a bank like an OpenID provider in its FAPI 2.0
/// profile issues a refresh token only for `offline_access`, binds its tokens to an RFC 8707
/// `resource`, and takes the Berlin Group consent as RFC 9396 `authorization_details`. The
/// manifest says all three (`extra_scopes`, `authorization_params`, `consent_detail_type`);
/// without each, the bank gives no refresh token or refuses the request.
async fn a_certified_bank_gets_offline_access_resource_and_the_consent_as_authorization_details(
    kind: StoreKind,
) {
    let gateway = TestGateway::start(kind).await;
    let secret = bankgate::crypto::random_token(24).unwrap();
    let sandbox = sandbox::start(SandboxConfig {
        profile: "berlin-group".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: "bankgate".into(),
        client_secret: secret.clone(),
        approval: Approval::Auto,
        fapi: SandboxFapi {
            require_par: true,
            refresh_needs_offline_access: true,
            resource: Some(CERTIFIED_RESOURCE.into()),
            consent_detail_type: Some("consent".into()),
            ..SandboxFapi::default()
        },
    })
    .await
    .unwrap();
    let mut secrets: BTreeMap<String, String> = [("bankgate".to_owned(), secret.clone())].into();
    let certified = |manifest: &mut Manifest| {
        manifest.oauth.pushed_authorization_request_endpoint =
            Some(format!("{}/oauth/par", sandbox.origin));
        manifest.oauth.extra_scopes = vec!["offline_access".into()];
        manifest.oauth.authorization_params =
            [("resource".to_owned(), CERTIFIED_RESOURCE.to_owned())].into();
        manifest.oauth.consent_detail_type = Some("consent".into());
    };

    // All three: the flow completes, with a refresh token, and data flows.
    let (status, body) = register_at(
        &gateway,
        &sandbox,
        &mut secrets,
        "certified-bank",
        certified,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let detail = account_information("certified-bank", "balance-alerts", BALANCE_SCOPES, "u-cert");
    let (token, _) = gateway
        .platform
        .connect(&detail)
        .await
        .expect("consent flow at the certified bank");
    let grant = grant_of(&gateway, &token.consent_id).await;
    assert!(
        grant.refresh_token.is_some(),
        "offline_access asked for one"
    );
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");

    // Without offline_access: no refresh token.
    let (status, body) = register_at(
        &gateway,
        &sandbox,
        &mut secrets,
        "online-bank",
        |manifest| {
            certified(manifest);
            manifest.oauth.extra_scopes.clear();
        },
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let detail = account_information("online-bank", "balance-alerts", BALANCE_SCOPES, "u-online");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let grant = grant_of(&gateway, &token.consent_id).await;
    assert_eq!(grant.refresh_token, None);

    // Without the resource, or with the consent as the AIS:<id> scope: refused by the bank.
    for (bank_id, drop) in [
        ("resourceless-bank", "resource"),
        ("scoped-bank", "details"),
    ] {
        let (status, body) = register_at(&gateway, &sandbox, &mut secrets, bank_id, |manifest| {
            certified(manifest);
            match drop {
                "resource" => manifest.oauth.authorization_params.clear(),
                _ => manifest.oauth.consent_detail_type = None,
            }
        })
        .await;
        assert_eq!(status, 201, "{body}");
        let detail = account_information(bank_id, "balance-alerts", BALANCE_SCOPES, "u-refused");
        assert!(
            gateway.platform.connect(&detail).await.is_err(),
            "{bank_id}: the bank refuses the authorization request"
        );
    }

    // A parameter bankgate sets itself cannot be configured.
    let (status, body) = register_at(
        &gateway,
        &sandbox,
        &mut secrets,
        "meddling-bank",
        |manifest| {
            manifest.oauth.authorization_params =
                [("scope".to_owned(), "openid".to_owned())].into();
        },
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("authorization_params"),
        "{body}"
    );
}

/// Issue 19, certified-server item 5: a bank whose resource server demands DPoP nonces on data
/// calls (RFC 9449 §9). The first data call is refused with `use_dpop_nonce` and a nonce, and
/// proved again with it; the next call carries the nonce from the start.
async fn a_resource_server_demanding_dpop_nonces_gets_them(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let secret = bankgate::crypto::random_token(24).unwrap();
    let sandbox = sandbox::start(SandboxConfig {
        profile: "berlin-group".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: "bankgate".into(),
        client_secret: secret.clone(),
        approval: Approval::Auto,
        fapi: SandboxFapi {
            require_dpop: true,
            resource_nonce: true,
            ..SandboxFapi::default()
        },
    })
    .await
    .unwrap();
    let bank_id = "nonce-bank";
    let prefix = Manifest::registered_reference_prefix(bank_id);
    let key_file =
        std::env::temp_dir().join(format!("bankgate-{bank_id}-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(
        &key_file,
        bankgate::jose::keys::SigningKey::generate_pem().unwrap(),
    )
    .unwrap();
    let mut secrets: BTreeMap<String, String> = [
        ("bankgate".to_owned(), secret),
        (
            format!("{prefix}DPOP_KEY_FILE"),
            key_file.display().to_string(),
        ),
    ]
    .into();
    let (status, body) = register_at(&gateway, &sandbox, &mut secrets, bank_id, |manifest| {
        manifest.oauth.dpop = true;
        manifest.oauth.dpop_key_file_env = Some(format!("{prefix}DPOP_KEY_FILE"));
    })
    .await;
    assert_eq!(status, 201, "{body}");

    let detail = account_information(bank_id, "balance-alerts", BALANCE_SCOPES, "u-nonce");
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(
        sandbox.faults.hits("/v1/accounts"),
        2,
        "refused for a nonce, then proved again"
    );
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    assert_eq!(
        sandbox.faults.hits("/v1/accounts"),
        3,
        "the nonce is remembered"
    );

    // The bank does demand it: bankgate's own key without a nonce is refused.
    let adapter = gateway.app.banks.get(bank_id).unwrap();
    let own_key = adapter.bank.keys.dpop.clone().unwrap();
    let grant = grant_of(&gateway, &token.consent_id).await;
    let accounts_url = adapter.bank.url("/v1/accounts");
    assert_eq!(bank_call(&accounts_url, &grant, Some(&own_key)).await, 401);
    let _ = std::fs::remove_file(&key_file);
}

/// A fresh key file for `alg` (`bankgate keys bank --alg …`); remove it after the test.
fn key_file(alg: jsonwebtoken::Algorithm, what: &str) -> PathBuf {
    let pem = bankgate::jose::ClientKey::generate_pkcs8_pem(alg).unwrap();
    let path = std::env::temp_dir().join(format!("bankgate-{what}-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&path, pem).unwrap();
    path
}

/// The changes that make a registered manifest a FAPI one with its keys under `prefix`:
/// PAR, `private_key_jwt` and no secret, DPoP.
fn keyed_at(origin: &str, prefix: &str) -> impl FnOnce(&mut Manifest) {
    let (origin, prefix) = (origin.to_owned(), prefix.to_owned());
    move |manifest: &mut Manifest| {
        let oauth = &mut manifest.oauth;
        oauth.pushed_authorization_request_endpoint = Some(format!("{origin}/oauth/par"));
        oauth.token_endpoint_auth_method = bankgate::jose::AuthMethod::PrivateKeyJwt;
        oauth.client_secret_env = None;
        oauth.client_key_file_env = Some(format!("{prefix}CLIENT_KEY_FILE"));
        oauth.dpop = true;
        oauth.dpop_key_file_env = Some(format!("{prefix}DPOP_KEY_FILE"));
    }
}

/// Issue 19, certified-server item 4: a bank that takes PS256 only, or EdDSA only, in client
/// assertions and DPoP proofs (FAPI 2.0 allows PS256, ES256 and EdDSA; its metadata says
/// which). bankgate signs with the key files' algorithm — RSA → PS256, Ed25519 → EdDSA — and
/// completes the flow; an ES256 key at a PS256-only bank is refused at registration, naming
/// the algorithm.
async fn bankgate_signs_at_a_bank_in_the_algorithm_it_takes(kind: StoreKind) {
    use jsonwebtoken::Algorithm;
    let gateway = TestGateway::start(kind).await;
    let mut files = Vec::new();
    for (alg, name) in [(Algorithm::PS256, "PS256"), (Algorithm::EdDSA, "EdDSA")] {
        let bank_id = format!("{}-bank", name.to_ascii_lowercase());
        let assertion_file = key_file(alg, "assertion");
        let dpop_file = key_file(alg, "dpop");
        let assertion = bankgate::adapters::bank_oauth::auth::load_pem(&assertion_file).unwrap();
        assert_eq!(assertion.alg, alg);
        let sandbox = sandbox::start(SandboxConfig {
            profile: "berlin-group".into(),
            addr: ([127, 0, 0, 1], 0).into(),
            client_id: "bankgate".into(),
            client_secret: bankgate::crypto::random_token(24).unwrap(),
            approval: Approval::Auto,
            fapi: SandboxFapi {
                client_jwks: Some(assertion.jwks()),
                require_par: true,
                require_dpop: true,
                signing_algs: Some(vec![name.into()]),
                ..SandboxFapi::default()
            },
        })
        .await
        .unwrap();
        let metadata: Value = reqwest::get(format!(
            "{}/.well-known/oauth-authorization-server",
            sandbox.origin
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(
            metadata["token_endpoint_auth_signing_alg_values_supported"],
            json!([name])
        );

        let prefix = Manifest::registered_reference_prefix(&bank_id);
        let mut secrets: BTreeMap<String, String> = [
            ("bankgate".to_owned(), String::new()),
            (
                format!("{prefix}CLIENT_KEY_FILE"),
                assertion_file.display().to_string(),
            ),
            (
                format!("{prefix}DPOP_KEY_FILE"),
                dpop_file.display().to_string(),
            ),
        ]
        .into();
        let keyed = keyed_at(&sandbox.origin, &prefix);
        let (status, body) = register_at(&gateway, &sandbox, &mut secrets, &bank_id, keyed).await;
        assert_eq!(status, 201, "{body}");
        let detail = account_information(&bank_id, "balance-alerts", BALANCE_SCOPES, "u-alg");
        let (token, _) = gateway
            .platform
            .connect(&detail)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let (status, accounts) = gateway
            .platform
            .get(&token.access_token, "/v1/accounts")
            .await
            .unwrap();
        assert_eq!(status, 200, "{name}: {accounts}");

        // An ES256 key where the bank takes only this algorithm: refused, saying why.
        if alg == Algorithm::PS256 {
            let es256_file = key_file(Algorithm::ES256, "es256");
            let es_prefix = Manifest::registered_reference_prefix("es256-bank");
            secrets.insert(
                format!("{es_prefix}CLIENT_KEY_FILE"),
                es256_file.display().to_string(),
            );
            secrets.insert(
                format!("{es_prefix}DPOP_KEY_FILE"),
                dpop_file.display().to_string(),
            );
            let keyed = keyed_at(&sandbox.origin, &es_prefix);
            let (status, body) =
                register_at(&gateway, &sandbox, &mut secrets, "es256-bank", keyed).await;
            assert_eq!(status, 400, "{body}");
            let detail_text = body["detail"].as_str().unwrap_or_default();
            assert!(detail_text.contains("takes no ES256"), "{body}");
            files.push(es256_file);
        }
        files.extend([assertion_file, dpop_file]);
    }
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// Issue 19, certified-server item 6: a manifest naming the bank's `issuer` alone gets its
/// endpoints from the bank's RFC 8414 metadata; endpoints it names are checked against the
/// metadata (live check), and metadata naming another issuer is refused.
async fn endpoints_are_read_from_the_issuer_alone(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let secret = bankgate::crypto::random_token(24).unwrap();
    let sandbox = sandbox::start(SandboxConfig {
        profile: "berlin-group".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: "bankgate".into(),
        client_secret: secret.clone(),
        approval: Approval::Auto,
        fapi: SandboxFapi::default(),
    })
    .await
    .unwrap();
    let origin = sandbox.origin.clone();
    let mut secrets: BTreeMap<String, String> = [("bankgate".to_owned(), secret)].into();
    let issuer_alone = |manifest: &mut Manifest| {
        manifest.oauth.authorization_endpoint.clear();
        manifest.oauth.token_endpoint.clear();
        manifest.oauth.revocation_endpoint = None;
    };

    let (status, body) = register_at(
        &gateway,
        &sandbox,
        &mut secrets,
        "discovered-bank",
        issuer_alone,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let adapter = gateway.app.banks.get("discovered-bank").unwrap();
    let oauth = &adapter.bank.manifest.oauth;
    assert_eq!(
        oauth.authorization_endpoint,
        format!("{origin}/oauth/authorize")
    );
    assert_eq!(oauth.token_endpoint, format!("{origin}/oauth/token"));
    assert_eq!(
        oauth.revocation_endpoint.as_deref(),
        Some(format!("{origin}/oauth/revoke").as_str())
    );
    assert_eq!(
        oauth.pushed_authorization_request_endpoint.as_deref(),
        Some(format!("{origin}/oauth/par").as_str())
    );
    let detail = account_information(
        "discovered-bank",
        "balance-alerts",
        BALANCE_SCOPES,
        "u-disc",
    );
    let (token, _) = gateway.platform.connect(&detail).await.unwrap();
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");

    // Both given and different: the live check says which.
    let (status, body) = register_at(&gateway, &sandbox, &mut secrets, "mismatched-bank", |m| {
        m.oauth.token_endpoint = format!("{}/elsewhere/token", m.api_base_url);
    })
    .await;
    assert_eq!(status, 400, "{body}");
    let detail_text = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail_text.contains("oauth.token_endpoint differs"),
        "{body}"
    );

    // Metadata that names another issuer than the manifest's is not used.
    let (status, body) = register_at(&gateway, &sandbox, &mut secrets, "misnamed-bank", |m| {
        issuer_alone(m);
        m.oauth.issuer = Some(format!("{origin}/other"));
    })
    .await;
    assert_eq!(status, 400, "{body}");
}
