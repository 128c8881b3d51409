//! Paying a handle end to end: a payee connects her account at one bank under
//! `p2p-payments-payee-check` and her platform registers `@alice` for it; a payer of the same
//! platform pays `@alice` from an account at a bank of another standard. bankgate resolves the
//! handle through her consent (an access under her purpose, audited under her consent), sends
//! her IBAN to the payer's bank only, and the payer's platform sees her name as her bank has it
//! and her account masked — in every answer, error and webhook. A payee who revoked between
//! PAR and the payment is not paid; an unknown handle is refused at PAR — on both stores.

use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Role};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::payments::{counters, sandbox_post};
use crate::support::{REDIRECT_URI, StoreKind, TestGateway};

on_both_stores!(
    paying_a_handle_moves_money_and_shows_only_her_name_and_masked_account,
    a_payee_who_left_between_par_and_payment_is_not_paid,
);

const PAYEE_PURPOSE: &str = "p2p-payments-payee-check";
/// The payee's bank (UK OBIE) and the payer's (Berlin Group).
const PAYEE_BANK: &str = "obie-bank";
const PAYER_BANK: &str = "demo-bank";
/// The payee's account the handle points at (her savings), in the forms it could leak in.
const PAYEE_IBAN: &str = "DE65999900000012345602";
const PAYEE_IBAN_PRINTED: &str = "DE65 9999 0000 0012 3456 02";
/// The name on the account, as the sandbox banks have it.
const PAYEE_NAME: &str = "Alice Schmidt";

/// A platform approved for payments, payee checks and balance reading, with a webhook.
async fn chat_platform(gateway: &TestGateway, webhook_url: &str) -> PlatformClient {
    let registered = gateway
        .app
        .registrar
        .register(
            &gateway.app.policies.current(),
            Registration {
                client_id: "chat-pay".into(),
                name: "Chat pay".into(),
                role: Role::Platform,
                redirect_uris: vec![REDIRECT_URI.into()],
                allowed_purposes: vec![
                    "p2p-payment".into(),
                    PAYEE_PURPOSE.into(),
                    "balance-alerts".into(),
                ],
                token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                webhook_url: Some(webhook_url.to_owned()),
                ..Registration::default()
            },
        )
        .await
        .expect("platform registers");
    PlatformClient::new(
        &gateway.base,
        "chat-pay",
        &registered.client_secret,
        REDIRECT_URI,
    )
    .expect("client")
}

