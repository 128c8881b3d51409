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
        payment_id: "pay_0193a1".into(),
        amount: "12.50".parse().unwrap(),
        currency: "GBP".into(),
        creditor_iban: "GB82WEST12345698765432".into(),
        creditor_name: "Marie Martin".into(),
        remittance: Some("pizza".into()),
        instant: false,
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
