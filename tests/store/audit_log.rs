//! Conformance cases for the audit log: round trip, conflicts, concurrent appends, filters,
//! the chain stream, checkpoints and the summary. Each case runs on both stores (listed in
//! `conformance!` in `main.rs`).

use super::*;

pub fn full_event() -> Event {
    Event {
        time: Utc.with_ymd_and_hms(2025, 5, 6, 7, 8, 9).unwrap()
            + Duration::nanoseconds(987_654_321),
        platform: Some("platform-a".to_owned()),
        bank: Some("demo-bank".to_owned()),
        consent: Some("c-1".to_owned()),
        user_ref: Some("u-81f3".to_owned()),
        purpose: Some("balance-alerts".to_owned()),
        policy_hash: Some("sha256:abc".to_owned()),
        categories: vec!["accounts".to_owned(), "balances".to_owned()],
        fields: vec!["id".to_owned(), "amount".to_owned(), "currency".to_owned()],
        n_records: u32::MAX,
        reason: Some("policy \"balance-alerts\" allows it".to_owned()),
        request_id: Some("req-1".to_owned()),
        ..Event::new(Action::DataAccess, "platform-a", Decision::Allow)
    }
}

pub async fn audit_round_trip(store: Arc<dyn Store>) {
    assert!(store.append_audit(Vec::new()).await.unwrap().is_empty());

    let sparse = Event::new(Action::PolicyLoaded, "gateway", Decision::Allow);
    let appended = store
        .append_audit(vec![full_event(), sparse.clone()])
        .await
        .unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(
        (appended[0].position, appended[1].position),
        (1, 2),
        "an empty append takes no position"
    );
    // Times are kept to the microsecond, and the chain hashes what is kept.
    assert_eq!(appended[0].event.time.timestamp_subsec_nanos(), 987_654_000);
    assert_eq!(appended[1].event, sparse);
    assert!(audit::verify(0, GENESIS, &appended).is_ok());

    assert_eq!(all_records(&*store).await, appended);
}

pub async fn audit_duplicate_id_conflicts(store: Arc<dyn Store>) {
    let first = Event::new(Action::TokenIssued, "gateway", Decision::Allow);
    store.append_audit(vec![first.clone()]).await.unwrap();

    let fresh = Event::new(Action::TokenIssued, "gateway", Decision::Allow);
    let result = store.append_audit(vec![fresh.clone(), first]).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    // The failed batch left nothing behind: no row, no gap.
    let appended = store.append_audit(vec![fresh]).await.unwrap();
    assert_eq!(appended[0].position, 2);
    let all = all_records(&*store).await;
    assert_eq!(all.len(), 2);
    assert!(audit::verify(0, GENESIS, &all).is_ok());
}

pub async fn audit_concurrent_appends(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const BATCHES: [usize; 5] = [1, 2, 3, 4, 10];
    const PER_TASK: usize = 20;

    let appended = race(TASKS, |task| {
        let store = store.clone();
        async move {
            let mut records = Vec::new();
            for (batch, size) in BATCHES.into_iter().enumerate() {
                let events = (0..size)
                    .map(|i| Event {
                        platform: Some(format!("platform-{task}")),
                        request_id: Some(format!("{task}-{batch}-{i}")),
                        ..Event::new(Action::DataAccess, "platform", Decision::Allow)
                    })
                    .collect();
                let batch = store.append_audit(events).await.unwrap();
                // A batch occupies consecutive positions.
                for pair in batch.windows(2) {
                    assert_eq!(pair[1].position, pair[0].position + 1);
                }
                records.extend(batch);
            }
            records
        }
    })
    .await;

    let all = all_records(&*store).await;
    let total = (TASKS * PER_TASK) as i64;
    let positions: Vec<i64> = all.iter().map(|record| record.position).collect();
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());
    assert_eq!(
        audit::verify(0, GENESIS, &all).map(|head| head.0),
        Ok(total)
    );

    // What each append returned is what was stored, and a task's events keep their order.
    let mut returned: Vec<Record> = appended.iter().flatten().cloned().collect();
    returned.sort_by_key(|record| record.position);
    assert_eq!(returned, all);
    for records in &appended {
        assert_eq!(records.len(), PER_TASK);
        assert!(
            records
                .windows(2)
                .all(|pair| pair[0].position < pair[1].position)
        );
    }
}

