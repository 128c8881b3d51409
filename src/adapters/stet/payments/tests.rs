//! STET payment initiation against every PIS example in `$BANKGATE_FIXTURES/stet/pis/`,
//! compared with reviewed expectations in `tests/expected/stet/pis/`.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::wire::{self, Confirmation, Created, PaymentRequest, PaymentRequestResponse};
use crate::adapters::AdapterError;
use crate::adapters::common::parse_body;
use crate::adapters::testing;

const FIXTURES: &str = "stet/pis";

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, AdapterError> {
    parse_body(text.as_bytes(), wire::error_in_body)
}

/// The canonical form of a fixture, by what its name says it is.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    Ok(if name.contains("confirmation_request") {
        // The factor is a secret: only whether it is there.
        let confirmation: Confirmation = parse(text)?;
        json!({ "has_psu_authentication_factor": confirmation.psu_authentication_factor.is_some() })
    } else if name.contains("_request") {
        let request: PaymentRequest = parse(text)?;
        let (order, debtor) = request.order()?;
        json!({
            "end_to_end_id": order.payment_id,
            "amount": order.amount.to_string(),
            "currency": order.currency,
            "creditor_iban": order.creditor_iban,
            // What bankgate's own validation says of the creditor IBAN (country code and length).
            "creditor_iban_accepted_by_bankgate":
                crate::payments::parse_iban(&order.creditor_iban).is_ok(),
            "creditor_name": order.creditor_name,
            "remittance": order.remittance,
            "instant": order.instant,
            "debtor_iban": debtor,
        })
    } else if name.contains("get-payment-request") {
        let response: PaymentRequestResponse = parse(text)?;
        json!(response.into_payment()?)
    } else if name.contains("post-payment-requests_response")
        || name.contains("put-payment-request")
    {
        let created: Created = parse(text)?;
        json!({
            "approach": created.applied_authentication_approach.as_ref().map(wire::Approach::name),
            "resource_id": created.resource_id(),
        })
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_pis_fixture_normalises_as_expected() {
    assert_eq!(testing::check_every_fixture(FIXTURES, normalise), 6);
}

#[test]
fn bankgate_sends_what_a_bank_reads_back() {
    let order = testing::order("pay_0193a1", "12.50", true);
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    let body = wire::initiation(&order, now);
    assert_eq!(
        body["creditTransferTransaction"][0]["instructedAmount"]["amount"],
        "12.50"
    );
    assert_eq!(body["creationDateTime"], "2026-12-04T12:00:00.000+00:00");
    assert!(body.get("debtorAccount").is_none());
    let read: PaymentRequest = serde_json::from_value(body).unwrap();
    assert_eq!(read.order().unwrap(), (order, None));
}

#[test]
fn a_rejection_keeps_the_reason_code_and_not_the_banks_words() {
    let response: PaymentRequestResponse = parse(&testing::fixture(
        FIXTURES,
        "synthetic_v1.4_get-payment-request_RJCT.json",
    ))
    .unwrap();
    let payment = response.into_payment().unwrap();
    assert_eq!(payment.status.raw, "RJCT");
    assert_eq!(payment.status.reason_code.as_deref(), Some("DS02"));
    assert_eq!(payment.status.status.as_str(), "rejected");
}

// ---------------------------------------------------------------------------------------------
// A round trip through the sandbox bank

#[tokio::test]
async fn a_payment_through_the_sandbox_bank_is_confirmed_once() {
    use crate::adapters::PaymentInitiation;
    use crate::adapters::stet::Stet;
    use crate::payments::PaymentStatus;

    let (sandbox, bank) = testing::sandbox_bank("stet", "stet-bank", "").await;
    let order = testing::order("pay-stet-1", "12.50", false);
    let consent = Stet.create_payment_consent(&bank, &order).await.unwrap();
    let tokens = testing::tokens(&bank, &consent, None).await;
    let session = testing::session(&bank, &tokens, consent.id.as_deref());
    let submitted = Stet.submit(session, &order).await.unwrap();
    assert_eq!(submitted.status.status, PaymentStatus::Accepted);
    assert_eq!(
        submitted.debtor_iban.as_deref(),
        Some("DE92999900000012345601")
    );
    // A second submission finds it confirmed already: nothing moves twice.
    let again = Stet.submit(session, &order).await.unwrap();
    assert_eq!(again.id, submitted.id);
    assert_eq!(sandbox.payments.confirmations(), 2);
    assert_eq!(sandbox.payments.executed(), 1);
    let id = consent.id.as_deref().unwrap();
    sandbox
        .ledger
        .clock()
        .advance(bankgate_sandbox::ledger::SETTLEMENT);
    let status = Stet.status(session, id).await.unwrap();
    assert_eq!(status.status.status, PaymentStatus::Settled);
    let found = Stet.find(session, &order).await.unwrap();
    assert_eq!(
        found.map(|payment| payment.status.raw).as_deref(),
        Some("ACSC")
    );
}
