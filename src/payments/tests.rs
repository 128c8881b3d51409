//! Validation, status mapping, limits and idempotency rules, data-driven.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use super::idempotency::{self, KeyRecord, StoredResponse};
use super::*;

fn request(currency: &str, amount: &str, iban: &str) -> PaymentRequest {
    PaymentRequest {
        kind: PAYMENT_INITIATION.to_owned(),
        bank: "stet-bank".to_owned(),
        purpose: "p2p-payment".to_owned(),
        instructed_amount: Amount {
            currency: currency.to_owned(),
            amount: Decimal::from_str(amount).unwrap(),
        },
        creditor: None,
        creditor_account: CreditorAccount {
            iban: iban.to_owned(),
        },
        creditor_name: "Marie Martin".to_owned(),
        remittance: Some("pizza".to_owned()),
        instant: true,
        user_ref: "u-81f3".to_owned(),
        verification: None,
    }
}

const DE: &str = "DE89370400440532013000";
const FR: &str = "FR1420041010050500013M02606";

#[track_caller]
fn check(request: PaymentRequest, expected: Result<(), Invalid>) {
    assert_eq!(request.validate().map(|_| ()), expected, "{request:?}");
}

#[test]
fn validation() {
    check(request("EUR", "12.50", DE), Ok(()));
    check(request("EUR", "12.5", FR), Ok(()));
    check(request("JPY", "1250", DE), Ok(()));
    check(request("BHD", "1.250", DE), Ok(()));
    check(request("EUR", "0", DE), Err(Invalid::AmountNotPositive));
    check(request("EUR", "0.00", DE), Err(Invalid::AmountNotPositive));
    check(request("EUR", "-1.00", DE), Err(Invalid::AmountNotPositive));
    let too_precise = |currency: &str, exponent| {
        Err(Invalid::TooPrecise {
            currency: currency.to_owned(),
            exponent,
        })
    };
    check(request("EUR", "12.505", DE), too_precise("EUR", 2));
    check(request("EUR", "12.500", DE), too_precise("EUR", 2));
    check(request("JPY", "12.5", DE), too_precise("JPY", 0));
    for unknown in ["XYZ", "eur", "EURO", "", "€"] {
        check(
            request(unknown, "1", DE),
            Err(Invalid::UnknownCurrency(unknown.to_owned())),
        );
    }
    // Gold has no minor unit: not a currency to pay in.
    check(
        request("XAU", "1", DE),
        Err(Invalid::UnknownCurrency("XAU".to_owned())),
    );
    check(
        request("EUR", "1", "DE89370400440532013001"),
        Err(Invalid::InvalidIban),
    );
    check(
        request("EUR", "1", "not an iban"),
        Err(Invalid::InvalidIban),
    );
    check(request("EUR", "1", "DE89 3704 0044 0532 0130 00"), Ok(()));

    let mut wrong_type = request("EUR", "1", DE);
    wrong_type.kind = "account_information".to_owned();
    check(wrong_type, Err(Invalid::WrongType));
    let mut no_name = request("EUR", "1", DE);
    no_name.creditor_name = "  ".to_owned();
    check(no_name, Err(Invalid::CreditorName));
    let mut long_remittance = request("EUR", "1", DE);
    long_remittance.remittance = Some("x".repeat(MAX_REMITTANCE_CHARS + 1));
    check(long_remittance, Err(Invalid::RemittanceTooLong));
    let mut no_user = request("EUR", "1", DE);
    no_user.user_ref = String::new();
    check(no_user, Err(Invalid::NoUserRef));
}

#[test]
fn the_iban_is_kept_electronic_and_shown_masked() {
    let payment = request("EUR", "12.50", "de89 3704 0044 0532 0130 00")
        .validate()
        .unwrap();
    assert_eq!(payment.creditor_iban, DE);
    assert_eq!(payment.masked_creditor(), "DE89**************3000");
    let facts = payment.facts();
    assert!(facts.contains(&"amount:12.50".to_owned()), "{facts:?}");
    assert!(facts.contains(&"currency:EUR".to_owned()), "{facts:?}");
    assert!(facts.iter().all(|fact| !fact.contains(DE)), "{facts:?}");
}

