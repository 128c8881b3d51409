//! Notifications end to end: subscriptions through the API, the refresh engine against the
//! sandbox banks, deliveries as signed Security Event Tokens to a platform's receiver; once on
//! the in-memory store and once on PostgreSQL.
//!
//! Its own test binary (its own process), because these tests move the sandbox customers'
//! money and advance the sandbox clock that every sandbox bank of a process shares; within
//! it, the scenarios that move data take [`SANDBOX`] so that each sees only its own changes.

/// Runs each scenario on both stores.
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

#[path = "../api/support.rs"]
#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate_sandbox::ledger::{Ledger, Posting};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use support::{StoreKind, TestGateway};

on_both_stores!(
    subscriptions_follow_the_purpose_and_the_tenant,
    a_change_reaches_the_platform_once_with_the_purposes_fields,
    refreshes_and_platform_calls_never_exceed_the_budget_together,
    revocation_stops_refreshes_and_deliveries_at_once,
    each_fraud_rule_fires_on_its_case_and_not_on_a_near_miss,
    a_bank_outage_announces_nothing_and_recovers,
    an_obie_bank_event_refreshes_at_once_and_a_bad_signature_is_refused,
    an_obie_bank_event_of_revocation_revokes_the_consent,
    a_debit_in_a_country_not_seen_fires_and_a_known_one_does_not,
);

/// Held by every scenario that moves sandbox money or the sandbox clock.
static SANDBOX: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Alice's main account at every sandbox bank (the customer consents are approved as).
const ALICE_GIRO: &str = "DE92999900000012345601";

const FRAUD_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances, Scope::Transactions];
const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];

/// A webhook receiver keeping every body it gets (answers 202).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn receiver() -> Receiver {
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver {
        url,
        bodies,
        _stop: stop,
    }
}

impl Receiver {
    /// Every event received, verified against the gateway's JWKS: `(event type, detail)`.
    async fn events(&self, gateway: &TestGateway, client_id: &str) -> Vec<(String, Value)> {
        let bodies = self.bodies.lock().unwrap().clone();
        let jwks: jsonwebtoken::jwk::JwkSet =
            reqwest::get(format!("{}/.well-known/jwks.json", gateway.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let mut events = Vec::new();
        for body in bodies {
            let header = jsonwebtoken::decode_header(&body).unwrap();
            assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
            let jwk = jwks
                .find(header.kid.as_deref().unwrap())
                .expect("kid in JWKS");
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            validation.set_issuer(&[gateway.base.as_str()]);
            validation.set_audience(&[client_id]);
            validation.set_required_spec_claims(&["iss", "aud"]);
            validation.validate_exp = false;
            let claims = jsonwebtoken::decode::<Value>(
                &body,
                &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
                &validation,
            )
            .expect("the delivery verifies with the published key")
            .claims;
            for (uri, detail) in claims["events"].as_object().unwrap() {
                let name = uri
                    .strip_prefix("https://bankgate.dev/events/")
                    .expect("a bankgate event");
                events.push((name.to_owned(), detail.clone()));
            }
        }
        events
    }
}

fn of<'a>(events: &'a [(String, Value)], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(event, _)| event == name)
        .map(|(_, detail)| detail)
        .collect()
}

/// A platform with a webhook, and an authorised consent of `purpose` for it.
async fn subscribed_platform(
    gateway: &TestGateway,
    client_id: &str,
    webhook: Option<&str>,
    purpose: &str,
    scopes: &[Scope],
) -> (PlatformClient, bankgate::demo::TokenResponse) {
    let platform = gateway.fapi_platform(client_id, webhook).await;
    let mut detail = account_information("demo-bank", purpose, scopes, "u-notify");
    detail.history_days = 30;
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    (platform, token)
}

async fn subscribe(platform: &PlatformClient, token: &str, body: Value) -> (u16, Value) {
    let answer = platform
        .post_json(token, "/v1/subscriptions", &body, &[])
        .await
        .unwrap();
    (answer.status, answer.json())
}

