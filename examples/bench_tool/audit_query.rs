//! `bench_tool audit-query`: a large, realistic audit log loaded by binary COPY (a valid hash
//! chain), then the compliance queries through the store's real query code (p50/p95 per
//! filter), the export rate (every event, page by page) and `verify_chain`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bankgate::audit::verifier::{VerifyOptions, verify_chain};
use bankgate::audit::{Action, Decision, Event, Filter, VerifyingKeys};
use bankgate::jose::keys::SigningKey;
use bankgate::model::WireName;
use bankgate::store::Store;
use chrono::{DateTime, Duration as TimeDelta, SubsecRound as _, Utc};
use futures_util::pin_mut;
use serde_json::{Value, json};
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the log.
    #[arg(long, env = "BENCH_AUDIT_EVENTS", default_value_t = 10_000_000)]
    events: u64,
    /// Months the events span (ending now).
    #[arg(long, default_value_t = 6)]
    months: i64,
    /// Queries timed per filter.
    #[arg(long, default_value_t = 40)]
    queries: usize,
    /// Export at most this long (seconds); the rate is over what was read.
    #[arg(long, default_value_t = 60)]
    export_secs: u64,
    /// Skip `verify_chain` when the log has more events than this.
    #[arg(long, default_value_t = u64::MAX)]
    verify_max_events: u64,
    /// Keep the database afterwards (to look at plans); its name goes to stderr.
    #[arg(long)]
    keep: bool,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

const PLATFORMS: usize = 20;
const BANKS: usize = 12;
const USERS: u64 = 200_000;
const PURPOSES: [(&str, &[&str], &[&str]); 6] = [
    (
        "balance-alerts",
        &["accounts", "balances"],
        &["account_id", "type", "amount", "currency", "as_of"],
    ),
    (
        "personal-finance",
        &["accounts", "balances", "transactions"],
        &[
            "account_id",
            "amount",
            "currency",
            "booking_date",
            "description",
        ],
    ),
    (
        "fraud-alerts",
        &["transactions"],
        &["account_id", "amount", "currency", "booking_date"],
    ),
    (
        "credit-assessment",
        &["accounts", "balances", "transactions"],
        &[
            "account_id",
            "amount",
            "currency",
            "booking_date",
            "category",
        ],
    ),
    ("kyc-verification", &["identity"], &["holder_name", "iban"]),
    ("p2p-payments-payee-check", &["identity"], &["holder_name"]),
];
const COLUMNS: &str = "position, id, time, actor, action, platform, bank, consent, user_ref, \
    purpose, policy_hash, categories, fields, n_records, decision, reason, request_id, \
    prev_hash, hash, canonical, chained_at";
const COLUMN_TYPES: [Type; 21] = [
    Type::INT8,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::TIMESTAMPTZ,
];

/// One event with its place in the chain and the bytes that were hashed.
struct Chained {
    position: i64,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    canonical: Vec<u8>,
    event: Event,
}

/// splitmix64: a deterministic, fast generator (the same log every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Skewed towards 0: a few big platforms, a long tail (about Zipf with s = 1).
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
    }
}

/// Names the generator draws from.
struct Vocabulary {
    platforms: Vec<String>,
    banks: Vec<String>,
    users: Vec<String>,
    policy_hashes: Vec<String>,
}

impl Vocabulary {
    fn new() -> Vocabulary {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Vocabulary {
            platforms: (0..PLATFORMS).map(|i| format!("platform-{i:02}")).collect(),
            banks: (0..BANKS).map(|i| format!("bank-{i:02}")).collect(),
            users: (0..USERS)
                .map(|i| {
                    format!(
                        "ur_{}",
                        b64.encode(bankgate::crypto::sha256(&i.to_be_bytes()))
                    )
                })
                .collect(),
            policy_hashes: PURPOSES
                .iter()
                .map(|(id, _, _)| {
                    format!(
                        "sha256:{}",
                        hex::encode(bankgate::crypto::sha256(id.as_bytes()))
                    )
                })
                .collect(),
        }
    }

