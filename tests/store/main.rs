//! The store conformance suite: every case is written once against `Arc<dyn Store>` and runs
//! on `MemoryStore` (`memory::<case>`) and on a fresh PostgreSQL database
//! (`postgres::<case>`). PostgreSQL-only behaviour (migrations, tampering) comes last.

#[path = "../support/pg.rs"]
#[allow(dead_code)]
mod pg;

mod access;
mod clients;
mod fapi;
mod payments;
mod retention;
use access::*;
use clients::*;
use fapi::*;
use payments::*;
use retention::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use bankgate::adapters::{AccountRef, BankAuthorization, StoredGrant};
use bankgate::audit::{self, Action, Decision, Event, Filter, GENESIS, Record};
use bankgate::consent::{Consent, ConsentStatus};
use bankgate::crypto::Sealed;
use bankgate::model::Scope;
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

// Clients.

/// An id holding U+0000 (which PostgreSQL text cannot hold) names nothing: the look-ups that
/// take ids from callers answer "none" on both stores, never an error (issue 11, item 13).
async fn lookups_by_ids_holding_nul_find_nothing(store: Arc<dyn Store>) {
    store.insert_client(&client("platform-a")).await.unwrap();
    store.insert_consent(&consent("c-1")).await.unwrap();
    store
        .put_account_refs("c-1", &[account("a-1", "bank-ref-1")])
        .await
        .unwrap();
    store
        .put_bank("demo-bank", &json!({"id": "demo-bank"}))
        .await
        .unwrap();
    // Control: the ids themselves are found.
    assert!(store.client("platform-a").await.unwrap().is_some());
    assert!(store.consent("c-1").await.unwrap().is_some());
    assert!(store.account_ref("c-1", "a-1").await.unwrap().is_some());
    assert!(store.bank("demo-bank").await.unwrap().is_some());
    for nul in ["\0", "platform-a\0", "c-1\0x"] {
        assert_eq!(store.client(nul).await.unwrap(), None, "{nul:?}");
        assert_eq!(store.consent(nul).await.unwrap(), None, "{nul:?}");
        assert_eq!(store.account_ref("c-1", nul).await.unwrap(), None);
        assert_eq!(store.account_ref(nul, "a-1").await.unwrap(), None);
        assert_eq!(store.bank(nul).await.unwrap(), None, "{nul:?}");
    }
}

async fn clients_insert_get_conflict(store: Arc<dyn Store>) {
    assert_eq!(store.client("platform-a").await.unwrap(), None);
    let platform = client("platform-a");
    store.insert_client(&platform).await.unwrap();
    assert_eq!(
        store.client("platform-a").await.unwrap(),
        Some(platform.clone())
    );

    let impostor = Client {
        name: "impostor".to_owned(),
        ..platform.clone()
    };
    let result = store.insert_client(&impostor).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.client("platform-a").await.unwrap(), Some(platform));

    let officer = Client {
        role: Role::Compliance,
        redirect_uris: Vec::new(),
        allowed_purposes: Vec::new(),
        ..client("compliance-1")
    };
    store.insert_client(&officer).await.unwrap();
    assert_eq!(store.client("compliance-1").await.unwrap(), Some(officer));
}

async fn bank_clients_are_bound_to_one_bank(store: Arc<dyn Store>) {
    let bank = Client {
        role: Role::Bank,
        bank_id: Some("nova-bank".to_owned()),
        redirect_uris: Vec::new(),
        allowed_purposes: Vec::new(),
        ..client("nova-bank-admin")
    };
    store.insert_client(&bank).await.unwrap();
    assert_eq!(
        store.client("nova-bank-admin").await.unwrap(),
        Some(bank.clone())
    );
    // A bank client without its bank, or a platform bound to one, is refused by both stores.
    let unbound = Client {
        bank_id: None,
        ..client("unbound-bank")
    };
    let unbound = Client {
        role: Role::Bank,
        ..unbound
    };
    assert!(store.insert_client(&unbound).await.is_err());
    let bound_platform = Client {
        bank_id: Some("nova-bank".to_owned()),
        ..client("bound-platform")
    };
    assert!(store.insert_client(&bound_platform).await.is_err());
    assert_eq!(store.client("unbound-bank").await.unwrap(), None);
    assert_eq!(store.client("bound-platform").await.unwrap(), None);
}

// Banks.

