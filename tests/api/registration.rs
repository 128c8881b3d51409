//! Banks register their adapters at run time: a bank principal (registered through the admin
//! API, role `bank`, bound to one bank id) puts a `mapping` manifest for its proprietary API,
//! checked live against its sandbox, and a platform then reads normalised balances through it
//! without a restart. Another bank's principal, a platform and an anonymous caller are
//! refused; invalid manifests are refused with problem+json naming the problem; on several
//! instances the registration comes into force everywhere.
//!
//! The helpers here also serve `faults.rs`: a proprietary sandbox bank started by the test and
//! registered through the API.

use std::sync::Arc;

use bankgate::adapters::{Manifest, Secrets};
use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use bankgate_sandbox::{self as sandbox, Approval, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::support::{Options, StoreKind, TestGateway};

on_both_stores!(a_bank_registers_a_mapping_adapter_and_a_platform_reads_through_it);

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The credential references of every bank the tests register (their sandboxes share them).
pub(crate) const SANDBOX_CLIENT_ID: &str = "bankgate";
pub(crate) const SANDBOX_SECRET: &str = "runtime-bank-sandbox-secret-7acd";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

/// Where `*_env` references resolve in these tests: the process environment cannot be set
/// safely from a test, so the gateway's registry is given the values instead. Every bank
/// registered here is provisioned under its own prefix, `BANKGATE_BANK_<ID>_CLIENT_ID` and
/// `…_CLIENT_SECRET`, with the credentials the test sandboxes know (or `secret`).
struct SandboxCredentials {
    secret: &'static str,
}

impl Secrets for SandboxCredentials {
    fn get(&self, name: &str) -> Option<String> {
        let name = name.strip_prefix("BANKGATE_BANK_")?;
        if name.ends_with("_CLIENT_ID") {
            Some(SANDBOX_CLIENT_ID.to_owned())
        } else if name.ends_with("_CLIENT_SECRET") {
            Some(self.secret.to_owned())
        } else {
            None
        }
    }
}

pub fn provide_credentials(gateway: &TestGateway) {
    provide_credentials_to(&gateway.app);
}

fn provide_credentials_to(app: &bankgate::app::App) {
    app.banks.set_secrets(Arc::new(SandboxCredentials {
        secret: SANDBOX_SECRET,
    }));
}

/// A proprietary sandbox bank of this test (auto-approving, knowing bankgate's credentials).
pub async fn proprietary_sandbox() -> Sandbox {
    sandbox::start(SandboxConfig {
        profile: "mapping".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: SANDBOX_CLIENT_ID.into(),
        client_secret: SANDBOX_SECRET.into(),
        approval: Approval::Auto,
        fapi: Default::default(),
    })
    .await
    .expect("sandbox starts")
}

/// The JSON manifest a bank with the proprietary API sends: the bundled Nova Bank mapping,
/// under `bank_id`, pointed at `sandbox`, with `limits` merged in.
pub fn manifest(bank_id: &str, sandbox: &Sandbox, limits: Value) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/nova-bank.toml");
    let mut manifest = Manifest::load(std::path::Path::new(path)).expect("bundled manifest");
    manifest.rebase(&sandbox.origin);
    manifest.sandbox = None;
    manifest.id = bank_id.to_owned();
    manifest.name = format!("{bank_id} (test)");
    let prefix = Manifest::registered_reference_prefix(bank_id);
    manifest.oauth.client_id_env = format!("{prefix}CLIENT_ID");
    manifest.oauth.client_secret_env = Some(format!("{prefix}CLIENT_SECRET"));
    let mut json = serde_json::to_value(&manifest).expect("manifest serialises");
    if let (Some(target), Some(extra)) = (json["limits"].as_object_mut(), limits.as_object()) {
        target.extend(extra.clone());
    }
    json
}

/// A bank principal registered straight in the store (the admin API is tested below).
pub async fn bank_principal(
    gateway: &TestGateway,
    client_id: &str,
    bank_id: &str,
) -> PlatformClient {
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
        .expect("bank principal registers");
    PlatformClient::new(&gateway.base, client_id, &registered.client_secret, "").expect("client")
}

