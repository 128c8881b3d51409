//! The audit log end to end on PostgreSQL: group commit, checkpoints, verification (the library
//! and `bankgate audit verify` as a real process), a tamper suite, three gateway instances on
//! one database, the database going away under load, and `bankgate serve` killed mid-flight.

#[path = "../support/pg.rs"]
#[allow(dead_code)]
mod pg;

#[path = "../support/gateway.rs"]
#[allow(dead_code)]
mod gateway;

mod proxy;
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bankgate::audit::verifier::{VerifyOptions, verify_chain};
use bankgate::audit::{AuditConfig, Checkpoint, Filter, VerifyingKeys};
use bankgate::demo::{PlatformClient, account_information};
use bankgate::model::Scope;
use bankgate::store::Store;

use support::*;

// Group commit and checkpoints.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_share_commits_and_form_one_chain() {
    let database = pg::TestDatabase::create();
    let store = pg_store(&database.url).await;
    let key = signing_key();
    let auditor = auditor(store.clone(), &key, AuditConfig::default());
    record_many(&auditor, 64, 2000).await;

    let report = verify(&store, &key).await;
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!((report.n_events, report.last), (2000, 2000));
    // Fewer commits than events: the spine records when each event took its place, and events
    // of one commit share it.
    let client = pg::connect(&database.url).await;
    let commits: i64 = client
        .query_one("SELECT count(DISTINCT chained_at) FROM audit_chain", &[])
        .await
        .unwrap()
        .get(0);
    assert!(commits < 2000, "{commits} commits for 2000 events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_are_signed_every_n_events() {
    let database = pg::TestDatabase::create();
    let store = pg_store(&database.url).await;
    let key = signing_key();
    let auditor = auditor(
        store.clone(),
        &key,
        AuditConfig {
            checkpoint_every: 100,
            ..AuditConfig::default()
        },
    );
    record_many(&auditor, 16, 1000).await;
    // Checkpoints are made in the background after the commit that crosses the mark, until
    // the chain is less than 100 events past the last one.
    let checkpoints = eventually(|| async {
        let checkpoints = store.audit_checkpoints(None, 1000).await.unwrap();
        let last = checkpoints
            .last()
            .map_or(0, |checkpoint| checkpoint.position);
        (1000 - last < 100).then_some(checkpoints)
    })
    .await;
    for pair in checkpoints.windows(2) {
        assert!(pair[1].position - pair[0].position >= 100, "{pair:?}");
    }
    let keys = VerifyingKeys::of(&key);
    for checkpoint in &checkpoints {
        keys.check(checkpoint).expect("signed by the gateway's key");
    }
    let report = verify(&store, &key).await;
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.n_checkpoints, checkpoints.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_references_are_stored_pseudonymised_and_found_by_the_reference() {
    let database = pg::TestDatabase::create();
    let store = pg_store(&database.url).await;
    let key = signing_key();
    let auditor = auditor(store.clone(), &key, AuditConfig::default());
    record_many(&auditor, 4, 70).await;

    let client = pg::connect(&database.url).await;
    let raw: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_events \
             WHERE user_ref LIKE 'u-%' OR convert_from(canonical, 'UTF8') LIKE '%\"u-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, 0, "no raw user reference is stored");
    let found = auditor
        .events(&Filter {
            user_ref: Some("u-3".into()),
            limit: Some(1000),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 10, "events 3, 10, 17, …, 66");
    // Each platform's u-3 is a person of their own, with a key and a pseudonym of their own.
    let mut pseudonyms = std::collections::HashSet::new();
    for record in &found {
        let platform = record.event.platform.as_deref().unwrap();
        let pseudonym = auditor.pseudonym(platform, "u-3").await.unwrap();
        assert!(pseudonym.starts_with("up_"), "{pseudonym}");
        assert_eq!(record.event.user_ref.as_deref(), Some(pseudonym.as_str()));
        pseudonyms.insert(pseudonym);
    }
    assert_eq!(pseudonyms.len(), 3, "one pseudonym per platform");
}

// The tamper suite: each change to a written log is found by the library and by
// `bankgate audit verify`, at the position it was made.

/// A log of 100 events with signed checkpoints at 30, 60 and 100, a copy of the one at 60 kept
/// outside the database, and the key file the binary verifies with.
struct Log {
    database: pg::TestDatabase,
    store: Arc<dyn Store>,
    keys: VerifyingKeys,
    key_file: std::path::PathBuf,
    outside: std::path::PathBuf,
    _dir: TempDir,
}

impl Log {
    async fn write() -> Log {
        let dir = TempDir::new();
        let (key, key_file) = signing_key_file(&dir);
        let database = pg::TestDatabase::create();
        let store = pg_store(&database.url).await;
        let auditor = auditor(
            store.clone(),
            &key,
            AuditConfig {
                checkpoint_every: u64::MAX,
                checkpoint_interval: Duration::ZERO,
                ..AuditConfig::default()
            },
        );
        record_many(&auditor, 8, 100).await;
        let records = store
            .audit_events(&Filter {
                limit: Some(1000),
                ..Filter::default()
            })
            .await
            .unwrap();
        let mut kept: Option<Checkpoint> = None;
        for position in [30, 60, 100] {
            let record = &records[position - 1];
            let checkpoint = auditor
                .checkpointer()
                .checkpoint_at(record.position, record.hash, None)
                .await
                .unwrap()
                .expect("a new checkpoint");
            if position == 60 {
                kept = Some(checkpoint);
            }
        }
        let outside = dir.join("checkpoint-60.json");
        std::fs::write(&outside, serde_json::to_vec(&kept).unwrap()).unwrap();
        Log {
            database,
            store,
            keys: VerifyingKeys::of(&key),
            key_file,
            outside,
            _dir: dir,
        }
    }

    /// Runs `sql` as a superuser who disabled the append-only triggers.
    async fn tamper(&self, sql: &str) {
        let admin = pg::connect(&self.database.url).await;
        admin
            .batch_execute(&format!("SET session_replication_role = replica; {sql}"))
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    /// Verifies with the library and with the binary, optionally from the checkpoint kept
    /// outside; both must find the first break at `position` (or none), saying `what`.
    async fn expect_break(&self, from_outside: bool, expected: Option<(i64, &str)>) {
        let from = from_outside.then(|| {
            let kept: Checkpoint =
                serde_json::from_slice(&std::fs::read(&self.outside).unwrap()).unwrap();
            kept
        });
        let report = verify_chain(
            self.store.as_ref(),
            &VerifyOptions {
                keys: self.keys.clone(),
                from,
            },
            |_| {},
        )
        .await
        .unwrap();
        let found = report
            .first_break
            .as_ref()
            .map(|broken| (broken.position, broken.what.as_str()));
        match (expected, found) {
            (None, None) => {}
            (Some((position, what)), Some((at, said))) => {
                assert_eq!(at, position, "library: {said}");
                assert!(
                    said.contains(what),
                    "library says {said:?}, expected {what:?}"
                );
            }
            (expected, found) => panic!("library: expected {expected:?}, found {found:?}"),
        }

        let outside = self.outside.display().to_string();
        let args: Vec<&str> = if from_outside {
            vec!["--from-checkpoint", &outside]
        } else {
            vec![]
        };
        let output = verify_binary(&self.database.url, &self.key_file, &args).await;
        match expected {
            None => {
                assert!(output.success, "{output:?}");
                assert!(output.stdout.contains("audit log intact"), "{output:?}");
            }
            Some((position, what)) => {
                assert!(
                    !output.success,
                    "exit code must say it is broken: {output:?}"
                );
                let line = format!("audit log BROKEN at position {position}: ");
                assert!(output.stdout.contains(&line), "{output:?}");
                assert!(output.stdout.contains(what), "{output:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untouched_log_verifies() {
    let log = Log::write().await;
    log.expect_break(false, None).await;
    log.expect_break(true, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_an_edited_event_is_found_at_its_position() {
    let log = Log::write().await;
    // Event and typed column changed alike: only the hash can tell.
    log.tamper(
        "UPDATE audit_events SET
             actor = 'someone-else',
             canonical = convert_to(
                 regexp_replace(convert_from(canonical, 'UTF8'),
                                '\"actor\":\"[^\"]*\"', '\"actor\":\"someone-else\"'),
                 'UTF8')
         WHERE position = 37",
    )
    .await;
    log.expect_break(false, Some((37, "does not match its stored event bytes")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_typed_column_edited_alone_is_found() {
    let log = Log::write().await;
    log.tamper("UPDATE audit_events SET platform = 'platform-x' WHERE position = 41")
        .await;
    log.expect_break(
        false,
        Some((
            41,
            "typed columns disagree with the hashed event bytes (platform)",
        )),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_deleted_event_is_found() {
    let log = Log::write().await;
    log.tamper("DELETE FROM audit_events WHERE position = 50")
        .await;
    log.expect_break(false, Some((50, "no event at position 50")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_reordered_events_are_found() {
    let log = Log::write().await;
    log.tamper(
        "UPDATE audit_events SET position = 1000000 WHERE position = 60;
         UPDATE audit_events SET position = 60 WHERE position = 61;
         UPDATE audit_events SET position = 61 WHERE position = 1000000;",
    )
    .await;
    log.expect_break(
        false,
        Some((60, "previous hash is not the hash of position 59")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_truncated_tail_is_found() {
    let log = Log::write().await;
    // The spine goes too: only the checkpoint at 100 remembers the tail.
    log.tamper(
        "DELETE FROM audit_events WHERE position > 90;
         DELETE FROM audit_chain WHERE position > 90;",
    )
    .await;
    log.expect_break(false, Some((91, "covers position 100")))
        .await;

    // The forger also removes the checkpoints above 60: the one kept outside still covers 60.
    log.tamper(
        "DELETE FROM audit_events WHERE position > 45;
         DELETE FROM audit_chain WHERE position > 45;
         DELETE FROM audit_checkpoints WHERE position > 30;",
    )
    .await;
    log.expect_break(
        true,
        Some((46, "the starting checkpoint covers position 60")),
    )
    .await;
}

/// Rewrites event 10 and recomputes every hash after it (events and spine), so that the chain
/// is consistent again.
const REWRITE: &str = "
    UPDATE audit_events SET
        actor = 'forger',
        canonical = convert_to(
            regexp_replace(convert_from(canonical, 'UTF8'),
                           '\"actor\":\"[^\"]*\"', '\"actor\":\"forger\"'),
            'UTF8')
    WHERE position = 10;
    DO $$
    DECLARE
        row record;
        prev bytea;
        next bytea;
    BEGIN
        SELECT hash INTO prev FROM audit_events WHERE position = 9;
        FOR row IN SELECT position, canonical FROM audit_events
                   WHERE position >= 10 ORDER BY position LOOP
            next := sha256(prev || int8send(row.position) || row.canonical);
            UPDATE audit_events SET prev_hash = prev, hash = next WHERE position = row.position;
            UPDATE audit_chain SET hash = next WHERE position = row.position;
            prev := next;
        END LOOP;
    END;
    $$;";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_consistent_rewrite_is_found_by_the_signed_checkpoint() {
    let log = Log::write().await;
    log.tamper(REWRITE).await;
    // Every hash checks out; the first signed checkpoint after the edit does not.
    log.expect_break(false, Some((30, "differs from the checkpoint signed at")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_rewrite_that_drops_the_checkpoints_is_found_by_one_kept_outside() {
    let log = Log::write().await;
    log.tamper(&format!("{REWRITE} DELETE FROM audit_checkpoints;"))
        .await;
    // With no checkpoint left in the database, the rewritten log is self-consistent: this is
    // why checkpoints are worth keeping elsewhere.
    log.expect_break(false, None).await;
    log.expect_break(true, Some((60, "differs from the starting checkpoint")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tamper_a_forged_checkpoint_is_found() {
    let log = Log::write().await;
    // A checkpoint that claims another hash (its JWS still says the true one).
    log.tamper("UPDATE audit_checkpoints SET hash = sha256('x'::bytea) WHERE position = 60")
        .await;
    log.expect_break(false, Some((60, "differs from what its JWS says")))
        .await;
}

// Three gateway instances on one database.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_write_one_chain_that_verifies_and_pinpoints_an_edit() {
    let dir = TempDir::new();
    let (key, key_file) = signing_key_file(&dir);
    let database = pg::TestDatabase::create();
    let mut instances = Vec::new();
    for _ in 0..3 {
        let mut config = gateway_config(&database.url, &key_file);
        config.audit.checkpoint_every = 100;
        instances.push(Served::start(config).await);
    }
    let (_, officer_secret) = register_clients(&instances[0]).await;

    let mut tasks = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        // Over HTTP: compliance tokens (token_issued) and queries (audit_queried)…
        for _ in 0..2 {
            let officer =
                PlatformClient::new(&instance.base, "compliance-office", &officer_secret, "")
                    .unwrap();
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    let token = officer.client_credentials().await.expect("token");
                    let (status, _) = officer
                        .get(&token, "/v1/audit/events?limit=1")
                        .await
                        .expect("query");
                    assert_eq!(status, 200);
                }
            }));
        }
        // …and many decisions recorded directly, each instance under its own name.
        for writer in 0..16 {
            let auditor = instance.app.auditor.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    let mut event = event(writer * 25 + n);
                    event.platform = Some(format!("instance-{i}"));
                    auditor.record(event).await.expect("event commits");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }

    // One gapless chain holding every instance's events.
    let admin = pg::connect(&database.url).await;
    let row = admin
        .query_one(
            "SELECT count(*), min(position), max(position), count(DISTINCT position) \
             FROM audit_events",
            &[],
        )
        .await
        .unwrap();
    let (count, first, last, distinct): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (first, last, distinct),
        (1, count, count),
        "gapless, no fork"
    );
    for i in 0..3 {
        let mine: i64 = admin
            .query_one(
                "SELECT count(*) FROM audit_events WHERE platform = $1",
                &[&format!("instance-{i}")],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(mine, 400, "instance {i}");
    }
    let store = pg_store(&database.url).await;
    let report = verify(&store, &key).await;
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert!(
        report.n_checkpoints >= 3,
        "checkpoints: {}",
        report.n_checkpoints
    );

    let output = verify_binary(&database.url, &key_file, &[]).await;
    assert!(output.success, "{output:?}");
    assert!(
        output
            .stdout
            .contains(&format!("{count} events checked from the first event")),
        "{output:?}"
    );

    // One edited row, and the binary names it.
    let edited = count / 2;
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE audit_events SET
                 canonical = convert_to(
                     regexp_replace(convert_from(canonical, 'UTF8'),
                                    '\"n_records\":([0-9]+)', '\"n_records\":9\\1'),
                     'UTF8')
             WHERE position = {edited} AND convert_from(canonical, 'UTF8') LIKE '%\"n_records\":%';"
        ))
        .await
        .unwrap();
    // Keep the typed column in step with the bytes, whatever the number was.
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE audit_events SET n_records =
                 (convert_from(canonical, 'UTF8')::jsonb ->> 'n_records')::bigint
             WHERE position = {edited};"
        ))
        .await
        .unwrap();
    let output = verify_binary(&database.url, &key_file, &[]).await;
    assert!(!output.success, "{output:?}");
    assert!(
        output.stdout.contains(&format!(
            "audit log BROKEN at position {edited}: its hash does not match its stored event bytes"
        )),
        "{output:?}"
    );
}

// The database goes away under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_under_load_fails_closed_and_recovers() {
    let dir = TempDir::new();
    let (_, key_file) = signing_key_file(&dir);
    let database = pg::TestDatabase::create();
    let proxy = proxy::Proxy::start(server_addr()).await;
    let gateway = Served::start(gateway_config(&proxy.url_for(&database.url), &key_file)).await;
    let (platform_secret, _) = register_clients(&gateway).await;
    let platform =
        PlatformClient::new(&gateway.base, "messenger", &platform_secret, REDIRECT_URI).unwrap();
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-outage",
    );
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let account = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();

    // Eight clients keep asking while the database is cut and restored.
    let stop = Arc::new(AtomicBool::new(false));
    let restored = Arc::new(AtomicBool::new(false));
    let ok_after_restore = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, base, token, account) = (
            platform.http.clone(),
            gateway.base.clone(),
            token.access_token.clone(),
            account.clone(),
        );
        let (stop, restored, ok_after_restore) =
            (stop.clone(), restored.clone(), ok_after_restore.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let id = uuid::Uuid::new_v4().to_string();
                let after = restored.load(Ordering::SeqCst);
                if let Some((status, kind)) =
                    get_balances(&http, &base, &token, &account, &id).await
                {
                    if after && status == 200 {
                        ok_after_restore.fetch_add(1, Ordering::SeqCst);
                    }
                    answers.push((id, status, kind));
                }
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    restored.store(true, Ordering::SeqCst);
    // Recovery without a restart: successes again.
    eventually(|| async { (ok_after_restore.load(Ordering::SeqCst) >= 20).then_some(()) }).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }

    let released: HashSet<String> = answers
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(id, _, _)| id.clone())
        .collect();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(!refused.is_empty(), "some requests met the outage");
    let by_audit = refused
        .iter()
        .filter(|(_, _, kind)| kind.as_deref() == Some("audit-unavailable"))
        .count();
    eprintln!(
        "{} answers: {} with data, {} refused ({by_audit} by the audit layer)",
        answers.len(),
        released.len(),
        refused.len()
    );
    for (_, status, kind) in &refused {
        assert_eq!(*status, 503, "{kind:?}");
        assert!(
            matches!(
                kind.as_deref(),
                Some("audit-unavailable" | "store-unavailable")
            ),
            "{kind:?}"
        );
    }
    // Every response that carried data has its committed audit event.
    let audited = audited_request_ids(&database.url, "allow").await;
    let unaudited: Vec<&String> = released.difference(&audited).collect();
    assert!(
        unaudited.is_empty(),
        "data released without an audit event: {unaudited:?}"
    );

    let store = pg_store(&database.url).await;
    let report = verify_chain(
        store.as_ref(),
        &VerifyOptions {
            keys: VerifyingKeys::of(&gateway.app.signing_key),
            from: None,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
}

/// The release alone, for a handler that always has data to release, on the real database
/// behind the proxy: while the database is away every answer is a 503 and none carries data;
/// once it is back answers flow again, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_release_withholds_data_while_the_database_is_away() {
    use bankgate::access::{Facts, Grant};
    use bankgate::consent::{Consent, ConsentStatus};
    use bankgate::http::access::{Released, release};
    use bankgate::policy::{Object, Obligations};

    let database = pg::TestDatabase::create();
    let proxy = proxy::Proxy::start(server_addr()).await;
    let store = pg_store(&proxy.url_for(&database.url)).await;
    let key = signing_key();
    let auditor = auditor(store.clone(), &key, AuditConfig::default());
    let now = chrono::Utc::now();
    let grant = Grant {
        facts: Facts {
            actor: "messenger".into(),
            consent: "consent-1".into(),
            bank: Some("demo-bank".into()),
            user_ref: Some("u-1".into()),
            purpose: Some("balance-alerts".into()),
            policy_hash: Some("sha256:policy".into()),
            category: Scope::Balances,
            request_id: None,
        },
        scope: Scope::Balances,
        consent: Consent {
            id: "consent-1".into(),
            client_id: "messenger".into(),
            bank_id: "demo-bank".into(),
            purpose: "balance-alerts".into(),
            scopes: vec![Scope::Balances],
            history_days: 0,
            user_ref: "u-1".into(),
            status: ConsentStatus::Authorised,
            policy_hash: "sha256:policy".into(),
            redirect_uri: "https://platform.example/cb".into(),
            state: None,
            code_challenge: "challenge".into(),
            dpop_jkt: None,
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
        },
        obligations: Obligations {
            object: Object::Balance,
            fields: ["amount".to_owned()].into(),
            history_days: 0,
            unattended_limit: None,
        },
        account_id: Some("acc-1".into()),
        bank_ref: Some("ref-1".into()),
        bank_grant: None,
        budget_day: None,
    };
    let answer = move |id: String| {
        let (store, auditor) = (store.clone(), auditor.clone());
        let mut grant = grant.clone();
        grant.facts.request_id = Some(id);
        async move {
            let released = Released {
                body: serde_json::json!({"balances": "the balances"}),
                fields: vec!["amount".into()],
                n_records: 1,
            };
            release(store.as_ref(), &auditor, &grant, Ok(released)).await
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let restored = Arc::new(AtomicBool::new(false));
    let ok_after_restore = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let answer = answer.clone();
        let (stop, restored, ok_after_restore) =
            (stop.clone(), restored.clone(), ok_after_restore.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let id = uuid::Uuid::new_v4().to_string();
                let after = restored.load(Ordering::SeqCst);
                let response = answer(id.clone()).await;
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                if after && status == 200 {
                    ok_after_restore.fetch_add(1, Ordering::SeqCst);
                }
                answers.push((id, status, body));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    restored.store(true, Ordering::SeqCst);
    eventually(|| async { (ok_after_restore.load(Ordering::SeqCst) >= 100).then_some(()) }).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }

    let withheld: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        withheld.len() >= 10,
        "the outage was felt: {} refusals",
        withheld.len()
    );
    for (_, status, body) in &withheld {
        assert_eq!(*status, 503);
        let problem: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("/audit-unavailable"),
            "{problem}"
        );
        assert!(!String::from_utf8_lossy(body).contains("the balances"));
    }
    let released: HashSet<String> = answers
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(id, _, _)| id.clone())
        .collect();
    let audited = audited_request_ids(&database.url, "allow").await;
    let unaudited: Vec<&String> = released.difference(&audited).collect();
    assert!(
        unaudited.is_empty(),
        "data released without an audit event: {unaudited:?}"
    );
    eprintln!(
        "{} answers: {} released, {} withheld",
        answers.len(),
        released.len(),
        withheld.len()
    );
    let store = pg_store(&database.url).await;
    let report = verify(&store, &key).await;
    assert!(report.is_intact(), "{:?}", report.first_break);
}

// `bankgate serve` killed with SIGKILL while requests are in flight.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_released_nothing_unaudited_and_lost_no_acknowledged_event() {
    let dir = TempDir::new();
    let (_, key_file) = signing_key_file(&dir);
    let database = pg::TestDatabase::create();
    let config_file = dir.join("bankgate.toml");
    std::fs::write(
        &config_file,
        // The platform below uses a secret and bearer tokens: the development setting.
        "listen = \"127.0.0.1:0\"\nsandbox_approval = \"auto\"\nallow_insecure_clients = true\n",
    )
    .unwrap();
    let admin_token = "admin-token-for-the-crash-test";
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_bankgate"))
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("BANKGATE_CONFIG", &config_file)
            .env("DATABASE_URL", &database.url)
            .env("BANKGATE_GRANT_KEY", GRANT_KEY)
            .env("BANKGATE_SIGNING_KEY_FILE", &key_file)
            .env("BANKGATE_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bankgate serve starts")
    };
    let mut child = spawn();
    let base = listening_on(&mut child).await;

    let http = bankgate::crypto::http_client_builder().build().unwrap();
    let registered: serde_json::Value = http
        .post(format!("{base}/admin/clients"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({
            "client_id": "messenger",
            "name": "Messenger",
            "role": "platform",
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": ["balance-alerts"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = registered["client_secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let platform = PlatformClient::new(&base, "messenger", &secret, REDIRECT_URI).unwrap();
    let detail = account_information(
        "demo-bank",
        "balance-alerts",
        &[Scope::Accounts, Scope::Balances],
        "u-crash",
    );
    let (token, _) = platform.connect(&detail).await.expect("consent flow");
    let (status, accounts) = platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{accounts}");
    let account = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();

    // Sixteen clients; the process is killed once a hundred answers came back.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (http, base, token, account, answered) = (
            http.clone(),
            base.clone(),
            token.access_token.clone(),
            account.clone(),
            answered.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut released = Vec::new();
            let mut misses = 0;
            while misses < 3 {
                let id = uuid::Uuid::new_v4().to_string();
                match get_balances(&http, &base, &token, &account, &id).await {
                    Some((200, _)) => {
                        answered.fetch_add(1, Ordering::SeqCst);
                        released.push(id);
                    }
                    Some(_) => {}
                    None => misses += 1,
                }
            }
            released
        }));
    }
    eventually(|| async { (answered.load(Ordering::SeqCst) >= 100).then_some(()) }).await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("the gateway is gone");
    let mut released = HashSet::new();
    for client in clients {
        released.extend(client.await.unwrap());
    }
    assert!(released.len() >= 100);

    // Every answer with data has its event: it was committed before the answer left.
    let audited = audited_request_ids(&database.url, "allow").await;
    let unaudited: Vec<&String> = released.difference(&audited).collect();
    assert!(
        unaudited.is_empty(),
        "data released without an audit event: {unaudited:?}"
    );
    // The consent flow's acknowledged steps are there too, and the chain is whole.
    let admin = pg::connect(&database.url).await;
    let steps: Vec<String> = admin
        .query(
            "SELECT action FROM audit_events WHERE consent = $1 AND action <> 'data_access' \
             ORDER BY position",
            &[&token.consent_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for step in ["consent_created", "consent_authorised", "token_issued"] {
        assert!(
            steps.iter().any(|action| action == step),
            "{step} in {steps:?}"
        );
    }
    let output = verify_binary(&database.url, &key_file, &[]).await;
    assert!(output.success, "{output:?}");

    // A new process continues the same chain.
    let mut child = spawn();
    let base = listening_on(&mut child).await;
    let platform = PlatformClient::new(&base, "messenger", &secret, REDIRECT_URI).unwrap();
    // (Its public URL changed with its port, so it issues tokens anew: an audited step.)
    platform
        .client_credentials()
        .await
        .expect("the new process issues a token");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let output = verify_binary(&database.url, &key_file, &[]).await;
    assert!(output.success, "{output:?}");
    let after: i64 = admin
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = 'token_issued' AND actor = 'messenger'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after >= 2, "the new process appended to the same chain");
}

/// Reads `bankgate serve`'s stdout until it says where it listens.
async fn listening_on(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("bankgate listening on ") {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("bankgate serve says where it listens");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    base
}

// Retention.

/// Moves the first `n` events (and their spine rows) into a partition for January 2020, as if
/// they had been chained then.
async fn age_first_events(url: &str, store: &Arc<dyn Store>, n: i64) -> bankgate::audit::Partition {
    let january = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2020, 1, 15, 0, 0, 0).unwrap();
    store
        .prepare_audit_partitions(january, january)
        .await
        .unwrap();
    let admin = pg::connect(url).await;
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE audit_events SET chained_at = '2020-01-15T00:00:00Z' WHERE position <= {n};
             UPDATE audit_chain SET chained_at = '2020-01-15T00:00:00Z' WHERE position <= {n};"
        ))
        .await
        .unwrap();
    store
        .audit_partitions()
        .await
        .unwrap()
        .into_iter()
        .find(|partition| partition.name == "audit_events_2020m01")
        .expect("the January 2020 partition")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_partitions_are_archived_with_a_checkpoint_then_dropped() {
    let dir = TempDir::new();
    let database = pg::TestDatabase::create();
    let store = pg_store(&database.url).await;
    let key = signing_key();
    let config = AuditConfig {
        retention: chrono::Duration::days(365),
        ..AuditConfig::default()
    };
    let keeper = auditor(store.clone(), &key, config.clone());
    record_many(&keeper, 8, 100).await;
    let old = age_first_events(&database.url, &store, 40).await;

    // Without an archive directory nothing is dropped.
    let now = chrono::Utc::now();
    assert!(
        bankgate::audit::retention::apply(&keeper, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .audit_partitions()
            .await
            .unwrap()
            .iter()
            .any(|p| p.name == old.name && p.dropped_at.is_none())
    );

    // The database refuses to drop a partition whose archive does not match it.
    let wrong = bankgate::audit::Archive {
        partition: old.name.clone(),
        n_events: 39,
        first_position: Some(1),
        last_position: Some(39),
        sha256: "0".repeat(64),
        file: "nowhere".into(),
    };
    assert!(
        store
            .drop_audit_partition(&wrong, config.retention)
            .await
            .is_err()
    );

    let archiver = auditor(
        store.clone(),
        &key,
        AuditConfig {
            archive_dir: Some(dir.0.clone()),
            ..config
        },
    );
    let archives = bankgate::audit::retention::apply(&archiver, now)
        .await
        .unwrap();
    assert_eq!(archives.len(), 1);
    let archive = &archives[0];
    assert_eq!(
        (
            archive.n_events,
            archive.first_position,
            archive.last_position
        ),
        (40, Some(1), Some(40))
    );
    // The export holds exactly those events, as JSON Lines, with the hash the row records.
    let exported = std::fs::read(&archive.file).unwrap();
    assert_eq!(bankgate::crypto::sha256_hex(&exported), archive.sha256);
    let lines: Vec<bankgate::audit::Record> = exported
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 40);
    assert!(bankgate::audit::verify(0, bankgate::audit::GENESIS, &lines).is_ok());
    // Its manifest carries the signed checkpoint at the last position.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("audit_events_2020m01.manifest.json")).unwrap(),
    )
    .unwrap();
    let checkpoint = VerifyingKeys::of(&key)
        .open(manifest["checkpoint"].as_str().unwrap())
        .unwrap();
    assert_eq!((checkpoint.position, checkpoint.hash), (40, lines[39].hash));

    // Gone from the database, recorded as archived, and the drop itself is on the record.
    let partitions = store.audit_partitions().await.unwrap();
    assert!(
        partitions
            .iter()
            .any(|p| p.name == old.name && p.dropped_at.is_some())
    );
    assert_eq!(store.audit_archives().await.unwrap(), archives);
    let archived_events = archiver
        .events(&Filter {
            action: Some(bankgate::audit::Action::AuditArchived),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(archived_events.len(), 1);

    // The rest still verifies: the gap is accounted for by the archive and its checkpoint.
    let report = verify(&store, &key).await;
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.archived, vec![(1, 40)]);
    assert_eq!(report.n_events, 61, "41..=100 and the archive event");
}

// The application's database role.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_role_appends_but_cannot_change_the_log() {
    let database = pg::TestDatabase::create();
    let role = LoginRole::create("bankgate_app").await;
    let mut as_app = url::Url::parse(&database.url).unwrap();
    as_app.set_username(&role.0).unwrap();
    let as_app = as_app.to_string();

    let outcome = async {
        // What `serve` does at start: migrations (none left to apply), then the log.
        bankgate::store::pg::migrate(&as_app)
            .await
            .expect("the application role can check the migrations");
        let store = pg_store(&as_app).await;
        let key = signing_key();
        let auditor = auditor(store.clone(), &key, AuditConfig::default());
        record_many(&auditor, 4, 20).await;
        auditor
            .checkpoint_now()
            .await
            .expect("checkpoints are appended");
        let now = chrono::Utc::now();
        bankgate::audit::retention::prepare_partitions(&auditor, now + chrono::Duration::days(400))
            .await
            .expect("the application role may ask for partitions");

        let app = pg::connect(&as_app).await;
        let partition = format!("audit_events_{}", now.format("%Ym%m"));
        for sql in [
            "UPDATE audit_events SET actor = 'x'".to_owned(),
            "DELETE FROM audit_events".to_owned(),
            "TRUNCATE audit_events".to_owned(),
            "UPDATE audit_chain SET hash = hash".to_owned(),
            "DELETE FROM audit_checkpoints".to_owned(),
            format!("DELETE FROM {partition}"),
            format!("DROP TABLE {partition}"),
            format!("ALTER TABLE audit_events DETACH PARTITION {partition}"),
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only".to_owned(),
        ] {
            let error = app.batch_execute(&sql).await.expect_err(&sql);
            let code = error.code().map(|code| code.code().to_owned());
            assert!(matches!(code.as_deref(), Some("42501")), "{sql}: {error:?}");
        }
        // It still runs the rest of the gateway's tables.
        app.batch_execute("DELETE FROM pushed_requests")
            .await
            .unwrap();
        let report = verify(&store, &key).await;
        assert!(report.is_intact(), "{:?}", report.first_break);
        assert_eq!(report.n_events, 20);
    };
    outcome.await;
}

/// A login role that is a member of another, dropped (with its sessions) when this is.
struct LoginRole(String);

impl LoginRole {
    async fn create(member_of: &str) -> LoginRole {
        let name = format!("bankgate_gw_{}", uuid::Uuid::new_v4().simple());
        pg::connect(&pg::admin_url())
            .await
            .batch_execute(&format!("CREATE ROLE {name} LOGIN IN ROLE {member_of}"))
            .await
            .unwrap();
        LoginRole(name)
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = pg::connect(&pg::admin_url()).await;
                admin
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE usename = '{name}'; DROP ROLE IF EXISTS {name}"
                    ))
                    .await
                    .ok()
            })
        })
        .join();
    }
}
