//! The gateway's pages in a real browser. Each test starts a gateway on loopback and runs a
//! script under `tests/browser/` with node, which drives headless Chromium and prints one JSON
//! line with what it saw:
//!
//! - the consent screen (issue 5, item 7), with the sandbox bank's approval page (a person
//!   clicks there) and a small platform web app on loopback: `consent.mjs` goes through the
//!   whole flow (consent screen → bank approval → back at the platform, which exchanges the
//!   code and reads the accounts) in English, and a cancelled flow in French. Screenshots go to
//!   `target/artifacts/`.
//! - the consent screen of a payment (issue 13): `payment.mjs`, see `payment.rs`.
//! - the person's connected-apps page: `connected.mjs`, see `connected.rs`.
//! - the compliance console (`/console`): `console.mjs` signs in, filters, opens an event,
//!   exports, pages, draws the chart and verifies the chain; the test compares what the page
//!   showed with what the compliance API answers. Screenshot: `target/artifacts/console.png`.
//!
//! Needs node, `/usr/bin/chromium` and `tests/browser/node_modules/playwright-core` (`.ci/run`
//! installs them); without them the tests fail and say how to install them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::Html;
use bankgate::demo::{PlatformClient, Pushed, account_information};
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use bankgate_sandbox::Approval;

#[path = "../support/gateway.rs"]
#[allow(dead_code)]
mod gateway;

use gateway::Served;

mod connected;
mod payment;

const CHROMIUM: &str = "/usr/bin/chromium";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with instructions when a browser prerequisite is missing.
fn require_browser_tools() {
    let install = "install them with: apt-get update && apt-get install -y chromium nodejs npm \
                   && (cd tests/browser && npm ci)   (bash .ci/run does this)";
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "node is required for the browser test; {install}"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is required for the browser test; {install}"
    );
    let playwright = manifest_dir().join("tests/browser/node_modules/playwright-core");
    assert!(
        playwright.exists(),
        "{} is missing; {install}",
        playwright.display()
    );
}

/// Runs `node <script> <args…>` in `tests/browser/` and returns the JSON line it printed last;
/// fails with its output when it fails.
async fn run_script(script: &str, args: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new("node")
        .arg(manifest_dir().join("tests/browser").join(script))
        .args(args)
        .current_dir(manifest_dir().join("tests/browser"))
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no result line from {script} ({error}): {stdout}"))
}

/// The platform's web app: its redirect URI exchanges the code (with the PKCE verifier kept
/// per `state`) and reads the accounts, as a platform backend does.
#[derive(Clone)]
struct PlatformApp {
    client: Arc<PlatformClient>,
    pending: Arc<Mutex<HashMap<String, Pushed>>>,
}

