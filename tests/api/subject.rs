//! Subject access: the report about one platform's user (consents with purpose, legal basis
//! and retention promised, every audit event about them, webhooks sent), as JSON — held to a
//! golden file — and as a printable page; producing it is audited.

use std::collections::HashMap;

use bankgate::demo::account_information;
use bankgate::model::Scope;
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

on_both_stores!(subject_report_holds_everything_about_one_person);

const GOLDEN: &str = "tests/expected/subject/report.json";

/// Whether `word` is a UUID (`8-4-4-4-12` hex digits): consent and request ids.
fn is_uuid(word: &str) -> bool {
    word.len() == 36
        && word.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The report with what changes from run to run replaced: ids (consents, requests) by their
/// order of appearance, times, positions relative to the first event, the pseudonym.
fn normalised(report: &Value) -> Value {
    let mut consents: HashMap<String, String> = HashMap::new();
    let first = report["events"][0]["position"].as_i64().unwrap_or_default();
    fn walk(
        value: &Value,
        key: &str,
        first: i64,
        pseudonym: &str,
        consents: &mut HashMap<String, String>,
    ) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), walk(v, k, first, pseudonym, consents)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| walk(v, key, first, pseudonym, consents))
                    .collect(),
            ),
            Value::Number(n) if key == "position" => {
                Value::from(n.as_i64().unwrap_or_default() - first)
            }
            Value::String(text) => {
                let mut text = text.replace(pseudonym, "<pseudonym>");
                if matches!(
                    key,
                    "time" | "generated_at" | "since" | "until" | "created_at" | "delivered_at"
                ) {
                    return Value::from("<time>");
                }
                let ids: Vec<String> = text
                    .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
                    .filter(|word| is_uuid(word))
                    .map(str::to_owned)
                    .collect();
                for id in ids {
                    let n = consents.len() + 1;
                    let name = consents
                        .entry(id.clone())
                        .or_insert_with(|| format!("<id-{n}>"))
                        .clone();
                    text = text.replace(&id, &name);
                }
                Value::from(text)
            }
            other => other.clone(),
        }
    }
    let pseudonym = report["pseudonym"].as_str().unwrap_or_default().to_owned();
    walk(report, "", first, &pseudonym, &mut consents)
}

async fn subject_report_holds_everything_about_one_person(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway
        .fapi_platform("chat-hooks", Some("http://127.0.0.1:9/hooks"))
        .await;
    let balances = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-subject",
    );
    let (token, _) = platform.connect(&balances).await.expect("consent flow");
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = platform
        .get(&token.access_token, "/v1/identity")
        .await
        .unwrap();
    assert_eq!(status, 403, "out of scope: a denial on the record");
    // Another person of the same platform: not in the report.
    let other = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-other",
    );
    let (other_token, _) = platform.connect(&other).await.expect("consent flow");
    let management = platform.client_credentials().await.unwrap();
    let (status, _) = platform
        .delete(&management, &format!("/v1/consents/{}", token.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);

    let compliance = gateway.compliance.client_credentials().await.unwrap();
    let path = "/v1/audit/subject?platform=chat-hooks&user_ref=u-subject";
    let (status, report) = gateway.compliance.get(&compliance, path).await.unwrap();
    assert_eq!(status, 200, "{report}");
    let text = report.to_string();
    assert!(!text.contains(&other_token.consent_id), "only this person");
    assert_eq!(report["consents"][0]["id"], token.consent_id.as_str());
    assert!(
        report["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["action"] == "data_access" && event["decision"] == "deny"),
        "{report}"
    );

    let normalised = normalised(&report);
    let pretty = serde_json::to_string_pretty(&normalised).unwrap() + "\n";
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1") {
        std::fs::create_dir_all("tests/expected/subject").unwrap();
        std::fs::write(GOLDEN, &pretty).unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN)
        .expect("the golden report; run with UPDATE_EXPECT=1 and review it");
    assert_eq!(
        pretty, golden,
        "the report differs from {GOLDEN}; run with UPDATE_EXPECT=1 and review the diff"
    );

    // The printable page: the same facts, no script, nothing but itself.
    let answer = gateway
        .compliance
        .send(
            reqwest::Method::GET,
            &format!("{path}&format=html"),
            Some(&compliance),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let headers = &answer.headers;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let page = String::from_utf8(answer.body.to_vec()).unwrap();
    assert!(page.contains(&token.consent_id));
    assert!(page.contains("Balance alerts"), "{page}");
    assert!(page.contains("consent.revoked"), "the webhook: {page}");
    assert!(!page.contains("<script"));

    // Each report is on the record, naming the person only by pseudonym.
    let (status, audited) = gateway
        .compliance
        .get(
            &compliance,
            "/v1/audit/events?action=audit_queried&limit=1000",
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let reports: Vec<&Value> = audited["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| {
            event["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("subject-report"))
        })
        .collect();
    assert_eq!(reports.len(), 2, "{audited}");
    for event in reports {
        assert!(!event.to_string().contains("u-subject"), "{event}");
        assert_eq!(event["user_ref"], report["pseudonym"]);
    }

    // A platform cannot ask.
    let (status, _) = platform.get(&management, path).await.unwrap();
    assert_eq!(status, 403);
}
