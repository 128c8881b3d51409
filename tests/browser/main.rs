//! The consent screen in a real browser (issue 5, item 7): starts a gateway with the sandbox
//! bank's approval page (a person clicks there) and a small platform web app on loopback, then
//! runs `node tests/browser/consent.mjs`, which drives headless Chromium through the whole flow
//! (consent screen → bank approval → back at the platform, which exchanges the code and reads
//! the accounts) in English, and a cancelled flow in French. Screenshots go to
//! `target/artifacts/`.
//!
//! Needs node, `/usr/bin/chromium` and `tests/browser/node_modules/playwright-core` (`.ci/run`
//! installs them); without them the test fails and says how to install them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::Html;
use bankgate::app::Gateway;
use bankgate::demo::{PlatformClient, Pushed, account_information};
use bankgate::model::Scope;
use bankgate::oauth::registration::{Registration, register};
use bankgate::sandbox::Approval;
use bankgate::store::Role;

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
    let mut config = bankgate::app::embedded_config();
    config.sandbox_approval = Approval::Page;
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let app = gateway.app.clone();
    let base = app.config.public_url.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(async move {
        let _ = stopped.await;
    }));

    // The platform's web app on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let registered = register(
        app.store.as_ref(),
        &app.policies.current(),
        Registration {
            client_id: "messenger".into(),
            name: "Messenger".into(),
            role: Role::Platform,
            redirect_uris: vec![redirect_uri.clone()],
            allowed_purposes: vec!["balance-alerts".into()],
            ..Registration::default()
        },
    )
    .await
    .expect("platform registers");
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
    let script = manifest_dir().join("tests/browser/consent.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&urls[0])
        .arg(&urls[1])
        .arg(&artifacts)
        .current_dir(manifest_dir().join("tests/browser"))
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("no result line ({error}): {stdout}"));

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
    let _ = stop.send(());
}
