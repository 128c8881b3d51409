//! The verifier on the in-memory store (tampering is tested on PostgreSQL, in `tests/audit`),
//! and the row checks on hand-made rows.

use std::sync::Arc;

use super::*;
use crate::audit::checkpoint::sign;
use crate::audit::{Action, Decision, Record, link};
use crate::jose::keys::SigningKey;
use crate::store::memory::MemoryStore;

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            n_records: i as u32,
            platform: Some("platform-a".into()),
            ..Event::new(Action::DataAccess, "platform-a", Decision::Allow)
        })
        .collect()
}

async fn store_with(n: usize) -> (Arc<MemoryStore>, Vec<Record>) {
    let store = Arc::new(MemoryStore::new());
    let records = store.append_audit(events(n)).await.unwrap();
    (store, records)
}

async fn verify(store: &MemoryStore, options: &VerifyOptions) -> Report {
    verify_chain(store, options, |_| {}).await.unwrap()
}

#[tokio::test]
async fn an_intact_log_with_checkpoints_verifies() {
    let key = SigningKey::generate().unwrap();
    let (store, records) = store_with(10).await;
    for record in [&records[3], &records[9]] {
        let checkpoint = sign(&key, record.position, record.hash).unwrap();
        assert!(store.add_audit_checkpoint(&checkpoint, None).await.unwrap());
    }
    let report = verify(
        &store,
        &VerifyOptions {
            keys: VerifyingKeys::of(&key),
            from: None,
        },
    )
    .await;
    assert_eq!(report.first_break, None);
    assert_eq!(
        (report.n_events, report.last, report.n_checkpoints),
        (10, 10, 2)
    );
    assert_eq!(report.last_hash, hex::encode(records[9].hash));
}

#[tokio::test]
async fn an_empty_log_is_intact() {
    let store = MemoryStore::new();
    let report = verify(&store, &VerifyOptions::default()).await;
    assert!(report.is_intact());
    assert_eq!(report.n_events, 0);
}

#[tokio::test]
async fn a_checkpoint_no_key_opens_is_a_break_at_its_position() {
    let key = SigningKey::generate().unwrap();
    let (store, records) = store_with(5).await;
    let checkpoint = sign(&key, 3, records[2].hash).unwrap();
    store.add_audit_checkpoint(&checkpoint, None).await.unwrap();
    let stranger = SigningKey::generate().unwrap();
    let report = verify(
        &store,
        &VerifyOptions {
            keys: VerifyingKeys::of(&stranger),
            from: None,
        },
    )
    .await;
    let broken = report.first_break.unwrap();
    assert_eq!(broken.position, 3);
    assert!(broken.what.contains("unknown key"), "{}", broken.what);
}

#[tokio::test]
async fn verification_can_start_at_a_checkpoint() {
    let key = SigningKey::generate().unwrap();
    let (store, records) = store_with(8).await;
    let keys = VerifyingKeys::of(&key);
    let from = sign(&key, 5, records[4].hash).unwrap();
    let report = verify(
        &store,
        &VerifyOptions {
            keys: keys.clone(),
            from: Some(from),
        },
    )
    .await;
    assert_eq!(report.first_break, None);
    assert_eq!((report.start, report.n_events, report.last), (5, 3, 8));

    // A checkpoint of another chain (same positions, other events) is not extended by this one.
    let other = link(0, GENESIS, events(8));
    let foreign = sign(&key, 5, other[4].hash).unwrap();
    let report = verify(
        &store,
        &VerifyOptions {
            keys: keys.clone(),
            from: Some(foreign),
        },
    )
    .await;
    assert_eq!(report.first_break.map(|broken| broken.position), Some(5));

    // One beyond the end: the tail it vouches for is missing.
    let (short, _) = store_with(3).await;
    let beyond = sign(&key, 5, records[4].hash).unwrap();
    let report = verify(
        &short,
        &VerifyOptions {
            keys,
            from: Some(beyond),
        },
    )
    .await;
    assert_eq!(report.first_break.map(|broken| broken.position), Some(4));
}

#[test]
fn row_content_checks_name_what_disagrees() {
    let record = link(0, GENESIS, events(1)).pop().unwrap();
    let mut row = StoredRecord::of(&record);
    assert_eq!(content_problem(&row), None);

    let mut columns = record.event.clone();
    columns.platform = Some("platform-b".into());
    row.columns = Ok(columns);
    let problem = content_problem(&row).unwrap();
    assert!(problem.contains("(platform)"), "{problem}");

    row.columns = Ok(record.event.clone());
    row.canonical.push(b' ');
    assert!(content_problem(&row).unwrap().contains("canonical form"));
    row.canonical = b"{}".to_vec();
    assert!(content_problem(&row).unwrap().contains("not an event"));
}
