//! Conformance cases for webhook deliveries: dedupe, lease, retry and the delivery log. Each
//! case runs on both stores (listed in `conformance!` in `main.rs`).

use super::*;
use bankgate::lifecycle::{DeliveryOutcome, DeliveryStatus, WebhookDelivery};

fn delivery(id: &str, dedupe_key: &str, at: DateTime<Utc>) -> WebhookDelivery {
    WebhookDelivery {
        id: id.to_owned(),
        client_id: "platform-a".to_owned(),
        event: "consent.revoked".to_owned(),
        consent_id: "c-1".to_owned(),
        dedupe_key: dedupe_key.to_owned(),
        url: "https://app.example/hooks".to_owned(),
        payload: "header.claims.signature".to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        created_at: at,
        delivered_at: None,
    }
}

pub async fn webhooks_dedupe_lease_retry_and_log(store: Arc<dyn Store>) {
    let start = t0();
    assert!(
        store
            .enqueue_webhook(&delivery("d1", "revoked:c-1", start))
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_webhook(&delivery("d2", "revoked:c-1", start))
            .await
            .unwrap(),
        "dedupe"
    );
    assert!(
        store
            .enqueue_webhook(&delivery(
                "d3",
                "expiring:c-1",
                start + Duration::seconds(1)
            ))
            .await
            .unwrap()
    );

    // Nothing is due before its time.
    assert!(
        store
            .claim_webhooks(
                start - Duration::seconds(1),
                10,
                start + Duration::minutes(1)
            )
            .await
            .unwrap()
            .is_empty()
    );
    let lease = start + Duration::minutes(1);
    let claimed = store
        .claim_webhooks(start + Duration::seconds(5), 10, lease)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d1", "d3"]);
    assert!(
        claimed
            .iter()
            .all(|d| d.attempts == 1 && d.next_attempt_at == lease)
    );
    // Leased: another worker gets nothing until the lease ends.
    assert!(
        store
            .claim_webhooks(start + Duration::seconds(6), 10, lease)
            .await
            .unwrap()
            .is_empty()
    );

    let retry_at = start + Duration::seconds(30);
    store
        .finish_webhook(
            "d1",
            &DeliveryOutcome::Retry {
                at: retry_at,
                error: "HTTP 500".into(),
            },
            start,
        )
        .await
        .unwrap();
    store
        .finish_webhook(
            "d3",
            &DeliveryOutcome::Delivered,
            start + Duration::seconds(7),
        )
        .await
        .unwrap();
    let again = store
        .claim_webhooks(retry_at, 10, retry_at + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("d1", 2));
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    store
        .finish_webhook(
            "d1",
            &DeliveryOutcome::Failed {
                error: "HTTP 410".into(),
            },
            retry_at,
        )
        .await
        .unwrap();
    assert!(
        store
            .finish_webhook("nope", &DeliveryOutcome::Delivered, start)
            .await
            .is_err()
    );

    let log = store.webhook_deliveries("platform-a").await.unwrap();
    let summary: Vec<(&str, DeliveryStatus)> =
        log.iter().map(|d| (d.id.as_str(), d.status)).collect();
    assert_eq!(
        summary,
        [
            ("d3", DeliveryStatus::Delivered),
            ("d1", DeliveryStatus::Failed)
        ]
    );
    assert_eq!(log[0].delivered_at, Some(start + Duration::seconds(7)));
    assert!(
        store
            .webhook_deliveries("platform-b")
            .await
            .unwrap()
            .is_empty()
    );

    // Concurrent workers claim disjoint sets.
    for i in 0..20 {
        let at = start + Duration::hours(1);
        store
            .enqueue_webhook(&delivery(&format!("p{i}"), &format!("k{i}"), at))
            .await
            .unwrap();
    }
    let due = start + Duration::hours(2);
    let results = race(4, |_| {
        let store = store.clone();
        async move {
            store
                .claim_webhooks(due, 8, due + Duration::minutes(1))
                .await
                .unwrap()
        }
    })
    .await;
    let mut all: Vec<String> = results.into_iter().flatten().map(|d| d.id).collect();
    // Whatever no racer took is still there for the next claim.
    let rest = store
        .claim_webhooks(due, 32, due + Duration::minutes(1))
        .await
        .unwrap();
    all.extend(rest.into_iter().map(|d| d.id));
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no delivery claimed twice");
    assert_eq!(n, 20);
}
