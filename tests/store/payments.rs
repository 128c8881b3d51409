//! Conformance cases for payments and the platforms' idempotency keys (migration V11): record
//! and claim, replay, mismatch, a concurrent duplicate, compare-and-set, the status job's lease,
//! the daily sum, one payment per consent, purging keys. Each case runs on both stores.

use std::collections::HashSet;
use std::sync::Arc;

use bankgate::payments::idempotency::{KEY_RETENTION, StoredResponse, fingerprint};
use bankgate::payments::{
    Amount, BankStatus, CreditorAccount, DayCount, IdempotencyKey, KeyRecord, PAYMENT_INITIATION,
    Payment, PaymentRequest, PaymentStatus, RejectionReason, Replay, Submission,
};
use bankgate::store::{Store, StoreError};
use chrono::{DateTime, Duration};
use rust_decimal::Decimal;
use serde_json::json;

use super::{ROUNDS, race, t0};

fn request(amount: &str, currency: &str, user_ref: &str) -> PaymentRequest {
    PaymentRequest {
        kind: PAYMENT_INITIATION.to_owned(),
        bank: "stet-bank".to_owned(),
        purpose: "p2p-payment".to_owned(),
        instructed_amount: Amount {
            currency: currency.to_owned(),
            amount: amount.parse().unwrap(),
        },
        creditor: None,
        creditor_account: CreditorAccount {
            iban: "DE89370400440532013000".to_owned(),
        },
        creditor_name: "Friend".to_owned(),
        remittance: Some("pizza".to_owned()),
        instant: true,
        user_ref: user_ref.to_owned(),
        verification: None,
    }
}

fn payment(id: &str, client_id: &str, consent_id: &str, request: PaymentRequest) -> Payment {
    Payment {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        consent_id: consent_id.to_owned(),
        bank_id: "stet-bank".to_owned(),
        request,
        submission: Submission::Recorded,
        bank_payment_id: None,
        status: None,
        created_at: t0(),
        updated_at: t0(),
        next_poll_at: None,
        polls: 0,
    }
}

fn key(client_id: &str, key: &str, payment: &Payment, body: &serde_json::Value) -> KeyRecord {
    KeyRecord {
        client_id: client_id.to_owned(),
        key: IdempotencyKey::parse(Some(key)).unwrap(),
        fingerprint: fingerprint(body),
        payment_id: payment.id.clone(),
        response: None,
        created_at: payment.created_at,
    }
}

fn response(payment_id: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: json!({"id": payment_id, "status": "accepted", "amount": "12.50"}),
    }
}

pub async fn payments_record_claim_and_replay(store: Arc<dyn Store>) {
    let body = json!({"consent": "c-1"});
    let first = payment("pay_1", "app", "c-1", request("12.50", "EUR", "u-1"));
    let claim = key("app", "k-1", &first, &body);
    assert_eq!(
        store.record_payment(&first, &claim, t0()).await.unwrap(),
        Replay::Proceed
    );
    assert_eq!(store.payment("app", "pay_1").await.unwrap(), Some(first));
    // Another platform does not see it, nor does an id that is not one.
    assert_eq!(store.payment("other-app", "pay_1").await.unwrap(), None);
    assert_eq!(store.payment("app", "pay_\0").await.unwrap(), None);

    // The same key and body while the first is in flight: 409, and nothing stored.
    let retry = payment("pay_2", "app", "c-1", request("12.50", "EUR", "u-1"));
    let retry_key = key("app", "k-1", &retry, &body);
    assert_eq!(
        store
            .record_payment(&retry, &retry_key, t0())
            .await
            .unwrap(),
        Replay::InFlight
    );
    assert_eq!(store.payment("app", "pay_2").await.unwrap(), None);

    // Completed: the same key and body replays the stored response.
    store
        .complete_key("app", &claim.key, &response("pay_1"))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_payment(&retry, &retry_key, t0() + Duration::hours(1))
            .await
            .unwrap(),
        Replay::Same(response("pay_1"))
    );
    assert_eq!(store.payment("app", "pay_2").await.unwrap(), None);

    // Keys are the platform's own: another platform's identical key is a new request.
    let theirs = payment("pay_3", "other-app", "c-3", request("5.00", "EUR", "u-1"));
    let their_key = key("other-app", "k-1", &theirs, &body);
    assert_eq!(
        store
            .record_payment(&theirs, &their_key, t0())
            .await
            .unwrap(),
        Replay::Proceed
    );
    assert!(store.payment("other-app", "pay_3").await.unwrap().is_some());
}

