//! Erasure of a person by crypto-shredding: after `POST /v1/audit/subject/erase` no record
//! links the person (every PostgreSQL table searched for their reference, their old pseudonym
//! and their consents; the memory store through its traits), every audit event is still
//! there, the chain verifies, and a query by their old `user_ref` finds nothing. And the
//! `bankgate subject report` / `subject erase` commands, the real binary against PostgreSQL.

use std::process::Command;

use bankgate::audit::Filter;
use bankgate::demo::account_information;
use bankgate::model::Scope;
use serde_json::{Value, json};

use super::support::{StoreKind, TestGateway};
use bankgate::model::WireName;

on_both_stores!(erasure_unlinks_the_person_and_keeps_the_chain);

/// The grant key the test gateway runs with (the binary must open the same sealed keys).
const TEST_GRANT_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Every event of the log, by position.
async fn all_events(gateway: &TestGateway) -> Vec<bankgate::audit::Record> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = gateway
            .app
            .store
            .audit_events(&Filter {
                after,
                limit: Some(Filter::MAX_LIMIT),
                ..Filter::default()
            })
            .await
            .unwrap();
        let full = page.len() == Filter::MAX_LIMIT as usize;
        after = page.last().map(|record| record.position);
        events.extend(page);
        if !full {
            return events;
        }
    }
}

/// Rows of every table but the audit log's that contain `needle` in their text form.
async fn rows_naming(client: &tokio_postgres::Client, needle: &str) -> Vec<(String, i64)> {
    let tables = client
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND c.relname NOT LIKE 'audit_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert!(tables.len() > 20, "every table: {}", tables.len());
    let mut found = Vec::new();
    for table in tables {
        let table: String = table.get(0);
        let count: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{table}\" AS t \
                     WHERE strpos(t::text, $1) > 0"
                ),
                &[&needle],
            )
            .await
            .unwrap()
            .get(0);
        if count > 0 {
            found.push((table, count));
        }
    }
    found
}

async fn erasure_unlinks_the_person_and_keeps_the_chain(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let platform = gateway
        .fapi_platform("erase-hooks", Some("http://127.0.0.1:9/hooks"))
        .await;
    let detail = |user_ref: &str| {
        account_information(
            "demo-bank",
            "balance-alerts",
            &[Scope::Accounts, Scope::Balances],
            user_ref,
        )
    };
    // The person: two consents, one read, one revoked (a webhook queued about it).
    let (token, _) = platform.connect(&detail("u-erase")).await.expect("consent");
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (revoked, _) = platform.connect(&detail("u-erase")).await.expect("consent");
    let management = platform.client_credentials().await.unwrap();
    let (status, _) = platform
        .delete(&management, &format!("/v1/consents/{}", revoked.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 204);
    // Someone else, who stays.
    let (kept, _) = platform.connect(&detail("u-keep")).await.expect("consent");
    let consents = [token.consent_id.clone(), revoked.consent_id.clone()];

    let compliance = gateway.compliance.client_credentials().await.unwrap();
    let by_user_ref = "/v1/audit/events?platform=erase-hooks&user_ref=u-erase&limit=1000";
    let (status, found) = gateway
        .compliance
        .get(&compliance, by_user_ref)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let found = found["events"].as_array().unwrap().clone();
    assert!(found.len() >= 2, "the person's events are found: {found:?}");
    let pseudonym = gateway
        .app
        .auditor
        .pseudonym("erase-hooks", "u-erase")
        .await
        .unwrap();
    assert!(pseudonym.starts_with("up_"), "{pseudonym}");
    assert!(
        found
            .iter()
            .all(|event| event["user_ref"] == pseudonym.as_str())
    );
    let kept_pseudonym = gateway
        .app
        .auditor
        .pseudonym("erase-hooks", "u-keep")
        .await
        .unwrap();
    assert_ne!(kept_pseudonym, pseudonym, "one key per person");
    let webhooks_before = gateway
        .app
        .store
        .webhook_deliveries("erase-hooks")
        .await
        .unwrap();
    assert!(
        webhooks_before
            .iter()
            .any(|delivery| delivery.consent_id == revoked.consent_id),
        "a webhook about the revoked consent is queued"
    );

    let before = all_events(&gateway).await;
    let answer = gateway
        .compliance
        .post_json(
            &compliance,
            "/v1/audit/subject/erase",
            &json!({"platform": "erase-hooks", "user_ref": "u-erase"}),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["erased"]["key"], true, "{body}");
    assert_eq!(body["erased"]["consents"], 2, "{body}");
    assert!(body["erased"]["grants"].as_u64().unwrap() >= 1, "{body}");
    assert!(
        body["erased"]["refresh_tokens"].as_u64().unwrap() >= 1,
        "{body}"
    );
    assert!(
        body["erased"]["webhook_deliveries"].as_u64().unwrap() >= 1,
        "{body}"
    );

    // Every event is still there, unchanged, plus the erasure's own.
    let after = all_events(&gateway).await;
    assert_eq!(after.len(), before.len() + 1);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old, new, "events are kept as they were");
    }
    let erasure = after.last().unwrap();
    assert_eq!(erasure.position, body["position"].as_i64().unwrap());
    assert_eq!(erasure.event.action.as_str(), "subject_erased");
    assert!(erasure.event.user_ref.is_none());
    let text = serde_json::to_string(&erasure.event).unwrap();
    assert!(
        !text.contains("u-erase") && !text.contains(&pseudonym),
        "{text}"
    );
    assert!(!text.contains(&token.consent_id), "{text}");
    assert_eq!(
        after
            .iter()
            .filter(|record| record.event.user_ref.as_deref() == Some(pseudonym.as_str()))
            .count(),
        before
            .iter()
            .filter(|record| record.event.user_ref.as_deref() == Some(pseudonym.as_str()))
            .count(),
        "the person's events keep their (now unlinkable) pseudonym"
    );

    // The chain verifies end to end.
    let (status, verified) = gateway
        .compliance
        .get(&compliance, "/v1/audit/verify")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["events_checked"].as_i64().unwrap() >= erasure.position);

    // A query by the old reference finds nothing, and the pseudonym cannot be made again.
    let (status, found) = gateway
        .compliance
        .get(&compliance, by_user_ref)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(found["events"], json!([]), "{found}");
    let (_, found) = gateway
        .compliance
        .get(&compliance, "/v1/audit/events?user_ref=u-erase&limit=1000")
        .await
        .unwrap();
    assert_eq!(found["events"], json!([]), "{found}");
    let now = gateway
        .app
        .auditor
        .pseudonym("erase-hooks", "u-erase")
        .await
        .unwrap();
    assert_ne!(now, pseudonym);
    let (_, report) = gateway
        .compliance
        .get(
            &compliance,
            "/v1/audit/subject?platform=erase-hooks&user_ref=u-erase",
        )
        .await
        .unwrap();
    assert_eq!(report["consents"], json!([]), "{report}");
    assert_eq!(report["events"], json!([]), "{report}");

    // No record links the person any more.
    let store = &gateway.app.store;
    assert!(
        store
            .consents_of("erase-hooks", "u-erase")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .subject_key("erase-hooks", "u-erase")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.subject_keys_of("u-erase").await.unwrap().is_empty());
    for consent_id in &consents {
        assert!(store.consent(consent_id).await.unwrap().is_none());
        assert!(store.grant(consent_id).await.unwrap().is_none());
    }
    assert!(
        store
            .webhook_deliveries("erase-hooks")
            .await
            .unwrap()
            .iter()
            .all(|delivery| !consents.contains(&delivery.consent_id))
    );
    // The other person keeps everything.
    assert!(store.consent(&kept.consent_id).await.unwrap().is_some());
    assert!(store.grant(&kept.consent_id).await.unwrap().is_some());
    assert!(
        store
            .subject_key("erase-hooks", "u-keep")
            .await
            .unwrap()
            .is_some()
    );
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert!(
        matches!(status, 401 | 403),
        "the erased consent's token no longer works: {status}"
    );

    if let Some(url) = gateway.database_url() {
        let client = super::support::pg::connect(url).await;
        for needle in [
            "u-erase",
            pseudonym.as_str(),
            token.consent_id.as_str(),
            revoked.consent_id.as_str(),
        ] {
            assert_eq!(rows_naming(&client, needle).await, [], "{needle}");
        }
        assert!(
            !rows_naming(&client, "u-keep").await.is_empty(),
            "the search finds what is there"
        );
        // The audit log holds neither the reference itself nor the key.
        let raw: i64 = client
            .query_one(
                "SELECT count(*) FROM audit_events AS e WHERE strpos(e::text, 'u-erase') > 0",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(raw, 0);
    }
}