/// The i-th event of the filter fixture (0-based; its position is i + 1).
/// Event `i` of the filter fixture, `i` minutes after `base`.
pub fn filter_event(base: DateTime<Utc>, i: usize) -> Event {
    let decisions = [
        Decision::Allow,
        Decision::Allow,
        Decision::Deny,
        Decision::Error,
    ];
    let action = if i.is_multiple_of(7) {
        Action::ConsentCreated
    } else {
        Action::DataAccess
    };
    Event {
        time: base + Duration::minutes(i as i64),
        platform: Some(["platform-a", "platform-b", "platform-c"][i % 3].to_owned()),
        bank: Some(["demo-bank", "other-bank"][i % 2].to_owned()),
        consent: Some(format!("c-{}", i % 5)),
        user_ref: i.is_multiple_of(4).then(|| "u-1".to_owned()),
        purpose: Some(["balance-alerts", "p2p-payments"][(i / 2) % 2].to_owned()),
        ..Event::new(action, "platform", decisions[i % 4])
    }
}

pub async fn audit_filters(store: Arc<dyn Store>) {
    const N: usize = 30;
    // Events are appended within `CHAIN_MARGIN` (a day) of their own time, as the gateway
    // appends them: within the last hour here.
    // Whole seconds: PostgreSQL keeps microseconds, the clock gives nanoseconds.
    let base = DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("in range");
    let mut appended = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(10) {
        let events = chunk.iter().map(|&i| filter_event(base, i)).collect();
        appended.extend(store.append_audit(events).await.unwrap());
    }
    let at = |minutes: i64| Some(base + Duration::minutes(minutes));
    let platform = |name: &str| Some(name.to_owned());

    /// Positions of the fixture events for which `keep(i)` holds.
    fn expect(keep: impl Fn(usize) -> bool) -> Vec<i64> {
        (0..N).filter(|&i| keep(i)).map(|i| i as i64 + 1).collect()
    }
    let cases: Vec<(&str, Filter, Vec<i64>)> = vec![
        ("everything", Filter::default(), expect(|_| true)),
        (
            "platform",
            Filter {
                platform: platform("platform-b"),
                ..Filter::default()
            },
            expect(|i| i % 3 == 1),
        ),
        (
            "bank",
            Filter {
                bank: Some("other-bank".to_owned()),
                ..Filter::default()
            },
            expect(|i| i % 2 == 1),
        ),
        (
            "consent",
            Filter {
                consent: Some("c-2".to_owned()),
                ..Filter::default()
            },
            expect(|i| i % 5 == 2),
        ),
        (
            "user_ref",
            Filter {
                user_ref: Some("u-1".to_owned()),
                ..Filter::default()
            },
            expect(|i| i.is_multiple_of(4)),
        ),
        (
            "purpose",
            Filter {
                purpose: Some("p2p-payments".to_owned()),
                ..Filter::default()
            },
            expect(|i| (i / 2) % 2 == 1),
        ),
        (
            "action",
            Filter {
                action: Some(Action::ConsentCreated),
                ..Filter::default()
            },
            expect(|i| i.is_multiple_of(7)),
        ),
        (
            "decision",
            Filter {
                decision: Some(Decision::Deny),
                ..Filter::default()
            },
            expect(|i| i % 4 == 2),
        ),
        (
            "time range is [from, to)",
            Filter {
                from: at(5),
                to: at(12),
                ..Filter::default()
            },
            expect(|i| (5..12).contains(&i)),
        ),
        (
            "from only",
            Filter {
                from: at(25),
                ..Filter::default()
            },
            expect(|i| i >= 25),
        ),
        (
            "combined",
            Filter {
                platform: platform("platform-a"),
                purpose: Some("balance-alerts".to_owned()),
                decision: Some(Decision::Allow),
                ..Filter::default()
            },
            expect(|i| i.is_multiple_of(3) && (i / 2) % 2 == 0 && i % 4 < 2),
        ),
        (
            "keyset page",
            Filter {
                after: Some(10),
                limit: Some(5),
                ..Filter::default()
            },
            vec![11, 12, 13, 14, 15],
        ),
        (
            "keyset page of a filter",
            Filter {
                platform: platform("platform-a"),
                after: Some(10),
                limit: Some(3),
                ..Filter::default()
            },
            vec![13, 16, 19],
        ),
        (
            "limit 0 is clamped to 1",
            Filter {
                limit: Some(0),
                ..Filter::default()
            },
            vec![1],
        ),
        (
            "after the end",
            Filter {
                after: Some(N as i64),
                ..Filter::default()
            },
            vec![],
        ),
        (
            "nothing matches",
            Filter {
                platform: platform("nobody"),
                ..Filter::default()
            },
            vec![],
        ),
    ];
    for (name, filter, expected) in cases {
        let records = store.audit_events(&filter).await.unwrap();
        let positions: Vec<i64> = records.iter().map(|record| record.position).collect();
        assert_eq!(positions, expected, "{name}: {filter:?}");
        // The records are the appended ones, and the reference predicate agrees.
        for record in &records {
            assert_eq!(record, &appended[record.position as usize - 1], "{name}");
            assert!(filter.matches(record), "{name}");
        }
    }

    // Paging through one platform with small pages yields all of it, once.
    let mut seen = Vec::new();
    loop {
        let filter = Filter {
            platform: platform("platform-c"),
            after: seen.last().copied(),
            limit: Some(4),
            ..Filter::default()
        };
        let page = store.audit_events(&filter).await.unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|record| record.position));
    }
    assert_eq!(seen, expect(|i| i % 3 == 2));
}