#[test]
fn payee_is_not_the_payer() {
    let payment = request("EUR", "1", DE).validate().unwrap();
    assert_eq!(
        payment.check_payer("DE89 3704 0044 0532 0130 00"),
        Err(Invalid::PayeeIsPayer)
    );
    assert_eq!(payment.check_payer(FR), Ok(()));
}

#[track_caller]
fn status(code: &str, reason: Option<&str>, expected: Option<PaymentStatus>) {
    assert_eq!(
        PaymentStatus::from_iso20022(code, reason),
        expected,
        "{code}"
    );
}

#[test]
fn iso20022_codes() {
    use PaymentStatus::*;
    status("RCVD", None, Some(Received));
    for code in ["ACTC", "ACCP", "ACFC", "ACWC", "PATC"] {
        status(code, None, Some(Accepted));
    }
    status("ACSP", None, Some(SettlementInProcess));
    status("ACWP", None, Some(SettlementInProcess));
    status("ACSC", None, Some(Settled));
    status("ACCC", None, Some(Settled));
    status("PDNG", None, Some(Pending));
    status("CANC", None, Some(Cancelled));
    let rejected = |reason| Some(Rejected { reason });
    status(
        "RJCT",
        Some("AM04"),
        rejected(RejectionReason::InsufficientFunds),
    );
    status(
        "RJCT",
        Some("AC04"),
        rejected(RejectionReason::AccountClosed),
    );
    status("RJCT", Some("RR04"), rejected(RejectionReason::Regulatory));
    status("RJCT", Some("ZZ99"), rejected(RejectionReason::Other));
    status("RJCT", None, rejected(RejectionReason::Other));
    status("WHAT", None, None);
    let kept = BankStatus::from_iso20022("ACSC", None).unwrap();
    assert_eq!(kept.raw, "ACSC");
    let json =
        serde_json::to_value(BankStatus::from_iso20022("RJCT", Some("AM04")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "rejected", "reason": "insufficient_funds",
            "raw": "RJCT", "reason_code": "AM04"})
    );
}

#[test]
fn statuses_only_move_forward() {
    use PaymentStatus::*;
    let rejected = Rejected {
        reason: RejectionReason::Other,
    };
    assert!(Received.can_become(Accepted));
    assert!(Accepted.can_become(SettlementInProcess));
    assert!(SettlementInProcess.can_become(Settled));
    assert!(Pending.can_become(rejected));
    assert!(!Settled.can_become(rejected));
    assert!(!rejected.can_become(Settled));
    assert!(!Cancelled.can_become(Accepted));
    assert!(!SettlementInProcess.can_become(Accepted));
    assert!(!Accepted.can_become(Accepted));
}

#[test]
fn statuses_parse_their_wire_names() {
    let reasons = [
        "AM04", "AC04", "AC06", "AC01", "AM02", "AM05", "RR04", "XX99",
    ];
    let mut seen = Vec::new();
    for code in ["RCVD", "ACTC", "ACSP", "ACSC", "PDNG", "CANC"]
        .into_iter()
        .map(|code| (code, None))
        .chain(reasons.into_iter().map(|reason| ("RJCT", Some(reason))))
    {
        let status = PaymentStatus::from_iso20022(code.0, code.1).unwrap();
        let reason = status.reason().map(RejectionReason::as_str);
        assert_eq!(PaymentStatus::parse(status.as_str(), reason), Some(status));
        seen.push(status);
    }
    assert_eq!(seen.len(), 14);
    assert_eq!(PaymentStatus::parse("rejected", None), None);
    assert_eq!(PaymentStatus::parse("rejected", Some("nope")), None);
    assert_eq!(PaymentStatus::parse("ACSC", None), None);
}

fn limits() -> PaymentLimits {
    PaymentLimits {
        max_amount_per_payment: Decimal::from(100),
        max_amount_per_day: Decimal::from(250),
        currencies: BTreeSet::from(["EUR".to_owned()]),
        instant_allowed: false,
    }
}