pub async fn payments_same_key_other_body_is_a_mismatch(store: Arc<dyn Store>) {
    let first = payment("pay_1", "app", "c-1", request("12.50", "EUR", "u-1"));
    let body = json!({"consent": "c-1"});
    store
        .record_payment(&first, &key("app", "k-1", &first, &body), t0())
        .await
        .unwrap();
    let other = payment("pay_2", "app", "c-2", request("99.00", "EUR", "u-1"));
    let other_body = json!({"consent": "c-2"});
    for completed in [false, true] {
        if completed {
            store
                .complete_key(
                    "app",
                    &IdempotencyKey::parse(Some("k-1")).unwrap(),
                    &response("pay_1"),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            store
                .record_payment(&other, &key("app", "k-1", &other, &other_body), t0())
                .await
                .unwrap(),
            Replay::Mismatch,
            "completed: {completed}"
        );
        assert_eq!(store.payment("app", "pay_2").await.unwrap(), None);
    }
    // Nothing of the refused request counts towards the day either (nor does the recorded
    // one before it is counted).
    let day = t0().date_naive();
    assert_eq!(
        store.spent_on("app", "u-1", "EUR", day).await.unwrap(),
        Decimal::ZERO
    );
    assert_eq!(
        store
            .count_payment(&first, Decimal::new(50000, 2), t0())
            .await
            .unwrap(),
        DayCount::Counted
    );
    assert_eq!(
        store.spent_on("app", "u-1", "EUR", day).await.unwrap(),
        Decimal::new(1250, 2)
    );
}

pub async fn payments_concurrent_duplicate_proceeds_once(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 8;
    for round in 0..ROUNDS {
        let body = json!({"consent": format!("c-{round}")});
        let results = race(CONTENDERS, |i| {
            let store = store.clone();
            let body = body.clone();
            async move {
                // Each request makes its own payment id; the key and body are the same.
                let attempt = payment(
                    &format!("pay_{round}_{i}"),
                    "app",
                    &format!("c-{round}"),
                    request("12.50", "EUR", "u-1"),
                );
                let claim = key("app", &format!("k-{round}"), &attempt, &body);
                let verdict = store.record_payment(&attempt, &claim, t0()).await.unwrap();
                (i, verdict)
            }
        })
        .await;
        let proceeded: Vec<usize> = results
            .iter()
            .filter(|(_, verdict)| *verdict == Replay::Proceed)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(proceeded.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|(_, verdict)| matches!(verdict, Replay::Proceed | Replay::InFlight)),
            "round {round}: {results:?}"
        );
        for i in 0..CONTENDERS {
            let stored = store
                .payment("app", &format!("pay_{round}_{i}"))
                .await
                .unwrap();
            assert_eq!(stored.is_some(), proceeded == [i], "round {round}, {i}");
        }
    }
}

pub async fn payments_one_per_consent(store: Arc<dyn Store>) {
    let first = payment("pay_1", "app", "c-1", request("12.50", "EUR", "u-1"));
    let body = json!({"consent": "c-1"});
    store
        .record_payment(&first, &key("app", "k-1", &first, &body), t0())
        .await
        .unwrap();
    // Another key for a used consent: refused, and the key stays free.
    let second = payment("pay_2", "app", "c-1", request("12.50", "EUR", "u-1"));
    let result = store
        .record_payment(&second, &key("app", "k-2", &second, &body), t0())
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.payment("app", "pay_2").await.unwrap(), None);
    let third = payment("pay_3", "app", "c-3", request("1.00", "EUR", "u-1"));
    assert_eq!(
        store
            .record_payment(&third, &key("app", "k-2", &third, &body), t0())
            .await
            .unwrap(),
        Replay::Proceed
    );
}

