//! Payment initiation end to end (issue 13): a platform pushes a `payment_initiation` detail,
//! the user sees the payment on the consent screen, confirms it at the bank, and the platform
//! submits it with an `Idempotency-Key` — on both stores, against the sandbox banks.

use bankgate::demo::PlatformClient;
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Role};
use bankgate::payments::{Amount, CreditorAccount, PAYMENT_INITIATION, PaymentRequest};
use rust_decimal::Decimal;

use bankgate::demo::FlowTrace;
use bankgate::model::Scope;
use serde_json::{Value, json};

use crate::support::{REDIRECT_URI, StoreKind, TestGateway};

on_both_stores!(
    par_refuses_each_bad_payment_with_its_reason,
    the_consent_screen_shows_the_payment_in_english_and_french,
    a_payment_moves_money_once_at_every_paying_standard,
    a_concurrent_duplicate_is_answered_409_and_paid_once,
    each_bad_submission_gets_its_problem_and_pays_nothing,
    a_bank_rejection_is_a_reason_not_the_banks_text,
    revocation_and_expiry_before_submission_pay_nothing,
    the_status_job_follows_a_payment_and_tells_the_platform,
    a_lost_answer_is_reconciled_by_a_look_up_never_sent_twice,
    a_lost_answer_to_the_creation_is_looked_up_never_made_twice,
    a_payment_to_the_payers_own_account_is_refused_before_it_is_sent,
    the_status_job_refreshes_an_expired_bank_token,
    a_gateway_that_died_after_the_bank_paid_finds_the_payment_once,
    the_daily_limit_counts_what_was_sent_exactly_even_in_parallel,
);

/// The payee: a friend's account (checksum valid).
const FRIEND_IBAN: &str = "DE65999900000012345602";

/// A platform approved for payments between friends (and for a data purpose).
async fn paying_platform(gateway: &TestGateway) -> PlatformClient {
    paying_platform_with(gateway, None).await
}

/// [`paying_platform`] with a webhook.
async fn paying_platform_with(gateway: &TestGateway, webhook_url: Option<&str>) -> PlatformClient {
    let registered = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "pay-by-message".into(),
                name: "Pay by message".into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: vec!["p2p-payment".into(), "balance-alerts".into()],
                token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                webhook_url: webhook_url.map(str::to_owned),
                ..Registration::default()
            },
        )
        .await
        .expect("platform registers");
    PlatformClient::new(
        &gateway.base,
        "pay-by-message",
        &registered.client_secret,
        REDIRECT_URI,
    )
    .expect("client")
}

/// €`amount` from the user at `bank` to the friend.
fn payment(bank: &str, amount: &str) -> PaymentRequest {
    PaymentRequest {
        kind: PAYMENT_INITIATION.into(),
        bank: bank.into(),
        purpose: "p2p-payment".into(),
        instructed_amount: Amount {
            currency: "EUR".into(),
            amount: amount.parse::<Decimal>().expect("an amount"),
        },
        creditor: None,
        creditor_account: CreditorAccount {
            iban: FRIEND_IBAN.into(),
        },
        creditor_name: "Camille Martin".into(),
        remittance: Some("pizza".into()),
        instant: false,
        user_ref: "u-payer".into(),
        verification: None,
    }
}