async fn callback(
    State(app): State<PlatformApp>,
    Query(query): Query<HashMap<String, String>>,
) -> Html<String> {
    let result = match (query.get("error"), query.get("code"), query.get("state")) {
        (Some(error), _, _) => format!("Not connected: {error}"),
        (None, Some(code), Some(state)) => {
            let pushed = app.pending.lock().unwrap().remove(state);
            match pushed {
                None => "Not connected: unknown state".to_owned(),
                Some(pushed) => match app.client.exchange(code, &pushed).await {
                    Err(error) => format!("Not connected: {error}"),
                    Ok(token) => {
                        let (status, accounts) = app
                            .client
                            .get(&token.access_token, "/v1/accounts")
                            .await
                            .unwrap_or((0, serde_json::Value::Null));
                        let n = accounts["accounts"].as_array().map_or(0, Vec::len);
                        format!("Connected: HTTP {status}, {n} accounts")
                    }
                },
            }
        }
        _ => "Not connected: no code".to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Platform</title>\
         </head><body><main><h1>Platform</h1><p id=\"platform-result\">{result}</p></main></body></html>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_screen_in_headless_chromium() {
    require_browser_tools();
    let mut config = bankgate::gateway::embedded_config();
    config.sandbox_approval = Approval::Page;
    // The page's platform authenticates with a secret and uses bearer tokens: development.
    config.allow_insecure_clients = true;
    let gateway = Served::start(config).await;
    let base = gateway.base.clone();

    // The platform's web app on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let registered = gateway
        .register(Registration {
            client_id: "messenger".into(),
            name: "Messenger".into(),
            role: Role::Platform,
            redirect_uris: vec![redirect_uri.clone()],
            allowed_purposes: vec!["balance-alerts".into()],
            token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
            ..Registration::default()
        })
        .await;
    let client = Arc::new(
        PlatformClient::new(&base, "messenger", &registered.client_secret, &redirect_uri).unwrap(),
    );
    let platform = PlatformApp {
        client: client.clone(),
        pending: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(platform.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Two pushed requests: one approved in English, one cancelled in French.
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-browser",
    );
    let mut urls = Vec::new();
    for _ in 0..2 {
        let pushed = client.push(&detail).await.expect("PAR");
        let mut url = url::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", "messenger")
            .append_pair("request_uri", &pushed.request_uri);
        urls.push(url.to_string());
        platform
            .pending
            .lock()
            .unwrap()
            .insert(pushed.state.clone(), pushed);
    }

    let artifacts = manifest_dir().join("target/artifacts");
    let seen = run_script(
        "consent.mjs",
        &[&urls[0], &urls[1], &artifacts.to_string_lossy()],
    )
    .await;

    assert_eq!(seen["lang_en"], "en");
    assert_eq!(
        seen["heading_en"],
        "Messenger asks to see data from Demo Bank"
    );
    assert_eq!(seen["purpose_en"], "Balance alerts");
    assert!(
        seen["scopes_en"].as_str().unwrap().contains("balances"),
        "{seen}"
    );
    assert_eq!(seen["scripts"], 0, "the screen needs no JavaScript");
    assert_eq!(
        seen["focused"], "approve",
        "keyboard reaches the first action"
    );
    let connected = seen["platform_en"].as_str().unwrap();
    assert!(
        connected.starts_with("Connected: HTTP 200,") && !connected.contains(" 0 accounts"),
        "{seen}"
    );
    assert_eq!(seen["lang_fr"], "fr");
    assert_eq!(
        seen["heading_fr"],
        "Messenger demande à voir des données de Demo Bank"
    );
    assert_eq!(seen["purpose_fr"], "Alertes de solde");
    assert_eq!(seen["purpose_lang_fr"], serde_json::Value::Null, "{seen}");
    assert!(
        seen["description_fr"]
            .as_str()
            .unwrap()
            .starts_with("Vous montre les soldes de vos comptes"),
        "{seen}"
    );
    assert_eq!(seen["platform_fr"], "Not connected: access_denied");
    for screenshot in [
        "consent-screen-en.png",
        "bank-approval.png",
        "platform-connected.png",
        "consent-screen-fr.png",
    ] {
        let path = artifacts.join(screenshot);
        let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        assert!(size > 1000, "{} was not written", path.display());
    }
}

/// How long the console test's access tokens live: long enough for the platform's requests
/// after each consent, short enough that the console must request a new token during the run.
const CONSOLE_TOKEN_TTL_SECS: i64 = 6;

/// Positions of the events in a page of `/v1/audit/events`.
fn positions(page: &serde_json::Value) -> Vec<i64> {
    page["events"]
        .as_array()
        .expect("a page of events")
        .iter()
        .map(|event| event["position"].as_i64().expect("a position"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    require_browser_tools();
    let mut config = bankgate::gateway::embedded_config();
    config.access_token_ttl_secs = CONSOLE_TOKEN_TTL_SECS;
    // The test's platform authenticates with a secret and uses bearer tokens: development.
    config.allow_insecure_clients = true;
    let gateway = Served::start(config).await;
    let redirect_uri = "http://127.0.0.1/callback";
    let platform = gateway
        .register(Registration {
            client_id: "messenger".into(),
            name: "Messenger".into(),
            role: Role::Platform,
            redirect_uris: vec![redirect_uri.into()],
            allowed_purposes: vec!["balance-alerts".into(), "fraud-alerts".into()],
            token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
            ..Registration::default()
        })
        .await;
    let officer = gateway
        .register(Registration {
            client_id: "compliance-office".into(),
            name: "Compliance Office".into(),
            role: Role::Compliance,
            token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
            ..Registration::default()
        })
        .await;

    // Allowed and denied data requests under two purposes: each consent reads the accounts and
    // what its purpose allows, then asks for what the consent does not cover.
    let client = PlatformClient::new(
        &gateway.base,
        "messenger",
        &platform.client_secret,
        redirect_uri,
    )
    .unwrap();
    let requests: [(&str, &[Scope], &str, &str); 2] = [
        (
            "balance-alerts",
            &[Scope::Accounts, Scope::Balances],
            "balances",
            "transactions",
        ),
        (
            "fraud-alerts",
            &[Scope::Accounts, Scope::Transactions],
            "transactions",
            "balances",
        ),
    ];
    for (purpose, scopes, allowed, denied) in requests {
        let detail = account_information("demo-bank", purpose, scopes, "u-console");
        let (token, _) = client.connect(&detail).await.expect("consent flow");
        let token = token.access_token;
        let (status, accounts) = client.get(&token, "/v1/accounts").await.unwrap();
        assert_eq!(status, 200, "{purpose}: {accounts}");
        let account = accounts["accounts"][0]["id"].as_str().expect("an account");
        for (what, expected) in [(allowed, 200), (denied, 403)] {
            let path = format!("/v1/accounts/{account}/{what}");
            let (status, body) = client.get(&token, &path).await.unwrap();
            assert_eq!(status, expected, "{purpose} {path}: {body}");
        }
    }

    let artifacts = manifest_dir().join("target/artifacts");
    let seen = run_script(
        "console.mjs",
        &[
            &gateway.base,
            &officer.client_id,
            &officer.client_secret,
            &CONSOLE_TOKEN_TTL_SECS.to_string(),
            &artifacts.to_string_lossy(),
        ],
    )
    .await;

    // Served with the right types, revalidated, under the strict policy.
    let policy = bankgate::http::routes::console::CONTENT_SECURITY_POLICY;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let served = &seen["served"][path];
        assert_eq!(served["status"], 200, "{path}: {served}");
        assert_eq!(served["content_type"], content_type, "{path}");
        assert_eq!(served["cache_control"], "no-cache", "{path}");
        assert_eq!(served["csp"], policy, "{path}");
        assert_eq!(served["nosniff"], "nosniff", "{path}");
    }
    assert_eq!(
        seen["problems"],
        serde_json::json!([]),
        "no script error or policy violation"
    );

    // Accessible: a language, labels, keyboard order with a visible focus.
    assert_eq!(seen["lang"], "en");
    assert_eq!(seen["inline_scripts"], 0);
    assert_eq!(seen["inline_styles"], 0);
    assert_eq!(seen["unlabelled"], serde_json::json!([]));
    assert_eq!(seen["first_focus"], "skip-link");
    assert_eq!(seen["focus_outline"], "solid");
    assert_eq!(seen["second_focus"], "client-id");

    // A wrong secret is refused with the gateway's reason; the right one signs in.
    let alert = seen["wrong_secret_alert"].as_str().unwrap();
    assert!(
        alert.starts_with("Sign-in failed: ") && alert.contains("client authentication failed"),
        "{alert}"
    );
    assert_eq!(seen["signed_in_after_wrong_secret"], false);
    assert_eq!(seen["session_status"], "Signed in as compliance-office");
    assert_eq!(seen["secret_field_cleared"], true);
    assert_eq!(seen["stored"], 0, "nothing in storage or cookies");

    // What the page showed is what the API answers.
    let compliance = PlatformClient::new(
        &gateway.base,
        &officer.client_id,
        &officer.client_secret,
        "",
    )
    .unwrap();
    let token = compliance.client_credentials().await.unwrap();
    let api = |path: String| {
        let (compliance, token) = (&compliance, &token);
        async move {
            let (status, body) = compliance.get(token, &path).await.unwrap();
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    let denials = api("/v1/audit/events?decision=deny".into()).await;
    let denied = denials["events"].as_array().unwrap();
    let mut denied_purposes: Vec<&str> = denied
        .iter()
        .map(|event| event["purpose"].as_str().unwrap_or("-"))
        .collect();
    denied_purposes.sort_unstable();
    assert_eq!(denied_purposes, ["balance-alerts", "fraud-alerts"]);
    assert_eq!(
        seen["deny_positions"],
        serde_json::json!(positions(&denials))
    );
    assert!(
        seen["deny_decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|decision| decision == "deny"),
        "{seen}"
    );

    // The event opened: the first denial, with its links in the chain.
    let first = &denied[0];
    let position = first["position"].as_i64().unwrap();
    assert_eq!(seen["event_heading"], format!("Event {position}"));
    assert_eq!(seen["event_position"], position.to_string());
    assert_eq!(seen["event_decision"], "deny");
    assert_eq!(seen["event_hash"], first["hash"]);
    assert_eq!(seen["inclusion_position"], position.to_string());
    assert_eq!(seen["inclusion_hash"], first["hash"]);
    assert_eq!(seen["inclusion_prev_hash"], first["prev_hash"]);
    let canonical: serde_json::Value =
        serde_json::from_str(seen["inclusion_canonical"].as_str().unwrap()).unwrap();
    assert_eq!(canonical["id"], first["id"]);
    assert!(
        !seen["inclusion_verify"].as_str().unwrap().is_empty(),
        "{seen}"
    );
    assert_eq!(seen["event_focused"], "event-heading");

    // The CSV export of the denials: a header, one row each...
    assert!(
        seen["export_header"]
            .as_str()
            .unwrap()
            .starts_with("position,"),
        "{seen}"
    );
    assert_eq!(seen["export_rows"], denied.len());
    // ...and the trailer that says it is complete, which the page checked.
    assert_eq!(
        seen["export_trailer"],
        format!("#complete,{}{}", denied.len(), ",".repeat(17))
    );
    let status = seen["export_status"].as_str().unwrap();
    assert!(
        status.contains(&format!(": {} event", denied.len())) && status.contains(", complete"),
        "{status}"
    );
    // An export cut short is refused and not saved.
    let refused = seen["cut_export_error"].as_str().unwrap();
    assert!(refused.contains("cut short"), "{seen}");
    assert_eq!(seen["cut_export_status"], "", "{seen}");
    assert_eq!(seen["cut_export_downloads"], 0, "{seen}");

    // Pages of ten.
    let page1 = api("/v1/audit/events?limit=10".into()).await;
    let page1 = positions(&page1);
    let page2 = api(format!("/v1/audit/events?limit=10&after={}", page1[9])).await;
    assert_eq!(seen["page1_positions"], serde_json::json!(page1));
    assert_eq!(
        seen["page2_positions"],
        serde_json::json!(positions(&page2))
    );

    // The token expired during the run and the page requested another.
    let before = seen["tokens_before_expiry"].as_u64().unwrap();
    let after = seen["tokens_after_expiry"].as_u64().unwrap();
    assert!(before >= 1 && after > before, "{seen}");

    // The chart: for both purposes, bars that add up to the summary's counts.
    let summary = api("/v1/audit/summary".into()).await;
    let mut expected: HashMap<(String, String), u64> = HashMap::new();
    for row in summary["rows"].as_array().unwrap() {
        if let Some(purpose) = row["purpose"].as_str() {
            let key = (
                purpose.to_owned(),
                row["decision"].as_str().unwrap().to_owned(),
            );
            *expected.entry(key).or_default() += row["count"].as_u64().unwrap();
        }
    }
    let mut charted: HashMap<(String, String), u64> = HashMap::new();
    for bar in seen["chart_bars"].as_array().unwrap() {
        let key = (
            bar["purpose"].as_str().unwrap().to_owned(),
            bar["decision"].as_str().unwrap().to_owned(),
        );
        *charted.entry(key).or_default() += bar["count"].as_u64().unwrap();
    }
    for purpose in ["balance-alerts", "fraud-alerts"] {
        for decision in ["allow", "deny"] {
            let key = (purpose.to_owned(), decision.to_owned());
            assert!(charted.get(&key).is_some_and(|&n| n > 0), "{key:?}: {seen}");
            assert_eq!(charted.get(&key), expected.get(&key), "{key:?}");
        }
    }
    assert_eq!(
        seen["chart_legend"],
        serde_json::json!(["Allowed", "Denied", "Errors"])
    );
    assert!(
        !seen["chart_table_rows"].as_array().unwrap().is_empty(),
        "{seen}"
    );
    assert_eq!(
        seen["chart_table_hidden"], true,
        "the data table is for screen readers"
    );

    // Verification.
    assert_eq!(seen["verify_ok"], "true");
    assert!(
        seen["verify_text"]
            .as_str()
            .unwrap()
            .starts_with("Verification OK"),
        "{seen}"
    );

    let screenshot = artifacts.join("console.png");
    let size = std::fs::metadata(&screenshot)
        .map(|meta| meta.len())
        .unwrap_or(0);
    assert!(size > 1000, "{} was not written", screenshot.display());
}
