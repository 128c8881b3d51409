//! Purpose policies end to end (issue 3): field allow-lists and denials on the wire and in the
//! audit log, the unattended budget across two instances, hot reload (operator endpoint and
//! SIGHUP), prohibited purposes and regions at PAR, the public purpose list, and
//! `bankgate policies check` as a real process.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use bankgate::demo::account_information;
use bankgate::model::Scope;
use bankgate::oauth::registration::Registration;
use serde_json::Value;

use crate::support::{self, Options, StoreKind, TestGateway};

on_both_stores!(
    balance_alerts_release_only_allowed_fields,
    par_refuses_prohibited_purposes_and_regions,
    hot_reload_applies_at_the_next_request,
    identity_purposes_release_names_only_with_the_user_present,
);

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];
const OPERATOR_TOKEN: &str = "operator-token-for-tests";

/// The headers that say the user is present: then a request does not spend the budget.
const PRESENT: [(&str, &str); 2] = [
    ("X-User-Present", "true"),
    ("PSU-IP-Address", "203.0.113.7"),
];

/// `GET path` with a bearer token and extra headers: status, headers and JSON body.
async fn get(
    gateway: &TestGateway,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = gateway
        .platform
        .http
        .get(format!("{}{path}", gateway.base))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// The keys of every object in `records`.
fn keys(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .flat_map(|record| record.as_object().expect("object").keys().cloned())
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|item| item.as_str().expect("string").to_owned())
        .collect()
}

/// The allow-list of `object` in the policy of `purpose` in force.
fn allow_list(
    gateway: &TestGateway,
    purpose: &str,
    object: bankgate::policy::Object,
) -> BTreeSet<String> {
    gateway.app.policies.get(purpose).expect("policy").fields[&object].clone()
}

/// A copy of the bundled `policies/` in a fresh temporary directory.
fn policies_copy() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = std::env::temp_dir().join(format!("bankgate-policies-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(&source).expect("policies/") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

/// The 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .map(|index| index + 1)
        .expect("needle in text")
}

async fn balance_alerts_release_only_allowed_fields(kind: StoreKind) {
    use bankgate::policy::Object;
    let gateway = TestGateway::start(kind).await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-fields");
    let (token, trace) = gateway.platform.connect(&detail).await.expect("consent");
    let token = token.access_token.clone();
    let consent_id = gateway
        .app
        .tokens
        .verify(&token)
        .expect("token verifies")
        .sub;
    // The consent screen states retention and onward sharing.
    assert!(
        trace
            .consent_screen
            .contains("may keep this data for at most 30 days"),
        "{}",
        trace.consent_screen
    );
    assert!(
        trace
            .consent_screen
            .contains("may not pass this data on to anyone else")
    );

    let (status, _, body) = get(&gateway, &token, "/v1/accounts", &[]).await;
    assert_eq!(status, 200, "{body}");
    let accounts = body["accounts"].as_array().expect("accounts").clone();
    let account_fields = keys(&accounts);
    let allowed = allow_list(&gateway, "balance-alerts", Object::Account);
    assert!(account_fields.is_subset(&allowed), "{account_fields:?}");
    for never in [
        "iban",
        "holder_name",
        "bban",
        "account_number",
        "pan_masked",
    ] {
        assert!(!account_fields.contains(never), "{never} was released");
    }
    assert!(account_fields.contains("iban_masked"));

    let first = accounts[0]["id"].as_str().expect("id").to_owned();
    let (status, _, body) = get(
        &gateway,
        &token,
        &format!("/v1/accounts/{first}/balances"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let balance_fields = keys(body["balances"].as_array().expect("balances"));

    let (status, headers, problem) = get(
        &gateway,
        &token,
        &format!("/v1/accounts/{first}/transactions"),
        &[],
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    // Refused before the bank is asked: by the token's and the consent's scopes (PAR never
    // granted transactions to this purpose).
    let refusal = problem["detail"].as_str().expect("detail").to_owned();
    assert!(
        refusal.contains("scope") || refusal.contains("transactions"),
        "{problem}"
    );

    // The audit trail names purpose, policy version and the fields released.
    let hash = gateway
        .app
        .policies
        .get("balance-alerts")
        .expect("policy")
        .hash
        .clone();
    let events = gateway.audit_of(&consent_id).await;
    let data: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "data_access")
        .collect();
    assert_eq!(data.len(), 3, "{events:#?}");
    for event in data.iter().filter(|event| event["decision"] == "allow") {
        assert_eq!(event["purpose"], "balance-alerts");
        assert_eq!(event["policy_hash"], hash.as_str());
    }
    assert_eq!(data[0]["decision"], "allow");
    assert_eq!(data[0]["categories"], serde_json::json!(["accounts"]));
    assert_eq!(strings(&data[0]["fields"]), account_fields);
    assert_eq!(data[0]["n_records"].as_u64(), Some(accounts.len() as u64));
    assert_eq!(data[1]["decision"], "allow");
    assert_eq!(strings(&data[1]["fields"]), balance_fields);
    assert_eq!(data[2]["decision"], "deny");
    assert_eq!(data[2]["categories"], serde_json::json!(["transactions"]));
    assert_eq!(data[2]["fields"], serde_json::json!([]));
    assert_eq!(
        data[2]["reason"],
        refusal.as_str(),
        "the reason shown is the reason audited"
    );
}

async fn par_refuses_prohibited_purposes_and_regions(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    for prohibited in ["advertising", "marketing-profiling", "data-selling"] {
        let detail = account_information("demo-bank", prohibited, BALANCE_SCOPES, "u-p");
        let error = gateway
            .platform
            .push(&detail)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("invalid_authorization_details")
                && error.contains(&format!("purpose {prohibited} is prohibited")),
            "{error}"
        );
    }
    // A platform may not even be approved for a prohibited purpose.
    let refused = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "adtech".into(),
                name: "Adtech".into(),
                redirect_uris: vec![support::REDIRECT_URI.into()],
                allowed_purposes: vec!["advertising".into()],
                token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
                ..Registration::default()
            },
        )
        .await;
    assert!(
        refused.is_err_and(|error| error.to_string().contains("prohibited")),
        "registration for a prohibited purpose"
    );

    // A platform that processes data in the US is refused purposes limited to the EEA and UK.
    let registered = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "us-app".into(),
                name: "US App".into(),
                redirect_uris: vec![support::REDIRECT_URI.into()],
                allowed_purposes: vec!["balance-alerts".into()],
                region: "US".into(),
                token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
                ..Registration::default()
            },
        )
        .await
        .expect("registers");
    assert_eq!(
        gateway
            .app
            .store
            .client("us-app")
            .await
            .unwrap()
            .unwrap()
            .region,
        "US"
    );
    let us_app = bankgate::demo::PlatformClient::new(
        &gateway.base,
        "us-app",
        &registered.client_secret,
        support::REDIRECT_URI,
    )
    .expect("client");
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-us");
    let error = us_app
        .push(&detail)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("invalid_authorization_details")
            && error.contains("allows processing only in EEA, UK; the client processes data in US"),
        "{error}"
    );
}