/// Pushes `detail` as JSON and returns the PAR error's description (it must be refused).
async fn refused(platform: &PlatformClient, detail: serde_json::Value) -> String {
    let error = match platform.push_with(&detail, &[]).await {
        Ok(_) => panic!("PAR accepted {detail}"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("(400)") && error.contains("invalid_authorization_details"),
        "{error}"
    );
    error
}

/// The bundled banks that pay, one per paying standard: STET, Berlin Group, UK OBIE, and a
/// proprietary API through the mapping profile.
const PAYING_BANKS: [&str; 4] = ["stet-bank", "demo-bank", "obie-bank", "nova-bank"];

/// The platform's refused pushes on the audit log (`consent_created`, `deny`), oldest first.
async fn refused_pushes(gateway: &TestGateway) -> Vec<Value> {
    let token = gateway.compliance.client_credentials().await.unwrap();
    let (status, body) = gateway
        .compliance
        .get(
            &token,
            "/v1/audit/events?platform=pay-by-message&action=consent_created&decision=deny&limit=1000",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().cloned().unwrap_or_default()
}

async fn par_refuses_each_bad_payment_with_its_reason(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    for bank in PAYING_BANKS {
        let good = serde_json::to_value(payment(bank, "12.50")).unwrap();
        let with = |pointer: &str, value: serde_json::Value| {
            let mut detail = good.clone();
            *detail.pointer_mut(pointer).expect("a field") = value;
            detail
        };
        // (request, problem, whether the payment itself is well-formed)
        for (detail, expected, well_formed) in [
            (
                with("/instructed_amount/amount", "0".into()),
                "payment-amount-not-positive",
                false,
            ),
            (
                with("/instructed_amount/amount", "-5.00".into()),
                "payment-amount-not-positive",
                false,
            ),
            (
                with("/instructed_amount/amount", "12.505".into()),
                "payment-amount-too-precise",
                false,
            ),
            (
                with("/instructed_amount/currency", "XYZ".into()),
                "payment-unknown-currency",
                false,
            ),
            (
                with("/creditor_account/iban", "DE65999900000012345603".into()),
                "payment-invalid-iban",
                false,
            ),
            (
                with("/instructed_amount/amount", "250.01".into()),
                "payment-limit-per-payment",
                true,
            ),
            (
                with("/instructed_amount/currency", "USD".into()),
                "payment-currency-not-allowed",
                true,
            ),
            (
                with("/bank", "fdx-bank".into()),
                "payment-bank-cannot-pay",
                true,
            ),
            (
                with("/purpose", "balance-alerts".into()),
                "payment-purpose-not-allowed",
                true,
            ),
            (
                with("/creditor_name", "".into()),
                "payment-invalid-creditor-name",
                false,
            ),
        ] {
            let audited = refused_pushes(&gateway).await.len();
            let error = refused(&platform, detail.clone()).await;
            assert!(error.contains(expected), "{detail} → {error}");
            // Each refusal is on the record: a `deny` of a payment naming its reason; a
            // well-formed payment's amount and currency are facts, the payee's account masked,
            // never in the clear (a malformed one is only quoted by the reason).
            let events = refused_pushes(&gateway).await;
            assert_eq!(events.len(), audited + 1, "{bank}: {detail}");
            let event = events.last().unwrap();
            assert_eq!(event["categories"], json!(["payment"]), "{event}");
            assert!(
                event["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(expected),
                "{event}"
            );
            if well_formed {
                let amount = detail["instructed_amount"]["amount"].as_str().unwrap();
                let currency = detail["instructed_amount"]["currency"].as_str().unwrap();
                let fields = event["fields"].to_string();
                assert!(
                    fields.contains(&format!("amount:{amount}"))
                        && fields.contains(&format!("currency:{currency}"))
                        && fields.contains("payee_account:DE65**"),
                    "{event}"
                );
            }
            assert!(!event.to_string().contains(FRIEND_IBAN), "{event}");
        }
        // A purpose the platform is not approved for, and an unknown field, are refused too.
        let error = refused(&platform, with("/purpose", "fraud-alerts".into())).await;
        assert!(error.contains("not approved"), "{error}");
        let mut unknown = good.clone();
        unknown["debtor_account"] = serde_json::json!({"iban": FRIEND_IBAN});
        refused(&platform, unknown).await;
        // Nothing was recorded for any of them, and the good one passes.
        platform
            .push_payment(&payment(bank, "12.50"))
            .await
            .expect("a valid payment is pushed");
    }
}

/// Opens the consent screen of a pushed request in `lang`.
async fn screen(platform: &PlatformClient, request_uri: &str, lang: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", platform.gateway)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &platform.client_id)
        .append_pair("request_uri", request_uri);
    let page = platform
        .http
        .get(url)
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

async fn the_consent_screen_shows_the_payment_in_english_and_french(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let english = {
        let pushed = platform
            .push_payment(&payment("stet-bank", "12.50"))
            .await
            .unwrap();
        screen(&platform, &pushed.request_uri, "en").await
    };
    assert!(
        english.contains("<dd id=\"amount\">12.50 EUR</dd>"),
        "{english}"
    );
    assert!(english.contains("<dd id=\"payee\">Camille Martin</dd>"));
    assert!(english.contains("<dd id=\"payee-account\">DE65 •••• 5602</dd>"));
    assert!(english.contains("Pay a friend by message"));
    assert!(
        !english.contains(FRIEND_IBAN),
        "never the whole account number"
    );
    let french = {
        let pushed = platform
            .push_payment(&payment("demo-bank", "7"))
            .await
            .unwrap();
        screen(&platform, &pushed.request_uri, "fr-FR").await
    };
    assert!(french.contains("<html lang=\"fr\">"));
    assert!(french.contains("<dd id=\"amount\">7 EUR</dd>"), "{french}");
    assert!(french.contains("Payer un ami par message"));
    assert!(french.contains("Bénéficiaire"));
    // The consent's creation is audited with the payment's facts, the account masked.
    let consent_id = french
        .split("name=\"consent_id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a consent id")
        .to_owned();
    let events = gateway.audit_of(&consent_id).await;
    let created = events
        .iter()
        .find(|event| event["action"] == "consent_created")
        .expect("consent_created");
    let fields = created["fields"].to_string();
    assert!(
        fields.contains("amount:7") && fields.contains("currency:EUR"),
        "{created}"
    );
    assert!(
        fields.contains("payee_account:DE65**") && fields.contains("*5602"),
        "{created}"
    );
    assert!(!created.to_string().contains(FRIEND_IBAN), "{created}");
}

/// The payer: the sandbox customer who approves at every bank (her main account).
const PAYER_MAIN: &str = "Main Account";
/// Where the friend's money lands (a sandbox account, so its bank credits it).
const PAYEE_ACCOUNT: &str = "Savings";

/// The sandbox bank's own origin (its admin routes: counters, clock, accounts).
pub(crate) fn sandbox_origin(gateway: &TestGateway, bank: &str) -> String {
    let adapter = gateway.app.banks.get(bank).expect("a bundled bank");
    let url = url::Url::parse(&adapter.bank.manifest.api_base_url).unwrap();
    url.origin().ascii_serialization()
}

/// What the sandbox bank counted of the payments it received.
pub(crate) async fn counters(gateway: &TestGateway, bank: &str) -> Value {
    reqwest::get(format!(
        "{}/sandbox/payments",
        sandbox_origin(gateway, bank)
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

pub(crate) async fn sandbox_post(gateway: &TestGateway, bank: &str, path: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", sandbox_origin(gateway, bank)))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
}

/// Every balance of the payer's accounts at `bank` as (account name, balance type, amount),
/// read through the gateway with a data consent.
async fn balances(platform: &PlatformClient, bank: &str) -> Vec<(String, String, Decimal)> {
    let detail = bankgate::demo::account_information(
        bank,
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-payer",
    );
    let (token, _) = platform.connect(&detail).await.expect("data consent");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let mut found = Vec::new();
    for account in accounts["accounts"].as_array().unwrap() {
        let name = account["display_name"].as_str().unwrap_or_default();
        if ![PAYER_MAIN, PAYEE_ACCOUNT].contains(&name) {
            continue;
        }
        let id = account["id"].as_str().unwrap();
        let (status, body) = platform
            .get(&token.access_token, &format!("/v1/accounts/{id}/balances"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        for balance in body["balances"].as_array().unwrap() {
            found.push((
                name.to_owned(),
                format!("{}/{}", balance["type"], balance["type_original"]),
                balance["amount"].as_str().unwrap().parse().unwrap(),
            ));
        }
    }
    found
}

/// Whether some balance of `account` moved by exactly `by` from `before` to `after`.
fn moved(
    before: &[(String, String, Decimal)],
    after: &[(String, String, Decimal)],
    account: &str,
    by: Decimal,
) -> bool {
    after.iter().any(|(name, kind, amount)| {
        name == account
            && before
                .iter()
                .any(|(n, k, was)| n == name && k == kind && *amount - *was == by)
    })
}

/// The friend's account: the payer's savings (a sandbox account, credited where it banks).
const SAVINGS_IBAN: &str = "DE65999900000012345602";

/// A payment to the friend's sandbox account, authorised by the user at `bank`: the token
/// response (with its `authorization_details`).
async fn authorised(platform: &PlatformClient, request: &PaymentRequest) -> (Value, FlowTrace) {
    let pushed = platform.push_payment(request).await.expect("PAR");
    let mut trace = FlowTrace::default();
    let code = platform
        .approve(&pushed, &mut trace)
        .await
        .expect("authorised at the bank");
    let token = platform
        .exchange_payment(&code, &pushed)
        .await
        .expect("token");
    (token, trace)
}

fn to_savings(bank: &str, amount: &str) -> PaymentRequest {
    let mut request = payment(bank, amount);
    request.creditor_account.iban = SAVINGS_IBAN.into();
    request.creditor_name = "Alice Schmidt".into();
    request
}

/// `POST /v1/payments` with `key` and `body`.
async fn submit(platform: &PlatformClient, token: &Value, key: &str, body: &Value) -> (u16, Value) {
    let answer = platform
        .post_json(
            token["access_token"].as_str().unwrap(),
            "/v1/payments",
            body,
            &[("idempotency-key", key)],
        )
        .await
        .unwrap();
    (answer.status, answer.json())
}

async fn a_payment_moves_money_once_at_every_paying_standard(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    for (bank, other) in [
        ("stet-bank", "demo-bank"),
        ("demo-bank", "stet-bank"),
        ("obie-bank", "demo-bank"),
        ("nova-bank", "stet-bank"),
    ] {
        let before_payer = balances(&platform, bank).await;
        let before_payee = balances(&platform, other).await;
        let created_before = counters(&gateway, bank).await["created"].as_u64().unwrap();
        let request = to_savings(bank, "12.50");
        let (token, trace) = authorised(&platform, &request).await;
        assert!(trace.consent_screen.contains("12.50 EUR"), "{bank}");
        assert_eq!(token["scope"], "payment");
        let details = &token["authorization_details"][0];
        assert_eq!(details["type"], "payment_initiation", "{token}");
        assert_eq!(
            details["instructed_amount"],
            json!({"currency": "EUR", "amount": "12.50"})
        );
        // The payee's bank confirmed the name typed (verification of payee, before the screen).
        assert_eq!(
            details["verification"],
            json!({"result": "match"}),
            "{token}"
        );
        // Data is not what this token is for.
        let (status, _) = platform
            .get(token["access_token"].as_str().unwrap(), "/v1/accounts")
            .await
            .unwrap();
        assert_eq!(status, 403, "{bank}");

        let body = json!({"instructed_amount": {"currency": "EUR", "amount": "12.50"}});
        // Keys are the platform's: one per payment.
        let (first_key, second_key) = (format!("{bank}-1"), format!("{bank}-2"));
        let (status, paid) = submit(&platform, &token, &first_key, &body).await;
        assert_eq!(status, 201, "{bank}: {paid}");
        assert_eq!(paid["instructed_amount"]["amount"], "12.50");
        assert!(
            matches!(
                paid["status"].as_str().unwrap(),
                "accepted" | "settlement_in_process" | "settled"
            ),
            "{bank}: {paid}"
        );
        assert!(paid["bank_status"]["code"].is_string(), "{paid}");
        assert!(!paid.to_string().contains(SAVINGS_IBAN), "masked: {paid}");
        let id = paid["id"].as_str().unwrap().to_owned();

        // The same key and body: the same answer; nothing sent again.
        let (again_status, again) = submit(&platform, &token, &first_key, &body).await;
        assert_eq!((again_status, &again), (201, &paid), "{bank}");
        // The same key with another body: 422; another key: the consent is used.
        let (status, problem) = submit(&platform, &token, &first_key, &json!({})).await;
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("/payment-key-reused"),
            "{problem}"
        );
        let (status, problem) = submit(&platform, &token, &second_key, &body).await;
        assert_eq!(status, 409, "{problem}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("/payment-consent-used"),
            "{problem}"
        );

        let (status, shown) = platform
            .get(
                token["access_token"].as_str().unwrap(),
                &format!("/v1/payments/{id}"),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["id"], id.as_str());
        assert_eq!(shown["instructed_amount"]["amount"], "12.50");

        // Money moved once at both banks: the payer's main account at once, the friend's
        // account when the transfer settles (ten sandbox minutes on).
        sandbox_post(&gateway, bank, "/sandbox/clock/advance?minutes=11").await;
        let paid_at_bank = counters(&gateway, bank).await;
        assert_eq!(
            paid_at_bank["created"].as_u64().unwrap(),
            created_before + 1,
            "{paid_at_bank}"
        );
        let after_payer = balances(&platform, bank).await;
        let after_payee = balances(&platform, other).await;
        let cents = Decimal::new(1250, 2);
        assert!(
            moved(&before_payer, &after_payer, PAYER_MAIN, -cents),
            "{bank}: {before_payer:?} → {after_payer:?}"
        );
        assert!(
            moved(&before_payee, &after_payee, PAYEE_ACCOUNT, cents),
            "{other}: {before_payee:?} → {after_payee:?}"
        );

        // The audit trail: the consent, the submission and the bank's answer, with the
        // amount and currency as facts and never the payee's IBAN.
        let events = gateway
            .audit_of(shown["consent_id"].as_str().unwrap())
            .await;
        let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
        for action in [
            "consent_created",
            "consent_authorised",
            "token_issued",
            "payment_submitted",
            "payment_status_changed",
        ] {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
        let submitted = events
            .iter()
            .find(|e| e["action"] == "payment_submitted")
            .unwrap();
        let fields = submitted["fields"].to_string();
        assert!(
            fields.contains("amount:12.50") && fields.contains("currency:EUR"),
            "{submitted}"
        );
        assert!(!json!(events).to_string().contains(SAVINGS_IBAN));
    }
}

async fn a_concurrent_duplicate_is_answered_409_and_paid_once(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = std::sync::Arc::new(paying_platform(&gateway).await);
    for bank in PAYING_BANKS {
        // Counted before the consent: Berlin Group and the mapping profile execute the payment
        // when the user authorises it at the bank, STET on confirmation, OBIE on submission.
        let before = counters(&gateway, bank).await;
        let (token, _) = authorised(&platform, &to_savings(bank, "3.00")).await;
        let body = json!({});
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let platform = platform.clone();
                let token = token.clone();
                let body = body.clone();
                let key = format!("same-key-{bank}");
                tokio::spawn(async move { submit(&platform, &token, &key, &body).await })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let created: Vec<&(u16, Value)> = answers
            .iter()
            .filter(|(status, _)| *status == 201)
            .collect();
        assert!(!created.is_empty(), "{bank}: {answers:?}");
        for (status, body) in &answers {
            match status {
                201 => assert_eq!(body, &created[0].1, "{bank}: a replay is the same answer"),
                409 => assert!(
                    body["type"]
                        .as_str()
                        .unwrap()
                        .ends_with("/payment-in-flight"),
                    "{bank}: {body}"
                ),
                other => panic!("{bank}: unexpected {other}: {body}"),
            }
        }
        let counted = counters(&gateway, bank).await;
        for counter in ["executed", "confirmations"] {
            assert!(
                counted[counter].as_u64().unwrap() <= before[counter].as_u64().unwrap() + 1,
                "{bank}: {counter} at most once: {before} → {counted}"
            );
        }
        assert_eq!(
            counted["executed"].as_u64().unwrap(),
            before["executed"].as_u64().unwrap() + 1,
            "{bank}: paid once: {before} → {counted}"
        );
        // Once the first finished, the same key replays its answer.
        let (status, replay) = submit(&platform, &token, &format!("same-key-{bank}"), &body).await;
        assert_eq!((status, &replay), (201, &created[0].1), "{bank}");
    }
}

async fn each_bad_submission_gets_its_problem_and_pays_nothing(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let problem_type = |body: &Value| {
        body["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    for bank in PAYING_BANKS {
        let (token, _) = authorised(&platform, &to_savings(bank, "4.00")).await;
        let access = token["access_token"].as_str().unwrap();
        let authorised_at_bank = counters(&gateway, bank).await;
        // No key, a malformed key.
        for headers in [vec![], vec![("idempotency-key", "has space")]] {
            let answer = platform
                .post_json(access, "/v1/payments", &json!({}), &headers)
                .await
                .unwrap();
            assert_eq!(answer.status, 400, "{bank}");
            assert_eq!(problem_type(&answer.json()), "idempotency-key-required");
        }
        // A body that is not the consented payment.
        for (body, slug) in [
            (
                json!({"instructed_amount": {"currency": "EUR", "amount": "5.00"}}),
                "payment-does-not-match-consent",
            ),
            (
                json!({"creditor_account": {"iban": "NL18BKGT0417164300"}}),
                "payment-does-not-match-consent",
            ),
            (
                json!({"creditor_name": "Mallory"}),
                "payment-does-not-match-consent",
            ),
        ] {
            let (status, problem) = submit(
                &platform,
                &token,
                &format!("k-{bank}-{slug}-{}", body.to_string().len()),
                &body,
            )
            .await;
            assert_eq!(
                (status, problem_type(&problem).as_str()),
                (422, slug),
                "{bank}: {problem}"
            );
        }
        let (status, problem) = submit(
            &platform,
            &token,
            &format!("k-{bank}-unknown"),
            &json!({"amount": "1"}),
        )
        .await;
        assert_eq!(
            (status, problem_type(&problem).as_str()),
            (400, "invalid-request"),
            "{bank}: {problem}"
        );
        // Nothing more reached the bank than the user's authorisation did.
        assert_eq!(
            counters(&gateway, bank).await,
            authorised_at_bank,
            "{bank}: nothing sent"
        );
    }
    assert_eq!(
        counters(&gateway, "stet-bank").await["confirmations"]
            .as_u64()
            .unwrap(),
        0
    );
    // A data token cannot pay.
    let detail = bankgate::demo::account_information(
        "stet-bank",
        "balance-alerts",
        &[Scope::Accounts],
        "u-payer",
    );
    let (data, _) = platform.connect(&detail).await.unwrap();
    let answer = platform
        .post_json(
            &data.access_token,
            "/v1/payments",
            &json!({}),
            &[("idempotency-key", "k-data")],
        )
        .await
        .unwrap();
    assert_eq!(
        (answer.status, problem_type(&answer.json()).as_str()),
        (403, "scope-not-granted")
    );
}

/// The bundled policies with the payment limits raised above the sandbox payer's funds.
fn generous_policies() -> Scratch {
    let dir =
        Scratch(std::env::temp_dir().join(format!("bankgate-policies-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(dir.path()).unwrap();
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&bundled).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "p2p-payment.toml" {
            text = text
                .replace(
                    "max_amount_per_payment = \"250.00\"",
                    "max_amount_per_payment = \"5000.00\"",
                )
                .replace(
                    "max_amount_per_day = \"500.00\"",
                    "max_amount_per_day = \"10000.00\"",
                );
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn a_bank_rejection_is_a_reason_not_the_banks_text(kind: StoreKind) {
    let policies = generous_policies();
    let gateway = TestGateway::start_with(
        kind,
        crate::support::Options {
            policies_dir: Some(policies.path().to_owned()),
            ..Default::default()
        },
    )
    .await;
    let platform = paying_platform(&gateway).await;
    // More than the payer has (1,760.51 EUR): the bank rejects for insufficient funds.
    let (token, _) = authorised(&platform, &to_savings("stet-bank", "2000.00")).await;
    let (status, paid) = submit(&platform, &token, "k", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "rejected", "{paid}");
    assert_eq!(paid["rejection_reason"], "insufficient_funds", "{paid}");
    assert_eq!(paid["bank_status"]["code"], "RJCT", "{paid}");
    let text = paid.to_string().to_lowercase();
    assert!(
        !text.contains("insufficient funds") && !text.contains("psu"),
        "no bank text: {paid}"
    );
    // A rejected payment does not count against the day: the user can pay again.
    let (token, _) = authorised(&platform, &to_savings("stet-bank", "10.00")).await;
    let (status, paid) = submit(&platform, &token, "k-2", &json!({})).await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (201, Some("accepted")),
        "{paid}"
    );
    // The payer's account closed at the bank: `account_closed`.
    let (token, _) = authorised(&platform, &to_savings("stet-bank", "5.00")).await;
    sandbox_post(
        &gateway,
        "stet-bank",
        "/sandbox/accounts/DE92999900000012345601/close",
    )
    .await;
    let (status, paid) = submit(&platform, &token, "k-3", &json!({})).await;
    sandbox_post(
        &gateway,
        "stet-bank",
        "/sandbox/accounts/DE92999900000012345601/reopen",
    )
    .await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["rejection_reason"], "account_closed", "{paid}");
    // Berlin Group: authorising the payment executes it, the bank rejects it, and its status
    // answer carries the ISO reason in `tppMessages`: the canonical reason, the raw code kept.
    let (token, _) = authorised(&platform, &to_savings("demo-bank", "2000.00")).await;
    let (status, paid) = submit(&platform, &token, "k-4", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "rejected", "{paid}");
    assert_eq!(paid["rejection_reason"], "insufficient_funds", "{paid}");
    assert_eq!(paid["bank_status"]["code"], "RJCT", "{paid}");
    assert_eq!(paid["bank_status"]["reason_code"], "AM04", "{paid}");
    // A proprietary API through the mapping profile: its own state and reason pointers.
    let (token, _) = authorised(&platform, &to_savings("nova-bank", "2000.00")).await;
    let (status, paid) = submit(&platform, &token, "k-5", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "rejected", "{paid}");
    assert_eq!(paid["rejection_reason"], "insufficient_funds", "{paid}");
    assert_eq!(paid["bank_status"]["code"], "FAILED", "{paid}");
    assert_eq!(paid["bank_status"]["reason_code"], "AM04", "{paid}");
    // UK OBIE: the domestic payment is submitted and refused; the ISO reason is kept.
    let (token, _) = authorised(&platform, &to_savings("obie-bank", "2000.00")).await;
    let (status, paid) = submit(&platform, &token, "k-6", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "rejected", "{paid}");
    assert_eq!(paid["rejection_reason"], "insufficient_funds", "{paid}");
    assert_eq!(paid["bank_status"]["reason_code"], "AM04", "{paid}");
    let text = paid.to_string().to_lowercase();
    assert!(!text.contains("insufficient funds"), "no bank text: {paid}");
}

/// Revoked or expired between the user's authorisation and the platform's submission: the
/// submission is refused and nothing more reaches the bank (Berlin Group and the mapping
/// profile executed the payment when the user authorised it; STET and OBIE are never asked).
async fn revocation_and_expiry_before_submission_pay_nothing(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    for bank in PAYING_BANKS {
        // Revoked through the platform before it submitted: the token no longer works.
        let (token, _) = authorised(&platform, &to_savings(bank, "2.00")).await;
        let at_bank = counters(&gateway, bank).await;
        let access = token["access_token"].as_str().unwrap();
        let consent_id = token["consent_id"].as_str().unwrap().to_owned();
        let (status, _) = platform
            .delete(access, &format!("/v1/consents/{consent_id}"))
            .await
            .unwrap();
        assert_eq!(status, 204, "{bank}");
        let (status, problem) = submit(&platform, &token, &format!("k-{bank}"), &json!({})).await;
        assert_eq!(status, 401, "{bank}: {problem}");
        assert_eq!(
            counters(&gateway, bank).await,
            at_bank,
            "{bank}: nothing sent"
        );
        // Expired: the maintenance task ran past the consent's expiry.
        let (token, _) = authorised(&platform, &to_savings(bank, "2.00")).await;
        let at_bank = counters(&gateway, bank).await;
        let consent = gateway
            .app
            .store
            .consent(token["consent_id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        gateway
            .app
            .maintenance()
            .unwrap()
            .run_once(consent.expires_at + chrono::Duration::seconds(1))
            .await
            .unwrap();
        let (status, problem) = submit(&platform, &token, &format!("k-{bank}-2"), &json!({})).await;
        assert!(matches!(status, 401 | 403), "{bank}: {status}: {problem}");
        assert_eq!(
            counters(&gateway, bank).await,
            at_bank,
            "{bank}: nothing sent"
        );
    }
    assert_eq!(
        counters(&gateway, "stet-bank").await["confirmations"]
            .as_u64()
            .unwrap(),
        0,
        "nothing was confirmed at the STET bank"
    );
}

async fn the_status_job_follows_a_payment_and_tells_the_platform(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = crate::fapi::receiver(vec![]).await;
    let platform = paying_platform_with(&gateway, Some(&hooks.url)).await;
    let maintenance = gateway.app.maintenance().unwrap();
    let mut paid_ids = Vec::new();
    for bank in PAYING_BANKS {
        // A standard transfer: not settled when submitted, settled after the bank's clock
        // moves on.
        let (token, _) = authorised(&platform, &to_savings(bank, "8.00")).await;
        let (status, paid) = submit(&platform, &token, &format!("k-{bank}"), &json!({})).await;
        assert_eq!(status, 201, "{bank}: {paid}");
        assert_ne!(paid["status"], "settled", "{bank}: {paid}");
        let id = paid["id"].as_str().unwrap().to_owned();
        sandbox_post(&gateway, bank, "/sandbox/clock/advance?minutes=11").await;
        // A minute on: the look-up is due (2 s after the submission), the token still valid.
        let later = chrono::Utc::now() + chrono::Duration::minutes(1);
        let report = maintenance.run_once(later).await.unwrap();
        assert_eq!(report.payments_changed, 1, "{bank}: {report:?}");
        let (_, shown) = platform
            .get(
                token["access_token"].as_str().unwrap(),
                &format!("/v1/payments/{id}"),
            )
            .await
            .unwrap();
        assert_eq!(shown["status"], "settled", "{bank}: {shown}");
        // The bank's own codes are kept: ISO 20022 for the standards, Nova Bank's states.
        let (submitted_code, settled_code) = match bank {
            "nova-bank" => ("BOOKING", "DONE"),
            _ => ("ACTC", "ACSC"),
        };
        assert_eq!(
            paid["bank_status"]["code"], submitted_code,
            "{bank}: {paid}"
        );
        assert_eq!(
            shown["bank_status"]["code"], settled_code,
            "{bank}: {shown}"
        );
        // Final: not asked again.
        let report = maintenance
            .run_once(later + chrono::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(report.payments_changed, 0, "{bank}");
        paid_ids.push((bank, id));
    }
    // The platform got one signed payment.status_changed per payment, to `settled`.
    let received = hooks.received.lock().unwrap().clone();
    let mut changes = Vec::new();
    for (content_type, body) in &received {
        assert_eq!(content_type, "application/secevent+jwt");
        let claims = crate::fapi::verify_delivery(&gateway, body, "pay-by-message").await;
        if let Some(event) =
            claims["events"].get("https://bankgate.dev/events/payment.status_changed")
        {
            changes.push(event.clone());
        }
    }
    assert_eq!(changes.len(), paid_ids.len(), "{received:?}");
    for (bank, id) in &paid_ids {
        let change = changes
            .iter()
            .find(|change| change["payment_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{bank}: no change for {id}: {changes:?}"));
        assert_eq!(change["status"], "settled", "{bank}: {change}");
    }
    assert!(!json!(received).to_string().contains(SAVINGS_IBAN));
}

/// A STET sandbox bank of this test, registered through the API as `bank_id` (its faults and
/// counters are the test's to set and read).
async fn registered_stet_bank(gateway: &TestGateway, bank_id: &str) -> bankgate_sandbox::Sandbox {
    registered_stet_bank_with(gateway, bank_id, Default::default()).await
}

/// [`registered_stet_bank`] with the FAPI settings of its authorization server.
async fn registered_stet_bank_with(
    gateway: &TestGateway,
    bank_id: &str,
    fapi: bankgate_sandbox::SandboxFapi,
) -> bankgate_sandbox::Sandbox {
    use crate::registration::{SANDBOX_CLIENT_ID, SANDBOX_SECRET, bank_principal, put_adapter};
    crate::registration::provide_credentials(gateway);
    let sandbox = bankgate_sandbox::start(bankgate_sandbox::SandboxConfig {
        profile: "stet".into(),
        addr: ([127, 0, 0, 1], 0).into(),
        client_id: SANDBOX_CLIENT_ID.into(),
        client_secret: SANDBOX_SECRET.into(),
        approval: bankgate_sandbox::Approval::Auto,
        fapi,
    })
    .await
    .expect("sandbox starts");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/adapters/stet-bank.toml");
    let mut manifest =
        bankgate::adapters::Manifest::load(std::path::Path::new(path)).expect("bundled manifest");
    manifest.rebase(&sandbox.origin);
    manifest.sandbox = None;
    manifest.id = bank_id.to_owned();
    manifest.name = format!("{bank_id} (test)");
    let prefix = bankgate::adapters::Manifest::registered_reference_prefix(bank_id);
    manifest.oauth.client_id_env = format!("{prefix}CLIENT_ID");
    manifest.oauth.client_secret_env = Some(format!("{prefix}CLIENT_SECRET"));
    let principal = bank_principal(gateway, &format!("{bank_id}-admin"), bank_id).await;
    let token = principal.client_credentials().await.expect("bank token");
    let (status, _, body) = put_adapter(
        gateway,
        Some(&token),
        bank_id,
        "",
        &serde_json::to_value(&manifest).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    sandbox
}

/// The connection drops after the bank confirmed the payment and before the gateway read the
/// answer: the platform is told the payment is in doubt (202), a retry replays that, and the
/// status job finds the payment by a look-up — the bank confirmed it once.
async fn a_lost_answer_is_reconciled_by_a_look_up_never_sent_twice(kind: StoreKind) {
    use bankgate_sandbox::faults::Fault;
    let gateway = TestGateway::start(kind).await;
    let bank = registered_stet_bank(&gateway, "faulty-stet").await;
    let platform = paying_platform(&gateway).await;
    let (token, _) = authorised(&platform, &to_savings("faulty-stet", "9.00")).await;
    // The confirmation is acted on, then its answer cut.
    let resource = gateway
        .app
        .store
        .payment_of_consent(token["consent_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
        .bank_payment_id
        .unwrap();
    bank.faults.set_times(
        &format!("/v1/payment-requests/{resource}/confirmation"),
        Fault::AnswerLost,
        1,
    );
    let (status, doubt) = submit(&platform, &token, "lost-1", &json!({})).await;
    assert_eq!(status, 202, "{doubt}");
    assert_eq!(doubt["status"], "pending", "{doubt}");
    assert_eq!(bank.payments.confirmations(), 1);
    // The platform retries: the same answer, nothing sent to the bank.
    let (status, again) = submit(&platform, &token, "lost-1", &json!({})).await;
    assert_eq!((status, &again), (202, &doubt));
    assert_eq!(bank.payments.confirmations(), 1);
    // The status job settles it by a look-up.
    let maintenance = gateway.app.maintenance().unwrap();
    let report = maintenance
        .run_once(chrono::Utc::now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.payments_changed, 1, "{report:?}");
    let id = doubt["id"].as_str().unwrap();
    let (status, found) = platform
        .get(
            token["access_token"].as_str().unwrap(),
            &format!("/v1/payments/{id}"),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{found}");
    assert!(
        matches!(
            found["status"].as_str(),
            Some("accepted" | "settlement_in_process" | "settled")
        ),
        "{found}"
    );
    assert_eq!(bank.payments.confirmations(), 1, "confirmed once");
    assert_eq!(bank.payments.executed(), 1, "paid once");
}

/// The connection drops after the bank created the payment at consent time and before the
/// gateway read the answer: the gateway asks again under the same request id, the bank answers
/// with the payment it made, and the user authorises that one — made once, paid once.
async fn a_lost_answer_to_the_creation_is_looked_up_never_made_twice(kind: StoreKind) {
    use bankgate_sandbox::faults::Fault;
    let gateway = TestGateway::start(kind).await;
    let bank = registered_stet_bank(&gateway, "faulty-stet").await;
    let platform = paying_platform(&gateway).await;
    // The creation (`POST /v1/payment-requests`) is acted on, then its answer cut.
    bank.faults
        .set_times("/v1/payment-requests", Fault::AnswerLost, 1);
    let (token, _) = authorised(&platform, &to_savings("faulty-stet", "8.00")).await;
    assert_eq!(bank.payments.created(), 1, "made once");
    assert_eq!(bank.payments.replayed(), 1, "found by its request id");
    let (status, paid) = submit(&platform, &token, "created-lost", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert!(
        matches!(
            paid["status"].as_str(),
            Some("accepted" | "settlement_in_process" | "settled")
        ),
        "{paid}"
    );
    assert_eq!(bank.payments.executed(), 1, "paid once");
}

/// The payee's account is the payer's own: the STET bank names the account the user chose
/// once the payment is approved, and bankgate refuses to confirm it — 422, nothing paid.
async fn a_payment_to_the_payers_own_account_is_refused_before_it_is_sent(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let mut request = to_savings("stet-bank", "5.00");
    request.creditor_account.iban = "DE92 9999 0000 0012 3456 01".into();
    let (token, _) = authorised(&platform, &request).await;
    let confirmations = counters(&gateway, "stet-bank").await["confirmations"]
        .as_u64()
        .unwrap();
    let (status, problem) = submit(&platform, &token, "own", &json!({})).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/payment-payee-is-payer"),
        "{problem}"
    );
    assert_eq!(
        counters(&gateway, "stet-bank").await["confirmations"]
            .as_u64()
            .unwrap(),
        confirmations,
        "nothing was confirmed"
    );
    let (again, replay) = submit(&platform, &token, "own", &json!({})).await;
    assert_eq!((again, &replay), (422, &problem));
}

/// A STET bank whose access tokens live one second: long after the token the payment was
/// submitted with has expired, the status job refreshes the bank token and reads the status.
async fn the_status_job_refreshes_an_expired_bank_token(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let bank = registered_stet_bank_with(
        &gateway,
        "brief-stet",
        bankgate_sandbox::SandboxFapi {
            access_token_lifetime: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    let platform = paying_platform(&gateway).await;
    let (token, _) = authorised(&platform, &to_savings("brief-stet", "7.00")).await;
    let (status, paid) = submit(&platform, &token, "brief", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    assert_ne!(paid["status"], "settled", "{paid}");
    let id = paid["id"].as_str().unwrap().to_owned();
    // The bank token the payment was made with is expired at the bank now.
    let consent_id = token["consent_id"].as_str().unwrap();
    let stored = gateway.app.store.grant(consent_id).await.unwrap().unwrap();
    let grant: bankgate::adapters::bank_oauth::BankGrant = serde_json::from_slice(
        &gateway
            .app
            .sealer
            .open(consent_id.as_bytes(), &stored.sealed)
            .unwrap(),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let expired = reqwest::Client::new()
        .get(format!(
            "{}/v1/payment-requests/{}",
            bank.origin,
            grant.bank_consent_id.as_deref().unwrap()
        ))
        .bearer_auth(&grant.access_token)
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401, "the old token is refused");
    let refreshes = bank.faults.hits("/oauth/token");
    sandbox_post(&gateway, "brief-stet", "/sandbox/clock/advance?minutes=11").await;
    let maintenance = gateway.app.maintenance().unwrap();
    let report = maintenance
        .run_once(chrono::Utc::now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.payments_changed, 1, "{report:?}");
    assert!(
        bank.faults.hits("/oauth/token") > refreshes,
        "the bank token was refreshed"
    );
    let (_, shown) = platform
        .get(
            token["access_token"].as_str().unwrap(),
            &format!("/v1/payments/{id}"),
        )
        .await
        .unwrap();
    assert_eq!(shown["status"], "settled", "{shown}");
}

/// The gateway marks the payment in doubt and calls the bank, the bank confirms it, and the
/// gateway dies before it records the answer. After the restart (on PostgreSQL, another
/// instance on the same database) the platform's submission finds the consent used, nothing
/// is sent again, and the status job finds the payment by a look-up and reports it once.
async fn a_gateway_that_died_after_the_bank_paid_finds_the_payment_once(kind: StoreKind) {
    use bankgate::adapters::bank_oauth::BankGrant;
    use bankgate::payments::Submission;
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let (token, _) = authorised(&platform, &to_savings("stet-bank", "11.00")).await;
    let consent_id = token["consent_id"].as_str().unwrap();
    let app = &gateway.app;
    let recorded = app
        .store
        .payment_of_consent(consent_id)
        .await
        .unwrap()
        .unwrap();
    // What the dying gateway did: the payment marked in doubt (due for a look-up a minute
    // later), then the bank called and its answer never recorded.
    let now = chrono::Utc::now();
    let mut calling = recorded.moved(Submission::InDoubt, now);
    calling.next_poll_at = Some(now + bankgate::payments::submit::RECONCILE_AFTER);
    assert!(
        app.store
            .update_payment(&calling, recorded.updated_at)
            .await
            .unwrap()
    );
    let adapter = app.banks.get("stet-bank").unwrap();
    let stored = app.store.grant(consent_id).await.unwrap().unwrap();
    let grant: BankGrant = serde_json::from_slice(
        &app.sealer
            .open(consent_id.as_bytes(), &stored.sealed)
            .unwrap(),
    )
    .unwrap();
    adapter
        .profile
        .payments()
        .unwrap()
        .submit(grant.session(&adapter.bank), &calling.order())
        .await
        .expect("the bank confirms");
    let confirmed = counters(&gateway, "stet-bank").await["confirmations"]
        .as_u64()
        .unwrap();

    // The restarted gateway.
    let restarted = match kind {
        StoreKind::Postgres => Some(gateway.second_instance().await),
        StoreKind::Memory => None,
    };
    let (after, after_app) = match &restarted {
        Some(instance) => (platform.via(&instance.base).unwrap(), instance.app.clone()),
        None => (platform.via(&gateway.base).unwrap(), gateway.app.clone()),
    };
    let (status, problem) = submit(&after, &token, "after-restart", &json!({})).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/payment-consent-used"),
        "{problem}"
    );
    let maintenance = after_app.maintenance().unwrap();
    let report = maintenance
        .run_once(now + chrono::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(report.payments_changed, 1, "{report:?}");
    let (status, found) = after
        .get(
            token["access_token"].as_str().unwrap(),
            &format!("/v1/payments/{}", recorded.id),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{found}");
    assert!(
        matches!(
            found["status"].as_str(),
            Some("accepted" | "settlement_in_process" | "settled")
        ),
        "{found}"
    );
    assert_eq!(
        counters(&gateway, "stet-bank").await["confirmations"]
            .as_u64()
            .unwrap(),
        confirmed,
        "never sent again"
    );
    // Reported once: the next runs change nothing.
    let report = maintenance
        .run_once(now + chrono::Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(report.payments_changed, 0);
}

/// `max_amount_per_day` (500.00 EUR for p2p-payment) counts what was sent on its way, exactly:
/// an OBIE payment when it is submitted, a STET (or Berlin Group) payment when it is created
/// at the bank for the user to authorise (authorising it may execute it). Payments only
/// pushed count nothing, concurrent ones never count past the limit, and the limit itself is
/// reachable.
async fn the_daily_limit_counts_what_was_sent_exactly_even_in_parallel(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let executed = async |bank: &str| counters(&gateway, bank).await["executed"].as_u64().unwrap();
    // OBIE: three payments of 200.00 pushed and authorised (none counted yet: all pass PAR),
    // then submitted at once — exactly two fit in the day.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(
            authorised(&platform, &to_savings("obie-bank", "200.00"))
                .await
                .0,
        );
    }
    let paid_before = executed("obie-bank").await;
    let answers =
        futures_util::future::join_all(tokens.iter().enumerate().map(async |(i, token)| {
            submit(&platform, token, &format!("par-{i}"), &json!({})).await
        }))
        .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 201).count(),
        2,
        "{answers:?}"
    );
    let over: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 422)
        .map(|(_, problem)| problem)
        .collect();
    assert_eq!(over.len(), 1, "{answers:?}");
    assert!(
        over[0]["type"]
            .as_str()
            .unwrap()
            .ends_with("/payment-limit-per-day"),
        "{}",
        over[0]
    );
    assert_eq!(
        executed("obie-bank").await,
        paid_before + 2,
        "paid twice, not three times"
    );
    // 400.00 counted: 100.01 more is refused at PAR, exactly 100.00 is not, and is paid.
    let error = refused(
        &platform,
        serde_json::to_value(to_savings("obie-bank", "100.01")).unwrap(),
    )
    .await;
    assert!(error.contains("payment-limit-per-day"), "{error}");
    let (token, _) = authorised(&platform, &to_savings("obie-bank", "100.00")).await;
    let (status, paid) = submit(&platform, &token, "par-last", &json!({})).await;
    assert_eq!(status, 201, "{paid}");
    // The refused submission's answer is its key's: the same request gets it again.
    let (i, _) = answers
        .iter()
        .enumerate()
        .find(|(_, (status, _))| *status == 422)
        .unwrap();
    let (again, replay) = submit(&platform, &tokens[i], &format!("par-{i}"), &json!({})).await;
    assert_eq!((again, &replay), (422, &answers[i].1));

    // STET, another user: three of 200.00 pushed, then confirmed on the consent screen at
    // once — exactly two are created at the bank and authorised; the third consent is
    // refused there (the platform gets `access_denied`), and nothing of it reaches the bank.
    let mut pushed = Vec::new();
    for _ in 0..3 {
        let mut request = to_savings("stet-bank", "200.00");
        request.user_ref = "u-payer-2".into();
        pushed.push(platform.push_payment(&request).await.expect("PAR"));
    }
    let created_before = counters(&gateway, "stet-bank").await["created"]
        .as_u64()
        .unwrap();
    let approved = futures_util::future::join_all(pushed.iter().map(async |request| {
        let mut trace = FlowTrace::default();
        let code = platform.approve(request, &mut trace).await;
        (code.ok(), trace)
    }))
    .await;
    assert_eq!(
        approved.iter().filter(|(code, _)| code.is_some()).count(),
        2,
        "{approved:?}"
    );
    // Refused on the consent screen: sent back to the platform, not to the bank.
    let (_, denied) = approved.iter().find(|(code, _)| code.is_none()).unwrap();
    assert!(
        denied.bank_authorization_url.starts_with(REDIRECT_URI)
            && denied
                .bank_authorization_url
                .contains("error=access_denied"),
        "{denied:?}"
    );
    assert_eq!(
        counters(&gateway, "stet-bank").await["created"]
            .as_u64()
            .unwrap(),
        created_before + 2
    );
}
