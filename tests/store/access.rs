//! Conformance cases for the request-state read (`store::access`): one call reads the token's
//! record, the client, the consent, its bank grant and account reference, spends the DPoP
//! proof and, only when everything the store can see allows the request, one unit of the
//! unattended budget. Each case runs on both stores (listed in `conformance!` in `main.rs`).

use std::sync::Arc;

use bankgate::adapters::StoredGrant;
use bankgate::consent::ConsentStatus;
use bankgate::model::Scope;
use bankgate::oauth::IssuedToken;
use bankgate::store::Store;
use bankgate::store::access::AccessCount;
use bankgate::store::access::{
    AccessQuery, AccessState, BudgetSpend, DataQuery, ProofSpend, TokenState,
};
use chrono::{Duration, NaiveDate, SubsecRound, Utc};

use super::{account, client, consent, race, sealed, t0};

/// The token's record alone (what authentication of a non-data request reads).
pub async fn token_state(store: &dyn Store, jti: &str) -> TokenState {
    let query = AccessQuery {
        jti: jti.to_owned(),
        client_id: "platform-a".to_owned(),
        proof: None,
        data: None,
    };
    store.access_state(&query).await.unwrap().token
}

fn day() -> NaiveDate {
    t0().date_naive()
}

/// An unattended balances request of `platform-a`'s token `jti` for consent `c-1`, with a
/// limit of `limit` a day for `balance-alerts`.
fn query(jti: &str, limit: u32) -> AccessQuery {
    AccessQuery {
        jti: jti.to_owned(),
        client_id: "platform-a".to_owned(),
        proof: None,
        data: Some(DataQuery {
            consent_id: "c-1".to_owned(),
            scope: Scope::Balances,
            account_id: Some("acc-1".to_owned()),
            now: t0(),
            budget: Some(BudgetSpend {
                day: day(),
                limits: vec![
                    ("fraud-alerts".to_owned(), 100),
                    ("balance-alerts".to_owned(), limit),
                ],
            }),
        }),
    }
}

fn proof(jti: &str) -> ProofSpend {
    ProofSpend {
        scope: "dpop:thumbprint".to_owned(),
        jti: jti.to_owned(),
        expires_at: Utc::now().trunc_subsecs(6) + Duration::minutes(1),
    }
}

/// `platform-a` with its authorised consent `c-1` (grant, one account seen) and token `t-1`.
async fn setup(store: &dyn Store) {
    store.insert_client(&client("platform-a")).await.unwrap();
    let mut authorised = consent("c-1");
    authorised.status = ConsentStatus::Authorised;
    store.insert_consent(&authorised).await.unwrap();
    store
        .put_grant(&StoredGrant {
            consent_id: "c-1".to_owned(),
            sealed: sealed("k1", b"sealed tokens"),
            updated_at: t0(),
        })
        .await
        .unwrap();
    store
        .put_account_refs("c-1", &[account("acc-1", "bank-ref-1")])
        .await
        .unwrap();
    store.record_access_token(&issued("t-1")).await.unwrap();
}

fn issued(jti: &str) -> IssuedToken {
    IssuedToken {
        jti: jti.to_owned(),
        client_id: "platform-a".to_owned(),
        consent_id: Some("c-1".to_owned()),
        expires_at: Utc::now().trunc_subsecs(6) + Duration::minutes(5),
    }
}

fn admitted(used: u32) -> Option<AccessCount> {
    Some(AccessCount {
        admitted: true,
        used,
    })
}

fn refused(used: u32) -> Option<AccessCount> {
    Some(AccessCount {
        admitted: false,
        used,
    })
}

pub async fn access_state_reads_everything_at_once(store: Arc<dyn Store>) {
    setup(store.as_ref()).await;
    let mut query = query("t-1", 4);
    query.proof = Some(proof("p-1"));
    let state = store.access_state(&query).await.unwrap();
    let mut expected_consent = consent("c-1");
    expected_consent.status = ConsentStatus::Authorised;
    assert_eq!(
        state,
        AccessState {
            token: TokenState::Active,
            proof_fresh: Some(true),
            client: Some(client("platform-a")),
            consent: Some(expected_consent),
            budget: admitted(1),
            bank_grant: Some(StoredGrant {
                consent_id: "c-1".to_owned(),
                sealed: sealed("k1", b"sealed tokens"),
                updated_at: t0(),
            }),
            account: Some(account("acc-1", "bank-ref-1")),
        }
    );
    // The same proof again is a replay, and a replay spends no budget.
    let state = store.access_state(&query).await.unwrap();
    assert_eq!(state.proof_fresh, Some(false));
    assert_eq!(state.budget, None);
    // An account the consent has not seen has no reference (yet).
    let mut other_account = self::query("t-1", 4);
    if let Some(data) = &mut other_account.data {
        data.account_id = Some("acc-2".to_owned());
        data.budget = None;
    }
    let state = store.access_state(&other_account).await.unwrap();
    assert_eq!(state.account, None);
    assert_eq!(state.budget, None, "not asked to count");
    assert!(state.bank_grant.is_some());
    // Without a data part only the token and the client are read.
    assert_eq!(token_state(store.as_ref(), "t-1").await, TokenState::Active);
    assert_eq!(
        token_state(store.as_ref(), "never-issued").await,
        TokenState::Unknown
    );
}

