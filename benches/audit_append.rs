//! Audit append benchmark (not a test): sustained appends per second through `Auditor` (group
//! commit) with 64 concurrent writers on PostgreSQL, the same rows loaded by one COPY as the
//! baseline, three gateway instances sharing one database, and `audit verify` over the whole
//! log. Run it with `bench/audit-append`; it writes `bench/results/audit-append.json`.
//!
//! Each scenario gets a fresh database on the server of `DATABASE_URL` (default: the local
//! one), dropped afterwards. Settings: `BENCH_EVENTS` (default 1,000,000), `BENCH_WRITERS`
//! (64), `BENCH_INSTANCE_EVENTS` (300,000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use bankgate::audit::verifier::{VerifyOptions, verify_chain};
use bankgate::audit::{
    Action, AuditConfig, Auditor, Decision, Event, Pseudonymiser, VerifyingKeys,
};
use bankgate::crypto::Sealer;
use bankgate::jose::keys::SigningKey;
use bankgate::store::Store;
use bankgate::store::pg::PgStore;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_postgres::NoTls;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A fresh, migrated database; dropped by [`Database::drop_now`].
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin_url: &str) -> anyhow::Result<Database> {
        let name = format!("bench_audit_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        let database = Database {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        };
        bankgate::store::pg::migrate(&database.url).await?;
        Ok(database)
    }

    async fn store(&self, connections: usize) -> anyhow::Result<Arc<dyn Store>> {
        let store: PgStore = bankgate::store::pg::connect(&self.url, connections).await?;
        Ok(Arc::new(store))
    }

    async fn drop_now(self) -> anyhow::Result<()> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("PostgreSQL is required at {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A data-access decision as the gateway records it.
fn event(i: u64) -> Event {
    Event {
        platform: Some(format!("platform-{}", i % 7)),
        bank: Some(format!("bank-{}", i % 5)),
        consent: Some(format!("c-{:08x}", i % 10_000)),
        user_ref: Some(format!("u-{}", i % 50_000)),
        purpose: Some(["balance-alerts", "fraud-alerts", "p2p-payments"][(i % 3) as usize].into()),
        policy_hash: Some(
            "sha256:9f2c4e5b6a7d8c9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70".into(),
        ),
        categories: vec!["balances".into()],
        fields: vec![
            "account_id".into(),
            "type".into(),
            "amount".into(),
            "currency".into(),
            "as_of".into(),
        ],
        n_records: 3,
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        ..Event::new(
            Action::DataAccess,
            format!("platform-{}", i % 7),
            Decision::Allow,
        )
    }
}

fn auditor(store: Arc<dyn Store>, key: &Arc<SigningKey>, sealer: &Arc<Sealer>) -> Auditor {
    let defaults = AuditConfig::default();
    Auditor::start(
        store.clone(),
        AuditConfig {
            max_in_flight: setting("BENCH_IN_FLIGHT", defaults.max_in_flight as u64) as usize,
            ..defaults
        },
        Some(key.clone()),
        Pseudonymiser::new(sealer.clone(), store.clone()),
    )
}

/// CPU seconds this process used so far (Linux: `/proc/self/stat`, user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What one append run measured.
struct Run {
    events: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    /// CPU time of this process (writers, auditor, driver) per event, in microseconds.
    client_cpu_us: f64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> u32 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or(0)
    }
}

/// `writers` tasks appending through `auditors` (round robin) until `total` events.
async fn append(auditors: &[Auditor], writers: u64, total: u64) -> anyhow::Result<Run> {
    let issued = Arc::new(AtomicU64::new(0));
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let auditor = auditors[(writer as usize) % auditors.len()].clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let event = event(i);
                let start = Instant::now();
                auditor.record(event).await?;
                latencies.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    Ok(Run {
        events: total,
        seconds: started.elapsed().as_secs_f64(),
        latencies_us,
        client_cpu_us: (cpu_seconds() - cpu) * 1e6 / total as f64,
    })
}

/// Reads positions `(after, upto]` of `from`'s log in COPY's binary format (events and spine)
/// and loads them into `to` with one COPY per table, in one transaction; returns the seconds
/// the load took (the export is not timed).
async fn copy_range(
    from: &tokio_postgres::Client,
    to: &mut tokio_postgres::Client,
    after: i64,
    upto: i64,
) -> anyhow::Result<f64> {
    const COLUMNS: &str = "position, id, time, actor, action, platform, bank, consent, \
        user_ref, purpose, policy_hash, categories, fields, n_records, decision, reason, \
        request_id, prev_hash, hash, canonical, chained_at";
    let export = |sql: String| async move {
        let mut data = Vec::new();
        let stream = from.copy_out(&sql).await?;
        futures_util::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?);
        }
        Ok::<_, anyhow::Error>(data)
    };
    let events = export(format!(
        "COPY (SELECT {COLUMNS} FROM audit_events WHERE position > {after} \
         AND position <= {upto} ORDER BY position) TO STDOUT (FORMAT binary)"
    ))
    .await?;
    let spine = export(format!(
        "COPY (SELECT position, id, chained_at, hash FROM audit_chain WHERE position > {after} \
         AND position <= {upto} ORDER BY position) TO STDOUT (FORMAT binary)"
    ))
    .await?;

    let transaction = to.transaction().await?;
    let started = Instant::now();
    let mut copied = 0;
    for (sql, data) in [
        (
            format!("COPY audit_events ({COLUMNS}) FROM STDIN (FORMAT binary)"),
            events,
        ),
        (
            "COPY audit_chain (position, id, chained_at, hash) FROM STDIN (FORMAT binary)"
                .to_owned(),
            spine,
        ),
    ] {
        let sink = transaction.copy_in(&sql).await?;
        futures_util::pin_mut!(sink);
        for chunk in data.chunks(1 << 16) {
            sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
        }
        copied = sink.finish().await?;
    }
    transaction.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    if copied != (upto - after) as u64 {
        bail!("COPY loaded {copied} rows, expected {}", upto - after);
    }
    Ok(seconds)
}

