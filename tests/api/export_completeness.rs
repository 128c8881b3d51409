//! A download of the audit export that stopped midway is detectable (issue 11, item 13): the
//! gateway answers 200 before it reads the events, so a failure can only cut the body short,
//! and a complete export ends with a trailer that a cut one lacks.

use bankgate::audit::{Action, Decision, Event};

use super::support::{StoreKind, TestGateway};

/// Events the test writes: more than one page of the export (1000).
const EVENTS: usize = 1100;

/// The export of `query` as the client received it: status, the bytes that arrived, and
/// whether the transfer ended cleanly.
async fn download(gateway: &TestGateway, token: &str, query: &str) -> (u16, String, bool) {
    let mut response = gateway
        .compliance
        .http
        .get(format!("{}/v1/audit/export?{query}", gateway.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let clean = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    (status, String::from_utf8_lossy(&body).into_owned(), clean)
}

/// The rule the README gives clients: complete when the last line is the trailer, and then the
/// number of events it names.
fn completed(format: &str, text: &str) -> Option<u64> {
    let last = text.lines().rfind(|line| !line.is_empty())?;
    match format {
        "csv" => last
            .strip_prefix("#complete,")?
            .trim_end_matches(',')
            .parse()
            .ok(),
        _ => {
            let trailer: serde_json::Value = serde_json::from_str(last).ok()?;
            (trailer["complete"] == true)
                .then(|| trailer["n_events"].as_u64())
                .flatten()
        }
    }
}

/// An export the store fails in the middle of (a row of its second page no longer agrees with
/// its hashed bytes) arrives cut short, without the trailer; before that, the same export is
/// complete and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_export_cut_short_has_no_trailer() {
    let gateway = TestGateway::start(StoreKind::Postgres).await;
    let recorded = futures_util::future::join_all((0..EVENTS).map(|i| {
        gateway.app.auditor.record(Event {
            platform: Some("cut-app".to_owned()),
            n_records: i as u32,
            ..Event::new(Action::DataAccess, "cut-app", Decision::Allow)
        })
    }))
    .await;
    let mut positions: Vec<i64> = recorded
        .into_iter()
        .map(|record| record.unwrap().position)
        .collect();
    positions.sort_unstable();
    let token = gateway.compliance.client_credentials().await.unwrap();

    for format in ["jsonl", "csv"] {
        let query = format!("format={format}&platform=cut-app");
        let (status, text, clean) = download(&gateway, &token, &query).await;
        assert_eq!((status, clean), (200, true), "{format}");
        assert_eq!(completed(format, &text), Some(EVENTS as u64), "{format}");
    }

    // A row in the second page is edited behind the gateway's back: reading it fails.
    let bankgate::config::StoreConfig::Postgres { url, .. } = &gateway.app.config.store else {
        unreachable!("a PostgreSQL gateway");
    };
    let admin = crate::support::pg::connect(url).await;
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE audit_events SET n_records = n_records + 1 WHERE position = {}",
            positions[1050]
        ))
        .await
        .expect("tamper");

    // How much of the first page arrives is not the gateway's to promise: when a body fails,
    // hyper closes the connection at once, and what it had buffered but not yet written (the
    // socket was full because the client had not read it yet) is lost. What the client can
    // always tell is that the transfer broke off and the trailer is missing.
    for format in ["jsonl", "csv"] {
        let query = format!("format={format}&platform=cut-app");
        let (status, text, clean) = download(&gateway, &token, &query).await;
        assert_eq!(status, 200, "{format}: the answer had begun");
        assert!(!clean, "{format}: the transfer is broken off");
        assert!(
            text.lines().count() < EVENTS,
            "{format}: not every event arrived"
        );
        assert_eq!(completed(format, &text), None, "{format}: no trailer");
    }
}

/// The empty export is complete too: a trailer that counts nothing.
async fn an_empty_export_is_complete(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    for format in ["jsonl", "csv"] {
        let query = format!("format={format}&platform=nobody");
        let (status, text, clean) = download(&gateway, &token, &query).await;
        assert_eq!((status, clean), (200, true), "{format}");
        assert_eq!(completed(format, &text), Some(0), "{format}: {text}");
    }
}

on_both_stores!(an_empty_export_is_complete);
