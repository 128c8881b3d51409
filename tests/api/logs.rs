//! Log lines of `bankgate serve` (issue 15): JSON by default when standard error is not a
//! terminal, text on request, never an ANSI escape off a terminal, one line per response with
//! its request id, client, bank, route, status and latency — and no token, secret, code or
//! account number in any line, in either format, after a whole consent flow.

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use serde_json::{Value, json};

use super::serve::Served;
use super::support::REDIRECT_URI;

const OPERATOR_TOKEN: &str = "operator-token-that-must-not-be-logged";

/// Every secret one flow handled, and the path of a balance read.
struct Flow {
    secrets: Vec<(&'static str, String)>,
    balances_path: String,
}

/// A whole flow against `served`: a platform registered through the admin API, consent at
/// the bank, token, accounts, balances, a refused scope, a refresh, a revocation.
async fn flow(served: &Served) -> Flow {
    let http = bankgate::crypto::http_client_builder().build().unwrap();
    let registered: Value = http
        .post(format!("{}/admin/clients", served.base))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({
            "client_id": "messenger",
            "name": "Messenger",
            "role": "platform",
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": ["balance-alerts"],
            // A secret, so that the scan has one to look for (the development setting).
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_secret = registered["client_secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let platform =
        PlatformClient::new(&served.base, "messenger", &client_secret, REDIRECT_URI).unwrap();
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-log-scan",
    );
    let (token, trace) = platform.connect(&detail).await.expect("consent flow");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let account = accounts["accounts"][0]["id"]
        .as_str()
        .expect("an account")
        .to_owned();
    let balances_path = format!("/v1/accounts/{account}/balances");
    let (status, balances) = platform
        .get(&token.access_token, &balances_path)
        .await
        .unwrap();
    assert_eq!(status, 200, "{balances}");
    let (status, _) = platform
        .get(
            &token.access_token,
            &format!("/v1/accounts/{account}/transactions"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let refresh_token = token.refresh_token.clone().expect("a refresh token");
    let refreshed = platform.refresh(&refresh_token).await.expect("refresh");
    let management = platform.client_credentials().await.unwrap();
    let query = |url: &str, name: &str| {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| panic!("{name} in {url}"))
    };
    let mut secrets = vec![
        ("operator token", OPERATOR_TOKEN.to_owned()),
        ("client secret", client_secret),
        ("access token", token.access_token.clone()),
        ("refreshed access token", refreshed.access_token),
        ("refresh token", refresh_token),
        ("management token", management.clone()),
        (
            "authorization code",
            query(&trace.platform_redirect, "code"),
        ),
        (
            "the bank's authorization code",
            query(&trace.callback_url, "code"),
        ),
    ];
    let (status, _) = platform
        .delete(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);
    // Every account number the sandbox banks hold.
    let customers = include_str!("../../crates/sandbox/customers.toml");
    for line in customers.lines() {
        let line = line.trim();
        for key in ["iban", "account_number", "bban", "pan"] {
            if let Some(value) = line
                .strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix('='))
            {
                let value = value.trim().trim_matches('"').to_owned();
                if value.len() >= 8 {
                    secrets.push(("account number", value));
                }
            }
        }
    }
    assert!(
        secrets
            .iter()
            .filter(|(kind, _)| *kind == "account number")
            .count()
            >= 5,
        "the sandbox's account numbers are found"
    );
    Flow {
        secrets,
        balances_path,
    }
}

/// Starts `serve` with `args`, runs [`flow`], stops it; its standard error and the flow.
async fn logged(args: &[&str]) -> (String, Flow) {
    let dir = std::env::temp_dir().join(format!("bankgate-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bankgate.toml");
    std::fs::write(
        &config,
        "sandbox_approval = \"auto\"\nallow_insecure_clients = true\n",
    )
    .unwrap();
    let served = Served::start(
        args,
        &[
            ("BANKGATE_CONFIG", config.to_str().unwrap()),
            ("BANKGATE_ADMIN_TOKEN", OPERATOR_TOKEN),
        ],
    );
    let flow = flow(&served).await;
    let stderr = served.stop();
    (stderr, flow)
}

#[track_caller]
fn assert_no_secret(log: &str, flow: &Flow, format: &str) {
    assert!(
        !log.contains('\u{1b}'),
        "{format}: an ANSI escape off a terminal"
    );
    for (kind, secret) in &flow.secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{format}: the {kind} {secret} is in a log line"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_by_default_off_a_terminal_and_no_secret_in_them() {
    let (log, flow) = logged(&[]).await;
    assert_no_secret(&log, &flow, "json");
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert!(lines.len() > 10, "{log}");
    // The line of the balance read: every field at the top level.
    let balances = lines
        .iter()
        .find(|line| {
            line["message"] == "response"
                && line["route"] == "/v1/accounts/{account_id}/balances"
                && line["status"] == 200
        })
        .unwrap_or_else(|| panic!("no response line for {}: {log}", flow.balances_path));
    assert_eq!(balances["level"], "INFO", "{balances}");
    assert_eq!(balances["method"], "GET", "{balances}");
    assert_eq!(balances["client_id"], "messenger", "{balances}");
    assert_eq!(balances["bank"], "demo-bank", "{balances}");
    let request_id = balances["request_id"].as_str().unwrap_or_default();
    assert_eq!(request_id.len(), 36, "a UUID request id: {balances}");
    assert!(
        balances["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{balances}"
    );
    // The raw path (with the account id) is in the request span, not a label.
    assert_eq!(
        balances["span"]["path"],
        flow.balances_path.as_str(),
        "{balances}"
    );
    // The refused scope is a line with its error.
    assert!(
        lines.iter().any(
            |line| line["route"] == "/v1/accounts/{account_id}/transactions"
                && line["status"] == 403
                && line["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("denied"))
        ),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_on_request_and_no_secret_in_them() {
    let (log, flow) = logged(&["--log-format", "text"]).await;
    assert_no_secret(&log, &flow, "text");
    assert!(
        log.lines()
            .all(|line| serde_json::from_str::<Value>(line).is_err()),
        "text, not JSON: {log}"
    );
    let balances = log
        .lines()
        .find(|line| {
            line.contains("route=/v1/accounts/{account_id}/balances") && line.contains("status=200")
        })
        .unwrap_or_else(|| panic!("no response line: {log}"));
    for field in [
        "request_id=",
        "client_id=messenger",
        "bank=demo-bank",
        "latency_ms=",
    ] {
        assert!(balances.contains(field), "{field}: {balances}");
    }
}
