//! Berlin Group payment initiation against every official (and synthetic) PIS example in
//! `$BANKGATE_FIXTURES/berlin-group/pis/`, compared with reviewed expectations in
//! `tests/expected/berlin-group/pis/`.

use serde_json::{Value, json};

use super::wire::{self, Initiation, PaymentCreated, StatusResponse};
use crate::adapters::berlin_group::decode;
use crate::adapters::testing;
use crate::adapters::{AdapterError, PaymentOrder};

const FIXTURES: &str = "berlin-group/pis";

fn order_view(order: &PaymentOrder, debtor: Option<String>) -> Value {
    json!({
        "end_to_end_id": order.payment_id,
        "amount": order.amount.to_string(),
        "currency": order.currency,
        "creditor_iban": order.creditor_iban,
        "creditor_name": order.creditor_name,
        "remittance": order.remittance,
        "instant": order.instant,
        "debtor_iban": debtor,
    })
}

/// The canonical form of a fixture, by what its name says it is.
fn normalise(name: &str, text: &str) -> Result<Value, AdapterError> {
    let body = text.as_bytes();
    Ok(if name.contains("error-") {
        // Never the bank's text: the codes only.
        json!({ "error_codes": wire::error_codes(body) })
    } else if name.contains("_request") {
        let initiation: Initiation = decode(body)?;
        let (order, debtor) = initiation.order(name.contains("instant"))?;
        order_view(&order, debtor)
    } else if name.contains("post-") {
        let created: PaymentCreated = decode(body)?;
        let created = created.validate()?;
        json!({
            "payment_id": created.payment_id,
            "status": created.status,
            "links": created.links,
            "oauth_scope": super::scope(&created.payment_id),
        })
    } else if name.contains("get-payment") || name.contains("delete-payment") {
        let status: StatusResponse = decode(body)?;
        json!(status.into_payment("payment-1")?)
    } else {
        panic!("fixture {name} has no normaliser: add one to normalise()")
    })
}

#[test]
fn every_pis_fixture_normalises_as_expected() {
    assert_eq!(testing::check_every_fixture(FIXTURES, normalise), 16);
}

#[test]
fn bankgate_sends_what_a_bank_reads_back() {
    let order = testing::order("pay_0193a1", "12.50", true);
    let body = wire::initiation(&order);
    // The amount is a string, exactly as ordered; no debtor: the user picks it at the bank.
    assert_eq!(body["instructedAmount"]["amount"], "12.50");
    assert!(body.get("debtorAccount").is_none());
    let read: Initiation = serde_json::from_value(body).unwrap();
    assert_eq!(read.order(true).unwrap(), (order.clone(), None));
    assert_eq!(super::product(&order), wire::INSTANT_SCT);
}

#[test]
fn an_unknown_status_is_not_guessed() {
    let status: StatusResponse = decode(br#"{"transactionStatus": "XXXX"}"#).unwrap();
    let error = status.into_payment("p").unwrap_err();
    assert!(matches!(error, AdapterError::Decode(_)), "{error:?}");
    let created: PaymentCreated = decode(br#"{"transactionStatus": "RCVD"}"#).unwrap();
    assert!(matches!(created.validate(), Err(AdapterError::Decode(_))));
}

#[test]
fn a_rejection_reason_is_read_from_the_iso_code_of_tpp_messages() {
    use crate::payments::{PaymentStatus, RejectionReason};
    #[track_caller]
    fn check(body: &str, reason: RejectionReason, code: Option<&str>) {
        let status: StatusResponse = decode(body.as_bytes()).unwrap();
        let payment = status.into_payment("p").unwrap();
        assert_eq!(
            payment.status.status,
            PaymentStatus::Rejected { reason },
            "{body}"
        );
        assert_eq!(payment.status.raw, "RJCT");
        assert_eq!(payment.status.reason_code.as_deref(), code, "{body}");
    }
    check(
        r#"{"transactionStatus": "RJCT", "tppMessages": [
            {"category": "WARNING", "code": "AM04", "text": "not enough money"}]}"#,
        RejectionReason::InsufficientFunds,
        Some("AM04"),
    );
    // A NextGenPSD2 message code is not a reason; the first ISO code after it is.
    check(
        r#"{"transactionStatus": "RJCT", "tppMessages": [
            {"category": "WARNING", "code": "WARNING"},
            {"category": "WARNING", "code": "AC04"}]}"#,
        RejectionReason::AccountClosed,
        Some("AC04"),
    );
    // An ISO code bankgate does not map is kept raw, the reason `other`.
    check(
        r#"{"transactionStatus": "RJCT", "tppMessages": [{"category": "WARNING", "code": "MS03"}]}"#,
        RejectionReason::Other,
        Some("MS03"),
    );
    // No code (the bank's words in psuMessage are never read).
    check(
        r#"{"transactionStatus": "RJCT", "psuMessage": "AM04: no money"}"#,
        RejectionReason::Other,
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// A round trip through the sandbox bank

#[tokio::test]
async fn a_payment_through_the_sandbox_bank_is_executed_once() {
    use crate::adapters::PaymentInitiation;
    use crate::adapters::berlin_group::BerlinGroup;
    use crate::payments::PaymentStatus;

    let (sandbox, bank) = testing::sandbox_bank("berlin-group", "demo-bank", "").await;
    let order = testing::order("pay-bg-1", "12.50", true);
    let consent = BerlinGroup
        .create_payment_consent(&bank, &order)
        .await
        .unwrap();
    let tokens = testing::tokens(&bank, &consent, None).await;
    let session = testing::session(&bank, &tokens, consent.id.as_deref());
    let submitted = BerlinGroup.submit(session, &order).await.unwrap();
    assert_eq!(submitted.status.status, PaymentStatus::Settled);
    assert_eq!(
        submitted.debtor_iban.as_deref(),
        Some("DE92999900000012345601")
    );
    let id = consent.id.as_deref().unwrap();
    let status = BerlinGroup.status(session, id).await.unwrap();
    assert_eq!(status.status.raw, "ACSC");
    let found = BerlinGroup.find(session, &order).await.unwrap();
    assert_eq!(found.map(|payment| payment.id).as_deref(), Some(id));
    assert_eq!(sandbox.payments.created(), 1);
    assert_eq!(sandbox.payments.executed(), 1);
}