async fn bank_versions_are_all_kept(store: Arc<dyn Store>) {
    assert!(store.bank_versions("nova-bank").await.unwrap().is_empty());
    let manifests = [
        json!({"profile": "mapping", "limits": {"timeout_ms": 1000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 2000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 2000}}),
        json!({"profile": "mapping", "limits": {"timeout_ms": 1000}}),
    ];
    for manifest in &manifests {
        store.put_bank("nova-bank", manifest).await.unwrap();
    }
    store
        .put_bank("other-bank", &json!({"profile": "stet"}))
        .await
        .unwrap();
    let versions = store.bank_versions("nova-bank").await.unwrap();
    let numbers: Vec<i32> = versions.iter().map(|version| version.version).collect();
    assert_eq!(
        numbers,
        [1, 2, 3],
        "an unchanged manifest is no new version"
    );
    assert_eq!(versions[0].manifest, manifests[0]);
    assert_eq!(
        versions[2].manifest, manifests[3],
        "going back is a new version"
    );
    assert!(
        versions
            .iter()
            .all(|version| version.bank_id == "nova-bank")
    );
    assert_eq!(
        store.bank("nova-bank").await.unwrap().as_ref(),
        versions.last()
    );
}

async fn bank_versions(store: Arc<dyn Store>) {
    assert_eq!(store.bank("demo-bank").await.unwrap(), None);
    assert!(store.banks().await.unwrap().is_empty());

    let first = json!({"name": "Demo", "profile": "berlin-group", "limits": {"rps": 5}});
    let v1 = store.put_bank("demo-bank", &first).await.unwrap();
    assert_eq!((v1.bank_id.as_str(), v1.version), ("demo-bank", 1));
    assert_eq!(v1.manifest, first);

    // The same manifest, keys in another order: no new version.
    let same = json!({"limits": {"rps": 5}, "profile": "berlin-group", "name": "Demo"});
    assert_eq!(store.put_bank("demo-bank", &same).await.unwrap(), v1);

    let changed = json!({"name": "Demo", "profile": "berlin-group", "limits": {"rps": 10}});
    let v2 = store.put_bank("demo-bank", &changed).await.unwrap();
    assert_eq!((v2.version, &v2.manifest), (2, &changed));
    assert_eq!(store.bank("demo-bank").await.unwrap(), Some(v2.clone()));

    // Going back is a change too: versions only grow.
    let v3 = store.put_bank("demo-bank", &first).await.unwrap();
    assert_eq!((v3.version, &v3.manifest), (3, &first));

    let other = store
        .put_bank("another-bank", &json!({"name": "Another"}))
        .await
        .unwrap();
    assert_eq!(other.version, 1);
    assert_eq!(store.banks().await.unwrap(), vec![other, v3]);
}

async fn bank_versions_concurrent(store: Arc<dyn Store>) {
    for round in 0..ROUNDS {
        // Eight different manifests at once: eight versions, none lost or doubled.
        let bank_id = format!("busy-bank-{round}");
        let versions = race(8, |i| {
            let store = store.clone();
            let bank_id = bank_id.clone();
            async move {
                store
                    .put_bank(&bank_id, &json!({"revision": i}))
                    .await
                    .unwrap()
                    .version
            }
        })
        .await;
        let versions: BTreeSet<i32> = versions.into_iter().collect();
        assert_eq!(versions, (1..=8).collect(), "round {round}");
        assert_eq!(store.bank(&bank_id).await.unwrap().unwrap().version, 8);

        // Eight identical registrations at once: one version.
        let bank_id = format!("calm-bank-{round}");
        let versions = race(8, |_| {
            let store = store.clone();
            let bank_id = bank_id.clone();
            async move {
                store
                    .put_bank(&bank_id, &json!({"name": "Calm"}))
                    .await
                    .unwrap()
                    .version
            }
        })
        .await;
        assert_eq!(versions, vec![1; 8], "round {round}");
    }
}

// Pushed authorization requests.

