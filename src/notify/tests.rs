//! Unit tests of notifications: event names, the pending → booked rule, the pace.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::detect::{self, Keys};
use super::engine::{backoff, interval};
use super::*;
use crate::crypto::Sealer;
use crate::model::{Transaction, TransactionStatus};

fn transaction(
    id: &str,
    status: TransactionStatus,
    amount: &str,
    counterparty: &str,
) -> Transaction {
    Transaction {
        id: id.into(),
        account_id: "acc_1".into(),
        status,
        booking_date: (status == TransactionStatus::Booked)
            .then(|| NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()),
        value_date: NaiveDate::from_ymd_opt(2026, 12, 3),
        amount: amount.parse::<Decimal>().unwrap(),
        currency: "EUR".into(),
        description: Some("Card  payment".into()),
        counterparty_name: Some(counterparty.into()),
        counterparty_country: None,
        merchant_category_code: None,
        bank_code: None,
    }
}

fn keys() -> Keys {
    Keys::new(Arc::new(Sealer::ephemeral().unwrap()))
}

/// The ids `sort` calls new and renamed, given what was seen before.
#[track_caller]
fn check(before: &[Transaction], now: &[Transaction], new: &[&str], renamed: &[&str]) {
    let keys = keys();
    let seen: Vec<Seen> = before
        .iter()
        .map(|transaction| keys.seen("c", "a", transaction))
        .collect();
    let listed = now
        .iter()
        .map(|transaction| (transaction, keys.seen("c", "a", transaction)))
        .collect();
    let sorted = detect::sort(listed, &seen);
    let new_ids: Vec<String> = sorted.new.iter().map(|(t, _)| t.id.clone()).collect();
    let renamed_ids: Vec<String> = sorted
        .renamed
        .iter()
        .map(|(t, _, _)| t.id.clone())
        .collect();
    assert_eq!(new_ids, new, "new");
    assert_eq!(renamed_ids, renamed, "renamed");
    // Each renamed one replaces an earlier one with its matching key.
    for (_, key, earlier) in &sorted.renamed {
        assert_eq!(seen[*earlier].match_key, key.match_key);
    }
}

#[test]
fn pending_then_booked_is_one_transaction() {
    use TransactionStatus::{Booked, Pending};
    let pending = transaction("p-1", Pending, "-12.30", "Café Central");
    let booked = transaction("b-1", Booked, "-12.3", "  CAFÉ   central ");
    // Announced while pending; booked under another id: renamed, not new.
    check(
        std::slice::from_ref(&pending),
        std::slice::from_ref(&booked),
        &[],
        &["b-1"],
    );
    // Still listed as pending too: the booked one is another transaction.
    check(
        std::slice::from_ref(&pending),
        &[pending.clone(), booked.clone()],
        &["b-1"],
        &[],
    );
    // Another amount (a near miss): new.
    let other = transaction("b-2", Booked, "-12.31", "Café Central");
    check(std::slice::from_ref(&pending), &[other], &["b-2"], &[]);
    // Two equal coffees, one seen pending: one renamed, one new.
    let twin = transaction("b-3", Booked, "-12.30", "Café Central");
    check(
        std::slice::from_ref(&pending),
        &[booked, twin],
        &["b-3"],
        &["b-1"],
    );
    // Nothing seen: everything new; seen ids are neither.
    check(&[], std::slice::from_ref(&pending), &["p-1"], &[]);
    check(
        std::slice::from_ref(&pending),
        std::slice::from_ref(&pending),
        &[],
        &[],
    );
}

#[test]
fn balance_digests_ignore_order_and_stamps() {
    use crate::model::{Balance, BalanceType};
    let balance = |kind, amount: &str, minute: i64| Balance {
        account_id: "acc_1".into(),
        kind,
        amount: amount.parse().unwrap(),
        currency: "EUR".into(),
        credit_limit_included: None,
        as_of: chrono::DateTime::from_timestamp(1_700_000_000 + minute * 60, 0),
    };
    let keys = keys();
    let one = [
        balance(BalanceType::InterimAvailable, "10.00", 1),
        balance(BalanceType::ClosingBooked, "12.00", 1),
    ];
    let same = [
        balance(BalanceType::ClosingBooked, "12", 2),
        balance(BalanceType::InterimAvailable, "10.0", 3),
    ];
    let moved = [
        balance(BalanceType::ClosingBooked, "12.00", 1),
        balance(BalanceType::InterimAvailable, "9.99", 1),
    ];
    let digest = |balances: &[Balance]| keys.balance_digest("c", "a", balances);
    assert_eq!(digest(&one), digest(&same));
    assert_ne!(digest(&one), digest(&moved));
    // Bound to the consent and account: no digest says anything across consents.
    assert_ne!(digest(&one), keys.balance_digest("c2", "a", &one));
}

#[test]
fn events_have_wire_names_and_scopes() {
    for &event in EventType::ALL {
        assert_eq!(EventType::parse(event.as_str()), Some(event));
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json, event.as_str());
    }
    assert!(EventType::is_notification("balance.changed"));
    assert!(!EventType::is_notification("consent.revoked"));
    assert_eq!(EventType::BalanceChanged.scope(), Scope::Balances);
}

#[test]
fn refreshes_are_spread_over_the_day_and_back_off() {
    assert_eq!(interval(4), chrono::Duration::hours(6));
    assert_eq!(interval(24), chrono::Duration::hours(1));
    assert_eq!(interval(0), chrono::Duration::hours(24));
    let pace = chrono::Duration::hours(1);
    assert_eq!(backoff(1, pace), chrono::Duration::minutes(1));
    assert_eq!(backoff(3, pace), chrono::Duration::minutes(4));
    assert_eq!(backoff(30, pace), pace);
}