pub async fn payments_update_is_compare_and_set(store: Arc<dyn Store>) {
    let recorded = payment("pay_1", "app", "c-1", request("12.50", "EUR", "u-1"));
    store
        .record_payment(&recorded, &key("app", "k-1", &recorded, &json!({})), t0())
        .await
        .unwrap();

    let mut submitted = recorded.clone();
    submitted.submission = Submission::Submitted;
    submitted.bank_payment_id = Some("bank-77".to_owned());
    submitted.status = BankStatus::from_iso20022("ACTC", None);
    submitted.updated_at = t0() + Duration::seconds(1);
    submitted.next_poll_at = Some(t0() + Duration::seconds(30));
    submitted.polls = 1;
    assert!(
        store
            .update_payment(&submitted, recorded.updated_at)
            .await
            .unwrap()
    );
    assert_eq!(
        store.payment("app", "pay_1").await.unwrap().as_ref(),
        Some(&submitted)
    );

    // A writer that read the recorded version loses.
    let mut stale = recorded.clone();
    stale.submission = Submission::Refused;
    stale.updated_at = t0() + Duration::seconds(2);
    assert!(
        !store
            .update_payment(&stale, recorded.updated_at)
            .await
            .unwrap()
    );
    assert_eq!(
        store.payment("app", "pay_1").await.unwrap(),
        Some(submitted.clone())
    );

    // A rejection keeps its reason and the bank's codes.
    let mut rejected = submitted.clone();
    rejected.status = BankStatus::from_iso20022("RJCT", Some("AM04"));
    rejected.updated_at = t0() + Duration::seconds(3);
    rejected.next_poll_at = None;
    assert!(
        store
            .update_payment(&rejected, submitted.updated_at)
            .await
            .unwrap()
    );
    let stored = store.payment("app", "pay_1").await.unwrap().unwrap();
    assert_eq!(
        stored.status.as_ref().map(|s| s.status),
        Some(PaymentStatus::Rejected {
            reason: RejectionReason::InsufficientFunds
        })
    );
    assert_eq!(stored, rejected);
    // An unknown payment changes nothing.
    let mut unknown = rejected.clone();
    unknown.id = "pay_unknown".to_owned();
    assert!(
        !store
            .update_payment(&unknown, rejected.updated_at)
            .await
            .unwrap()
    );
}

