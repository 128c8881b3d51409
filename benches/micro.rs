//! Criterion micro-benchmarks (not tests): normalising each profile's official fixtures (what an
//! adapter does with a bank's answer: error-body check, typed decode, mapping onto the canonical
//! model) against plain typed serde parsing of the same bytes into the same wire types, and into
//! a `serde_json::Value`; policy evaluation of a data request; access token issue and verify.
//!
//! Fixtures are read at run time from `$BANKGATE_FIXTURES` (default `../shared/fixtures`).
//! `bench/run-all` runs this with short measurement times and collects the estimates into
//! bench/results/micro.json.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use bankgate::adapters::common::parse_body;
use bankgate::adapters::{berlin_group, fdx, obie, stet};
use bankgate::jose::keys::SigningKey;
use bankgate::model::Scope;
use bankgate::oauth::tokens::TokenService;
use bankgate::policy::{DataRequest, Platform, PolicySet, Presence};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;

const ACCOUNT: &str = "acc-1";
const BANK: &str = "bench-bank";

fn fixtures_root() -> PathBuf {
    std::env::var_os("BANKGATE_FIXTURES").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")),
        PathBuf::from,
    )
}

/// The fixture of `profile` whose name contains `part` (the first, by name).
fn fixture(profile: &str, part: &str) -> Vec<u8> {
    let dir = fixtures_root().join(profile);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| {
            panic!(
                "{}: {error}; set BANKGATE_FIXTURES to the shared fixtures",
                dir.display()
            )
        })
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains(part))
        })
        .collect();
    names.sort();
    let path = names
        .first()
        .unwrap_or_else(|| panic!("no {profile} fixture named *{part}*"));
    std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// One payload: how to normalise it and how to merely parse it (into the same wire type).
struct Case {
    name: &'static str,
    body: Vec<u8>,
    normalise: fn(&[u8]) -> usize,
    parse: fn(&[u8]) -> usize,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "berlin-group/accounts",
            body: fixture("berlin-group", "get-accounts_list-example1"),
            normalise: |body| {
                let list: berlin_group::wire::AccountList = berlin_group::decode(body).unwrap();
                berlin_group::wire::accounts(BANK, list).unwrap().len()
            },
            parse: |body| {
                let list: berlin_group::wire::AccountList = serde_json::from_slice(body).unwrap();
                black_box(list);
                1
            },
        },
        Case {
            name: "berlin-group/balances",
            body: fixture("berlin-group", "get-balances_multicurrency-account"),
            normalise: |body| {
                let response: berlin_group::wire::BalancesResponse =
                    berlin_group::decode(body).unwrap();
                berlin_group::wire::balances(ACCOUNT, response.balances, "balances")
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let response: berlin_group::wire::BalancesResponse =
                    serde_json::from_slice(body).unwrap();
                response.balances.len()
            },
        },
        Case {
            name: "berlin-group/transactions",
            body: fixture("berlin-group", "get-transactions_regular-account"),
            normalise: |body| {
                let response: berlin_group::wire::TransactionsResponse =
                    berlin_group::decode(body).unwrap();
                let report = response.transactions.unwrap_or_default();
                berlin_group::wire::transactions(ACCOUNT, report)
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let response: berlin_group::wire::TransactionsResponse =
                    serde_json::from_slice(body).unwrap();
                black_box(response);
                1
            },
        },
        Case {
            name: "stet/accounts",
            body: fixture("stet", "v1.4_get-accounts"),
            normalise: |body| {
                let list = parse_body(body, stet::wire::error_in_body).unwrap();
                stet::wire::accounts(BANK, list).unwrap().len()
            },
            parse: |body| {
                let list: stet::wire::AccountsResponse = serde_json::from_slice(body).unwrap();
                black_box(list);
                1
            },
        },
        Case {
            name: "stet/balances",
            body: fixture("stet", "v1.4_get-account-balances"),
            normalise: |body| {
                let response = parse_body(body, stet::wire::error_in_body).unwrap();
                stet::wire::balances(ACCOUNT, response).unwrap().len()
            },
            parse: |body| {
                let response: stet::wire::BalancesResponse = serde_json::from_slice(body).unwrap();
                black_box(response);
                1
            },
        },
        Case {
            name: "stet/transactions",
            body: fixture("stet", "v1.4_get-account-transactions"),
            normalise: |body| {
                let response: stet::wire::TransactionsResponse =
                    parse_body(body, stet::wire::error_in_body).unwrap();
                stet::wire::transactions(ACCOUNT, response.transactions)
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let response: stet::wire::TransactionsResponse =
                    serde_json::from_slice(body).unwrap();
                black_box(response);
                1
            },
        },
        Case {
            name: "obie/accounts",
            body: fixture("obie", "v3.1.11_get-accounts_bulk-detail"),
            normalise: |body| {
                let envelope: obie::wire::Envelope<obie::wire::AccountsData> =
                    parse_body(body, obie::wire::error_in_body).unwrap();
                obie::wire::accounts(BANK, envelope.data).unwrap().len()
            },
            parse: |body| {
                let envelope: obie::wire::Envelope<obie::wire::AccountsData> =
                    serde_json::from_slice(body).unwrap();
                black_box(envelope);
                1
            },
        },
        Case {
            name: "obie/balances",
            body: fixture("obie", "v3.1.11_get-balances_bulk"),
            normalise: |body| {
                let envelope: obie::wire::Envelope<obie::wire::BalancesData> =
                    parse_body(body, obie::wire::error_in_body).unwrap();
                obie::wire::balances(ACCOUNT, None, envelope.data)
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let envelope: obie::wire::Envelope<obie::wire::BalancesData> =
                    serde_json::from_slice(body).unwrap();
                black_box(envelope);
                1
            },
        },
        Case {
            name: "obie/transactions",
            body: fixture("obie", "v3.1.11_get-transactions_bulk"),
            normalise: |body| {
                let envelope: obie::wire::Envelope<obie::wire::TransactionsData> =
                    parse_body(body, obie::wire::error_in_body).unwrap();
                obie::wire::transactions(ACCOUNT, None, envelope.data.transaction)
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let envelope: obie::wire::Envelope<obie::wire::TransactionsData> =
                    serde_json::from_slice(body).unwrap();
                black_box(envelope);
                1
            },
        },
        Case {
            name: "fdx/accounts",
            body: fixture("fdx", "get-accounts"),
            normalise: |body| {
                let list: fdx::wire::AccountsResponse =
                    parse_body(body, fdx::wire::error_in_body).unwrap();
                fdx::wire::accounts(BANK, &list).unwrap().len()
            },
            parse: |body| {
                let list: fdx::wire::AccountsResponse = serde_json::from_slice(body).unwrap();
                black_box(list);
                1
            },
        },
        Case {
            name: "fdx/balances",
            body: fixture("fdx", "get-deposit-account"),
            normalise: |body| {
                let raw: Box<RawValue> = parse_body(body, fdx::wire::error_in_body).unwrap();
                let entity = fdx::wire::account_entity(&raw).unwrap();
                fdx::wire::balances(ACCOUNT, &entity).unwrap().len()
            },
            parse: |body| {
                let raw: Box<RawValue> = serde_json::from_slice(body).unwrap();
                let entity = fdx::wire::account_entity(&raw).unwrap();
                black_box(entity);
                1
            },
        },
        Case {
            name: "fdx/transactions",
            body: fixture("fdx", "get-account-transactions"),
            normalise: |body| {
                let list: fdx::wire::TransactionsResponse =
                    parse_body(body, fdx::wire::error_in_body).unwrap();
                fdx::wire::transactions(ACCOUNT, "USD", &list.transactions)
                    .unwrap()
                    .len()
            },
            parse: |body| {
                let list: fdx::wire::TransactionsResponse = serde_json::from_slice(body).unwrap();
                black_box(list);
                1
            },
        },
    ]
}

