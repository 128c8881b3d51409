//! OBIE domestic payments against every PIS example in `$BANKGATE_FIXTURES/obie/pis/`
//! (3.1.11 and 4.0), compared with reviewed expectations in `tests/expected/obie/pis/`.

use serde_json::{Value, json};

use super::wire::{self, ConsentData, Envelope, FundsData, Initiation, PaymentData};
use crate::adapters::common::parse_body;
use crate::adapters::obie::wire::error_in_body;
use crate::adapters::testing;
use crate::adapters::{AdapterError, PaymentOrder};

const FIXTURES: &str = "obie/pis";

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, AdapterError> {
    parse_body(text.as_bytes(), error_in_body)
}

#[derive(serde::Deserialize)]
struct RequestData {
    #[serde(rename = "ConsentId")]
    consent_id: Option<String>,
    #[serde(rename = "Initiation")]
    initiation: Initiation,
}

/// The canonical form of a fixture, by what its name says it is.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    Ok(if name.contains("funds-confirmation") {
        let funds: Envelope<FundsData> = parse(text)?;
        json!({ "funds_available": funds.data.result.and_then(|result| result.funds_available) })
    } else if name.contains("_request") {
        let request: Envelope<RequestData> = parse(text)?;
        json!({
            "consent_id": request.data.consent_id,
            "initiation": request.data.initiation.view()?,
        })
    } else if name.contains("payment-consent") {
        let consent: Envelope<ConsentData> = parse(text)?;
        let (id, status) = consent.data.state()?;
        json!({
            "consent_id": id,
            "status": status,
            "initiation": consent.data.initiation.view()?,
        })
    } else if name.contains("domestic-payment") {
        let payment: Envelope<PaymentData> = parse(text)?;
        json!(payment.data.into_payment()?)
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_pis_fixture_normalises_as_expected() {
    assert_eq!(testing::check_every_fixture(FIXTURES, normalise), 29);
}

#[test]
fn both_versions_say_the_same_thing() {
    for (v3, v4) in [
        (
            "v3.1.11_get-domestic-payment_AcceptedSettlementInProcess.json",
            "v4.0_get-domestic-payment_ACSP.json",
        ),
        (
            "synthetic_v3.1.11_get-domestic-payment_AcceptedSettlementCompleted.json",
            "synthetic_v4.0_get-domestic-payment_ACSC.json",
        ),
    ] {
        let read = |name| {
            let payment: Envelope<PaymentData> = parse(&testing::fixture(FIXTURES, name)).unwrap();
            payment.data.into_payment().unwrap().status.status
        };
        assert_eq!(read(v3), read(v4), "{v3} / {v4}");
    }
}

#[test]
fn bankgate_sends_what_a_bank_reads_back() {
    let order = PaymentOrder {
        currency: "GBP".into(),
        creditor_iban: "GB82WEST12345698765432".into(),
        ..testing::order("pay_0193a1", "12.50", false)
    };
    let initiation: Initiation = serde_json::from_value(wire::initiation(&order)).unwrap();
    let view = initiation.view().unwrap();
    assert_eq!(view.amount, "12.50");
    assert_eq!(
        view.creditor_iban.as_deref(),
        Some("GB82WEST12345698765432")
    );
    assert_eq!(view.end_to_end_id.as_deref(), Some("pay_0193a1"));
    assert_eq!(view.remittance.as_deref(), Some("pizza"));
    assert_eq!(view.debtor_account, None);
}

// ---------------------------------------------------------------------------------------------
// A round trip through the sandbox bank, which verifies every signature

/// The OBIE sandbox, trusting bankgate's fresh signing key, and the bank bankgate sees.
async fn signing_sandbox(dpop: bool) -> (bankgate_sandbox::Sandbox, crate::adapters::Bank) {
    use std::sync::Arc;

    use bankgate_sandbox::{SandboxConfig, SandboxFapi};

    use crate::jose::ClientKey;

    let key = ClientKey::generate_es256().unwrap();
    let sandbox = bankgate_sandbox::start_on(
        SandboxConfig {
            fapi: SandboxFapi {
                client_jwks: Some(key.jwks()),
                require_dpop: dpop,
                ..SandboxFapi::default()
            },
            ..testing::sandbox_config("obie", "unused")
        },
        Arc::default(),
    )
    .await
    .unwrap();
    let oauth = format!(
        r#"
        token_endpoint_auth_method = "private_key_jwt"
        client_key_file_env = "TEST_BANK_KEY_FILE"
        dpop = {dpop}
        "#
    );
    let mut bank = testing::sandbox_bank_at(
        &sandbox,
        "obie",
        "obie-bank",
        "/open-banking/v4.0/aisp",
        "unused",
        &oauth,
    );
    bank.keys.assertion = Some(Arc::new(key));
    if dpop {
        bank.keys.dpop = Some(Arc::new(ClientKey::generate_es256().unwrap()));
    }
    (sandbox, bank)
}

/// Authorises `consent` at the bank and redeems the code as the gateway does
/// (`private_key_jwt`, and DPoP where the bank asks): the bank's access token.
async fn authorised(
    bank: &crate::adapters::Bank,
    consent: &crate::adapters::BankConsent,
) -> String {
    let verifier = crate::crypto::random_token(32).unwrap();
    let code = testing::authorize(bank, consent, &verifier, None).await;
    let grant = crate::adapters::bank_oauth::exchange_code(
        bank,
        testing::REDIRECT_URI,
        &code,
        verifier,
        consent.id.clone(),
    )
    .await
    .unwrap();
    grant.access_token
}

fn order(payment_id: &str, amount: &str) -> PaymentOrder {
    testing::order(payment_id, amount, false)
}

#[tokio::test]
async fn a_signed_payment_through_the_sandbox_bank_is_made_once() {
    signed_payment_is_made_once(false).await;
}

#[tokio::test]
async fn a_signed_payment_through_a_dpop_sandbox_bank_is_made_once() {
    signed_payment_is_made_once(true).await;
}

async fn signed_payment_is_made_once(dpop: bool) {
    use crate::adapters::obie::Obie;
    use crate::adapters::{BankSession, PaymentInitiation};
    use crate::payments::PaymentStatus;

    let (sandbox, bank) = signing_sandbox(dpop).await;
    let order = order("pay-obie-1", "12.50");
    let consent = Obie.create_payment_consent(&bank, &order).await.unwrap();
    assert_eq!(consent.oauth_scopes, ["openid", "payments"]);
    let access_token = authorised(&bank, &consent).await;
    let session = BankSession {
        bank: &bank,
        access_token: &access_token,
        bank_consent_id: consent.id.as_deref(),
    };
    // Authorised, not submitted: nothing to find.
    assert_eq!(Obie.find(session, &order).await.unwrap(), None);
    let made = Obie.submit(session, &order).await.unwrap();
    assert_eq!(made.status.status, PaymentStatus::Accepted);
    assert_eq!(made.status.raw, "ACTC");
    assert_eq!(made.debtor_iban.as_deref(), Some("DE92999900000012345601"));
    // Reconciliation finds the same payment; the bank makes no other.
    let found = Obie.find(session, &order).await.unwrap().unwrap();
    assert_eq!(found.id, made.id);
    assert_eq!(sandbox.payments.executed(), 1);
    sandbox
        .ledger
        .clock()
        .advance(bankgate_sandbox::ledger::SETTLEMENT);
    let settled = Obie.status(session, &made.id).await.unwrap();
    assert_eq!(settled.status.status, PaymentStatus::Settled);
    assert_eq!(sandbox.ledger.movements("NL18BKGT0417164300").len(), 1);
}

#[tokio::test]
async fn a_bank_refusal_comes_back_with_its_reason() {
    use crate::adapters::obie::Obie;
    use crate::adapters::{BankSession, PaymentInitiation};
    use crate::payments::{PaymentStatus, RejectionReason};

    let (_sandbox, bank) = signing_sandbox(false).await;
    let order = order("pay-obie-2", "5000.00");
    let consent = Obie.create_payment_consent(&bank, &order).await.unwrap();
    let access_token = authorised(&bank, &consent).await;
    let session = BankSession {
        bank: &bank,
        access_token: &access_token,
        bank_consent_id: consent.id.as_deref(),
    };
    let made = Obie.submit(session, &order).await.unwrap();
    assert_eq!(
        made.status.status,
        PaymentStatus::Rejected {
            reason: RejectionReason::InsufficientFunds
        }
    );
    assert_eq!(made.status.reason_code.as_deref(), Some("AM04"));
}

#[tokio::test]
async fn without_a_signing_key_nothing_is_sent() {
    use crate::adapters::PaymentInitiation;
    use crate::adapters::obie::Obie;

    let (sandbox, mut bank) = signing_sandbox(false).await;
    bank.keys.assertion = None;
    let refused = Obie
        .create_payment_consent(&bank, &order("pay-obie-3", "1.00"))
        .await
        .unwrap_err();
    assert!(matches!(refused, AdapterError::Refused(_)), "{refused:?}");
    assert_eq!(sandbox.payments.created(), 0);
}

#[test]
fn the_payment_api_sits_beside_the_account_api() {
    let bank_at = |base: &str| {
        let manifest: crate::adapters::manifest::Manifest = toml::from_str(&format!(
            r#"
            id = "b"
            name = "B"
            country = "GB"
            profile = "obie"
            api_base_url = "{base}"
            [oauth]
            authorization_endpoint = "https://bank.example/authorize"
            token_endpoint = "https://bank.example/token"
            client_id_env = "ID"
            client_secret_env = "SECRET"
            "#
        ))
        .unwrap();
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        crate::adapters::Bank::new(
            manifest,
            "id".into(),
            Some("secret".into()),
            &crate::egress::Egress::new(true),
        )
        .unwrap()
    };
    let check = |base: &str, expected: &str| {
        let url = super::endpoint(&bank_at(base), &["domestic-payments", "dp-1"]).unwrap();
        assert_eq!(url.as_str(), expected);
    };
    check(
        "https://bank.example/open-banking/v4.0/aisp",
        "https://bank.example/open-banking/v4.0/pisp/domestic-payments/dp-1",
    );
    check(
        "https://bank.example/open-banking/v3.1/aisp/",
        "https://bank.example/open-banking/v3.1/pisp/domestic-payments/dp-1",
    );
    check(
        "https://bank.example/ob",
        "https://bank.example/ob/pisp/domestic-payments/dp-1",
    );
}
