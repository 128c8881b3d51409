//! Payment initiation end to end (issue 13): a platform pushes a `payment_initiation` detail,
//! the user sees the payment on the consent screen, confirms it at the bank, and the platform
//! submits it with an `Idempotency-Key` — on both stores, against the sandbox banks.

use bankgate::demo::PlatformClient;
use bankgate::oauth::registration::Registration;
use bankgate::oauth::{AuthMethod, Role};
use bankgate::payments::{Amount, CreditorAccount, PAYMENT_INITIATION, PaymentRequest};
use rust_decimal::Decimal;

use crate::support::{REDIRECT_URI, StoreKind, TestGateway};

on_both_stores!(
    par_refuses_each_bad_payment_with_its_reason,
    the_consent_screen_shows_the_payment_in_english_and_french,
);

/// The payee: a friend's account (checksum valid).
const FRIEND_IBAN: &str = "DE65999900000012345602";

/// A platform approved for payments between friends (and for a data purpose).
async fn paying_platform(gateway: &TestGateway) -> PlatformClient {
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
        creditor_account: CreditorAccount {
            iban: FRIEND_IBAN.into(),
        },
        creditor_name: "Camille Martin".into(),
        remittance: Some("pizza".into()),
        instant: false,
        user_ref: "u-payer".into(),
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

async fn par_refuses_each_bad_payment_with_its_reason(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = paying_platform(&gateway).await;
    let good = serde_json::to_value(payment("stet-bank", "12.50")).unwrap();
    let with = |pointer: &str, value: serde_json::Value| {
        let mut detail = good.clone();
        *detail.pointer_mut(pointer).expect("a field") = value;
        detail
    };
    for (detail, expected) in [
        (
            with("/instructed_amount/amount", "0".into()),
            "payment-amount-not-positive",
        ),
        (
            with("/instructed_amount/amount", "-5.00".into()),
            "payment-amount-not-positive",
        ),
        (
            with("/instructed_amount/amount", "12.505".into()),
            "payment-amount-too-precise",
        ),
        (
            with("/instructed_amount/currency", "XYZ".into()),
            "payment-unknown-currency",
        ),
        (
            with("/creditor_account/iban", "DE65999900000012345603".into()),
            "payment-invalid-iban",
        ),
        (
            with("/instructed_amount/amount", "250.01".into()),
            "payment-limit-per-payment",
        ),
        (
            with("/instructed_amount/currency", "USD".into()),
            "payment-currency-not-allowed",
        ),
        (with("/bank", "fdx-bank".into()), "payment-bank-cannot-pay"),
        (
            with("/purpose", "balance-alerts".into()),
            "payment-purpose-not-allowed",
        ),
        (
            with("/creditor_name", "".into()),
            "payment-invalid-creditor-name",
        ),
    ] {
        let error = refused(&platform, detail.clone()).await;
        assert!(error.contains(expected), "{detail} → {error}");
    }
    // A purpose the platform is not approved for, and an unknown field, are refused too.
    let error = refused(&platform, with("/purpose", "fraud-alerts".into())).await;
    assert!(error.contains("not approved"), "{error}");
    let mut unknown = good.clone();
    unknown["debtor_account"] = serde_json::json!({"iban": FRIEND_IBAN});
    refused(&platform, unknown).await;
    // Nothing was recorded for any of them, and the good one passes.
    platform
        .push_payment(&payment("stet-bank", "12.50"))
        .await
        .expect("a valid payment is pushed");
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