async fn identity_purposes_release_names_only_with_the_user_present(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let wallet = gateway
        .another_platform("wallet", &["kyc-verification"])
        .await;
    let detail = account_information("demo-bank", "kyc-verification", &[Scope::Identity], "u-kyc");
    let (token, _) = wallet.connect(&detail).await.expect("consent");
    assert_eq!(token.authorization_details[0].expires_in_days, 1);
    let token = token.access_token;

    // kyc-verification allows no unattended access at all: 429 until the next UTC day.
    let (status, headers, problem) = get(&gateway, &token, "/v1/identity", &[]).await;
    assert_eq!(status, 429, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");

    // With the user present it passes, and releases names and masked identifiers only.
    let (status, _, body) = get(&gateway, &token, "/v1/identity", &PRESENT).await;
    assert_eq!(status, 200, "{body}");
    let records = body["identity"].as_array().expect("identity").clone();
    assert!(!records.is_empty());
    let fields = keys(&records);
    let allowed: BTreeSet<String> = ["account_id", "holder_name", "iban_masked"]
        .map(String::from)
        .into();
    assert!(fields.is_subset(&allowed), "{fields:?}");
    assert!(
        records
            .iter()
            .any(|record| record["holder_name"].is_string()),
        "the bank names the holder: {records:?}"
    );
    // Accounts and balances are outside the purpose.
    let (status, _, _) = get(&gateway, &token, "/v1/accounts", &PRESENT).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unattended_budget_holds_across_two_instances() {
    let first = TestGateway::start(StoreKind::Postgres).await;
    let second = first.second_instance().await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-budget");
    let (token, _) = first.platform.connect(&detail).await.expect("consent");
    let token = token.access_token;
    let budget = first
        .app
        .policies
        .get("balance-alerts")
        .expect("policy")
        .max_unattended_per_day;
    assert_eq!(budget, 4);

    // Requests with the user present do not count, on either instance.
    for gateway in [&first, &second, &first] {
        let (status, _, body) = get(gateway, &token, "/v1/accounts", &PRESENT).await;
        assert_eq!(status, 200, "{body}");
    }
    // Unattended requests alternate between the instances; the budget is one.
    for n in 0..budget {
        let gateway = if n % 2 == 0 { &first } else { &second };
        let (status, _, body) = get(gateway, &token, "/v1/accounts", &[]).await;
        assert_eq!(status, 200, "request {n}: {body}");
    }
    for gateway in [&first, &second] {
        let (status, headers, problem) = get(gateway, &token, "/v1/accounts", &[]).await;
        assert_eq!(status, 429, "{problem}");
        assert_eq!(problem["status"], 429);
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    }
    // The user coming back still gets through.
    let (status, _, _) = get(&second, &token, "/v1/accounts", &PRESENT).await;
    assert_eq!(status, 200);

    // Both denials are audited with their reason, whichever instance refused.
    let consent_id = first.app.tokens.verify(&token).expect("token").sub;
    let events = second.audit_of(&consent_id).await;
    let data: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "data_access")
        .collect();
    let decisions: Vec<&str> = data
        .iter()
        .map(|event| event["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        [
            "allow", "allow", "allow", "allow", "allow", "allow", "allow", "deny", "deny", "allow"
        ]
    );
    for denial in data.iter().filter(|event| event["decision"] == "deny") {
        assert!(
            denial["reason"]
                .as_str()
                .unwrap()
                .contains("unattended access budget of purpose balance-alerts (4 a day) is spent"),
            "{denial}"
        );
        assert_eq!(denial["purpose"], "balance-alerts");
        assert!(
            denial["policy_hash"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
}

async fn hot_reload_applies_at_the_next_request(kind: StoreKind) {
    let dir = policies_copy();
    let gateway = TestGateway::start_with(
        kind,
        Options {
            policies_dir: Some(dir.clone()),
            admin_token: Some(OPERATOR_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;
    let detail = account_information(
        "demo-bank",
        "fraud-alerts",
        &[Scope::Accounts, Scope::Balances, Scope::Transactions],
        "u-reload",
    );
    let (token, _) = gateway.platform.connect(&detail).await.expect("consent");
    let token = token.access_token;
    let consent_id = gateway.app.tokens.verify(&token).expect("token").sub;
    let old_hash = gateway
        .app
        .policies
        .get("fraud-alerts")
        .expect("policy")
        .hash
        .clone();

    let (status, _, body) = get(&gateway, &token, "/v1/accounts", &PRESENT).await;
    assert_eq!(status, 200, "{body}");
    let account = body["accounts"][0]["id"].as_str().expect("id").to_owned();
    let transactions = format!("/v1/accounts/{account}/transactions");
    let balances = format!("/v1/accounts/{account}/balances");
    let (status, _, body) = get(&gateway, &token, &transactions, &PRESENT).await;
    assert_eq!(status, 200, "{body}");
    let before = keys(body["transactions"].as_array().expect("transactions"));
    assert!(before.contains("counterparty_name"), "{before:?}");
    let (status, _, _) = get(&gateway, &token, &balances, &PRESENT).await;
    assert_eq!(status, 200);

    // Only the operator may reload.
    let reload = |token: &'static str| {
        gateway
            .platform
            .http
            .post(format!("{}/admin/policies/reload", gateway.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(reload("not-the-operator").await.unwrap().status(), 401);

    // A stricter version: no more balances, no more counterparty names.
    let path = dir.join("fraud-alerts.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let stricter = text
        .replace(
            "scopes = [\"accounts\", \"balances\", \"transactions\"]",
            "scopes = [\"accounts\", \"transactions\"]",
        )
        .replace(
            "balance = [\"account_id\", \"type\", \"amount\", \"currency\", \"as_of\"]\n",
            "",
        )
        .replace("\"counterparty_name\", ", "")
        // The low-balance signal looks at balances: it goes with them.
        .replace(
            "\n[[signals]]\nid = \"low-balance\"\ntitle = \"The available balance fell below 50\"\n\
             when = \"balance_below\"\namount = \"50.00\"\n",
            "",
        );
    assert_ne!(stricter, text);
    assert!(!stricter.contains("balance_below"), "{stricter}");
    std::fs::write(&path, &stricter).expect("write");
    let response = reload(OPERATOR_TOKEN).await.unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let new_hash = gateway
        .app
        .policies
        .get("fraud-alerts")
        .expect("policy")
        .hash
        .clone();
    assert_ne!(new_hash, old_hash);
    assert_eq!(
        report["changed"],
        serde_json::json!([{
            "id": "fraud-alerts", "change": "changed", "hash": new_hash, "previous": old_hash,
        }])
    );

    // The existing consent, granted under the old version, gets the new one at once.
    let stored = gateway
        .app
        .store
        .consent(&consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.policy_hash, old_hash,
        "the consent remembers its version"
    );
    let (status, _, body) = get(&gateway, &token, &transactions, &PRESENT).await;
    assert_eq!(status, 200, "{body}");
    let after = keys(body["transactions"].as_array().expect("transactions"));
    assert!(!after.contains("counterparty_name"), "{after:?}");
    let (status, _, problem) = get(&gateway, &token, &balances, &PRESENT).await;
    assert_eq!(status, 403, "{problem}");

    // An invalid reload is rejected with file and line; the set in force stays.
    let broken = format!("{stricter}\nsurprise = true\n");
    std::fs::write(&path, &broken).expect("write");
    let response = reload(OPERATOR_TOKEN).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    let expected = format!(
        "{}:{}: unknown field `surprise`",
        path.display(),
        line_of(&broken, "surprise")
    );
    assert!(
        problem["detail"].as_str().unwrap().contains(&expected),
        "{problem}"
    );
    assert_eq!(
        gateway
            .app
            .policies
            .get("fraud-alerts")
            .expect("policy")
            .hash,
        new_hash
    );
    let (status, _, _) = get(&gateway, &token, &balances, &PRESENT).await;
    assert_eq!(status, 403, "still the stricter version");

    // The audit log has the new version's load and data events under it.
    let events = gateway.audit_of(&consent_id).await;
    let data_hashes: Vec<&str> = events
        .iter()
        .filter(|event| event["action"] == "data_access")
        .map(|event| event["policy_hash"].as_str().unwrap())
        .collect();
    assert_eq!(
        data_hashes,
        [
            old_hash.as_str(),
            old_hash.as_str(),
            old_hash.as_str(),
            new_hash.as_str(),
            new_hash.as_str(),
            new_hash.as_str()
        ]
    );
    let compliance = gateway.compliance.client_credentials().await.unwrap();
    let (status, loads) = gateway
        .compliance
        .get(
            &compliance,
            "/v1/audit/events?action=policy_loaded&purpose=fraud-alerts",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{loads}");
    let loads = loads["events"].as_array().unwrap();
    let last = loads.last().expect("a reload event");
    assert_eq!(last["policy_hash"], new_hash.as_str());
    assert_eq!(last["actor"], "operator");
    assert!(last["reason"].as_str().unwrap().contains(&old_hash));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policies() {
    let dir = policies_copy();
    let gateway = TestGateway::start_with(
        StoreKind::Memory,
        Options {
            policies_dir: Some(dir.clone()),
            ..Options::default()
        },
    )
    .await;
    bankgate::gateway::reload_policies_on_sighup(gateway.app.clone()).expect("handler");
    let before = gateway
        .app
        .policies
        .get("balance-alerts")
        .expect("policy")
        .hash
        .clone();
    let path = dir.join("balance-alerts.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("max_consent_days = 90", "max_consent_days = 60"),
    )
    .unwrap();

    let status = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The reload runs on its own task: wait for the new version to be in force.
    let mut waited = 0;
    while gateway
        .app
        .policies
        .get("balance-alerts")
        .expect("policy")
        .hash
        == before
    {
        assert!(waited < 200, "SIGHUP did not reload the policies");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(
        gateway
            .app
            .policies
            .get("balance-alerts")
            .unwrap()
            .max_consent_days,
        60
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purposes_are_public() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{}/v1/purposes", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|purpose| purpose["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "balance-alerts",
            "credit-assessment",
            "fraud-alerts",
            "kyc-verification",
            "p2p-payment",
            "p2p-payments-payee-check",
            "personal-finance"
        ]
    );
    let prohibited: Vec<&str> = list["prohibited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|purpose| purpose["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        prohibited,
        ["advertising", "data-selling", "marketing-profiling"]
    );

    let one: Value = http
        .get(format!("{}/v1/purposes/balance-alerts", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let policy = gateway.app.policies.get("balance-alerts").unwrap();
    assert_eq!(one["hash"], policy.hash.as_str());
    assert_eq!(one["title"], "Balance alerts");
    assert_eq!(one["legal_basis"], "consent");
    assert_eq!(one["scopes"], serde_json::json!(["accounts", "balances"]));
    assert_eq!(one["limits"]["max_consent_days"], 90);
    assert_eq!(one["limits"]["max_unattended_per_day"], 4);
    assert_eq!(one["regions"], serde_json::json!(["EEA", "UK"]));
    assert_eq!(one["retention_days"], 30);
    assert_eq!(one["onward_sharing"], false);
    assert!(
        !strings(&one["fields"]["account"]).contains("iban"),
        "{one}"
    );

    let advertising: Value = http
        .get(format!("{}/v1/purposes/advertising", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(advertising["status"], "prohibited");
    assert!(
        advertising["reason"]
            .as_str()
            .unwrap()
            .contains("advertising")
    );

    let missing = http
        .get(format!("{}/v1/purposes/gossip", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

/// `bankgate policies check` as an operator runs it: the bundled set passes; a broken copy
/// fails with `path:line: message` for each problem.
#[test]
fn policies_check_reports_file_and_line() {
    let binary = env!("CARGO_BIN_EXE_bankgate");
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let output = Command::new(binary)
        .args(["policies", "check"])
        .arg(&bundled)
        .output()
        .expect("bankgate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for id in [
        "balance-alerts",
        "kyc-verification",
        "p2p-payments-payee-check",
    ] {
        assert!(stdout.contains(id), "{stdout}");
    }
    assert!(stdout.contains("prohibited  advertising"), "{stdout}");

    let dir = policies_copy();
    let alerts = dir.join("balance-alerts.toml");
    let text = std::fs::read_to_string(&alerts).unwrap();
    let broken = text
        .replace(
            "onward_sharing = false",
            "onward_sharing = false\nshare_with = \"everyone\"",
        )
        .replace(
            "\"iban_masked\", \"status\"]",
            "\"iban_masked\", \"full_iban\", \"status\"]",
        );
    std::fs::write(&alerts, &broken).unwrap();
    let kyc = dir.join("kyc-verification.toml");
    let kyc_text = std::fs::read_to_string(&kyc).unwrap();
    let kyc_broken = kyc_text.replace("max_consent_days = 1", "max_consent_days = 0");
    std::fs::write(&kyc, &kyc_broken).unwrap();

    let output = Command::new(binary)
        .args(["policies", "check"])
        .arg(&dir)
        .output()
        .expect("bankgate runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a broken set must fail: {stderr}");
    let expected = [
        format!(
            "{}:{}: unknown field `share_with`",
            alerts.display(),
            line_of(&broken, "share_with")
        ),
        format!(
            "{}:{}: max_consent_days must be between 1 and 730, not 0",
            kyc.display(),
            line_of(&kyc_broken, "max_consent_days")
        ),
    ];
    for line in &expected {
        assert!(
            stderr.contains(line.as_str()),
            "expected {line:?} in:\n{stderr}"
        );
    }

    // With the parse error fixed, the next problem in that file shows, also with its line.
    std::fs::write(&alerts, broken.replace("share_with = \"everyone\"\n", "")).unwrap();
    let output = Command::new(binary)
        .args(["policies", "check"])
        .arg(&dir)
        .output()
        .expect("bankgate runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let fixed = broken.replace("share_with = \"everyone\"\n", "");
    let expected = format!(
        "{}:{}: fields.account: unknown field \"full_iban\"",
        alerts.display(),
        line_of(&fixed, "full_iban")
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `serve` (through `Gateway::start`) refuses an invalid policy set, naming file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_to_start_on_an_invalid_set() {
    let dir = policies_copy();
    let path = dir.join("personal-finance.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let broken = text.replace(
        "\"accounts\", \"balances\", \"transactions\"]",
        "\"accounts\", \"gossip\"]",
    );
    std::fs::write(&path, &broken).unwrap();
    let mut config = bankgate::gateway::embedded_config();
    config.policies_dir = dir.clone();
    let error = match bankgate::gateway::Gateway::start(config).await {
        Ok(_) => panic!("a gateway started on an invalid policy set"),
        Err(error) => error.to_string(),
    };
    let expected = format!(
        "{}:{}: unknown scope \"gossip\"",
        path.display(),
        line_of(&broken, "gossip")
    );
    assert!(
        error.contains(&expected),
        "expected {expected:?} in {error}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