async fn pushed_request_single_use(store: Arc<dyn Store>) {
    let request = PushedRequest {
        request_uri: "urn:ietf:params:oauth:request_uri:abc".to_owned(),
        client_id: "platform-a".to_owned(),
        request: json!({"authorization_details": [{"type": "account_information"}]}),
        expires_at: t0() + Duration::seconds(90),
    };
    store.insert_pushed_request(&request).await.unwrap();
    let result = store.insert_pushed_request(&request).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    assert_eq!(
        store
            .take_pushed_request(&request.request_uri)
            .await
            .unwrap(),
        Some(request.clone())
    );
    assert_eq!(
        store
            .take_pushed_request(&request.request_uri)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_pushed_request("urn:unknown").await.unwrap(),
        None
    );

    // Sixteen concurrent takes, several rounds: one wins each time.
    for round in 0..ROUNDS {
        let request = PushedRequest {
            request_uri: format!("urn:ietf:params:oauth:request_uri:race-{round}"),
            ..request.clone()
        };
        store.insert_pushed_request(&request).await.unwrap();
        let taken = race(16, |_| {
            let store = store.clone();
            let uri = request.request_uri.clone();
            async move { store.take_pushed_request(&uri).await.unwrap() }
        })
        .await;
        let taken: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(taken, vec![request], "round {round}");
    }
}

// Consents.

async fn consent_insert_get(store: Arc<dyn Store>) {
    assert_eq!(store.consent("c-1").await.unwrap(), None);
    let full = Consent {
        scopes: Scope::ALL.to_vec(),
        history_days: u32::MAX,
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        ..consent("c-1")
    };
    store.insert_consent(&full).await.unwrap();
    assert_eq!(store.consent("c-1").await.unwrap(), Some(full.clone()));

    let result = store.insert_consent(&consent("c-1")).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.consent("c-1").await.unwrap(), Some(full));

    let sparse = Consent {
        state: None,
        scopes: Vec::new(),
        history_days: 0,
        ..consent("c-2")
    };
    store.insert_consent(&sparse).await.unwrap();
    assert_eq!(store.consent("c-2").await.unwrap(), Some(sparse));
}