#[test]
fn limits_refuse_what_the_policy_does_not_allow() {
    let check = |request: PaymentRequest, spent: i64| {
        limits()
            .check(
                "p2p-payment",
                &request.validate().unwrap(),
                Decimal::from(spent),
            )
            .map_err(|refusal| refusal.slug())
    };
    let mut standard = request("EUR", "100.00", DE);
    standard.instant = false;
    assert_eq!(check(standard.clone(), 150), Ok(()));
    assert_eq!(check(standard.clone(), 151), Err("payment-limit-per-day"));
    let mut too_much = standard.clone();
    too_much.set_amount("100.01");
    assert_eq!(check(too_much, 0), Err("payment-limit-per-payment"));
    assert_eq!(
        check(request("EUR", "1", DE), 0),
        Err("payment-instant-not-allowed")
    );
    let mut pounds = request("GBP", "1", DE);
    pounds.instant = false;
    assert_eq!(check(pounds, 0), Err("payment-currency-not-allowed"));
}

impl PaymentRequest {
    fn set_amount(&mut self, amount: &str) {
        self.instructed_amount.amount = Decimal::from_str(amount).unwrap();
    }
}

#[test]
fn idempotency_keys() {
    assert!(IdempotencyKey::parse(Some("a1b2-c3")).is_ok());
    assert_eq!(
        IdempotencyKey::parse(None),
        Err(idempotency::KeyError::Missing)
    );
    for bad in ["", "has space", "é", &"k".repeat(256)] {
        assert_eq!(
            IdempotencyKey::parse(Some(bad)),
            Err(idempotency::KeyError::Malformed),
            "{bad:?}"
        );
    }
}

#[test]
fn the_same_body_in_another_order_is_the_same_request() {
    let a = serde_json::json!({"a": 1, "b": {"c": "2", "d": 3}});
    let b: serde_json::Value =
        serde_json::from_str(r#"{ "b": {"d": 3, "c": "2"}, "a": 1 }"#).unwrap();
    assert_eq!(idempotency::fingerprint(&a), idempotency::fingerprint(&b));
    let c = serde_json::json!({"a": 1, "b": {"c": "2.0", "d": 3}});
    assert_ne!(idempotency::fingerprint(&a), idempotency::fingerprint(&c));
}

#[test]
fn replay_rules() {
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    let record = |response: Option<StoredResponse>, age_hours| KeyRecord {
        client_id: "platform".to_owned(),
        key: IdempotencyKey::parse(Some("k1")).unwrap(),
        fingerprint: "f1".to_owned(),
        payment_id: "pay_1".to_owned(),
        response,
        created_at: now - Duration::hours(age_hours),
    };
    let done = StoredResponse {
        status: 201,
        body: serde_json::json!({"id": "pay_1"}),
    };
    assert_eq!(idempotency::judge(None, "f1", now), Replay::Proceed);
    assert_eq!(
        idempotency::judge(Some(&record(None, 0)), "f1", now),
        Replay::InFlight
    );
    assert_eq!(
        idempotency::judge(Some(&record(Some(done.clone()), 0)), "f1", now),
        Replay::Same(done.clone())
    );
    assert_eq!(
        idempotency::judge(Some(&record(Some(done.clone()), 0)), "f2", now),
        Replay::Mismatch
    );
    assert_eq!(
        idempotency::judge(Some(&record(None, 0)), "f2", now),
        Replay::Mismatch
    );
    // Kept at least a day; after the retention the key is free again.
    assert_eq!(
        idempotency::judge(Some(&record(Some(done.clone()), 24)), "f2", now),
        Replay::Mismatch
    );
    assert_eq!(
        idempotency::judge(Some(&record(Some(done), 48)), "f2", now),
        Replay::Proceed
    );
}

#[test]
fn a_payments_creation_request_id_is_its_own_and_stable() {
    let id = Payment::new_id();
    let order = |payment_id: &str| PaymentOrder {
        payment_id: payment_id.to_owned(),
        amount: Decimal::new(1250, 2),
        currency: "EUR".into(),
        creditor_iban: "DE89370400440532013000".into(),
        creditor_name: "Friend".into(),
        remittance: None,
        instant: false,
    };
    let request_id = order(&id).creation_request_id();
    // The UUID in the payment id, hyphenated: the same request every time it is sent.
    assert_eq!(request_id, order(&id).creation_request_id());
    assert_eq!(request_id.replace('-', ""), id.trim_start_matches("pay_"));
    assert!(uuid::Uuid::try_parse(&request_id).is_ok());
    // Another payment, another request; an id of another form still gets a UUID.
    assert_ne!(request_id, order(&Payment::new_id()).creation_request_id());
    assert!(uuid::Uuid::try_parse(&order("legacy-1").creation_request_id()).is_ok());
}
