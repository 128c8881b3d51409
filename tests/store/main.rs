//! The store conformance suite: every case is written once against `Arc<dyn Store>` and runs
//! on `MemoryStore` (`memory::<case>`) and on a fresh PostgreSQL database
//! (`postgres::<case>`). PostgreSQL-only behaviour (migrations, tampering) comes last.

#[path = "../support/pg.rs"]
#[allow(dead_code)]
mod pg;

mod access;
mod accounts;
mod audit_log;
mod authorizations;
mod banks;
mod clients;
mod consents;
mod grants;
mod payees;
mod payments;
mod retention;
mod tokens;
mod webhooks;
use access::*;
use accounts::*;
use audit_log::*;
use authorizations::*;
use banks::*;
use clients::*;
use consents::*;
use grants::*;
use payees::*;
use payments::*;
use retention::*;
use tokens::*;
use webhooks::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use bankgate::adapters::{AccountRef, BankAuthorization, StoredGrant};
use bankgate::audit::{self, Action, Decision, Event, Filter, GENESIS, Record};
use bankgate::consent::{Consent, ConsentStatus};
use bankgate::crypto::Sealed;
use bankgate::model::{Scope, WireName};
use bankgate::oauth::{AuthorizationCode, Client, PushedRequest, Role, StoredCode};
use bankgate::store::memory::MemoryStore;
use bankgate::store::{Store, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use tokio::sync::Barrier;

/// Runs each case twice: `memory::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::memory_store()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let database = super::pg::TestDatabase::create();
                    super::$case(super::postgres_store(&database).await).await;
                    drop(database);
                }
            )*
        }
    };
}

conformance!(
    clients_insert_get_conflict,
    lookups_by_ids_holding_nul_find_nothing,
    bank_clients_are_bound_to_one_bank,
    bank_versions,
    bank_versions_are_all_kept,
    bank_versions_concurrent,
    pushed_request_single_use,
    consent_insert_get,
    consent_cas,
    consent_cas_concurrent,
    consent_extend_only_while_authorised,
    timestamps_keep_microseconds,
    bank_authorization_single_use,
    grants_put_replace_get,
    codes_redeem_once,
    account_refs_idempotent,
    audit_round_trip,
    audit_duplicate_id_conflicts,
    audit_concurrent_appends,
    audit_filters,
    audit_head_and_chain_stream,
    audit_checkpoints_follow_the_chain,
    audit_summary_counts_by_day_platform_purpose_decision,
    clients_keep_fapi_registration,
    clients_update_keeps_identity,
    jti_replay_cache,
    tokens_revoke_alone_and_by_consent,
    consents_list_and_expire_once,
    consents_of_a_bank_person_across_platforms,
    grants_replace_only_if_unchanged,
    webhooks_dedupe_lease_retry_and_log,
    access_state_reads_everything_at_once,
    access_budget_counts_to_the_limit,
    refused_requests_spend_no_budget,
    access_budget_concurrent,
    payments_record_claim_and_replay,
    payments_same_key_other_body_is_a_mismatch,
    payments_concurrent_duplicate_proceeds_once,
    payments_one_per_consent,
    payments_update_is_compare_and_set,
    payments_due_lease_is_handed_out_once,
    payments_spent_on_counts_what_may_still_be_paid,
    payments_day_count_is_exact_under_concurrency,
    payments_keys_are_kept_then_purged,
    payments_recorded_first_then_claimed_by_one_key,
    retention_deletes_what_has_served_and_keeps_the_rest,
    payee_verifications_are_counted_to_the_limit,
    payees_are_held_by_one_consent_per_platform,
    payees_of_ended_consents_are_gone,
    payees_concurrent_registrations_take_one,
);

fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn postgres_store(database: &pg::TestDatabase) -> Arc<dyn Store> {
    let store = bankgate::store::pg::connect(&database.url, 8)
        .await
        .expect("connect to the test database");
    Arc::new(store)
}

/// Races repeat: the first round of a fresh PostgreSQL store also opens its connections,
/// which spreads the contenders out.
const ROUNDS: usize = 10;

// Fixtures.

/// A fixed instant with whole microseconds (what both stores keep).
/// Now, to the microsecond (what both stores keep).
fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 26, 53).unwrap() + Duration::microseconds(589_793)
}

fn client(client_id: &str) -> Client {
    Client {
        client_id: client_id.to_owned(),
        name: format!("{client_id} app"),
        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: Role::Platform,
        redirect_uris: vec![
            "https://app.example/cb".to_owned(),
            "https://app.example/cb?x=1".to_owned(),
        ],
        allowed_purposes: vec!["balance-alerts".to_owned()],
        region: "UK".to_owned(),
        created_at: t0(),
        token_endpoint_auth_method: bankgate::oauth::AuthMethod::ClientSecretBasic,
        jwks: None,
        dpop_bound_access_tokens: false,
        webhook_url: None,
        bank_id: None,
        jwks_uri: None,
        registration_token_hash: String::new(),
    }
}