/// Alice's payee consent at [`PAYEE_BANK`] with `@alice` pointing at her savings: its token
/// and consent id.
async fn alice_registers(platform: &PlatformClient) -> (String, String) {
    let detail = account_information(
        PAYEE_BANK,
        PAYEE_PURPOSE,
        &[Scope::Accounts, Scope::Identity],
        "u-alice",
    );
    let (token, _) = platform.connect(&detail).await.expect("payee consent");
    let (status, body) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let savings = account_ending(&body, "5602");
    let answer = platform
        .put_json(
            &token.access_token,
            "/v1/payees/@alice",
            &json!({ "account_id": savings }),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{}", answer.json());
    (token.access_token, token.consent_id)
}

/// The id of the account in a `GET /v1/accounts` answer whose masked IBAN ends with `end`.
fn account_ending(accounts: &Value, end: &str) -> String {
    accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| {
            account["iban_masked"]
                .as_str()
                .is_some_and(|masked| masked.ends_with(end))
        })
        .unwrap_or_else(|| panic!("an account ending {end} in {accounts}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A payment of `amount` EUR from the payer at `bank` to `@alice`, as a platform sends it:
/// no account, no name.
fn to_alice(bank: &str, amount: &str) -> Value {
    json!({
        "type": "payment_initiation",
        "bank": bank,
        "purpose": "p2p-payment",
        "instructed_amount": {"currency": "EUR", "amount": amount},
        "creditor": {"handle": "@Alice"},
        "remittance": "dinner",
        "user_ref": "u-payer",
    })
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|uri| uri.rsplit('/').next())
        .unwrap_or("")
}

/// Fails if `text` holds the payee's IBAN in either form.
fn assert_no_iban(what: &str, text: &str) {
    assert!(
        !text.contains(PAYEE_IBAN) && !text.contains(PAYEE_IBAN_PRINTED),
        "{what} shows the payee's IBAN: {text}"
    );
}

/// The balances (type, amount) of the account at `bank` whose masked IBAN ends with
/// `masked_end`, read through a balance consent.
async fn balance_of(
    platform: &PlatformClient,
    bank: &str,
    masked_end: &str,
) -> Vec<(String, Decimal)> {
    let detail = account_information(
        bank,
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-reader",
    );
    let (token, _) = platform.connect(&detail).await.expect("balance consent");
    let (_, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    let id = account_ending(&accounts, masked_end);
    let (status, body) = platform
        .get(&token.access_token, &format!("/v1/accounts/{id}/balances"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|balance| {
            (
                format!("{}/{}", balance["type"], balance["type_original"]),
                balance["amount"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Whether some balance moved by exactly `by`.
fn moved(before: &[(String, Decimal)], after: &[(String, Decimal)], by: Decimal) -> bool {
    after.iter().any(|(kind, amount)| {
        before
            .iter()
            .any(|(was_kind, was)| was_kind == kind && *amount - *was == by)
    })
}

async fn paying_a_handle_moves_money_and_shows_only_her_name_and_masked_account(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = crate::fapi::receiver(vec![]).await;
    let chat = chat_platform(&gateway, &hooks.url).await;
    let (_, alice_consent) = alice_registers(&chat).await;
    let payer_before = balance_of(&chat, PAYER_BANK, "5601").await;
    let payee_before = balance_of(&chat, PAYEE_BANK, "5602").await;
    // Everything the payer's platform is answered, to scan for the IBAN at the end.
    let mut seen: Vec<(String, String)> = Vec::new();

    let pushed = chat
        .push_with(&to_alice(PAYER_BANK, "21.40"), &[])
        .await
        .expect("PAR resolves @alice");
    let mut trace = bankgate::demo::FlowTrace::default();
    let code = chat.approve(&pushed, &mut trace).await.expect("authorised");
    // The payer's screen: her name as her bank has it, the handle and the account masked.
    let screen = &trace.consent_screen;
    assert!(screen.contains(PAYEE_NAME), "{screen}");
    assert!(screen.contains("@alice"), "{screen}");
    assert!(screen.contains("DE65 •••• 5602"), "{screen}");
    assert!(screen.contains("21.40 EUR"), "{screen}");
    seen.push(("consent screen".into(), screen.clone()));
    for url in [
        &trace.bank_authorization_url,
        &trace.callback_url,
        &trace.platform_redirect,
    ] {
        seen.push(("redirect".into(), url.clone()));
    }
    let token = chat.exchange_payment(&code, &pushed).await.expect("token");
    let detail = &token["authorization_details"][0];
    assert_eq!(detail["creditor"], json!({"handle": "@alice"}), "{token}");
    assert_eq!(detail["creditor_name"], PAYEE_NAME, "{token}");
    assert!(
        detail["creditor_account"]["iban_masked"]
            .as_str()
            .is_some_and(|masked| masked.starts_with("DE65") && masked.ends_with("5602")),
        "{token}"
    );
    assert!(detail["creditor_account"].get("iban").is_none(), "{token}");
    assert!(!token.to_string().contains(&alice_consent), "{token}");
    seen.push(("token".into(), token.to_string()));
    let access = token["access_token"].as_str().unwrap();

    // Restating her account — right or wrong — is refused alike: no oracle for her IBAN.
    for (key, iban) in [
        ("guess-1", PAYEE_IBAN),
        ("guess-2", "DE92999900000012345601"),
    ] {
        let answer = chat
            .post_json(
                access,
                "/v1/payments",
                &json!({"creditor_account": {"iban": iban}}),
                &[("idempotency-key", key)],
            )
            .await
            .unwrap();
        let body = answer.json();
        assert_eq!(answer.status, 422, "{body}");
        assert_eq!(problem_type(&body), "payment-does-not-match-consent");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("creditor_account")
        );
        seen.push(("refusal".into(), body.to_string()));
    }
    let answer = chat
        .post_json(
            access,
            "/v1/payments",
            &json!({"instructed_amount": {"currency": "EUR", "amount": "21.40"},
                "creditor_name": PAYEE_NAME}),
            &[("idempotency-key", "pay-alice")],
        )
        .await
        .unwrap();
    let paid = answer.json();
    assert_eq!(answer.status, 201, "{paid}");
    assert_eq!(paid["creditor"], json!({"handle": "@alice"}));
    assert_eq!(paid["creditor_name"], PAYEE_NAME);
    seen.push(("payment".into(), paid.to_string()));
    let id = paid["id"].as_str().unwrap();
    let (status, shown) = chat
        .get(access, &format!("/v1/payments/{id}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{shown}");
    seen.push(("payment read".into(), shown.to_string()));

    // The money moved: out of the payer's account at her Berlin Group bank at once, into the
    // payee's at her OBIE bank once the transfer settles.
    for bank in [PAYER_BANK, PAYEE_BANK] {
        sandbox_post(&gateway, bank, "/sandbox/clock/advance?minutes=11").await;
    }
    let cents = Decimal::new(2140, 2);
    let payer_after = balance_of(&chat, PAYER_BANK, "5601").await;
    let payee_after = balance_of(&chat, PAYEE_BANK, "5602").await;
    assert!(
        moved(&payer_before, &payer_after, -cents),
        "{payer_before:?} → {payer_after:?}"
    );
    assert!(
        moved(&payee_before, &payee_after, cents),
        "{payee_before:?} → {payee_after:?}"
    );
    // The status job tells the platform; the webhook names her by handle, masked.
    let maintenance = gateway.app.maintenance().unwrap();
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let report = maintenance.run_once(later).await.unwrap();
    assert_eq!(report.payments_changed, 1, "{report:?}");
    maintenance
        .run_once(later + chrono::Duration::seconds(5))
        .await
        .unwrap();
    let received = hooks.received.lock().unwrap().clone();
    let mut changes = 0;
    for (_, body) in &received {
        let claims = crate::fapi::verify_delivery(&gateway, body, "chat-pay").await;
        if claims["events"]
            .get("https://bankgate.dev/events/payment.status_changed")
            .is_some()
        {
            changes += 1;
        }
        seen.push(("webhook".into(), claims.to_string()));
    }
    assert!(changes >= 1, "{received:?}");

    for (what, text) in &seen {
        assert_no_iban(what, text);
    }
    // Her side: the resolution was an access under her consent, audited there with her name
    // and masked account as what was released, by the platform that asked.
    let events = gateway.audit_of(&alice_consent).await;
    let resolved: Vec<&Value> = events
        .iter()
        .filter(|event| event["action"] == "data_access")
        .filter(|event| {
            event["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("@alice"))
        })
        .collect();
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert_eq!(resolved[0]["actor"], "chat-pay");
    assert_eq!(resolved[0]["categories"], json!(["identity"]));
    assert_no_iban("the audit log", &json!(events).to_string());
    // Her bank counted nothing: the payment went out of the payer's bank only.
    assert_eq!(counters(&gateway, PAYEE_BANK).await["created"], 0);
}

async fn a_payee_who_left_between_par_and_payment_is_not_paid(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = crate::fapi::receiver(vec![]).await;
    let chat = chat_platform(&gateway, &hooks.url).await;

    // A handle nobody holds is refused at PAR, naming no one.
    let Err(error) = chat.push_with(&to_alice(PAYER_BANK, "5.00"), &[]).await else {
        panic!("nobody is @alice yet");
    };
    let error = error.to_string();
    assert!(error.contains("payment-unknown-payee"), "{error}");
    let (alice_token, alice_consent) = alice_registers(&chat).await;
    // Neither a handle with an account, nor a payee consent or a verification of the
    // platform's choosing.
    for extra in [
        json!({"creditor_account": {"iban": PAYEE_IBAN}}),
        json!({"creditor_name": "Alice"}),
        json!({"creditor": {"handle": "@alice", "consent_id": "c_x"}}),
        json!({"verification": {"result": "match"}}),
    ] {
        let mut detail = to_alice(PAYER_BANK, "5.00");
        for (field, value) in extra.as_object().unwrap() {
            detail[field] = value.clone();
        }
        let Err(error) = chat.push_with(&detail, &[]).await else {
            panic!("{detail} accepted");
        };
        let error = error.to_string();
        assert!(
            error.contains("(400)") && !error.contains("payment-unknown-payee"),
            "{error}"
        );
    }

    // OBIE pays at submission; Berlin Group when the user authorises at the bank.
    let obie_created = counters(&gateway, "obie-bank").await["created"]
        .as_u64()
        .unwrap();
    let pushed_obie = chat
        .push_with(&to_alice("obie-bank", "5.00"), &[])
        .await
        .unwrap();
    let mut trace = bankgate::demo::FlowTrace::default();
    let code = chat.approve(&pushed_obie, &mut trace).await.unwrap();
    let token = chat.exchange_payment(&code, &pushed_obie).await.unwrap();
    let pushed_bg = chat
        .push_with(&to_alice(PAYER_BANK, "6.00"), &[])
        .await
        .unwrap();
    let bg_before = counters(&gateway, PAYER_BANK).await;

    // Alice revokes her payee consent; another user takes the freed handle.
    let (status, _) = chat
        .delete(&alice_token, &format!("/v1/consents/{alice_consent}"))
        .await
        .unwrap();
    assert_eq!(status, 204);
    let detail = account_information(
        PAYEE_BANK,
        PAYEE_PURPOSE,
        &[Scope::Accounts, Scope::Identity],
        "u-mallory",
    );
    let (mallory, _) = chat.connect(&detail).await.unwrap();
    let (_, accounts) = chat
        .get(&mallory.access_token, "/v1/accounts")
        .await
        .unwrap();
    let mallory_account = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();
    let answer = chat
        .put_json(
            &mallory.access_token,
            "/v1/payees/@alice",
            &json!({ "account_id": mallory_account }),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 201);

    // The authorised OBIE payment is refused at submission and sends nothing.
    let answer = chat
        .post_json(
            token["access_token"].as_str().unwrap(),
            "/v1/payments",
            &json!({}),
            &[("idempotency-key", "late")],
        )
        .await
        .unwrap();
    let body = answer.json();
    assert_eq!(answer.status, 409, "{body}");
    assert_eq!(problem_type(&body), "payment-payee-unavailable", "{body}");
    assert_no_iban("the refusal", &body.to_string());
    let obie = counters(&gateway, "obie-bank").await;
    assert_eq!(obie["executed"], 0, "{obie}");
    assert_eq!(
        obie["created"].as_u64().unwrap(),
        obie_created + 1,
        "{obie}"
    );
    // The Berlin Group payment is never created at the bank: the user is sent back refused.
    let mut trace = bankgate::demo::FlowTrace::default();
    let error = chat
        .approve(&pushed_bg, &mut trace)
        .await
        .expect_err("refused before the bank")
        .to_string();
    assert!(error.contains("access_denied"), "{error}");
    let bg_after = counters(&gateway, PAYER_BANK).await;
    assert_eq!(bg_after["created"], bg_before["created"], "{bg_after}");
    assert_eq!(bg_after["executed"], bg_before["executed"], "{bg_after}");
    // The refusals are on the record under the payer's consents.
    let refused = gateway
        .audit_of(token["consent_id"].as_str().unwrap())
        .await;
    assert!(
        refused.iter().any(|event| {
            event["action"] == "payment_submitted"
                && event["decision"] == "deny"
                && event["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.starts_with("payment-payee-unavailable"))
        }),
        "{refused:?}"
    );
}