/// `events` appended by `writers` spread over three `Auditor`s with their own pools on one
/// fresh database; the chain is verified afterwards.
async fn three_instances(
    admin_url: &str,
    key: &Arc<SigningKey>,
    sealer: &Arc<Sealer>,
    writers: u64,
    events: u64,
) -> anyhow::Result<Run> {
    eprintln!("appending {events} events with {writers} writers over three instances…");
    let shared = Database::create(admin_url).await?;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(auditor(shared.store(4).await?, key, sealer));
    }
    let warm_up = 3_000.min(events / 2);
    append(&instances, writers, warm_up).await?;
    let three = append(&instances, writers, events - warm_up).await?;
    let store = shared.store(2).await?;
    let report = verify_chain(
        store.as_ref(),
        &VerifyOptions {
            keys: VerifyingKeys::of(key),
            from: None,
        },
        |_| {},
    )
    .await?;
    if !report.is_intact() || report.n_events != events {
        bail!(
            "three instances left a broken log: {:?}",
            report.first_break
        );
    }
    eprintln!(
        "  {:.0} events/s (p50 {} µs, p99 {} µs), one valid chain of {} events",
        three.rate(),
        three.percentile(0.5),
        three.percentile(0.99),
        report.n_events
    );
    drop(instances);
    shared.drop_now().await?;
    Ok(three)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let admin_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let total = setting("BENCH_EVENTS", 1_000_000);
    let writers = setting("BENCH_WRITERS", 64);
    let instance_events = setting("BENCH_INSTANCE_EVENTS", 300_000);
    let key = Arc::new(SigningKey::generate()?);
    let sealer = Arc::new(Sealer::ephemeral()?);

    // 1. One gateway, `writers` concurrent writers, `total` events in rounds; after each
    //    round the same rows go into a second database by COPY (one per table), so both
    //    grow alike and meet the same machine load.
    let rounds = setting("BENCH_ROUNDS", 5).max(1);
    eprintln!(
        "appending {total} events with {writers} writers through one Auditor, in {rounds} \
         rounds, each followed by a COPY of its rows…"
    );
    let single = Database::create(&admin_url).await?;
    let baseline = Database::create(&admin_url).await?;
    let store = single.store(8).await?;
    let one = auditor(store.clone(), &key, &sealer);
    let source = connect(&single.url).await?;
    let mut target = connect(&baseline.url).await?;
    // Warm up connections and prepared statements (copied too, untimed).
    append(std::slice::from_ref(&one), writers, 2_000).await?;
    let mut head = store
        .audit_head()
        .await?
        .map_or(0, |(position, _)| position);
    copy_range(&source, &mut target, 0, head).await?;
    let per_round = (total.saturating_sub(head as u64) / rounds).max(1);
    let stats = || {
        (
            one.stats()
                .batches
                .load(std::sync::atomic::Ordering::Relaxed),
            one.stats()
                .events
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    let before = stats();
    let (mut append_seconds, mut copy_seconds, mut appended) = (0.0, 0.0, 0u64);
    let (mut latencies, mut cpu) = (Vec::new(), 0.0);
    let mut ratios = Vec::new();
    let mut round_results = Vec::new();
    for round in 0..rounds {
        let run = append(std::slice::from_ref(&one), writers, per_round).await?;
        let now = store
            .audit_head()
            .await?
            .map_or(0, |(position, _)| position);
        let copy = copy_range(&source, &mut target, head, now).await?;
        let copy_rate = (now - head) as f64 / copy;
        eprintln!(
            "  round {}: append {:.0} events/s (p50 {} µs, p99 {} µs, client CPU {:.1} µs/event), \
             COPY {copy_rate:.0} rows/s, ratio {:.2}",
            round + 1,
            run.rate(),
            run.percentile(0.5),
            run.percentile(0.99),
            run.client_cpu_us,
            run.rate() / copy_rate
        );
        ratios.push(run.rate() / copy_rate);
        round_results.push(json!({
            "append_events_per_second": run.rate().round(),
            "copy_rows_per_second": copy_rate.round(),
        }));
        append_seconds += run.seconds;
        copy_seconds += copy;
        appended += run.events;
        cpu += run.client_cpu_us * run.events as f64;
        latencies.extend(run.latencies_us);
        head = now;
    }
    let after = stats();
    let run = Run {
        events: appended,
        seconds: append_seconds,
        latencies_us: latencies,
        client_cpu_us: cpu / appended as f64,
    };
    let mean_batch = (after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64;
    let copy_rate = appended as f64 / copy_seconds;
    eprintln!(
        "  overall: append {:.0} events/s ({mean_batch:.1} events per commit), COPY {copy_rate:.0} rows/s",
        run.rate()
    );

    // 2. `audit verify` over the whole log.
    eprintln!("verifying the log…");
    let report = verify_chain(
        store.as_ref(),
        &VerifyOptions {
            keys: VerifyingKeys::of(&key),
            from: None,
        },
        |progress| eprintln!("  … {} events", progress.verified),
    )
    .await?;
    if !report.is_intact() {
        bail!(
            "the benchmark's own log does not verify: {:?}",
            report.first_break
        );
    }
    let verified = report.n_events;
    let verify_seconds = report.elapsed.as_secs_f64();
    let verify_rate = verified as f64 / verify_seconds;
    eprintln!(
        "  {verified} events, {} checkpoints in {verify_seconds:.2}s: {verify_rate:.0} events/s",
        report.n_checkpoints
    );
    drop(one);
    drop(source);
    drop(target);
    baseline.drop_now().await?;
    single.drop_now().await?;

    // 4. Three gateway instances (own pools and writers) on one database.
    let three = if instance_events > 0 {
        Some(three_instances(&admin_url, &key, &sealer, writers, instance_events).await?)
    } else {
        None
    };

    let ratio = run.rate() / copy_rate;
    let results = json!({
        "benchmark": "audit-append",
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        },
        "writers": writers,
        "group_commit": {
            "events": run.events,
            "seconds": (run.seconds * 100.0).round() / 100.0,
            "events_per_second": run.rate().round(),
            "latency_us": { "p50": run.percentile(0.5), "p99": run.percentile(0.99) },
            "client_cpu_us_per_event": (run.client_cpu_us * 10.0).round() / 10.0,
            "events_per_commit": (mean_batch * 10.0).round() / 10.0,
        },
        "copy_baseline": {
            "rows": run.events,
            "seconds": (copy_seconds * 100.0).round() / 100.0,
            "rows_per_second": copy_rate.round(),
            "note": "the same rows (audit_events and audit_chain), one COPY per table per round",
        },
        "rounds": round_results,
        "append_to_copy_ratio": (ratio * 1000.0).round() / 1000.0,
        "append_to_copy_ratio_median_round": (median(ratios.clone()) * 1000.0).round() / 1000.0,
        "three_instances": three.as_ref().map(|three| json!({
            "events": three.events,
            "seconds": (three.seconds * 100.0).round() / 100.0,
            "events_per_second": three.rate().round(),
            "latency_us": { "p50": three.percentile(0.5), "p99": three.percentile(0.99) },
            "chain_valid": true,
        })),
        "verify": {
            "events": verified,
            "seconds": (verify_seconds * 100.0).round() / 100.0,
            "events_per_second": verify_rate.round(),
        },
        "targets": {
            "events_per_second": 50_000,
            "ratio_to_copy": 0.8,
        },
    });
    let path = match std::env::var("BENCH_RESULTS_OUT") {
        Ok(path) if !path.is_empty() => path,
        _ => {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results");
            std::fs::create_dir_all(dir)?;
            format!("{dir}/audit-append.json")
        }
    };
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;

    println!("audit append benchmark ({writers} writers, PostgreSQL)");
    println!(
        "  group commit, 1 instance : {:>9.0} events/s  (p50 {} µs, p99 {} µs)",
        run.rate(),
        run.percentile(0.5),
        run.percentile(0.99)
    );
    if let Some(three) = &three {
        println!(
            "  group commit, 3 instances: {:>9.0} events/s  (one valid chain)",
            three.rate()
        );
    }
    println!(
        "  COPY baseline            : {copy_rate:>9.0} rows/s    (the same rows, events and spine)"
    );
    println!("  append / COPY            : {ratio:>9.2}       (target ≥ 0.8)");
    println!("  append / COPY, median round: {:>6.2}", median(ratios));
    println!("  verify                   : {verify_rate:>9.0} events/s over {verified} events");
    println!("  written to {path}");
    Ok(())
}