pub async fn access_budget_counts_to_the_limit(store: Arc<dyn Store>) {
    setup(store.as_ref()).await;
    let count = |limit| {
        let store = store.clone();
        async move {
            store
                .access_state(&query("t-1", limit))
                .await
                .unwrap()
                .budget
        }
    };
    assert_eq!(count(3).await, admitted(1));
    assert_eq!(count(3).await, admitted(2));
    assert_eq!(count(3).await, admitted(3));
    assert_eq!(count(3).await, refused(3));
    assert_eq!(count(3).await, refused(3), "a refusal counts nothing");
    // A stricter limit applies to what was already counted; a looser one lets more through.
    assert_eq!(count(2).await, refused(3));
    assert_eq!(count(4).await, admitted(4));
    // A refund gives one unit back; refunds never go below nothing.
    store.refund_access("c-1", day()).await.unwrap();
    assert_eq!(count(4).await, admitted(4));
    for _ in 0..6 {
        store.refund_access("c-1", day()).await.unwrap();
    }
    assert_eq!(count(4).await, admitted(1));
    // A limit of zero admits nothing.
    let mut other = query("t-1", 0);
    if let Some(data) = &mut other.data {
        data.budget.as_mut().unwrap().day = day().succ_opt().unwrap();
    }
    assert_eq!(store.access_state(&other).await.unwrap().budget, refused(0));
}

/// Each case: a change that makes the request one the store can see is refused. None of
/// them spends a unit.
pub async fn refused_requests_spend_no_budget(store: Arc<dyn Store>) {
    setup(store.as_ref()).await;
    store.record_access_token(&issued("revoked")).await.unwrap();
    store.revoke_access_token("revoked").await.unwrap();
    let mut other = client("platform-b");
    other.client_id = "platform-b".to_owned();
    store.insert_client(&other).await.unwrap();
    type Change = fn(&mut AccessQuery);
    let cases: [(&str, Change); 8] = [
        ("unknown token", |q| q.jti = "never-issued".to_owned()),
        ("revoked token", |q| q.jti = "revoked".to_owned()),
        ("another client", |q| q.client_id = "platform-b".to_owned()),
        ("unregistered client", |q| q.client_id = "gone".to_owned()),
        ("no such consent", |q| {
            q.data.as_mut().unwrap().consent_id = "c-9".to_owned()
        }),
        ("scope not granted", |q| {
            q.data.as_mut().unwrap().scope = Scope::Transactions
        }),
        ("consent expired by now", |q| {
            q.data.as_mut().unwrap().now = t0() + Duration::days(90)
        }),
        ("purpose without a limit", |q| {
            q.data
                .as_mut()
                .unwrap()
                .budget
                .as_mut()
                .unwrap()
                .limits
                .pop();
        }),
    ];
    for (name, change) in cases {
        let mut query = query("t-1", 4);
        change(&mut query);
        let state = store.access_state(&query).await.unwrap();
        assert_eq!(state.budget, None, "{name}");
    }
    // A replayed proof spends nothing either (its first use did, once).
    let mut replay = query("t-1", 4);
    replay.proof = Some(proof("p-1"));
    assert_eq!(
        store.access_state(&replay).await.unwrap().budget,
        admitted(1)
    );
    assert_eq!(store.access_state(&replay).await.unwrap().budget, None);
    // Nothing above was counted but that one request.
    assert_eq!(
        store.access_state(&query("t-1", 4)).await.unwrap().budget,
        admitted(2)
    );
    // A consent that is no longer authorised.
    assert!(
        store
            .transition_consent("c-1", ConsentStatus::Authorised, ConsentStatus::Revoked)
            .await
            .unwrap()
    );
    assert_eq!(
        store.access_state(&query("t-1", 4)).await.unwrap().budget,
        None
    );
}

pub async fn access_budget_concurrent(store: Arc<dyn Store>) {
    setup(store.as_ref()).await;
    // Twenty requests at once against a budget of five: exactly five get through, each day.
    for round in 0..super::ROUNDS {
        let day = day() + Duration::days(round as i64);
        let counts = race(20, |_| {
            let store = store.clone();
            let mut query = query("t-1", 5);
            if let Some(data) = &mut query.data {
                data.budget.as_mut().unwrap().day = day;
            }
            async move { store.access_state(&query).await.unwrap().budget.unwrap() }
        })
        .await;
        let mut used: Vec<u32> = counts
            .iter()
            .filter(|count| count.admitted)
            .map(|count| count.used)
            .collect();
        used.sort();
        assert_eq!(used, [1, 2, 3, 4, 5], "{counts:?}");
    }
}

/// Two stores with pools of their own on one database, as two gateway instances have.
pub async fn budget_is_shared_by_instances(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    setup(first.as_ref()).await;
    let counts = race(12, |i| {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move { store.access_state(&query("t-1", 4)).await.unwrap().budget }
    })
    .await;
    assert_eq!(
        counts
            .iter()
            .filter(|count| count.is_some_and(|count| count.admitted))
            .count(),
        4,
        "{counts:?}"
    );
    assert_eq!(
        second.access_state(&query("t-1", 4)).await.unwrap().budget,
        refused(4)
    );
}