/// A card payment on Alice's main account: pending now, booked two hours later on the
/// sandbox clock under another id.
fn card_payment(amount_cents: i64, merchant: &str) -> String {
    Ledger::shared().post(
        ALICE_GIRO,
        Posting {
            amount: rust_decimal::Decimal::new(-amount_cents, 2),
            currency: "EUR".into(),
            counterparty: merchant.into(),
            description: "Card payment".into(),
            country: None,
            pending_for: bankgate_sandbox::ledger::CARD_PENDING,
        },
    )
}

/// A movement on Alice's main account, booked at once.
fn booked(amount: &str, counterparty: &str) {
    Ledger::shared().post(
        ALICE_GIRO,
        Posting {
            amount: amount.parse().unwrap(),
            currency: "EUR".into(),
            counterparty: counterparty.into(),
            description: "Card payment".into(),
            country: None,
            pending_for: chrono::TimeDelta::zero(),
        },
    );
}

/// Runs the refresh engine, then the webhook deliveries, at `at`.
async fn refresh_and_deliver(
    gateway: &TestGateway,
    at: DateTime<Utc>,
) -> bankgate::notify::RunReport {
    let report = gateway
        .app
        .notifier()
        .run_once(at)
        .await
        .expect("notify run");
    gateway
        .app
        .maintenance()
        .unwrap()
        .run_once(at)
        .await
        .expect("maintenance");
    report
}