fn normalisation(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("normalise/{}", case.name));
        group.throughput(Throughput::Bytes(case.body.len() as u64));
        group.bench_function("normalise", |b| {
            b.iter(|| (case.normalise)(black_box(&case.body)))
        });
        group.bench_function("serde_typed", |b| {
            b.iter(|| (case.parse)(black_box(&case.body)))
        });
        group.bench_function("serde_value", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(black_box(&case.body))
                    .unwrap()
                    .is_object()
            })
        });
        group.finish();
    }
}

fn policy(c: &mut Criterion) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    let policies = PolicySet::load_dir(&dir).expect("policies/ loads");
    let purposes = vec!["balance-alerts".to_owned()];
    let now = chrono::Utc::now();
    let request = DataRequest {
        purpose: "balance-alerts",
        scope: Scope::Balances,
        consent_created_at: now - chrono::Duration::days(3),
        consent_history_days: 0,
        platform: Platform {
            approved_purposes: &purposes,
            region: "EEA",
        },
        presence: Presence::UserPresent,
        now,
    };
    c.bench_function("policy/decide", |b| {
        b.iter(|| policies.decide(black_box(&request)).is_ok())
    });
}

fn tokens(c: &mut Criterion) {
    let key = Arc::new(SigningKey::generate().expect("a P-256 key"));
    let service = TokenService::new(key, "http://127.0.0.1:8080", "http://127.0.0.1:8080", 300);
    c.bench_function("jwt/issue", |b| {
        b.iter(|| {
            service
                .issue("bench-platform", "consent-1", "accounts balances")
                .unwrap()
        })
    });
    // A token seen for the first time: the ES256 signature check.
    c.bench_function("jwt/verify", |b| {
        b.iter_batched(
            || {
                service
                    .issue("bench-platform", "consent-1", "accounts balances")
                    .unwrap()
                    .0
            },
            |token| service.verify(black_box(&token)).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    // The same token again, as a platform presents it for up to 5 minutes.
    let (token, _) = service
        .issue("bench-platform", "consent-1", "accounts balances")
        .unwrap();
    c.bench_function("jwt/verify_again", |b| {
        b.iter(|| service.verify(black_box(&token)).unwrap())
    });
}

criterion_group!(benches, normalisation, policy, tokens);
criterion_main!(benches);