    /// A user's consent at one of their banks: a stable UUID-shaped id.
    fn consent(user: u64, slot: u64) -> String {
        let bytes = bankgate::crypto::sha256(&[user.to_be_bytes(), slot.to_be_bytes()].concat());
        uuid::Builder::from_random_bytes(bytes[..16].try_into().unwrap_or_default())
            .into_uuid()
            .to_string()
    }
}

/// Event `i` of `n` spread from `start` to `end`: mostly data accesses, some consent and token
/// events, a few denials and errors.
fn event(rng: &mut Rng, words: &Vocabulary, time: DateTime<Utc>) -> Event {
    let platform = rng.skewed(PLATFORMS);
    let user = rng.below(USERS);
    let slot = rng.below(3);
    let bank = ((user + slot) % BANKS as u64) as usize;
    let purpose = (user as usize + platform) % PURPOSES.len();
    let (purpose_id, categories, fields) = PURPOSES[purpose];
    let roll = rng.below(1000);
    let action = match roll {
        0..=849 => Action::DataAccess,
        850..=909 => Action::TokenIssued,
        910..=944 => Action::ConsentCreated,
        945..=974 => Action::ConsentAuthorised,
        975..=984 => Action::ConsentRejected,
        985..=992 => Action::ConsentRevoked,
        _ => Action::ConsentExpired,
    };
    let decision_roll = rng.below(1000);
    let (decision, reason) = match (action, decision_roll) {
        (Action::DataAccess, 0..=59) => (
            Decision::Deny,
            Some(format!("purpose {purpose_id} does not allow this data")),
        ),
        (Action::DataAccess, 60..=69) => (
            Decision::Error,
            Some("the bank did not answer in time".to_owned()),
        ),
        (Action::ConsentRejected, _) => (Decision::Deny, Some("the user declined".to_owned())),
        _ => (Decision::Allow, None),
    };
    let data = action == Action::DataAccess && decision == Decision::Allow;
    let seconds = time.timestamp() as u64;
    fn counter_random(rng: &mut Rng) -> [u8; 10] {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&rng.next().to_be_bytes());
        bytes[8..].copy_from_slice(&rng.next().to_be_bytes()[..2]);
        bytes
    }
    let nanos = time.timestamp_subsec_nanos();
    Event {
        id: uuid::Builder::from_unix_timestamp_millis(
            seconds * 1000 + u64::from(nanos / 1_000_000),
            &counter_random(rng),
        )
        .into_uuid()
        .to_string(),
        time,
        actor: words.platforms[platform].clone(),
        action,
        platform: Some(words.platforms[platform].clone()),
        bank: Some(words.banks[bank].clone()),
        consent: Some(Vocabulary::consent(user, slot)),
        user_ref: Some(words.users[user as usize].clone()),
        purpose: Some(purpose_id.to_owned()),
        policy_hash: Some(words.policy_hashes[purpose].clone()),
        categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        fields: if data {
            fields.iter().map(|f| (*f).to_owned()).collect()
        } else {
            Vec::new()
        },
        n_records: if data { 1 + rng.below(40) as u32 } else { 0 },
        decision,
        reason,
        request_id: Some(
            uuid::Builder::from_random_bytes(
                [rng.next().to_be_bytes(), rng.next().to_be_bytes()]
                    .concat()
                    .try_into()
                    .unwrap_or_default(),
            )
            .into_uuid()
            .to_string(),
        ),
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("PostgreSQL is required at {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let name = format!("bench_auditq_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&args.database_url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let mut url = url::Url::parse(&args.database_url)?;
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let result = measure(&args, &url).await;
    if args.keep {
        eprintln!("audit-query: kept database {name}");
        return result;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    result
}

async fn measure(args: &Args, url: &str) -> anyhow::Result<Value> {
    bankgate::store::pg::migrate(url).await?;
    let n = args.events;
    let end = (Utc::now() - TimeDelta::hours(1)).trunc_subsecs(6);
    let start = end - TimeDelta::days(30 * args.months);
    let step_micros = ((end - start).num_microseconds().unwrap_or(1) / n.max(1) as i64).max(1);

    // 1. Load: generate and chain on a thread, COPY (binary) into both tables, with the
    //    secondary indexes of `audit_events` dropped during the load and rebuilt after.
    let db = connect(url).await?;
    db.query_one(
        "SELECT audit_ensure_partitions($1, $2)",
        &[&start, &(end + TimeDelta::days(31))],
    )
    .await?;
    let index_defs: Vec<(String, String)> = db
        .query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_events'",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (index, _) in &index_defs {
        db.batch_execute(&format!("DROP INDEX \"{index}\"")).await?;
    }
    eprintln!(
        "audit-query: loading {n} events over {} months (indexes rebuilt after)…",
        args.months
    );
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<Chained>>(4);
    let generator = std::thread::spawn(move || {
        let words = Vocabulary::new();
        let mut rng = Rng(0x5EED);
        let (mut head, mut hash) = (0i64, bankgate::audit::GENESIS);
        const CHUNK: u64 = 50_000;
        let mut generated = 0;
        while generated < n {
            let count = CHUNK.min(n - generated);
            let records: Vec<Chained> = (0..count)
                .map(|k| {
                    let micros = step_micros * (generated + k) as i64;
                    let event = event(&mut rng, &words, start + TimeDelta::microseconds(micros));
                    // What `audit::link` does, keeping the canonical bytes for the COPY.
                    let canonical = event.canonical_bytes();
                    let prev_hash = hash;
                    head += 1;
                    hash = bankgate::audit::chain_hash(&prev_hash, head, &canonical);
                    Chained {
                        position: head,
                        prev_hash,
                        hash,
                        canonical,
                        event,
                    }
                })
                .collect();
            generated += count;
            if sender.blocking_send(records).is_err() {
                return;
            }
        }
    });
    // Two connections, one COPY each: the events and the spine stream side by side.
    let spine_db = connect(url).await?;
    let started = Instant::now();
    let events_sink = db
        .copy_in(&format!(
            "COPY audit_events ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let events_writer = BinaryCopyInWriter::new(events_sink, &COLUMN_TYPES);
    pin_mut!(events_writer);
    let spine_sink = spine_db
        .copy_in("COPY audit_chain (position, id, chained_at, hash) FROM STDIN (FORMAT binary)")
        .await?;
    let spine_writer = BinaryCopyInWriter::new(
        spine_sink,
        &[Type::INT8, Type::TEXT, Type::TIMESTAMPTZ, Type::BYTEA],
    );
    pin_mut!(spine_writer);
    let mut loaded = 0u64;
    let mut last_report = Instant::now();
    while let Some(records) = receiver.recv().await {
        for record in records {
            let event = &record.event;
            let canonical = &record.canonical;
            let n_records = i64::from(event.n_records);
            let action = event.action.as_str();
            let decision = event.decision.as_str();
            let prev_hash = record.prev_hash.as_slice();
            let hash = record.hash.as_slice();
            let row: [&(dyn ToSql + Sync); 21] = [
                &record.position,
                &event.id,
                &event.time,
                &event.actor,
                &action,
                &event.platform,
                &event.bank,
                &event.consent,
                &event.user_ref,
                &event.purpose,
                &event.policy_hash,
                &event.categories,
                &event.fields,
                &n_records,
                &decision,
                &event.reason,
                &event.request_id,
                &prev_hash,
                &hash,
                canonical,
                &event.time,
            ];
            events_writer.as_mut().write(&row).await?;
            let spine_row: [&(dyn ToSql + Sync); 4] =
                [&record.position, &event.id, &event.time, &hash];
            spine_writer.as_mut().write(&spine_row).await?;
            loaded += 1;
        }
        if last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            eprintln!(
                "audit-query: {loaded} events copied ({:.0}/s)",
                loaded as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator panicked"))?;
    events_writer.finish().await?;
    spine_writer.finish().await?;
    let copy_s = started.elapsed().as_secs_f64();
    eprintln!("audit-query: copied in {copy_s:.1} s; building indexes…");
    let index_started = Instant::now();
    db.batch_execute(
        "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = 2",
    )
    .await?;
    for (_, definition) in &index_defs {
        // pg_indexes shows a partitioned table's index `ON ONLY` the parent: built that way
        // it would stay invalid, without the partitions' indexes.
        db.batch_execute(&definition.replacen(" ON ONLY ", " ON ", 1))
            .await?;
    }
    db.batch_execute("ANALYZE audit_events; ANALYZE audit_chain")
        .await?;
    let index_s = index_started.elapsed().as_secs_f64();
    let loaded_s = started.elapsed().as_secs_f64();
    let size: i64 = db
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    eprintln!(
        "audit-query: {n} events loaded in {loaded_s:.1} s ({:.0} events/s, indexes {index_s:.1} s, {} MiB)",
        n as f64 / loaded_s,
        size >> 20
    );

    // 2. Compliance queries through the store's query code.
    let store: Arc<dyn Store> = Arc::new(bankgate::store::pg::connect(url, 4).await?);
    let words = Vocabulary::new();
    let mut rng = Rng(0xC0FFEE);
    let span_micros = (end - start).num_microseconds().unwrap_or(1) as u64;
    let page = |filter: Filter| Filter {
        limit: Some(100),
        ..filter
    };
    type MakeFilter<'a> = Box<dyn Fn(&mut Rng) -> Filter + 'a>;
    let filters: Vec<(&str, MakeFilter)> = vec![
        (
            "platform",
            Box::new(|rng: &mut Rng| {
                page(Filter {
                    platform: Some(words.platforms[rng.below(PLATFORMS as u64) as usize].clone()),
                    ..Filter::default()
                })
            }),
        ),
        (
            "purpose+decision=deny",
            Box::new(|rng: &mut Rng| {
                page(Filter {
                    purpose: Some(PURPOSES[rng.below(PURPOSES.len() as u64) as usize].0.into()),
                    decision: Some(Decision::Deny),
                    ..Filter::default()
                })
            }),
        ),
        (
            "consent",
            Box::new(|rng: &mut Rng| {
                page(Filter {
                    consent: Some(Vocabulary::consent(rng.below(USERS), rng.below(3))),
                    ..Filter::default()
                })
            }),
        ),
        (
            "user_ref",
            Box::new(|rng: &mut Rng| {
                page(Filter {
                    user_ref: Some(words.users[rng.below(USERS) as usize].clone()),
                    ..Filter::default()
                })
            }),
        ),
        (
            "time range (1 day)",
            Box::new(|rng: &mut Rng| {
                let from = start + TimeDelta::microseconds(rng.below(span_micros) as i64);
                page(Filter {
                    from: Some(from),
                    to: Some(from + TimeDelta::days(1)),
                    ..Filter::default()
                })
            }),
        ),
        (
            "platform+time range (1 week)",
            Box::new(|rng: &mut Rng| {
                let from = start + TimeDelta::microseconds(rng.below(span_micros) as i64);
                page(Filter {
                    platform: Some(words.platforms[rng.below(PLATFORMS as u64) as usize].clone()),
                    from: Some(from),
                    to: Some(from + TimeDelta::days(7)),
                    ..Filter::default()
                })
            }),
        ),
    ];
    let mut results = serde_json::Map::new();
    let mut summary = Vec::new();
    for (label, make) in &filters {
        let mut first_pages = Vec::new();
        let mut second_pages = Vec::new();
        let mut rows = 0usize;
        for _ in 0..args.queries {
            let filter = make(&mut rng);
            let started = Instant::now();
            let first = store.audit_events(&filter).await?;
            first_pages.push(started.elapsed().as_secs_f64() * 1000.0);
            rows += first.len();
            // Keyset page 2 of the same filter.
            if let Some(last) = first.last() {
                let next = Filter {
                    after: Some(last.position),
                    ..filter
                };
                let started = Instant::now();
                store.audit_events(&next).await?;
                second_pages.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        for samples in [&mut first_pages, &mut second_pages] {
            samples.sort_by(f64::total_cmp);
        }
        let stats = json!({
            "queries": first_pages.len(),
            "mean_rows": rows as f64 / first_pages.len().max(1) as f64,
            "page1_ms": {"p50": percentile(&first_pages, 0.5), "p95": percentile(&first_pages, 0.95), "max": first_pages.last().copied().unwrap_or(0.0)},
            "page2_ms": {"p50": percentile(&second_pages, 0.5), "p95": percentile(&second_pages, 0.95), "max": second_pages.last().copied().unwrap_or(0.0)},
        });
        summary.push(format!(
            "  {label:<30} page 1 p50 {:>7.2} ms  p95 {:>7.2} ms | page 2 p50 {:>7.2} ms  p95 {:>7.2} ms",
            percentile(&first_pages, 0.5),
            percentile(&first_pages, 0.95),
            percentile(&second_pages, 0.5),
            percentile(&second_pages, 0.95)
        ));
        results.insert((*label).to_owned(), stats);
    }
    for line in &summary {
        eprintln!("{line}");
    }

    // 3. Export: every event, in pages of 1000, as a compliance export would read them.
    let export_started = Instant::now();
    let mut after = 0i64;
    let mut exported = 0u64;
    loop {
        let records = store
            .audit_events(&Filter {
                after: Some(after),
                limit: Some(Filter::MAX_LIMIT),
                ..Filter::default()
            })
            .await?;
        let Some(last) = records.last() else { break };
        after = last.position;
        exported += records.len() as u64;
        if export_started.elapsed().as_secs() >= args.export_secs {
            break;
        }
    }
    let export_s = export_started.elapsed().as_secs_f64();
    eprintln!(
        "audit-query: exported {exported} events in {export_s:.1} s ({:.0} events/s)",
        exported as f64 / export_s
    );

    // 4. Verify the whole chain.
    let verify = if n <= args.verify_max_events {
        let key = SigningKey::generate()?;
        let options = VerifyOptions {
            keys: VerifyingKeys::of(&key),
            from: None,
        };
        let verify_started = Instant::now();
        let report = verify_chain(store.as_ref(), &options, |_| {}).await?;
        let verify_s = verify_started.elapsed().as_secs_f64();
        if let Some(broken) = &report.first_break {
            bail!("the generated chain does not verify: {broken}");
        }
        eprintln!(
            "audit-query: verified {} events in {verify_s:.1} s ({:.0} events/s)",
            report.n_events,
            report.n_events as f64 / verify_s
        );
        json!({"events": report.n_events, "seconds": verify_s, "events_per_s": report.n_events as f64 / verify_s})
    } else {
        Value::Null
    };

    Ok(json!({
        "events": n,
        "target_events": 10_000_000,
        "months": args.months,
        "database_mib": size >> 20,
        "load": {
            "copy_s": copy_s,
                        "index_build_s": index_s,
            "total_s": loaded_s,
            "events_per_s": n as f64 / loaded_s,
            "note": "generated and chained in Rust, binary COPY (events and spine side by side) with audit_events' indexes dropped, then rebuilt",
        },
        "queries": results,
        "query_page_size": 100,
        "export": {
            "events": exported,
            "seconds": export_s,
            "events_per_s": exported as f64 / export_s,
            "complete": exported == n,
            "page_size": Filter::MAX_LIMIT,
        },
        "verify": verify,
    }))
}