async fn subscriptions_follow_the_purpose_and_the_tenant(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "alerts-app",
        Some(&hooks.url),
        "balance-alerts",
        BALANCE_SCOPES,
    )
    .await;
    let manage = platform.client_credentials().await.unwrap();
    let consent_id = token.consent_id.clone();
    // balance-alerts never sees transactions: refused, whoever asks.
    for caller in [&manage, &token.access_token] {
        let (status, problem) = subscribe(
            &platform,
            caller,
            json!({"consent_id": consent_id, "events": ["transactions.created"]}),
        )
        .await;
        assert_eq!(status, 403, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("balance-alerts"),
            "{problem}"
        );
    }
    let (status, problem) = subscribe(
        &platform,
        &manage,
        json!({"consent_id": consent_id, "events": ["balance.moved"]}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    // The consent's own token subscribes its consent.
    let (status, created) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed", "balance.changed"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["consent_id"], consent_id.as_str());
    assert_eq!(created["events"], json!(["balance.changed"]));
    assert_eq!(created["mode"], "data");
    // A purpose-wide subscription needs the management token, and a purpose the platform has.
    let everything = json!({"purpose": "fraud-alerts", "events": ["transactions.created"]});
    let (status, _) = subscribe(&platform, &token.access_token, everything.clone()).await;
    assert_eq!(status, 403);
    let (status, wide) = subscribe(&platform, &manage, everything).await;
    assert_eq!(status, 201, "{wide}");
    assert_eq!(wide["consent_id"], Value::Null);
    let (status, _) = subscribe(
        &platform,
        &manage,
        json!({"purpose": "credit-assessment", "events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 403, "not approved for that purpose");

    // Listing: the platform sees both, the consent's token its own.
    let (status, all) = platform.get(&manage, "/v1/subscriptions").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(all["subscriptions"].as_array().unwrap().len(), 2, "{all}");
    let (_, own) = platform
        .get(&token.access_token, "/v1/subscriptions")
        .await
        .unwrap();
    assert_eq!(own["subscriptions"].as_array().unwrap().len(), 1, "{own}");

    // Another platform neither sees nor deletes them; a consent's token deletes only its own.
    let other = gateway.fapi_platform("other-app", Some(&hooks.url)).await;
    let other_manage = other.client_credentials().await.unwrap();
    let (_, theirs) = other.get(&other_manage, "/v1/subscriptions").await.unwrap();
    assert_eq!(theirs["subscriptions"], json!([]));
    let (status, _) = subscribe(
        &other,
        &other_manage,
        json!({"consent_id": consent_id, "events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 404, "another platform's consent is missing to it");
    let created_id = created["id"].as_str().unwrap();
    let wide_id = wide["id"].as_str().unwrap();
    let (status, _) = other
        .delete(&other_manage, &format!("/v1/subscriptions/{created_id}"))
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = platform
        .delete(&token.access_token, &format!("/v1/subscriptions/{wide_id}"))
        .await
        .unwrap();
    assert_eq!(
        status, 404,
        "a consent's token reaches its own consent's only"
    );
    for id in [created_id, wide_id] {
        let (status, _) = platform
            .delete(&manage, &format!("/v1/subscriptions/{id}"))
            .await
            .unwrap();
        assert_eq!(status, 204);
    }
    let (_, none) = platform.get(&manage, "/v1/subscriptions").await.unwrap();
    assert_eq!(none["subscriptions"], json!([]));

    // No webhook, no subscription: there would be nowhere to deliver.
    let (silent, silent_token) = subscribed_platform(
        &gateway,
        "silent-app",
        None,
        "balance-alerts",
        BALANCE_SCOPES,
    )
    .await;
    let (status, problem) = subscribe(
        &silent,
        &silent_token.access_token,
        json!({"events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
}

async fn a_change_reaches_the_platform_once_with_the_purposes_fields(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "fraud-app",
        Some(&hooks.url),
        "fraud-alerts",
        FRAUD_SCOPES,
    )
    .await;
    let (status, created) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed", "transactions.created"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // The first refresh records what the accounts hold and announces nothing.
    let start = Utc::now();
    let report = refresh_and_deliver(&gateway, start).await;
    assert_eq!((report.refreshed, report.events), (1, 0), "{report:?}");
    // Not due again before its pace (fraud-alerts: 24 a day, about hourly).
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(30)).await;
    assert_eq!(report.claimed, 0, "{report:?}");

    // A card payment: pending now.
    card_payment(4_217, "Café Central");
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(70)).await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    let events = hooks.events(&gateway, "fraud-app").await;
    let balances = of(&events, "balance.changed");
    let created = of(&events, "transactions.created");
    assert_eq!(
        balances.len(),
        1,
        "one account's balances moved: {events:?}"
    );
    assert_eq!(created.len(), 1, "{events:?}");
    let policy = gateway.app.policies.get("fraud-alerts").unwrap();
    let allowed = |object: bankgate::policy::Object| -> Vec<String> {
        policy.fields[&object].iter().cloned().collect()
    };
    let transaction = &created[0]["transactions"][0];
    assert_eq!(created[0]["count"], 1);
    assert_eq!(transaction["amount"], "-42.17");
    assert_eq!(transaction["status"], "pending");
    assert_eq!(transaction["counterparty_name"], "Café Central");
    for field in transaction.as_object().unwrap().keys() {
        assert!(
            allowed(bankgate::policy::Object::Transaction).contains(field),
            "{field} is outside the purpose's fields"
        );
    }
    let account = &created[0]["account"];
    assert!(account.get("iban").is_none(), "{account}");
    assert!(account["iban_masked"].is_string(), "{account}");
    for balance in balances[0]["balances"].as_array().unwrap() {
        for field in balance.as_object().unwrap().keys() {
            assert!(
                allowed(bankgate::policy::Object::Balance).contains(field),
                "{field}"
            );
        }
        assert!(balance["amount"].is_string(), "money is a string");
    }
    assert_eq!(created[0]["account_id"], balances[0]["account_id"]);
    assert_eq!(created[0]["consent_id"], token.consent_id.as_str());

    // Each release was audited before it was sent.
    let audit = gateway.audit_of(&token.consent_id).await;
    let notified: Vec<&Value> = audit
        .iter()
        .filter(|event| {
            event["action"] == "data_access"
                && event["actor"] == "gateway"
                && event["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.starts_with("notification "))
        })
        .collect();
    assert_eq!(notified.len(), 2, "{audit:#?}");

    // Booked two hours later under another id: the balance moves again, the transaction is
    // not announced a second time.
    Ledger::shared()
        .clock()
        .advance(bankgate_sandbox::ledger::CARD_PENDING + Duration::minutes(1));
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(140)).await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    let events = hooks.events(&gateway, "fraud-app").await;
    assert_eq!(of(&events, "transactions.created").len(), 1, "{events:?}");
    // Nothing moved since: nothing more, however often it refreshes.
    let before = hooks.bodies.lock().unwrap().len();
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(210)).await;
    assert_eq!((report.refreshed, report.events), (1, 0), "{report:?}");
    assert_eq!(hooks.bodies.lock().unwrap().len(), before);
}

async fn refreshes_and_platform_calls_never_exceed_the_budget_together(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "budget-app",
        Some(&hooks.url),
        "balance-alerts",
        BALANCE_SCOPES,
    )
    .await;
    let (status, _) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 201);
    // Two unattended calls of the platform (balance-alerts: four a day).
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let account = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();
    let balances = format!("/v1/accounts/{account}/balances");
    assert_eq!(
        platform
            .get(&token.access_token, &balances)
            .await
            .unwrap()
            .0,
        200
    );

    // The engine over the whole day, every ten minutes.
    let today = Utc::now().date_naive();
    let midnight = today.and_time(chrono::NaiveTime::MIN).and_utc();
    let mut refreshed = 0;
    let mut spent = 0;
    for step in 0..144 {
        let report = gateway
            .app
            .notifier()
            .run_once(midnight + Duration::minutes(10 * step))
            .await
            .unwrap();
        refreshed += report.refreshed;
        spent += report.budget_spent;
    }
    assert_eq!(refreshed, 2, "the two units the platform left");
    assert!(spent >= 1, "a refresh found the budget spent and waited");
    // And the platform finds it spent too.
    let (status, problem) = platform.get(&token.access_token, &balances).await.unwrap();
    assert_eq!(status, 429, "{problem}");
}

async fn revocation_stops_refreshes_and_deliveries_at_once(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "revoking-app",
        Some(&hooks.url),
        "balance-alerts",
        BALANCE_SCOPES,
    )
    .await;
    let (status, _) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201);
    let notifier = gateway.app.notifier();
    let start = Utc::now();
    assert_eq!(notifier.run_once(start).await.unwrap().refreshed, 1);
    card_payment(1_999, "Rewe Markt");
    // The change is detected and its event enqueued, not yet delivered…
    let report = notifier.run_once(start + Duration::hours(7)).await.unwrap();
    assert_eq!(report.events, 1, "{report:?}");
    // …when the user withdraws the consent.
    let (status, _) = platform
        .delete(
            &token.access_token,
            &format!("/v1/consents/{}", token.consent_id),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let report = gateway
        .app
        .maintenance()
        .unwrap()
        .run_once(start + Duration::hours(7))
        .await
        .unwrap();
    assert_eq!(report.deliveries.withdrawn, 1, "{report:?}");
    let events = hooks.events(&gateway, "revoking-app").await;
    assert!(of(&events, "balance.changed").is_empty(), "{events:?}");
    assert_eq!(of(&events, "consent.revoked").len(), 1, "{events:?}");
    // The engine drops the consent at its next turn and never reads its bank again.
    let report = notifier
        .run_once(start + Duration::hours(14))
        .await
        .unwrap();
    assert_eq!((report.dropped, report.refreshed), (1, 0), "{report:?}");
    let report = notifier
        .run_once(start + Duration::hours(21))
        .await
        .unwrap();
    assert_eq!(report.claimed, 0, "{report:?}");
}

/// Three instances on one database share the queue: each job is claimed by one of them,
/// and each change is announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_queue_and_announce_each_change_once() {
    let _sandbox = SANDBOX.lock().await;
    let first = TestGateway::start(StoreKind::Postgres).await;
    let second = first.second_instance().await;
    let third = first.second_instance().await;
    let hooks = receiver().await;
    let platform = first.fapi_platform("shared-app", Some(&hooks.url)).await;
    let manage = platform.client_credentials().await.unwrap();
    let mut consents = Vec::new();
    for user in ["u-1", "u-2", "u-3", "u-4", "u-5"] {
        let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, user);
        let (token, _) = platform.connect(&detail).await.unwrap();
        consents.push(token.consent_id);
    }
    let (status, _) = subscribe(
        &platform,
        &manage,
        json!({"purpose": "balance-alerts", "events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 201);
    let engines = [
        first.app.notifier(),
        second.app.notifier(),
        third.app.notifier(),
    ];
    let run_all = |at: DateTime<Utc>| {
        let engines = engines.clone();
        async move {
            let runs = engines.iter().map(|engine| engine.run_once(at));
            futures_util::future::join_all(runs)
                .await
                .into_iter()
                .map(|report| report.expect("notify run"))
                .collect::<Vec<_>>()
        }
    };
    let start = Utc::now();
    let reports = run_all(start).await;
    let claimed: usize = reports.iter().map(|report| report.claimed).sum();
    assert_eq!(claimed, consents.len(), "each job once: {reports:?}");
    card_payment(2_500, "Deutsche Bahn");
    let reports = run_all(start + Duration::hours(7)).await;
    let claimed: usize = reports.iter().map(|report| report.claimed).sum();
    assert_eq!(claimed, consents.len(), "{reports:?}");
    for instance in [&first, &second, &third] {
        instance
            .app
            .maintenance()
            .unwrap()
            .run_once(start + Duration::hours(7))
            .await
            .unwrap();
    }
    let events = hooks.events(&first, "shared-app").await;
    let changed = of(&events, "balance.changed");
    // Every consent sees Alice's main account move, once.
    let mut announced: Vec<&str> = changed
        .iter()
        .map(|detail| detail["consent_id"].as_str().unwrap())
        .collect();
    announced.sort();
    let mut expected: Vec<&str> = consents.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(announced, expected, "{events:?}");
}

async fn each_fraud_rule_fires_on_its_case_and_not_on_a_near_miss(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "guard-app",
        Some(&hooks.url),
        "fraud-alerts",
        FRAUD_SCOPES,
    )
    .await;
    let (status, created) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["fraud.signal"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let start = Utc::now();
    refresh_and_deliver(&gateway, start).await;
    // Alice's available balance now (later steps leave her 10.00).
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let giro = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["display_name"] == "Main Account")
        .expect("Alice's main account")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, balances) = platform
        .get(
            &token.access_token,
            &format!("/v1/accounts/{giro}/balances"),
        )
        .await
        .unwrap();
    let available: rust_decimal::Decimal = balances["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|balance| balance["type"] == "interim_available")
        .expect("an available balance")["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // large-debit (above 500) and new-payee (above 200 to a stranger) fire on the first; the
    // second is at the threshold and paid before (near misses of both); the third is a
    // stranger at exactly 200; three debits are not more than three (burst's near miss).
    booked("-600.00", "Electronics Wholesale Lagos");
    booked("-500.00", "Hausverwaltung Berlin GmbH");
    booked("-200.00", "Blumen Meyer");
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(70)).await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    let signals = |events: &[(String, Value)]| -> Vec<(String, String)> {
        let mut fired: Vec<(String, String)> = of(events, "fraud.signal")
            .iter()
            .map(|detail| {
                (
                    detail["signal"]["id"].as_str().unwrap().to_owned(),
                    detail["transaction"]["amount"]
                        .as_str()
                        .or(detail["balance"]["amount"].as_str().map(|_| "balance"))
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        fired.sort();
        fired
    };
    let events = hooks.events(&gateway, "guard-app").await;
    assert_eq!(
        signals(&events),
        [
            ("large-debit".to_owned(), "-600.00".to_owned()),
            ("new-payee".to_owned(), "-600.00".to_owned()),
        ],
        "{events:?}"
    );
    // The transaction carries the purpose's fields only; the rule is named as written.
    let policy = gateway.app.policies.get("fraud-alerts").unwrap();
    let large = of(&events, "fraud.signal")
        .into_iter()
        .find(|detail| detail["signal"]["id"] == "large-debit")
        .unwrap()
        .clone();
    assert_eq!(large["signal"]["rule"]["when"], "debit_above", "{large}");
    for field in large["transaction"].as_object().unwrap().keys() {
        assert!(
            policy.fields[&bankgate::policy::Object::Transaction].contains(field),
            "{field}"
        );
    }
    assert!(large["account"].get("iban").is_none(), "{large}");

    // Seventy minutes on: a fourth debit within two hours (burst), to someone paid before,
    // bringing the available balance below 50 (low-balance; large-debit only if it is
    // above 500 itself).
    let last = available - rust_decimal::Decimal::new(131_000, 2);
    assert!(last > rust_decimal::Decimal::ZERO, "{available}");
    booked(&(-last).to_string(), "Café Einstein");
    refresh_and_deliver(&gateway, start + Duration::minutes(140)).await;
    let events = hooks.events(&gateway, "guard-app").await;
    let last_text = format!("{:.2}", -last);
    let mut expected = vec![
        ("burst".to_owned(), last_text.clone()),
        ("large-debit".to_owned(), "-600.00".to_owned()),
        ("low-balance".to_owned(), "balance".to_owned()),
        ("new-payee".to_owned(), "-600.00".to_owned()),
    ];
    if last > rust_decimal::Decimal::new(50_000, 2) {
        expected.push(("large-debit".to_owned(), last_text));
    }
    expected.sort();
    assert_eq!(signals(&events), expected, "{events:?}");

    // Every signal was audited before it was sent.
    let audit = gateway.audit_of(&token.consent_id).await;
    let audited = audit
        .iter()
        .filter(|event| {
            event["reason"]
                .as_str()
                .is_some_and(|reason| reason.starts_with("notification fraud.signal "))
        })
        .count();
    assert_eq!(audited, expected.len(), "{audit:#?}");

    // Alice gets her money back for the scenarios after this one.
    booked(
        &(last + rust_decimal::Decimal::new(130_000, 2)).to_string(),
        "Refund",
    );
}

async fn a_bank_outage_announces_nothing_and_recovers(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "outage-app",
        Some(&hooks.url),
        "fraud-alerts",
        FRAUD_SCOPES,
    )
    .await;
    let (status, _) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed", "transactions.created"]}),
    )
    .await;
    assert_eq!(status, 201);
    let start = Utc::now();
    assert_eq!(refresh_and_deliver(&gateway, start).await.refreshed, 1);

    // The bank fails every call: the refresh fails, announces nothing and backs off.
    let base = gateway
        .app
        .banks
        .get("demo-bank")
        .unwrap()
        .bank
        .manifest
        .api_base_url
        .clone();
    let faults = gateway
        .sandbox_faults
        .iter()
        .find(|(origin, _)| base.starts_with(origin.as_str()))
        .expect("the demo bank's sandbox")
        .1
        .clone();
    faults.set("/", bankgate_sandbox::faults::Fault::Status(503));
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(70)).await;
    assert_eq!((report.failed, report.events), (1, 0), "{report:?}");
    // Backing off: due again a minute later, not an hour.
    let report = refresh_and_deliver(&gateway, start + Duration::minutes(72)).await;
    assert_eq!(
        (report.claimed, report.failed, report.events),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(hooks.bodies.lock().unwrap().is_empty(), "no false event");

    // Meanwhile a real change; the bank recovers and it is announced once.
    card_payment(777, "Spotify");
    faults.clear();
    // The bank's circuit breaker lets a probe through after its cooldown (real time): the
    // engine keeps backing off until then, announcing nothing, then refreshes.
    let mut events = 0;
    let mut at = start + Duration::minutes(80);
    for _ in 0..300 {
        let report = refresh_and_deliver(&gateway, at).await;
        events += report.events;
        if report.refreshed > 0 {
            break;
        }
        assert_eq!(report.events, 0, "{report:?}");
        at += Duration::minutes(60);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let received = hooks.events(&gateway, "outage-app").await;
    assert_eq!(
        of(&received, "transactions.created").len(),
        1,
        "{received:?}"
    );
    assert_eq!(of(&received, "balance.changed").len(), 1, "{received:?}");
    assert_eq!(events, 2);
}

/// The OBIE sandbox bank of `gateway`: its origin.
fn obie_origin(gateway: &TestGateway) -> String {
    let base = gateway
        .app
        .banks
        .get("obie-bank")
        .unwrap()
        .bank
        .manifest
        .api_base_url
        .clone();
    gateway
        .sandbox_faults
        .iter()
        .map(|(origin, _)| origin.clone())
        .find(|origin| base.starts_with(origin.as_str()))
        .expect("the OBIE bank's sandbox")
}

/// The one account access consent filed at the OBIE sandbox bank.
async fn obie_bank_consent(origin: &str) -> String {
    let listed: Value = reqwest::get(format!("{origin}/sandbox/consents"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usable: Vec<&str> = listed["consents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|consent| consent["usable"] == true)
        .map(|consent| consent["id"].as_str().unwrap())
        .collect();
    assert_eq!(usable.len(), 1, "{listed}");
    usable[0].to_owned()
}

/// Runs the webhook deliveries (never the refresh engine) until `done` holds of what the
/// platform received, or gives up.
async fn deliver_until(
    gateway: &TestGateway,
    hooks: &Receiver,
    client_id: &str,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    for _ in 0..100 {
        gateway
            .app
            .maintenance()
            .unwrap()
            .run_once(Utc::now())
            .await
            .expect("maintenance");
        let events = hooks.events(gateway, client_id).await;
        if done(&events) {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    hooks.events(gateway, client_id).await
}

async fn an_obie_bank_event_refreshes_at_once_and_a_bad_signature_is_refused(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let platform = gateway.fapi_platform("uk-app", Some(&hooks.url)).await;
    let mut detail = account_information("obie-bank", "fraud-alerts", FRAUD_SCOPES, "u-uk");
    detail.history_days = 30;
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, created) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["transactions.created"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // The first refresh records what the accounts hold; the next is due in about an hour.
    let report = refresh_and_deliver(&gateway, Utc::now()).await;
    assert_eq!((report.refreshed, report.events), (1, 0), "{report:?}");

    // A card payment: the bank pushes a signed resource update for the consent, and the
    // refresh runs at once — the test never runs the engine itself.
    card_payment(1_250, "Pret A Manger");
    let events = deliver_until(&gateway, &hooks, "uk-app", |events| {
        !of(events, "transactions.created").is_empty()
    })
    .await;
    let created = of(&events, "transactions.created");
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0]["consent_id"], token.consent_id.as_str());
    assert_eq!(created[0]["bank"], "obie-bank");
    assert_eq!(created[0]["transactions"][0]["amount"], "-12.50");

    // A SET naming the consent but not signed by the bank's key is refused, and refreshes
    // nothing.
    let origin = obie_origin(&gateway);
    let bank_consent = obie_bank_consent(&origin).await;
    let jwks: Value = reqwest::get(format!("{origin}/open-banking/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    let forger = bankgate::jose::keys::SigningKey::generate().unwrap();
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": origin, "aud": gateway.app.banks.get("obie-bank").unwrap().bank.client_id,
        "iat": now, "toe": now, "jti": "forged-1", "txn": "t-1",
        "sub": format!("{origin}/open-banking/v4.0/aisp/account-access-consents/{bank_consent}"),
        "events": {"urn:uk:org:openbanking:events:resource-update": {"subject": {
            "subject_type": "http://openbanking.org.uk/rid_http://openbanking.org.uk/rty",
            "http://openbanking.org.uk/rid": bank_consent,
            "http://openbanking.org.uk/rty": "account-access-consent",
        }}},
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let forged = jsonwebtoken::encode(&header, &claims, &forger.encoding).unwrap();
    let url = format!("{}/v1/banks/obie-bank/event-notifications", gateway.base);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/jwt")
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let problem: Value = answer.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("invalid_key:"),
        "{problem}"
    );
    let report = gateway.app.notifier().run_once(Utc::now()).await.unwrap();
    assert_eq!(
        report.claimed, 0,
        "the forged event made nothing due: {report:?}"
    );
    // Not a SET at all, or not as application/jwt.
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/jwt")
        .body("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 415);
    // A bank that pushes no events has no such endpoint.
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/v1/banks/demo-bank/event-notifications",
            gateway.base
        ))
        .header("content-type", "application/jwt")
        .body("x.y.z")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}

async fn an_obie_bank_event_of_revocation_revokes_the_consent(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let platform = gateway
        .fapi_platform("uk-revoked-app", Some(&hooks.url))
        .await;
    let detail = account_information("obie-bank", "balance-alerts", BALANCE_SCOPES, "u-uk");
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, _) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["balance.changed"]}),
    )
    .await;
    assert_eq!(status, 201);
    let report = refresh_and_deliver(&gateway, Utc::now()).await;
    assert_eq!(report.refreshed, 1, "{report:?}");
    // The customer revokes the consent in the bank's app; the bank says so.
    let origin = obie_origin(&gateway);
    let bank_consent = obie_bank_consent(&origin).await;
    let answer = reqwest::Client::new()
        .post(format!("{origin}/sandbox/consents/{bank_consent}/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let events = deliver_until(&gateway, &hooks, "uk-revoked-app", |events| {
        !of(events, "consent.revoked").is_empty()
    })
    .await;
    let revoked = of(&events, "consent.revoked");
    assert_eq!(revoked.len(), 1, "{events:?}");
    let manage = platform.client_credentials().await.unwrap();
    let (_, consent) = platform
        .get(&manage, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(consent["status"], "revoked", "{consent}");
    let audit = gateway.audit_of(&token.consent_id).await;
    assert!(
        audit
            .iter()
            .any(|event| event["action"] == "consent_revoked" && event["actor"] == "bank:obie-bank"),
        "{audit:#?}"
    );
    // The engine drops it and never reads the bank for it again.
    let report = gateway
        .app
        .notifier()
        .run_once(Utc::now() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!((report.dropped, report.refreshed), (1, 0), "{report:?}");
}

/// A movement on Alice's main account to a counterparty in `country`, booked at once.
fn booked_in(amount: &str, counterparty: &str, country: Option<&str>) {
    Ledger::shared().post(
        ALICE_GIRO,
        Posting {
            amount: amount.parse().unwrap(),
            currency: "EUR".into(),
            counterparty: counterparty.into(),
            description: "Card payment".into(),
            country: country.map(str::to_owned),
            pending_for: chrono::TimeDelta::zero(),
        },
    );
}

async fn a_debit_in_a_country_not_seen_fires_and_a_known_one_does_not(kind: StoreKind) {
    let _sandbox = SANDBOX.lock().await;
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver().await;
    let (platform, token) = subscribed_platform(
        &gateway,
        "travel-guard-app",
        Some(&hooks.url),
        "fraud-alerts",
        FRAUD_SCOPES,
    )
    .await;
    let (status, created) = subscribe(
        &platform,
        &token.access_token,
        json!({"events": ["fraud.signal"], "mode": "data"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let start = Utc::now();
    refresh_and_deliver(&gateway, start).await;
    let new_country = |events: &[(String, Value)]| -> Vec<(String, String)> {
        of(events, "fraud.signal")
            .iter()
            .filter(|detail| detail["signal"]["id"] == "new-country")
            .map(|detail| {
                (
                    detail["transaction"]["counterparty_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    detail["transaction"]["counterparty_country"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };

    // France was never seen on the account (the bank names the payee's country): fires; a
    // payment whose country the bank does not say: does not.
    booked_in("-20.00", "Boulangerie Paris", Some("FR"));
    booked_in("-21.00", "Kiosk am Bahnhof", None);
    refresh_and_deliver(&gateway, start + Duration::minutes(70)).await;
    let events = hooks.events(&gateway, "travel-guard-app").await;
    assert_eq!(
        new_country(&events),
        [("Boulangerie Paris".to_owned(), "FR".to_owned())],
        "{events:?}"
    );
    let signal = of(&events, "fraud.signal")
        .into_iter()
        .find(|detail| detail["signal"]["id"] == "new-country")
        .unwrap()
        .clone();
    assert_eq!(signal["signal"]["rule"]["when"], "country_not_seen");
    assert_eq!(signal["signal"]["rule"]["days"], 30);

    // The next payment in France: France was seen within 30 days now, the near miss.
    booked_in("-22.00", "Café de Flore", Some("FR"));
    refresh_and_deliver(&gateway, start + Duration::minutes(140)).await;
    let events = hooks.events(&gateway, "travel-guard-app").await;
    assert_eq!(new_country(&events).len(), 1, "{events:?}");

    // The rule is public, as written, with the purpose.
    let purpose: Value = reqwest::get(format!("{}/v1/purposes/fraud-alerts", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = purpose["signals"]
        .as_array()
        .expect("the purpose's signals");
    assert!(
        rules.iter().any(|rule| rule["id"] == "new-country"
            && rule["rule"]["when"] == "country_not_seen"
            && rule["rule"]["days"] == 30),
        "{purpose}"
    );

    // Alice gets her money back for the scenarios after this one.
    booked_in("63.00", "Refund", None);
}