pub async fn payments_due_lease_is_handed_out_once(store: Arc<dyn Store>) {
    let start = t0();
    for (i, due_in) in [(1, 0), (2, 5), (3, 3600)] {
        let mut recorded = payment(
            &format!("pay_{i}"),
            "app",
            &format!("c-{i}"),
            request("1.00", "EUR", "u-1"),
        );
        recorded.next_poll_at = Some(start + Duration::seconds(due_in));
        store
            .record_payment(
                &recorded,
                &key("app", &format!("k-{i}"), &recorded, &json!({"i": i})),
                start,
            )
            .await
            .unwrap();
    }
    // A final payment (no next poll) is never due.
    let done = payment("pay_4", "app", "c-4", request("1.00", "EUR", "u-1"));
    store
        .record_payment(&done, &key("app", "k-4", &done, &json!({"i": 4})), start)
        .await
        .unwrap();

    let now = start + Duration::seconds(10);
    let lease = start + Duration::minutes(1);
    // Several instances at once: each due payment goes to exactly one of them.
    let claims = race(4, |_| {
        let store = store.clone();
        async move { store.due_payments(now, lease, 10).await.unwrap() }
    })
    .await;
    let mut ids: Vec<String> = claims.iter().flatten().map(|p| p.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["pay_1", "pay_2"]);
    assert!(
        claims
            .iter()
            .flatten()
            .all(|p| p.next_poll_at == Some(lease))
    );
    // Leased: nothing more until the lease ends.
    assert!(
        store
            .due_payments(now + Duration::seconds(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease, again (oldest due first, at most `limit`).
    let again = store
        .due_payments(lease, lease + Duration::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    let all: HashSet<String> = ["pay_1".to_owned(), "pay_2".to_owned()].into();
    assert!(all.contains(&again[0].id));
}

pub async fn payments_spent_on_counts_what_may_still_be_paid(store: Arc<dyn Store>) {
    let day = t0().date_naive();
    let mut n = 0;
    let mut add = async |client: &str,
                         user: &str,
                         amount: &str,
                         currency: &str,
                         at: DateTime<_>,
                         count: bool,
                         change: &dyn Fn(&mut Payment)| {
        n += 1;
        let mut recorded = payment(
            &format!("pay_{n}"),
            client,
            &format!("c-{n}"),
            request(amount, currency, user),
        );
        recorded.created_at = at;
        recorded.updated_at = at;
        store
            .record_payment(
                &recorded,
                &key(client, &format!("k-{n}"), &recorded, &json!({"n": n})),
                at,
            )
            .await
            .unwrap();
        if count {
            assert_eq!(
                store
                    .count_payment(&recorded, Decimal::new(1_000_000, 2), at)
                    .await
                    .unwrap(),
                DayCount::Counted
            );
        }
        let expected = recorded.updated_at;
        change(&mut recorded);
        if recorded != store.payment(client, &recorded.id).await.unwrap().unwrap() {
            recorded.updated_at = expected + Duration::seconds(1);
            assert!(store.update_payment(&recorded, expected).await.unwrap());
        }
    };
    let nothing = |_: &mut Payment| {};
    add("app", "u-1", "12.50", "EUR", t0(), true, &nothing).await;
    add("app", "u-1", "0.05", "EUR", t0(), true, &|p| {
        p.submission = Submission::Submitted;
        p.status = BankStatus::from_iso20022("ACSC", None);
    })
    .await;
    // Not counted: refused, rejected, another currency, user, platform or day.
    add("app", "u-1", "100.00", "EUR", t0(), true, &|p| {
        p.submission = Submission::Refused;
    })
    .await;
    add("app", "u-1", "200.00", "EUR", t0(), true, &|p| {
        p.submission = Submission::Submitted;
        p.status = BankStatus::from_iso20022("RJCT", Some("AM04"));
    })
    .await;
    add("app", "u-1", "7.00", "GBP", t0(), true, &nothing).await;
    // Recorded (pushed, consented) but never counted: sent nowhere.
    add("app", "u-1", "30.00", "EUR", t0(), false, &nothing).await;
    add("app", "u-2", "7.00", "EUR", t0(), true, &nothing).await;
    add("other-app", "u-1", "7.00", "EUR", t0(), true, &nothing).await;
    let midnight = day
        .succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    add("app", "u-1", "7.00", "EUR", midnight, true, &nothing).await;
    add(
        "app",
        "u-1",
        "0.45",
        "EUR",
        midnight - Duration::microseconds(1),
        true,
        &nothing,
    )
    .await;

    assert_eq!(
        store.spent_on("app", "u-1", "EUR", day).await.unwrap(),
        Decimal::new(1300, 2)
    );
    assert_eq!(
        store
            .spent_on("app", "u-1", "EUR", day.succ_opt().unwrap())
            .await
            .unwrap(),
        Decimal::new(700, 2)
    );
    assert_eq!(
        store.spent_on("app", "u-3", "EUR", day).await.unwrap(),
        Decimal::ZERO
    );
}

pub async fn payments_day_count_is_exact_under_concurrency(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 8;
    let limit = Decimal::new(50000, 2);
    for round in 0..ROUNDS {
        let user = format!("u-{round}");
        let mut payments = Vec::new();
        for i in 0..CONTENDERS {
            let recorded = payment(
                &format!("pay_{round}_{i}"),
                "app",
                &format!("c-{round}-{i}"),
                request("100.00", "EUR", &user),
            );
            store.insert_payment(&recorded).await.unwrap();
            payments.push(recorded);
        }
        let results = race(CONTENDERS, |i| {
            let store = store.clone();
            let recorded = payments[i].clone();
            async move { store.count_payment(&recorded, limit, t0()).await.unwrap() }
        })
        .await;
        let counted = results
            .iter()
            .filter(|result| **result == DayCount::Counted)
            .count();
        assert_eq!(counted, 5, "round {round}: {results:?}");
        for result in &results {
            if let DayCount::OverLimit { spent } = result {
                assert_eq!(*spent, limit, "round {round}");
            }
        }
        let day = t0().date_naive();
        assert_eq!(
            store.spent_on("app", &user, "EUR", day).await.unwrap(),
            limit
        );
        // Counting a counted payment again changes nothing.
        let first = results
            .iter()
            .position(|result| *result == DayCount::Counted)
            .unwrap();
        assert_eq!(
            store
                .count_payment(&payments[first], limit, t0())
                .await
                .unwrap(),
            DayCount::Counted
        );
        assert_eq!(
            store.spent_on("app", &user, "EUR", day).await.unwrap(),
            limit
        );
        // A counted payment the bank refused frees its amount for one that did not fit.
        let mut refused = payments[first].clone();
        refused.submission = Submission::Refused;
        refused.updated_at = t0() + Duration::seconds(1);
        assert!(store.update_payment(&refused, t0()).await.unwrap());
        let waiting = results
            .iter()
            .position(|result| *result != DayCount::Counted)
            .unwrap();
        assert_eq!(
            store
                .count_payment(&payments[waiting], limit, t0())
                .await
                .unwrap(),
            DayCount::Counted
        );
        assert_eq!(
            store
                .count_payment(
                    &payments[(waiting + 1..CONTENDERS)
                        .chain(0..waiting)
                        .find(|i| results[*i] != DayCount::Counted && *i != waiting)
                        .unwrap()],
                    limit,
                    t0()
                )
                .await
                .unwrap(),
            DayCount::OverLimit { spent: limit }
        );
    }
}

pub async fn payments_keys_are_kept_then_purged(store: Arc<dyn Store>) {
    let first = payment("pay_1", "app", "c-1", request("12.50", "EUR", "u-1"));
    store
        .record_payment(&first, &key("app", "k-1", &first, &json!({"n": 1})), t0())
        .await
        .unwrap();
    let second = payment("pay_2", "app", "c-2", request("3.00", "EUR", "u-1"));
    let second_key = key("app", "k-1", &second, &json!({"n": 2}));
    // Within the retention the key holds…
    assert_eq!(
        store
            .record_payment(
                &second,
                &second_key,
                t0() + KEY_RETENTION - Duration::seconds(1)
            )
            .await
            .unwrap(),
        Replay::Mismatch
    );
    // …purging younger keys forgets nothing…
    assert_eq!(store.purge_keys(t0()).await.unwrap(), 0);
    assert_eq!(
        store
            .record_payment(&second, &second_key, t0())
            .await
            .unwrap(),
        Replay::Mismatch
    );
    // …and once purged the key is free again.
    assert_eq!(
        store
            .purge_keys(t0() + Duration::microseconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_payment(&second, &second_key, t0())
            .await
            .unwrap(),
        Replay::Proceed
    );
    // A key past its retention but not purged yet is taken over by a new request.
    let third = payment("pay_3", "app", "c-3", request("4.00", "EUR", "u-1"));
    let mut third_key = key("app", "k-1", &third, &json!({"n": 3}));
    third_key.created_at = t0() + KEY_RETENTION;
    assert_eq!(
        store
            .record_payment(&third, &third_key, t0() + KEY_RETENTION)
            .await
            .unwrap(),
        Replay::Proceed
    );
    store
        .complete_key("app", &third_key.key, &response("pay_3"))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_payment(&third, &third_key, t0() + KEY_RETENTION)
            .await
            .unwrap(),
        Replay::Same(response("pay_3"))
    );
    // The payments themselves stay.
    assert!(store.payment("app", "pay_1").await.unwrap().is_some());
}

/// A payment recorded at consent time, then claimed by the key of its submission: one payment
/// per consent, one key per payment (of keys racing for it, exactly one wins; the same key again
/// is judged as usual), found by its consent.
pub async fn payments_recorded_first_then_claimed_by_one_key(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 6;
    for round in 0..ROUNDS {
        let consent = format!("c-{round}");
        let recorded = payment(
            &format!("pay_{round}"),
            "app",
            &consent,
            request("12.50", "EUR", "u-1"),
        );
        store.insert_payment(&recorded).await.unwrap();
        let again = payment(
            &format!("pay_{round}_again"),
            "app",
            &consent,
            request("12.50", "EUR", "u-1"),
        );
        assert!(matches!(
            store.insert_payment(&again).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store
                .payment_of_consent(&consent)
                .await
                .unwrap()
                .map(|p| p.id),
            Some(recorded.id.clone())
        );
        let body = json!({"consent": consent});
        // Different keys race: one claims the payment, the others find it used.
        let results = race(CONTENDERS, |i| {
            let store = store.clone();
            let claim = key("app", &format!("k-{round}-{i}"), &recorded, &body);
            async move { store.claim_key(&claim, t0()).await }
        })
        .await;
        let won = results
            .iter()
            .filter(|result| matches!(result, Ok(Replay::Proceed)))
            .count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|result| matches!(result, Ok(Replay::Proceed) | Err(StoreError::Conflict(_)))),
            "round {round}: {results:?}"
        );
        let winner = (0..CONTENDERS)
            .find(|i| matches!(results[*i], Ok(Replay::Proceed)))
            .unwrap();
        let claim = key("app", &format!("k-{round}-{winner}"), &recorded, &body);
        // The same key while in flight, with another body, then once completed.
        assert_eq!(
            store.claim_key(&claim, t0()).await.unwrap(),
            Replay::InFlight
        );
        let other = key(
            "app",
            &format!("k-{round}-{winner}"),
            &recorded,
            &json!({"other": true}),
        );
        assert_eq!(
            store.claim_key(&other, t0()).await.unwrap(),
            Replay::Mismatch
        );
        store
            .complete_key("app", &claim.key, &response(&recorded.id))
            .await
            .unwrap();
        assert_eq!(
            store.claim_key(&claim, t0()).await.unwrap(),
            Replay::Same(response(&recorded.id))
        );
    }
    assert_eq!(store.payment_of_consent("c-none").await.unwrap(), None);
}

/// Payee verifications are counted per platform and minute, never past the limit, even
/// when asked at once; a new minute starts again and another platform has its own count.
pub async fn payee_verifications_are_counted_to_the_limit(store: Arc<dyn Store>) {
    use bankgate::payments::verification::Throttle;
    let window = Throttle::window(t0());
    for round in 0..ROUNDS {
        let window = window + Duration::minutes(i64::try_from(round).unwrap());
        let counted = super::race(12, |_| {
            let store = store.clone();
            async move {
                store
                    .count_verification("platform-a", window, 5)
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(counted.iter().filter(|counted| **counted).count(), 5);
        assert!(
            store
                .count_verification("platform-b", window, 5)
                .await
                .unwrap(),
            "another platform counts apart"
        );
    }
    assert!(
        !store
            .count_verification("platform-c", window, 0)
            .await
            .unwrap(),
        "a limit of zero counts nothing"
    );
}