fn consent(id: &str) -> Consent {
    Consent {
        id: id.to_owned(),
        client_id: "platform-a".to_owned(),
        bank_id: "demo-bank".to_owned(),
        purpose: "balance-alerts".to_owned(),
        scopes: vec![Scope::Accounts, Scope::Balances],
        history_days: 90,
        user_ref: "u-81f3".to_owned(),
        status: ConsentStatus::AwaitingAuthorisation,
        policy_hash: "sha256:abc".to_owned(),
        redirect_uri: "https://app.example/cb".to_owned(),
        state: Some("platform-state".to_owned()),
        code_challenge: "E9Melhoa2OwvFr1MSKpUmkz8nYPzqELo6xXv-pXkEkM".to_owned(),
        dpop_jkt: None,
        created_at: t0(),
        expires_at: t0() + Duration::days(90),
    }
}

fn sealed(key_id: &str, ciphertext: &[u8]) -> Sealed {
    Sealed {
        key_id: key_id.to_owned(),
        nonce: vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        ciphertext: ciphertext.to_vec(),
    }
}

fn code(code_hash: &str) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: code_hash.to_owned(),
        consent_id: "c-1".to_owned(),
        client_id: "platform-a".to_owned(),
        redirect_uri: "https://app.example/cb".to_owned(),
        code_challenge: "challenge".to_owned(),
        expires_at: t0() + Duration::seconds(60),
        dpop_jkt: None,
    }
}

fn bank_authorization(state: &str) -> BankAuthorization {
    BankAuthorization {
        state: state.to_owned(),
        consent_id: "c-1".to_owned(),
        bank_id: "demo-bank".to_owned(),
        pkce_verifier: sealed("k1", &[0, 255, 0, 7]),
        bank_consent_id: Some("bank-consent-9".to_owned()),
        expires_at: t0() + Duration::minutes(10),
    }
}

fn account(account_id: &str, bank_ref: &str) -> AccountRef {
    AccountRef {
        account_id: account_id.to_owned(),
        bank_ref: bank_ref.to_owned(),
    }
}

/// Runs `n` copies of `task` at once (released together by a barrier) and returns their
/// results in task order.
async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("task panicked"));
    }
    results
}

/// Every record the store holds, read page by page.
async fn all_records(store: &dyn Store) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    loop {
        let filter = Filter {
            after: records.last().map(|record| record.position),
            limit: Some(100),
            ..Filter::default()
        };
        let page = store.audit_events(&filter).await.unwrap();
        if page.is_empty() {
            return records;
        }
        records.extend(page);
    }
}

// PostgreSQL only.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_access_budget_is_shared_by_instances() {
    let database = pg::TestDatabase::create();
    let first = postgres_store(&database).await;
    let second = postgres_store(&database).await;
    budget_is_shared_by_instances(first, second).await;
}

/// The versions of `migrations/V{n}__*.sql`, ascending.
fn migration_versions() -> Vec<u32> {
    let mut versions: Vec<u32> = pg::migration_files()
        .iter()
        .filter_map(|(name, _)| name.strip_prefix('V')?.split_once("__")?.0.parse().ok())
        .collect();
    versions.sort();
    versions
}

fn applied(report: &bankgate::store::pg::MigrationReport) -> Vec<u32> {
    report
        .applied
        .iter()
        .map(|migration| migration.version)
        .collect()
}

