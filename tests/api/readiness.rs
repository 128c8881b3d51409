//! `/readyz` (issue 15): ready when the store answers, the audit writer accepts, policies and
//! banks are loaded; otherwise 503 `not-ready` naming the part that is not.

use serde_json::Value;

use super::support::{Options, StoreKind, TestGateway};

on_both_stores!(readyz_reports_every_part, readyz_names_missing_banks);

async fn readyz(gateway: &TestGateway) -> (u16, String, Value) {
    let response = bankgate::crypto::http_client_builder()
        .build()
        .unwrap()
        .get(format!("{}/readyz", gateway.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.json().await.unwrap())
}

async fn readyz_reports_every_part(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let (status, _, body) = readyz(&gateway).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    let parts: Vec<(&str, bool)> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| {
            (
                check["part"].as_str().unwrap(),
                check["ready"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            ("store", true),
            ("audit_writer", true),
            ("policies", true),
            ("banks", true)
        ],
        "{body}"
    );
}

async fn readyz_names_missing_banks(kind: StoreKind) {
    let empty = std::env::temp_dir().join(format!("bankgate-no-banks-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let gateway = TestGateway::start_with(
        kind,
        Options {
            adapters_dir: Some(empty),
            ..Options::default()
        },
    )
    .await;
    let (status, content_type, problem) = readyz(&gateway).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["type"], "https://bankgate.dev/problems/not-ready");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("banks (no bank is registered)"), "{detail}");
    assert!(!detail.contains("store"), "{detail}");
}

/// PostgreSQL down (a proxy in front of it cut): the store is named; back up, ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_the_store_while_postgres_is_down() {
    let gateway = TestGateway::start_with(
        StoreKind::Postgres,
        Options {
            database_through_proxy: true,
            ..Options::default()
        },
    )
    .await;
    let proxy = gateway.database_proxy.as_ref().expect("a proxy");
    assert_eq!(readyz(&gateway).await.0, 200);
    proxy.cut();
    let (status, content_type, problem) = readyz(&gateway).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("store ("), "{detail}");
    assert!(!detail.contains("banks"), "{detail}");
    proxy.restore();
    // The pool replaces its broken connections as they are asked for.
    let mut status = 0;
    for _ in 0..50 {
        status = readyz(&gateway).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once PostgreSQL is back");
}
