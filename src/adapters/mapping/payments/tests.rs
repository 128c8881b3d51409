//! `[mapping.payments]`: what compiles, the body bankgate sends, the answers it reads.

use rust_decimal::Decimal;
use serde_json::json;

use crate::adapters::mapping::rules::{PaymentsSpec, compile_payments as compile};
use crate::adapters::{AdapterError, PaymentOrder};
use crate::payments::{PaymentStatus, RejectionReason};

fn spec() -> PaymentsSpec {
    toml::from_str(
        r#"
        create = "/payments"
        read = "/payments/{payment}"
        scope = "payments:write"
        authorization_param = "payment_ref"
        id = "/result/paymentRef"
        status = "/result/state"
        reason = "/result/reasonCode"
        debtor_iban = "/result/debtorIban"
        statuses = { NEW = "RCVD", DONE = "ACSC", FAILED = "RJCT" }
        [body]
        "/endToEndId" = "payment_id"
        "/amountMinor" = "amount_minor"
        "/ccy" = "currency"
        "/payee/iban" = "creditor_iban"
        "/payee/name" = "creditor_name"
        "/reference" = "remittance"
        "/instant" = "instant"
        "#,
    )
    .expect("the spec parses")
}

fn order() -> PaymentOrder {
    PaymentOrder {
        payment_id: "pay_1".into(),
        amount: Decimal::new(1250, 2),
        currency: "EUR".into(),
        creditor_iban: "DE89370400440532013000".into(),
        creditor_name: "Alice Schmidt".into(),
        remittance: None,
        instant: true,
    }
}

#[test]
fn the_body_places_the_order_and_leaves_out_what_it_lacks() {
    let rules = compile(&spec()).unwrap();
    assert_eq!(
        rules.body(&order()).unwrap(),
        json!({
            "endToEndId": "pay_1",
            "amountMinor": 1250,
            "ccy": "EUR",
            "payee": {"iban": "DE89370400440532013000", "name": "Alice Schmidt"},
            "instant": true,
        })
    );
    // A yen amount has no minor units; a decimal string is written as such.
    let mut yen = order();
    yen.currency = "JPY".into();
    yen.amount = Decimal::new(1250, 0);
    assert_eq!(rules.body(&yen).unwrap()["amountMinor"], 1250);
    let mut spec = spec();
    spec.body.insert("/amountMinor".into(), "amount".into());
    let rules = compile(&spec).unwrap();
    assert_eq!(rules.body(&order()).unwrap()["amountMinor"], "12.50");
}

#[test]
fn answers_are_read_through_the_pointers_and_the_status_table() {
    let rules = compile(&spec()).unwrap();
    let created = rules
        .payment(
            br#"{"result": {"paymentRef": "p-9", "state": "NEW"}}"#,
            None,
        )
        .unwrap();
    assert_eq!(created.id, "p-9");
    assert_eq!(created.status.status, PaymentStatus::Received);
    assert_eq!(created.status.raw, "NEW");
    let failed = rules
        .payment(
            br#"{"result": {"state": "FAILED", "reasonCode": "AM04",
                 "debtorIban": "DE92 9999 0000 0012 3456 01"}}"#,
            Some("p-9"),
        )
        .unwrap();
    assert_eq!(
        failed.status.status,
        PaymentStatus::Rejected {
            reason: RejectionReason::InsufficientFunds
        }
    );
    assert_eq!(failed.status.reason_code.as_deref(), Some("AM04"));
    assert_eq!(
        failed.debtor_iban.as_deref(),
        Some("DE92999900000012345601")
    );
    // A state the table does not know is not guessed; a creation without an id is refused.
    for body in [
        &br#"{"result": {"paymentRef": "p", "state": "WEIRD"}}"#[..],
        &br#"{"result": {"state": "NEW"}}"#[..],
    ] {
        assert!(matches!(
            rules.payment(body, None),
            Err(AdapterError::Decode(_))
        ));
    }
}

#[test]
fn a_rule_that_does_not_compile_is_named() {
    #[track_caller]
    fn refused(change: impl FnOnce(&mut PaymentsSpec), rule: &str) {
        let mut spec = spec();
        change(&mut spec);
        let error = compile(&spec).unwrap_err();
        assert_eq!(error.rule, rule, "{}", error.message);
    }
    refused(|s| s.read = "/payments".into(), "mapping.payments.read");
    refused(|s| s.create = "payments".into(), "mapping.payments.create");
    refused(|s| s.scope = " ".into(), "mapping.payments.scope");
    refused(
        |s| {
            s.statuses.insert("ODD".into(), "NOPE".into());
        },
        "mapping.payments.statuses.ODD",
    );
    refused(
        |s| {
            s.body.insert("/x".into(), "iban".into());
        },
        "mapping.payments.body.\"/x\"",
    );
    refused(
        |s| {
            s.body.remove("/ccy");
        },
        "mapping.payments.body",
    );
    refused(|s| s.id = "result".into(), "mapping.payments.id");
}