#[tokio::test]
async fn postgres_migrate_is_idempotent() {
    let database = pg::TestDatabase::empty();
    let first = bankgate::store::pg::migrate(&database.url).await.unwrap();
    assert_eq!(applied(&first), migration_versions());
    assert!(!first.applied.is_empty());
    let second = bankgate::store::pg::migrate(&database.url).await.unwrap();
    assert_eq!(applied(&second), Vec::<u32>::new());

    // The schema works after both runs.
    let store = postgres_store(&database).await;
    store.put_bank("demo-bank", &json!({})).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_migrations_apply_once() {
    let database = pg::TestDatabase::empty();
    let reports = race(4, |_| {
        let url = database.url.clone();
        async move { bankgate::store::pg::migrate(&url).await.unwrap() }
    })
    .await;
    let mut all: Vec<u32> = reports.iter().flat_map(applied).collect();
    all.sort();
    assert_eq!(all, migration_versions());
}

#[tokio::test]
async fn postgres_unreachable_is_unavailable() {
    // Port 1 on the loopback refuses connections at once.
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    let result = bankgate::store::pg::connect(url, 1).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let result = bankgate::store::pg::migrate(url).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

/// The position bound of time-filtered queries (`audit_first_position_at`, V9) is the first
/// position chained at or after a time: a binary search over the spine, checked here against
/// a linear scan on a spine with equal times, steps and holes.
#[tokio::test]
async fn postgres_first_position_at_a_time_matches_a_scan() {
    let database = pg::TestDatabase::create();
    let admin = pg::connect(&database.url).await;
    let first = |ts: DateTime<Utc>| {
        let admin = &admin;
        async move {
            let bound: i64 = admin
                .query_one("SELECT audit_first_position_at($1)", &[&ts])
                .await
                .unwrap()
                .get(0);
            bound
        }
    };
    // An empty log: position 1.
    assert_eq!(first(t0()).await, 1);

    // Positions 1..=200, in batches of up to 7 sharing one `chained_at` (as group commits do),
    // minutes apart; positions 90..=94 missing (as if lost: the bound must not skip past).
    let mut chained = Vec::new();
    let mut minute = 0;
    for position in 1..=200_i64 {
        if position % 7 == 1 {
            minute += 1 + position % 3;
        }
        chained.push((position, t0() + Duration::minutes(minute)));
    }
    for (position, at) in &chained {
        if (90..=94).contains(position) {
            continue;
        }
        admin
            .execute(
                "INSERT INTO audit_chain (position, id, chained_at, hash) \
                 VALUES ($1, $2, $3, sha256(int8send($1)))",
                &[position, &format!("e-{position}"), at],
            )
            .await
            .unwrap();
    }
    let last = chained.last().unwrap().1;
    let mut probes: Vec<DateTime<Utc>> = chained.iter().map(|(_, at)| *at).collect();
    probes.extend(chained.iter().map(|(_, at)| *at + Duration::seconds(30)));
    probes.extend([
        t0() - Duration::days(1),
        last + Duration::seconds(1),
        last + Duration::days(1),
    ]);
    for ts in probes {
        let scan: i64 = admin
            .query_one(
                "SELECT coalesce(min(position), \
                     (SELECT max(position) + 1 FROM audit_chain)) \
                 FROM audit_chain WHERE chained_at >= $1",
                &[&ts],
            )
            .await
            .unwrap()
            .get(0);
        let bound = first(ts).await;
        // Never after the first matching row; earlier only where a hole hides the answer.
        assert!(
            bound <= scan,
            "at {ts}: bound {bound} after the scan's {scan}"
        );
        if !(90..=95).contains(&scan) {
            assert_eq!(bound, scan, "at {ts}");
        }
    }
}

#[tokio::test]
async fn postgres_audit_rows_are_append_only() {
    let database = pg::TestDatabase::create();
    let store = postgres_store(&database).await;
    store
        .append_audit(vec![Event::new(
            Action::PolicyLoaded,
            "gateway",
            Decision::Allow,
        )])
        .await
        .unwrap();
    let admin = pg::connect(&database.url).await;
    for sql in [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let error = admin.batch_execute(sql).await.expect_err(sql);
        let refused = error.as_db_error().map(|error| error.message());
        assert!(
            refused.is_some_and(|message| message.contains("append-only")),
            "{sql}: {error:?}"
        );
    }
    assert_eq!(all_records(&*store).await.len(), 1);
}

#[tokio::test]
async fn postgres_tampered_canonical_is_detected() {
    let database = pg::TestDatabase::create();
    let store = postgres_store(&database).await;
    let events = (0..5)
        .map(|i| Event {
            n_records: i,
            ..Event::new(Action::DataAccess, "platform-a", Decision::Allow)
        })
        .collect();
    store.append_audit(events).await.unwrap();
    assert!(audit::verify(0, GENESIS, &all_records(&*store).await).is_ok());

    // Someone with the power to disable the guard rewrites event 3.
    let admin = pg::connect(&database.url).await;
    admin
        .batch_execute(
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;
             UPDATE audit_events
             SET canonical = convert_to(
                 replace(convert_from(canonical, 'UTF8'), '\"n_records\":2', '\"n_records\":7'),
                 'UTF8')
             WHERE position = 3;",
        )
        .await
        .unwrap();
    // The typed column still says 2: the row contradicts itself.
    let result = store.audit_events(&Filter::default()).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");

    // A careful forger fixes the column too: now the chain gives it away.
    admin
        .batch_execute("UPDATE audit_events SET n_records = 7 WHERE position = 3")
        .await
        .unwrap();
    let records = store.audit_events(&Filter::default()).await.unwrap();
    assert_eq!(records[2].event.n_records, 7);
    let broken = audit::verify(0, GENESIS, &records).unwrap_err();
    assert_eq!(broken.position, 3);

    // Bytes that are not in canonical form are refused even if they decode to the same event.
    admin
        .batch_execute(
            "UPDATE audit_events
             SET canonical = convert_to(convert_from(canonical, 'UTF8') || ' ', 'UTF8')
             WHERE position = 4",
        )
        .await
        .unwrap();
    let result = store
        .audit_events(&Filter {
            after: Some(3),
            ..Filter::default()
        })
        .await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}