async fn consent_cas(store: Arc<dyn Store>) {
    use ConsentStatus::*;
    store.insert_consent(&consent("c-1")).await.unwrap();
    let status = async |store: &Arc<dyn Store>| store.consent("c-1").await.unwrap().unwrap().status;

    // From the wrong state: nothing happens.
    assert!(
        !store
            .transition_consent("c-1", Authorised, Revoked)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, AwaitingAuthorisation);

    assert!(
        store
            .transition_consent("c-1", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, Authorised);
    assert!(
        !store
            .transition_consent("c-1", AwaitingAuthorisation, Rejected)
            .await
            .unwrap()
    );
    assert!(
        store
            .transition_consent("c-1", Authorised, Revoked)
            .await
            .unwrap()
    );
    assert_eq!(status(&store).await, Revoked);

    assert!(
        !store
            .transition_consent("unknown", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );

    // The rest of the consent is untouched.
    let stored = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Consent {
            status: Revoked,
            ..consent("c-1")
        }
    );
}

/// Issue 5 (re-consent): an extension moves the expiry and the policy version of an
/// authorised, unexpired consent only; racing a revocation, either both happen in some order
/// or the extension finds the consent revoked.
async fn consent_extend_only_while_authorised(store: Arc<dyn Store>) {
    let now = t0() + Duration::days(80);
    let later = now + Duration::days(90) + Duration::microseconds(7);
    store.insert_consent(&consent("c-1")).await.unwrap();
    // Awaiting authorisation: nothing to extend.
    assert!(
        !store
            .extend_consent("c-1", later, "sha256:new", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .transition_consent(
                "c-1",
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Authorised
            )
            .await
            .unwrap()
    );
    // Expired by the clock (not yet by the maintenance task): too late.
    let after_expiry = t0() + Duration::days(91);
    assert!(
        !store
            .extend_consent("c-1", later, "sha256:new", after_expiry)
            .await
            .unwrap()
    );
    assert_eq!(
        store.consent("c-1").await.unwrap().unwrap().expires_at,
        consent("c-1").expires_at
    );
    // Before expiry: extended, everything else unchanged.
    assert!(
        store
            .extend_consent("c-1", later, "sha256:new", now)
            .await
            .unwrap()
    );
    let extended = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!(
        extended,
        Consent {
            status: ConsentStatus::Authorised,
            expires_at: later,
            policy_hash: "sha256:new".to_owned(),
            ..consent("c-1")
        }
    );
    assert!(
        !store
            .extend_consent("unknown", later, "sha256:new", now)
            .await
            .unwrap()
    );
    // Revoked: no more extensions.
    assert!(
        store
            .transition_consent("c-1", ConsentStatus::Authorised, ConsentStatus::Revoked)
            .await
            .unwrap()
    );
    assert!(
        !store
            .extend_consent("c-1", later + Duration::days(1), "sha256:newer", now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.consent("c-1").await.unwrap().unwrap().expires_at,
        later
    );
}

async fn consent_cas_concurrent(store: Arc<dyn Store>) {
    use ConsentStatus::*;
    // Authorise and reject race for the same consent: exactly one wins, and it is the one
    // whose state the consent ends in.
    for round in 0..ROUNDS {
        let id = format!("race-{round}");
        store.insert_consent(&consent(&id)).await.unwrap();
        let targets = [Authorised, Rejected];
        let won = race(2, |i| {
            let store = store.clone();
            let id = id.clone();
            async move {
                store
                    .transition_consent(&id, AwaitingAuthorisation, targets[i])
                    .await
                    .unwrap()
            }
        })
        .await;
        assert_eq!(won.iter().filter(|won| **won).count(), 1, "{won:?}");
        let winner = if won[0] { targets[0] } else { targets[1] };
        assert_eq!(store.consent(&id).await.unwrap().unwrap().status, winner);
    }

    // Sixteen revocations at once: one succeeds.
    store.insert_consent(&consent("many")).await.unwrap();
    assert!(
        store
            .transition_consent("many", AwaitingAuthorisation, Authorised)
            .await
            .unwrap()
    );
    let won = race(16, |_| {
        let store = store.clone();
        async move {
            store
                .transition_consent("many", Authorised, Revoked)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won.iter().filter(|won| **won).count(), 1);
}

async fn timestamps_keep_microseconds(store: Arc<dyn Store>) {
    let nanos =
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + Duration::nanoseconds(123_456_789);
    let micros =
        Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + Duration::microseconds(123_456);
    let precise = Consent {
        created_at: nanos,
        expires_at: nanos,
        ..consent("c-1")
    };
    store.insert_consent(&precise).await.unwrap();
    let stored = store.consent("c-1").await.unwrap().unwrap();
    assert_eq!((stored.created_at, stored.expires_at), (micros, micros));
}

// The bank leg.

async fn bank_authorization_single_use(store: Arc<dyn Store>) {
    let pending = bank_authorization("state-1");
    store.insert_bank_authorization(&pending).await.unwrap();
    let result = store.insert_bank_authorization(&pending).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(
        store.take_bank_authorization("state-1").await.unwrap(),
        Some(pending)
    );
    assert_eq!(
        store.take_bank_authorization("state-1").await.unwrap(),
        None
    );
    assert_eq!(
        store.take_bank_authorization("unknown").await.unwrap(),
        None
    );

    // Sixteen concurrent takes, several rounds: one wins each time.
    for round in 0..ROUNDS {
        let pending = BankAuthorization {
            bank_consent_id: None,
            ..bank_authorization(&format!("state-race-{round}"))
        };
        store.insert_bank_authorization(&pending).await.unwrap();
        let taken = race(16, |_| {
            let store = store.clone();
            let state = pending.state.clone();
            async move { store.take_bank_authorization(&state).await.unwrap() }
        })
        .await;
        let taken: Vec<_> = taken.into_iter().flatten().collect();
        assert_eq!(taken, vec![pending], "round {round}");
    }
}

async fn grants_put_replace_get(store: Arc<dyn Store>) {
    assert_eq!(store.grant("c-1").await.unwrap(), None);
    let grant = StoredGrant {
        consent_id: "c-1".to_owned(),
        sealed: sealed("k1", b"\x00sealed tokens\xff"),
        updated_at: t0(),
    };
    store.put_grant(&grant).await.unwrap();
    assert_eq!(store.grant("c-1").await.unwrap(), Some(grant.clone()));

    let refreshed = StoredGrant {
        sealed: sealed("k2", b"refreshed tokens"),
        updated_at: t0() + Duration::hours(1),
        ..grant.clone()
    };
    store.put_grant(&refreshed).await.unwrap();
    assert_eq!(store.grant("c-1").await.unwrap(), Some(refreshed));

    let other = StoredGrant {
        consent_id: "c-2".to_owned(),
        ..grant
    };
    store.put_grant(&other).await.unwrap();
    assert_eq!(store.grant("c-2").await.unwrap(), Some(other));
}

// Authorization codes.

async fn codes_redeem_once(store: Arc<dyn Store>) {
    let issued = code("hash-1");
    store.insert_code(&issued).await.unwrap();
    let result = store.insert_code(&issued).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

    // Looking a code up changes nothing: a token request that fails its checks leaves it.
    for _ in 0..2 {
        assert_eq!(
            store.code("hash-1").await.unwrap(),
            StoredCode::Unused(issued.clone())
        );
    }
    assert!(
        store.redeem_code("hash-1").await.unwrap(),
        "first redemption"
    );
    assert_eq!(
        store.code("hash-1").await.unwrap(),
        StoredCode::Redeemed(issued.clone())
    );
    assert!(!store.redeem_code("hash-1").await.unwrap(), "second");

    // Released (the gateway failed after redeeming it): unused again, redeemable once more.
    store.release_code("hash-1").await.unwrap();
    assert_eq!(
        store.code("hash-1").await.unwrap(),
        StoredCode::Unused(issued.clone())
    );
    assert!(store.redeem_code("hash-1").await.unwrap());
    assert!(!store.redeem_code("hash-1").await.unwrap());

    assert_eq!(store.code("unknown").await.unwrap(), StoredCode::Unknown);
    assert!(!store.redeem_code("unknown").await.unwrap());
    store.release_code("unknown").await.unwrap();
    assert_eq!(store.code("unknown").await.unwrap(), StoredCode::Unknown);

    // A code bound to a DPoP key at PAR keeps its key.
    let bound = AuthorizationCode {
        dpop_jkt: Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()),
        ..code("hash-bound")
    };
    store.insert_code(&bound).await.unwrap();
    assert_eq!(
        store.code("hash-bound").await.unwrap(),
        StoredCode::Unused(bound)
    );

    // Sixteen concurrent redemptions after sixteen look-ups that all saw the code unused,
    // several rounds (the first one also opens connections): exactly one redeems it.
    for round in 0..ROUNDS {
        let hash = format!("hash-race-{round}");
        store.insert_code(&code(&hash)).await.unwrap();
        let outcomes = race(16, |_| {
            let store = store.clone();
            let hash = hash.clone();
            async move {
                let seen = store.code(&hash).await.unwrap();
                (seen, store.redeem_code(&hash).await.unwrap())
            }
        })
        .await;
        let redeemed = outcomes.iter().filter(|(_, redeemed)| *redeemed).count();
        assert_eq!(redeemed, 1, "round {round}: {outcomes:?}");
        assert!(
            matches!(store.code(&hash).await.unwrap(), StoredCode::Redeemed(_)),
            "round {round}"
        );
    }
}

// Accounts.

async fn account_refs_idempotent(store: Arc<dyn Store>) {
    let refs = [account("a-1", "bank-ref-1"), account("a-2", "bank-ref-2")];
    store.put_account_refs("c-1", &refs).await.unwrap();
    store.put_account_refs("c-1", &refs).await.unwrap();
    store.put_account_refs("c-1", &[]).await.unwrap();
    assert_eq!(
        store.account_ref("c-1", "a-1").await.unwrap(),
        Some(refs[0].clone())
    );
    assert_eq!(
        store.account_ref("c-1", "a-2").await.unwrap(),
        Some(refs[1].clone())
    );
    assert_eq!(store.account_ref("c-1", "a-3").await.unwrap(), None);
    assert_eq!(store.account_ref("c-2", "a-1").await.unwrap(), None);

    // The first mapping stays: an account id is never redirected to another bank account.
    store
        .put_account_refs(
            "c-1",
            &[account("a-1", "elsewhere"), account("a-3", "bank-ref-3")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.account_ref("c-1", "a-1").await.unwrap(),
        Some(refs[0].clone())
    );
    assert_eq!(
        store.account_ref("c-1", "a-3").await.unwrap(),
        Some(account("a-3", "bank-ref-3"))
    );

    // The same id twice in one call: the first wins there too.
    store
        .put_account_refs("c-2", &[account("a-1", "first"), account("a-1", "second")])
        .await
        .unwrap();
    assert_eq!(
        store.account_ref("c-2", "a-1").await.unwrap(),
        Some(account("a-1", "first"))
    );
}

// Audit log.

fn full_event() -> Event {
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

async fn audit_round_trip(store: Arc<dyn Store>) {
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

async fn audit_duplicate_id_conflicts(store: Arc<dyn Store>) {
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

async fn audit_concurrent_appends(store: Arc<dyn Store>) {
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
fn filter_event(base: DateTime<Utc>, i: usize) -> Event {
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

async fn audit_filters(store: Arc<dyn Store>) {
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

async fn audit_head_and_chain_stream(store: Arc<dyn Store>) {
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

async fn audit_checkpoints_follow_the_chain(store: Arc<dyn Store>) {
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
fn summary_event(
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

async fn audit_summary_counts_by_day_platform_purpose_decision(store: Arc<dyn Store>) {
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
