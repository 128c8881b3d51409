//! The person's connected-apps page in headless Chromium (`connected.mjs`): two platforms hold
//! consents of one person at the UK sandbox bank; the person picks the bank on `/me`, signs in
//! there, sees both consents, withdraws one; the platform's next request is refused and its
//! `consent.revoked` webhook is delivered; the other platform reads on. Screenshots go to
//! `target/artifacts/connected-apps*.png`.

use std::sync::{Arc, Mutex};

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::oauth::Role;
use bankgate::oauth::registration::Registration;
use bankgate::subject::connected::REVOKED_REASON;

use super::gateway::Served;
use super::{manifest_dir, require_browser_tools, run_script};

const BANK: &str = "obie-bank";
const PURPOSE: &str = "balance-alerts";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

/// A webhook receiver on loopback: the bodies it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

/// A platform with a secret (development), its webhook going to `webhook_url`.
async fn platform(
    gateway: &Served,
    client_id: &str,
    name: &str,
    webhook_url: Option<&str>,
) -> PlatformClient {
    let redirect_uri = "http://127.0.0.1/callback";
    let registered = gateway
        .register(Registration {
            client_id: client_id.into(),
            name: name.into(),
            role: Role::Platform,
            redirect_uris: vec![redirect_uri.into()],
            allowed_purposes: vec![PURPOSE.into()],
            token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
            webhook_url: webhook_url.map(str::to_owned),
            ..Registration::default()
        })
        .await;
    PlatformClient::new(
        &gateway.base,
        client_id,
        &registered.client_secret,
        redirect_uri,
    )
    .unwrap()
}

/// The claims of a webhook delivery (its signature is checked by `tests/api`).
fn claims(body: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = body.split('.').nth(1).expect("a compact JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_apps_page_in_headless_chromium() {
    require_browser_tools();
    let mut config = bankgate::gateway::embedded_config();
    // The test's platforms authenticate with a secret and use bearer tokens: development.
    config.allow_insecure_clients = true;
    let gateway = Served::start(config).await;
    let (hooks, received) = receiver().await;
    let messenger = platform(&gateway, "messenger", "Messenger", Some(&hooks)).await;
    let social = platform(&gateway, "social", "Social Feed", None).await;

    // One person (the sandbox's default customer) gives both platforms access at the bank.
    let (at_messenger, _) = messenger
        .connect(&account_information(BANK, PURPOSE, SCOPES, "m-42"))
        .await
        .expect("consent flow");
    let (at_social, _) = social
        .connect(&account_information(BANK, PURPOSE, SCOPES, "s-7"))
        .await
        .expect("consent flow");
    let (status, _) = messenger
        .get(&at_messenger.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);

    let artifacts = manifest_dir().join("target/artifacts");
    let seen = run_script(
        "connected.mjs",
        &[
            &gateway.base,
            "Sandbox Bank UK",
            &at_messenger.consent_id,
            &artifacts.to_string_lossy(),
        ],
    )
    .await;

    assert_eq!(seen["lang"], "en");
    assert_eq!(seen["heading"], "Your connected apps at Sandbox Bank UK");
    assert_eq!(seen["scripts"], 0, "the page needs no JavaScript");
    assert_eq!(seen["url"], format!("{}/me/{BANK}", gateway.base));
    assert_eq!(
        seen["moved_on"], "by itself",
        "the callback's page moves on without script"
    );
    let banks = seen["banks"].as_array().unwrap();
    assert!(banks.iter().any(|bank| bank == "Sandbox Bank UK"), "{seen}");
    assert!(banks.iter().any(|bank| bank == "Demo Bank"), "{seen}");
    assert!(!banks.iter().any(|bank| bank == "Nova Bank"), "{seen}");
    let before = seen["before"].as_array().unwrap();
    assert_eq!(before.len(), 2, "both platforms' consents: {seen}");
    let card = |cards: &[serde_json::Value], consent: &str| {
        cards
            .iter()
            .find(|card| card["consent"] == consent)
            .unwrap_or_else(|| panic!("no card for {consent}: {cards:?}"))
            .clone()
    };
    let messenger_card = card(before, &at_messenger.consent_id);
    assert_eq!(messenger_card["platform"], "Messenger");
    assert_eq!(messenger_card["status"], "Active");
    assert_eq!(messenger_card["can_withdraw"], true);
    assert!(
        messenger_card["purpose"]
            .as_str()
            .unwrap()
            .starts_with("Balance alerts"),
        "{messenger_card}"
    );
    assert!(
        messenger_card["data"]
            .as_str()
            .unwrap()
            .contains("balances"),
        "{messenger_card}"
    );
    assert_eq!(
        messenger_card["accesses"],
        "Accesses in the last 90 days: 1"
    );
    assert!(
        messenger_card["last_access"]
            .as_str()
            .unwrap()
            .ends_with("UTC"),
        "{messenger_card}"
    );
    let social_card = card(before, &at_social.consent_id);
    assert_eq!(social_card["platform"], "Social Feed");
    assert_eq!(social_card["last_access"], "never");

    assert_eq!(
        seen["notice"],
        "Messenger no longer has access to your data at Sandbox Bank UK. It has been told."
    );
    let after = seen["after"].as_array().unwrap();
    assert_eq!(card(after, &at_messenger.consent_id)["status"], "Withdrawn");
    assert_eq!(card(after, &at_messenger.consent_id)["can_withdraw"], false);
    assert_eq!(card(after, &at_social.consent_id)["status"], "Active");
    assert_eq!(seen["signed_out_url"], format!("{}/me", gateway.base));

    assert_eq!(seen["lang_fr"], "fr");
    assert_eq!(
        seen["heading_fr"],
        "Vos applications connectées chez Sandbox Bank UK"
    );
    let cards_fr = seen["cards_fr"].as_array().unwrap();
    assert_eq!(card(cards_fr, &at_messenger.consent_id)["status"], "Retiré");
    assert_eq!(card(cards_fr, &at_social.consent_id)["status"], "Actif");

    // The platform's next request is refused; the other platform reads on.
    let (status, body) = messenger
        .get(&at_messenger.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert!(matches!(status, 401 | 403), "{status} {body}");
    let (status, _) = social
        .get(&at_social.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // The platform is told by webhook (delivered by the gateway's maintenance, run here now).
    let report = gateway
        .app
        .maintenance()
        .unwrap()
        .run_once(chrono::Utc::now())
        .await
        .unwrap();
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{report:?} {bodies:?}");
    let claims = claims(&bodies[0]);
    assert_eq!(claims["aud"], "messenger");
    let event = &claims["events"]["https://bankgate.dev/events/consent.revoked"];
    assert_eq!(event["consent_id"], at_messenger.consent_id.as_str());
    assert_eq!(event["reason"], REVOKED_REASON);

    for screenshot in ["connected-apps.png", "connected-apps-withdrawn.png"] {
        let path = artifacts.join(screenshot);
        let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        assert!(size > 1000, "{} was not written", path.display());
    }
}