/// `PUT /v1/banks/{bank_id}/adapter{query}`: status, content type and JSON body.
pub async fn put_adapter(
    gateway: &TestGateway,
    token: Option<&str>,
    bank_id: &str,
    query: &str,
    body: &Value,
) -> (u16, String, Value) {
    let mut request = gateway
        .platform
        .http
        .put(format!(
            "{}/v1/banks/{bank_id}/adapter{query}",
            gateway.base
        ))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("PUT answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Starts a sandbox, registers it as `bank_id` through the API (with `limits`) and returns
/// it; the gateway must have [`provide_credentials`].
pub async fn register_sandbox_bank(gateway: &TestGateway, bank_id: &str, limits: Value) -> Sandbox {
    let sandbox = proprietary_sandbox().await;
    let principal = bank_principal(gateway, &format!("{bank_id}-admin"), bank_id).await;
    let token = principal.client_credentials().await.expect("bank token");
    let (status, _, body) = put_adapter(
        gateway,
        Some(&token),
        bank_id,
        "",
        &manifest(bank_id, &sandbox, limits),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    sandbox
}

/// A platform token for `bank_id` (accounts and balances, `balance-alerts`) and the id of the
/// customer's main account there.
pub async fn connect(gateway: &TestGateway, bank_id: &str, user_ref: &str) -> (String, String) {
    let detail = account_information(bank_id, "balance-alerts", SCOPES, user_ref);
    let (token, _) = gateway
        .platform
        .connect(&detail)
        .await
        .unwrap_or_else(|error| panic!("{bank_id}: consent flow: {error}"));
    let (status, accounts) = gateway
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .expect("accounts answer");
    assert_eq!(status, 200, "{accounts}");
    let giro = accounts["accounts"]
        .as_array()
        .and_then(|accounts| {
            accounts
                .iter()
                .find(|a| a["display_name"] == "Main Account")
        })
        .unwrap_or_else(|| panic!("{bank_id}: no main account in {accounts}"))["id"]
        .as_str()
        .expect("account id")
        .to_owned();
    (token.access_token, giro)
}

/// The compliance client's view of `adapter_registered` events of one bank.
async fn registrations(gateway: &TestGateway, bank_id: &str) -> Vec<Value> {
    let token = gateway
        .compliance
        .client_credentials()
        .await
        .expect("compliance token");
    let (status, body) = gateway
        .compliance
        .get(
            &token,
            &format!("/v1/audit/events?bank={bank_id}&action=adapter_registered"),
        )
        .await
        .expect("audit query");
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().cloned().unwrap_or_default()
}

async fn a_bank_registers_a_mapping_adapter_and_a_platform_reads_through_it(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(ADMIN_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;
    provide_credentials(&gateway);
    let sandbox = proprietary_sandbox().await;
    let http = &gateway.platform.http;

    // The operator registers the bank's principal, bound to acme-bank, through the admin API.
    let response = http
        .post(format!("{}/admin/clients", gateway.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"client_id": "acme-admin", "name": "Acme Bank", "role": "bank",
                      "bank_id": "acme-bank",
                      "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let registered: Value = response.json().await.unwrap();
    assert_eq!(registered["role"], "bank");
    assert_eq!(registered["bank_id"], "acme-bank");
    let bank = PlatformClient::new(
        &gateway.base,
        "acme-admin",
        registered["client_secret"].as_str().unwrap(),
        "",
    )
    .unwrap();
    let token = bank.client_credentials().await.expect("bank token");
    let claims = gateway.app.tokens.verify(&token).expect("token verifies");
    assert_eq!(claims.scope, "adapter:manage");

    let listed = |body: &Value| -> Vec<String> {
        body["banks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bank| bank["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, banks) = gateway.platform.get("", "/v1/banks").await.unwrap();
    assert!(!listed(&banks).contains(&"acme-bank".to_owned()), "{banks}");

    // The bank registers its adapter, checked live against its sandbox first.
    let acme = manifest("acme-bank", &sandbox, json!({"timeout_ms": 5000}));
    let (status, _, body) =
        put_adapter(&gateway, Some(&token), "acme-bank", "?check=live", &acme).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["profile"], "mapping");
    assert_eq!(body["checks"], json!(["oauth_metadata", "token_endpoint"]));
    let live_checks = sandbox
        .faults
        .hits("/.well-known/oauth-authorization-server");
    assert_eq!(live_checks, 1, "the metadata was fetched from the bank");

    let (status, banks) = gateway.platform.get("", "/v1/banks").await.unwrap();
    assert_eq!(status, 200);
    let entry = banks["banks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|bank| bank["id"] == "acme-bank")
        .unwrap_or_else(|| panic!("acme-bank is listed at once: {banks}"))
        .clone();
    assert_eq!(entry["profile"], "mapping");
    assert_eq!(
        entry["scopes"],
        json!(["accounts", "balances", "transactions", "identity"])
    );
    let (status, shown) = gateway
        .platform
        .get("", "/v1/banks/acme-bank")
        .await
        .unwrap();
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        (shown["version"].clone(), shown["live_version"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(shown["manifest"]["limits"]["timeout_ms"], 5000);

    // A platform reads normalised balances through the new adapter, no restart.
    let (platform_token, giro) = connect(&gateway, "acme-bank", "u-acme-1").await;
    let (status, balances) = gateway
        .platform
        .get(&platform_token, &format!("/v1/accounts/{giro}/balances"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{balances}");
    let balances = balances["balances"].as_array().unwrap();
    let booked = balances
        .iter()
        .find(|balance| balance["type"] == "closing_booked")
        .unwrap_or_else(|| panic!("no booked balance: {balances:?}"));
    assert_eq!(booked["amount"], "-152.37");
    assert_eq!(booked["currency"], "EUR");
    assert!(
        balances
            .iter()
            .any(|b| b["type"] == "interim_available" && b["amount"] == "1760.51"),
        "{balances:?}"
    );

    // The same manifest again changes nothing; a new one is version 2, in force at once.
    let (status, _, body) = put_adapter(&gateway, Some(&token), "acme-bank", "", &acme).await;
    assert_eq!(
        (status, body["changed"].clone()),
        (200, json!(false)),
        "{body}"
    );
    let updated = manifest("acme-bank", &sandbox, json!({"timeout_ms": 4000}));
    let (status, _, body) = put_adapter(&gateway, Some(&token), "acme-bank", "", &updated).await;
    assert_eq!((status, body["version"].clone()), (201, json!(2)), "{body}");
    assert_eq!(gateway.app.banks.get("acme-bank").unwrap().version, 2);
    let (status, balances) = gateway
        .platform
        .get(&platform_token, &format!("/v1/accounts/{giro}/balances"))
        .await
        .unwrap();
    assert_eq!(
        status, 200,
        "the consent lives on under version 2: {balances}"
    );

    // Every version is kept.
    let answer = bank
        .send(
            reqwest::Method::GET,
            "/v1/banks/acme-bank/adapter/versions",
            Some(&token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let versions = answer.json()["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["manifest"]["limits"]["timeout_ms"], 5000);
    assert_eq!(versions[1]["manifest"]["limits"]["timeout_ms"], 4000);

    // Both registrations are audited, by the bank's principal.
    let events = registrations(&gateway, "acme-bank").await;
    let allowed: Vec<&Value> = events.iter().filter(|e| e["decision"] == "allow").collect();
    assert_eq!(allowed.len(), 2, "{events:?}");
    assert!(allowed.iter().all(|event| event["actor"] == "acme-admin"));
    assert!(
        allowed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("profile mapping; live check passed"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_never_touches_another_banks_adapter() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let sandbox = proprietary_sandbox().await;
    let acme = manifest("acme-bank", &sandbox, json!({}));
    let acme_token = bank_principal(&gateway, "acme-admin", "acme-bank")
        .await
        .client_credentials()
        .await
        .unwrap();
    let (status, _, body) = put_adapter(&gateway, Some(&acme_token), "acme-bank", "", &acme).await;
    assert_eq!(status, 201, "{body}");

    // Another bank's principal, with a valid token of its own.
    let other_token = bank_principal(&gateway, "other-admin", "other-bank")
        .await
        .client_credentials()
        .await
        .unwrap();
    let mut hijack = manifest("acme-bank", &sandbox, json!({}));
    hijack["api_base_url"] = json!("https://attacker.example/api");
    let (status, content_type, problem) =
        put_adapter(&gateway, Some(&other_token), "acme-bank", "", &hijack).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["type"], "https://bankgate.dev/problems/forbidden");
    // Nor may it read acme's versions, nor slip acme's manifest in under its own bank id.
    let answer = PlatformClient::new(&gateway.base, "x", "", "")
        .unwrap()
        .send(
            reqwest::Method::GET,
            "/v1/banks/acme-bank/adapter/versions",
            Some(&other_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    let (status, _, problem) =
        put_adapter(&gateway, Some(&other_token), "other-bank", "", &hijack).await;
    assert_eq!(
        status, 400,
        "the manifest's id must be the bank's: {problem}"
    );

    // A platform's management token and no token at all.
    let platform_token = gateway.platform.client_credentials().await.unwrap();
    let (status, _, _) =
        put_adapter(&gateway, Some(&platform_token), "acme-bank", "", &hijack).await;
    assert_eq!(status, 403);
    let (status, _, _) = put_adapter(&gateway, None, "acme-bank", "", &hijack).await;
    assert_eq!(status, 401);

    // Nothing changed, and the refusals are on the record.
    let running = gateway.app.banks.get("acme-bank").unwrap();
    assert_eq!(running.version, 1);
    assert_eq!(
        running.bank.manifest.api_base_url,
        acme["api_base_url"].as_str().unwrap()
    );
    let events = registrations(&gateway, "acme-bank").await;
    let denied: Vec<&Value> = events.iter().filter(|e| e["decision"] == "deny").collect();
    assert_eq!(denied.len(), 3, "{events:?}");
    assert!(denied.iter().any(|event| event["actor"] == "other-admin"));
    assert!(denied.iter().any(|event| event["actor"] == "messenger"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifests_are_refused_naming_the_problem() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    provide_credentials(&gateway);
    let sandbox = proprietary_sandbox().await;
    let token = bank_principal(&gateway, "acme-admin", "acme-bank")
        .await
        .client_credentials()
        .await
        .unwrap();
    let valid = manifest("acme-bank", &sandbox, json!({}));
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit, &str)] = &[
        (
            "",
            |m| m["oauth"]["client_secret"] = json!("hunter2"),
            "unknown field `client_secret`",
        ),
        (
            "",
            |m| m["profile"] = json!("swift"),
            "unknown profile \"swift\"",
        ),
        (
            "",
            |m| m["api_base_url"] = json!("not a url"),
            "api_base_url: relative URL",
        ),
        (
            "",
            |m| m["oauth"]["token_endpoint"] = json!("https://user:pw@bank.example/token"),
            "oauth.token_endpoint: credentials do not belong in a URL",
        ),
        (
            "",
            |m| m["api_base_url"] = json!("http://bank.example/api"),
            "api_base_url: a registered adapter must use https",
        ),
        (
            "",
            |m| m["oauth"]["client_secret_env"] = json!("s3cr3t!"),
            "oauth.client_secret_env must name an environment variable",
        ),
        (
            "",
            |m| m["oauth"]["client_id_env"] = json!("BANKGATE_BANK_ACME_BANK_NOT_PROVISIONED"),
            "environment variable BANKGATE_BANK_ACME_BANK_NOT_PROVISIONED is not set on the \
             gateway",
        ),
        (
            "",
            |m| m["oauth"]["client_secret_env"] = json!("BANKGATE_ADMIN_TOKEN"),
            "oauth.client_secret_env must name a variable starting with BANKGATE_BANK_ACME_BANK_",
        ),
        (
            "",
            |m| m["oauth"]["client_id_env"] = json!("BANKGATE_BANK_OTHER_BANK_CLIENT_ID"),
            "oauth.client_id_env must name a variable starting with BANKGATE_BANK_ACME_BANK_",
        ),
        (
            "",
            |m| m["limits"]["timeout_ms"] = json!(0),
            "limits.timeout_ms must be 1..=300000",
        ),
        (
            "",
            |m| m["mapping"]["balances"]["fields"]["amount"]["minor_units"] = json!("cents"),
            "mapping rule mapping.balances.fields.amount: minor_units \"cents\"",
        ),
        (
            "",
            |m| m["mapping"]["accounts"]["fields"]["type"]["values"]["GIRO"] = json!("checking"),
            "mapping rule mapping.accounts.fields.type: value \"checking\" is not one of",
        ),
        (
            "",
            |m| m["id"] = json!("other-bank"),
            "the manifest's id is \"other-bank\"",
        ),
        (
            "",
            |m| m["sandbox"] = json!({"port": 8099}),
            "[sandbox] is for manifests bundled",
        ),
        ("?check=deep", |_| {}, "the only check is live"),
        (
            "?check=live",
            |m| {
                // The bank's metadata names its issuer without the trailing slash.
                let issuer = format!("{}/", m["oauth"]["issuer"].as_str().unwrap());
                m["oauth"]["issuer"] = json!(issuer);
            },
            "live check failed: the OAuth metadata at",
        ),
    ];
    for (query, edit, expected) in cases {
        let mut body = valid.clone();
        edit(&mut body);
        let (status, content_type, problem) =
            put_adapter(&gateway, Some(&token), "acme-bank", query, &body).await;
        assert_eq!(status, 400, "{expected}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{expected}");
        assert_eq!(
            problem["type"],
            "https://bankgate.dev/problems/invalid-request"
        );
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(expected),
            "expected {expected:?} in {detail:?}"
        );
    }
    // Wrong credentials are found by the live check before anything is activated.
    gateway.app.banks.set_secrets(Arc::new(SandboxCredentials {
        secret: "not-the-secret",
    }));
    let (status, _, problem) =
        put_adapter(&gateway, Some(&token), "acme-bank", "?check=live", &valid).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("refused bankgate's credentials"),
        "{problem}"
    );
    // None of it reached the store or the registry.
    assert!(gateway.app.banks.get("acme-bank").is_none());
    let (status, _) = gateway
        .platform
        .get("", "/v1/banks/acme-bank")
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(registrations(&gateway, "acme-bank").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_comes_into_force_on_every_instance() {
    let first = TestGateway::start(StoreKind::Postgres).await;
    provide_credentials(&first);
    // A second instance on the same database with a registry of its own, refreshing often.
    let mut config = bankgate::gateway::embedded_config();
    config.store = first.app.config.store.clone();
    config.grant_key = first.app.config.grant_key.clone();
    config.start_sandboxes = false;
    config.adapters_refresh_interval = Some(std::time::Duration::from_millis(100));
    let second = bankgate::gateway::Gateway::start(config)
        .await
        .expect("second instance");
    let second_app = second.app.clone();
    provide_credentials_to(&second_app);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.serve(async move {
        let _ = stopped.await;
    }));
    assert!(second_app.banks.get("acme-bank").is_none());

    let _sandbox = register_sandbox_bank(&first, "acme-bank", json!({})).await;
    // Picked up by the second instance's refresh from the store, without a restart.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while second_app.banks.get("acme-bank").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second instance never activated acme-bank"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let running = second_app.banks.get("acme-bank").unwrap();
    assert_eq!((running.version, running.profile.name()), (1, "mapping"));
    let _ = stop.send(());
}