pub async fn audit_head_and_chain_stream(store: Arc<dyn Store>) {
    use futures_util::StreamExt;
    assert_eq!(store.audit_head().await.unwrap(), None);
    assert!(store.audit_chain(0).next().await.is_none());

    let events = (0..5)
        .map(|i| Event {
            n_records: i,
            ..Event::new(Action::DataAccess, "platform-a", Decision::Allow)
        })
        .collect();
    let records = store.append_audit(events).await.unwrap();
    assert_eq!(
        store.audit_head().await.unwrap(),
        Some((5, records[4].hash))
    );
    // The rows as stored: the hashed bytes, the links and the typed columns.
    let rows: Vec<audit::StoredRecord> =
        store.audit_chain(2).map(|row| row.unwrap()).collect().await;
    let expected: Vec<audit::StoredRecord> =
        records[2..].iter().map(audit::StoredRecord::of).collect();
    assert_eq!(rows, expected);
}

pub async fn audit_checkpoints_follow_the_chain(store: Arc<dyn Store>) {
    let key = bankgate::jose::keys::SigningKey::generate().unwrap();
    let sign =
        |record: &Record| audit::checkpoint::sign(&key, record.position, record.hash).unwrap();
    let events = (0..10)
        .map(|_| Event::new(Action::TokenIssued, "gateway", Decision::Allow))
        .collect();
    let records = store.append_audit(events).await.unwrap();
    assert_eq!(store.latest_audit_checkpoint().await.unwrap(), None);

    // A checkpoint must carry the chain's hash at its position.
    let lying = audit::Checkpoint {
        hash: records[0].hash,
        ..sign(&records[2])
    };
    let result = store.add_audit_checkpoint(&lying, None).await;
    assert!(
        matches!(result, Err(StoreError::Invariant(_))),
        "{result:?}"
    );
    let beyond = audit::Checkpoint {
        position: 11,
        ..sign(&records[9])
    };
    assert!(store.add_audit_checkpoint(&beyond, None).await.is_err());

    let at_3 = sign(&records[2]);
    assert!(store.add_audit_checkpoint(&at_3, None).await.unwrap());
    assert!(
        !store
            .add_audit_checkpoint(&sign(&records[2]), None)
            .await
            .unwrap(),
        "one per position"
    );
    // Spaced: not within 5 positions of one above.
    assert!(
        !store
            .add_audit_checkpoint(&sign(&records[6]), Some(5))
            .await
            .unwrap()
    );
    let at_8 = sign(&records[7]);
    assert!(store.add_audit_checkpoint(&at_8, Some(5)).await.unwrap());
    // Unspaced, an older position is still welcome.
    let at_5 = sign(&records[4]);
    assert!(store.add_audit_checkpoint(&at_5, None).await.unwrap());

    let all = store.audit_checkpoints(None, 100).await.unwrap();
    let positions: Vec<i64> = all.iter().map(|checkpoint| checkpoint.position).collect();
    assert_eq!(positions, vec![3, 5, 8]);
    assert_eq!(all[0], at_3, "stored as signed");
    let page = store.audit_checkpoints(Some(3), 1).await.unwrap();
    assert_eq!(page, vec![at_5]);
    assert_eq!(store.latest_audit_checkpoint().await.unwrap(), Some(at_8));
}