/// Runs `bankgate ARGS` against `database_url` with the test gateway's grant key (and its
/// key id, which only a configuration file sets).
fn bankgate(database_url: &str, args: &[&str]) -> (String, String) {
    let config =
        std::env::temp_dir().join(format!("bankgate-erasure-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&config, "grant_key_id = \"test\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bankgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", database_url)
        .env("BANKGATE_GRANT_KEY", TEST_GRANT_KEY)
        .env("BANKGATE_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("the bankgate binary runs");
    let _ = std::fs::remove_file(&config);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// `bankgate subject report` and `bankgate subject erase`, the real binary against the
/// gateway's PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_commands_report_and_erase() {
    let gateway = TestGateway::start(StoreKind::Postgres).await;
    let platform = &gateway.platform;
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-cli",
    );
    let (token, _) = platform.connect(&detail).await.expect("consent");
    let (status, _) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let url = gateway.database_url().unwrap().to_owned();
    let client_id = platform.client_id.clone();
    let subject = ["--platform", client_id.as_str(), "--user-ref", "u-cli"];

    let (stdout, _) = bankgate(&url, &[&["subject", "report"][..], &subject].concat());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["consents"][0]["id"], token.consent_id.as_str());
    let pseudonym = report["pseudonym"].as_str().unwrap().to_owned();
    assert!(pseudonym.starts_with("up_"), "{pseudonym}");
    assert!(
        report["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["action"] == "data_access"),
        "{report}"
    );
    let (html, _) = bankgate(
        &url,
        &[&["subject", "report"][..], &subject, &["--html"]].concat(),
    );
    assert!(html.contains(&token.consent_id) && html.contains("<table"));

    let head_before = gateway.app.store.audit_head().await.unwrap().unwrap().0;
    let (stdout, _) = bankgate(&url, &[&["subject", "erase"][..], &subject].concat());
    let erased: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(erased["erased"]["consents"], 1, "{erased}");
    assert_eq!(erased["erased"]["key"], true, "{erased}");
    assert_eq!(erased["position"], head_before + 1, "{erased}");
    assert!(!stdout.contains(&pseudonym));

    let (stdout, _) = bankgate(&url, &[&["subject", "report"][..], &subject].concat());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["consents"], json!([]), "{report}");
    assert_eq!(
        report["events"],
        json!([]),
        "none of the old events: {report}"
    );
    assert_ne!(report["pseudonym"], pseudonym.as_str());

    let (status, verified) = gateway
        .compliance
        .get(
            &gateway.compliance.client_credentials().await.unwrap(),
            "/v1/audit/verify",
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(verified["ok"], true, "{verified}");
}
