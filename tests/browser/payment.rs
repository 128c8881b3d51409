//! The consent screen of a payment (issue 13) in headless Chromium: `payment.mjs` reads the
//! payment on the screen in English, continues to the sandbox bank's own approval page,
//! approves, and lands on the platform, which submits the payment; then a French screen,
//! cancelled. Both show the verification of the payee's name with her bank (a match, then a
//! close match naming the account holder). Screenshots go to `target/artifacts/payment-*.png`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::Html;
use bankgate::demo::{PlatformClient, Pushed};
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use bankgate::payments::{Amount, CreditorAccount, PAYMENT_INITIATION, PaymentRequest};
use bankgate_sandbox::Approval;

use super::{Served, manifest_dir, require_browser_tools, run_script};

/// The platform's web app: its redirect URI exchanges the code and submits the payment.
#[derive(Clone)]
struct PayingApp {
    client: Arc<PlatformClient>,
    pending: Arc<Mutex<HashMap<String, Pushed>>>,
}

async fn callback(
    State(app): State<PayingApp>,
    Query(query): Query<HashMap<String, String>>,
) -> Html<String> {
    let pushed = query
        .get("state")
        .and_then(|state| app.pending.lock().unwrap().remove(state));
    let result = match (query.get("error"), query.get("code"), pushed) {
        (Some(error), _, _) => format!("Not paid: {error}"),
        (None, Some(code), Some(pushed)) => {
            match app.client.exchange_payment(code, &pushed).await {
                Err(error) => format!("Not paid: {error}"),
                Ok(token) => {
                    let answer = app
                        .client
                        .post_json(
                            token["access_token"].as_str().unwrap_or_default(),
                            "/v1/payments",
                            &serde_json::json!({}),
                            &[("idempotency-key", "browser-payment")],
                        )
                        .await;
                    match answer {
                        Ok(answer) => format!(
                            "Paid: HTTP {}, {}",
                            answer.status,
                            answer.json()["status"].as_str().unwrap_or("-")
                        ),
                        Err(error) => format!("Not paid: {error}"),
                    }
                }
            }
        }
        _ => "Not paid: no code".to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Platform</title>\
         </head><body><main><h1>Platform</h1><p id=\"platform-result\">{result}</p></main></body></html>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_consent_screen_in_headless_chromium() {
    require_browser_tools();
    let mut config = bankgate::gateway::embedded_config();
    config.sandbox_approval = Approval::Page;
    config.allow_insecure_clients = true;
    let gateway = Served::start(config).await;
    let base = gateway.base.clone();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let registered = gateway
        .register(Registration {
            client_id: "messenger".into(),
            name: "Messenger".into(),
            role: Role::Platform,
            redirect_uris: vec![redirect_uri.clone()],
            allowed_purposes: vec!["p2p-payment".into()],
            token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
            ..Registration::default()
        })
        .await;
    let client = Arc::new(
        PlatformClient::new(&base, "messenger", &registered.client_secret, &redirect_uri).unwrap(),
    );
    let platform = PayingApp {
        client: client.clone(),
        pending: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(platform.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let payment = |amount: &str, name: &str| PaymentRequest {
        kind: PAYMENT_INITIATION.into(),
        bank: "stet-bank".into(),
        purpose: "p2p-payment".into(),
        instructed_amount: Amount {
            currency: "EUR".into(),
            amount: amount.parse().unwrap(),
        },
        creditor: None,
        creditor_account: CreditorAccount {
            iban: "NL18BKGT0417164300".into(),
        },
        creditor_name: name.into(),
        remittance: Some("pizza".into()),
        instant: false,
        user_ref: "u-browser".into(),
        verification: None,
    };
    let mut urls = Vec::new();
    // The payee's name as typed: her own, then an initial for her given name.
    for (amount, name) in [("12.50", "Carol Nguyen"), ("7.25", "C. Nguyen")] {
        let pushed = client
            .push_payment(&payment(amount, name))
            .await
            .expect("PAR");
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
        "payment.mjs",
        &[&urls[0], &urls[1], &artifacts.to_string_lossy()],
    )
    .await;

    assert_eq!(seen["lang_en"], "en");
    assert_eq!(
        seen["heading_en"],
        "Messenger asks to pay 12.50 EUR from your account at Banque Sandbox"
    );
    assert_eq!(seen["amount_en"], "12.50 EUR");
    assert_eq!(seen["payee_en"], "Carol Nguyen");
    assert_eq!(seen["account_en"], "NL18 •••• 4300");
    assert_eq!(seen["bank_en"], "Banque Sandbox");
    // Verified with the payee's bank before the payer confirms.
    assert_eq!(
        seen["check_en"], "Matches the name on the account",
        "{seen}"
    );
    assert_eq!(seen["purpose_en"], "Pay a friend by message");
    assert_eq!(seen["scripts"], 0, "the screen needs no JavaScript");
    assert_eq!(seen["focused"], "approve");
    assert!(
        !seen["body_en"]
            .as_str()
            .unwrap()
            .contains("NL18BKGT0417164300"),
        "never the whole account number"
    );
    assert!(
        seen["bank_page"].as_str().unwrap().contains("12.50"),
        "the bank shows the payment: {seen}"
    );
    assert_eq!(seen["platform_en"], "Paid: HTTP 201, accepted", "{seen}");
    assert_eq!(seen["lang_fr"], "fr");
    assert_eq!(
        seen["heading_fr"],
        "Messenger demande à payer 7,25 EUR depuis votre compte chez Banque Sandbox"
    );
    assert_eq!(seen["amount_fr"], "7,25 EUR");
    assert_eq!(
        seen["check_fr"],
        "Proche du nom du titulaire du compte, qui est Carol Nguyen : vérifiez qu'il s'agit bien \
         de la personne à payer",
        "{seen}"
    );
    assert_eq!(seen["purpose_fr"], "Payer un ami par message");
    let labels = seen["labels_fr"].to_string();
    assert!(
        labels.contains("Montant") && labels.contains("Bénéficiaire"),
        "{seen}"
    );
    assert_eq!(seen["platform_fr"], "Not paid: access_denied");
    for screenshot in [
        "payment-screen-en.png",
        "payment-bank-approval.png",
        "payment-screen-fr.png",
    ] {
        let path = artifacts.join(screenshot);
        let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        assert!(size > 1000, "{} was not written", path.display());
    }
}