/// An event of the summary fixture at `time`.
pub fn summary_event(
    time: DateTime<Utc>,
    platform: Option<&str>,
    purpose: Option<&str>,
    bank: Option<&str>,
    decision: Decision,
) -> Event {
    Event {
        time,
        platform: platform.map(str::to_owned),
        purpose: purpose.map(str::to_owned),
        bank: bank.map(str::to_owned),
        ..Event::new(Action::DataAccess, "platform", decision)
    }
}

pub async fn audit_summary_counts_by_day_platform_purpose_decision(store: Arc<dyn Store>) {
    use audit::{SummaryFilter, SummaryRow};

    let day = |d: u32| Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0).unwrap();
    let at = |d: u32, h: i64| day(d) + Duration::hours(h);
    let (a, b, upper) = (Some("platform-a"), Some("platform-b"), Some("platform-B"));
    let (alerts, p2p) = (Some("balance-alerts"), Some("p2p-payments"));
    let (demo, other) = (Some("demo-bank"), Some("other-bank"));
    let events = vec![
        summary_event(at(13, 12), a, alerts, demo, Decision::Allow),
        summary_event(at(14, 9), a, alerts, demo, Decision::Allow),
        summary_event(at(14, 10), a, alerts, demo, Decision::Allow),
        // The last microsecond of the 14th, and the first of the 15th (UTC days).
        summary_event(
            day(15) - Duration::microseconds(1),
            a,
            alerts,
            other,
            Decision::Deny,
        ),
        summary_event(day(15), a, alerts, demo, Decision::Deny),
        summary_event(at(15, 1), b, None, demo, Decision::Error),
        summary_event(at(15, 2), None, None, None, Decision::Allow),
        // Byte order: "platform-B" sorts before "platform-a".
        summary_event(at(15, 3), upper, p2p, demo, Decision::Allow),
        summary_event(at(16, 12), a, p2p, demo, Decision::Allow),
    ];
    store.append_audit(events).await.unwrap();

    let row = |d: u32, platform: Option<&str>, purpose: Option<&str>, decision, count| SummaryRow {
        day: day(d).date_naive(),
        platform: platform.map(str::to_owned),
        purpose: purpose.map(str::to_owned),
        decision,
        count,
    };
    let filter = |from, to| SummaryFilter {
        from,
        to,
        platform: None,
        purpose: None,
        bank: None,
    };
    let cases: Vec<(&str, SummaryFilter, Vec<SummaryRow>)> = vec![
        (
            "two whole days, in order",
            filter(day(14), Some(day(16))),
            vec![
                row(14, a, alerts, Decision::Allow, 2),
                row(14, a, alerts, Decision::Deny, 1),
                row(15, None, None, Decision::Allow, 1),
                row(15, upper, p2p, Decision::Allow, 1),
                row(15, a, alerts, Decision::Deny, 1),
                row(15, b, None, Decision::Error, 1),
            ],
        ),
        (
            "open-ended, one platform at one bank",
            SummaryFilter {
                platform: a.map(str::to_owned),
                bank: demo.map(str::to_owned),
                ..filter(day(14), None)
            },
            vec![
                row(14, a, alerts, Decision::Allow, 2),
                row(15, a, alerts, Decision::Deny, 1),
                row(16, a, p2p, Decision::Allow, 1),
            ],
        ),
        (
            "[from, to) to the microsecond, one purpose",
            SummaryFilter {
                purpose: alerts.map(str::to_owned),
                ..filter(at(14, 10), Some(day(15)))
            },
            vec![
                row(14, a, alerts, Decision::Allow, 1),
                row(14, a, alerts, Decision::Deny, 1),
            ],
        ),
        ("nothing in range", filter(day(17), Some(day(20))), vec![]),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(
            store.audit_summary(&filter).await.unwrap(),
            expected,
            "{name}"
        );
    }
}
