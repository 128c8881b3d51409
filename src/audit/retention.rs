//! Partitions and retention. Monthly partitions are prepared ahead; a partition whose month
//! ended longer than the retention period ago is archived — exported to a JSON Lines file,
//! covered by a signed checkpoint at its last position, described by a manifest — and only
//! then dropped, by a database function that refuses unless the archive matches what the
//! partition holds. Never silently: without an archive directory expired partitions are kept
//! and a warning says so, and every drop is itself an audit event.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest;
use chrono::{DateTime, Months, Utc};
use serde::Serialize;

use super::{Action, Archive, Auditor, Decision, Event, Filter, Partition, Record};
use crate::store_error::StoreError;

/// Why archiving failed; the partition is then kept.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("partition {partition}: {what}")]
    Refused { partition: String, what: String },
}

/// What an archive's manifest says (next to the JSON Lines file).
#[derive(Debug, Serialize)]
struct Manifest<'a> {
    #[serde(flatten)]
    archive: &'a Archive,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The signed checkpoint at the last position (JWS).
    checkpoint: Option<&'a str>,
}

/// Prepares partitions from last month to `ahead` months on.
pub async fn prepare_partitions(auditor: &Auditor, now: DateTime<Utc>) -> Result<u32, StoreError> {
    let from = now.checked_sub_months(Months::new(1)).unwrap_or(now);
    let to = now
        .checked_add_months(Months::new(auditor.config().partitions_ahead_months))
        .unwrap_or(now);
    auditor.store().prepare_audit_partitions(from, to).await
}

/// Archives and drops every partition that ended more than the retention period before `now`;
/// returns the archives made. Stops at the first failure (later partitions wait).
pub async fn apply(auditor: &Auditor, now: DateTime<Utc>) -> Result<Vec<Archive>, RetentionError> {
    let config = auditor.config();
    let cutoff = now - config.retention;
    let expired: Vec<Partition> = auditor
        .store()
        .audit_partitions()
        .await?
        .into_iter()
        .filter(|partition| partition.dropped_at.is_none() && partition.to <= cutoff)
        .collect();
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let Some(dir) = &config.archive_dir else {
        tracing::warn!(
            n_partitions = expired.len(),
            "audit partitions past retention are kept: set audit_archive_dir to archive and drop them"
        );
        return Ok(Vec::new());
    };
    let mut archives = Vec::new();
    for partition in expired {
        let archive = archive(auditor, &partition, dir).await?;
        auditor
            .store()
            .drop_audit_partition(&archive, config.retention)
            .await?;
        let mut event = Event::new(Action::AuditArchived, "gateway", Decision::Allow);
        event.n_records = u32::try_from(archive.n_events).unwrap_or(u32::MAX);
        event.reason = Some(format!(
            "partition {} (positions {}..={}) archived to {} (sha256 {}) and dropped",
            archive.partition,
            archive.first_position.unwrap_or(0),
            archive.last_position.unwrap_or(0),
            archive.file,
            archive.sha256
        ));
        auditor.record(event).await?;
        tracing::info!(
            partition = %archive.partition,
            n_events = archive.n_events,
            file = %archive.file,
            "audit partition archived and dropped"
        );
        archives.push(archive);
    }
    Ok(archives)
}

/// Exports `partition` to `<dir>/<name>.jsonl` (checking that its positions are contiguous and
/// linked), signs a checkpoint at its last position, and writes `<name>.manifest.json`.
async fn archive(
    auditor: &Auditor,
    partition: &Partition,
    dir: &Path,
) -> Result<Archive, RetentionError> {
    let refused = |what: String| RetentionError::Refused {
        partition: partition.name.clone(),
        what,
    };
    let store = auditor.store();
    let (n_events, first, last) = store.audit_partition_extent(partition).await?;
    std::fs::create_dir_all(dir).map_err(|source| RetentionError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(format!("{}.jsonl", partition.name));
    let partial = dir.join(format!("{}.jsonl.partial", partition.name));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RetentionError::Io { path, source }
    };
    let file = std::fs::File::create(&partial).map_err(io(&partial))?;
    let mut out = std::io::BufWriter::new(file);
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut written: i64 = 0;
    let mut head: Option<(i64, [u8; 32])> = None;
    if let (Some(first), Some(last)) = (first, last) {
        let mut after = first - 1;
        while after < last {
            let page = store
                .audit_events(&Filter {
                    after: Some(after),
                    limit: Some(Filter::MAX_LIMIT),
                    ..Filter::default()
                })
                .await?;
            let Some(end) = page.last().map(|record| record.position) else {
                break;
            };
            for record in page.iter().filter(|record| record.position <= last) {
                check_link(head, record).map_err(&refused)?;
                head = Some((record.position, record.hash));
                let mut line = serde_json::to_vec(record)
                    .map_err(|error| refused(format!("cannot serialise: {error}")))?;
                line.push(b'\n');
                sha.update(&line);
                out.write_all(&line).map_err(io(&partial))?;
                written += 1;
            }
            after = end;
        }
    }
    if written != n_events || head.map(|(position, _)| position) != last {
        return Err(refused(format!(
            "exported {written} events but the partition holds {n_events}"
        )));
    }
    let file = out
        .into_inner()
        .map_err(|error| io(&partial)(error.into_error()))?;
    file.sync_all().map_err(io(&partial))?;
    drop(file);
    std::fs::rename(&partial, &path).map_err(io(&path))?;

    let checkpoint = match head {
        Some((position, hash)) => {
            let checkpointer = auditor.checkpointer();
            if checkpointer.signer().is_none() {
                return Err(refused(
                    "no signing key to sign the archive's checkpoint".into(),
                ));
            }
            checkpointer.checkpoint_at(position, hash, None).await?;
            // Stored now or earlier (by another instance): read back the one at `position`.
            store
                .audit_checkpoints(Some(position - 1), 1)
                .await?
                .into_iter()
                .find(|checkpoint| checkpoint.position == position)
        }
        None => None,
    };
    let archive = Archive {
        partition: partition.name.clone(),
        n_events,
        first_position: first,
        last_position: last,
        sha256: hex::encode(sha.finish()),
        file: path.display().to_string(),
    };
    let manifest = Manifest {
        archive: &archive,
        from: partition.from,
        to: partition.to,
        checkpoint: checkpoint
            .as_ref()
            .map(|checkpoint| checkpoint.jws.as_str()),
    };
    let manifest_path = dir.join(format!("{}.manifest.json", partition.name));
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| refused(format!("cannot serialise the manifest: {error}")))?;
    std::fs::write(&manifest_path, json).map_err(io(&manifest_path))?;
    Ok(archive)
}

/// Within a partition, each event must follow the one before it.
fn check_link(head: Option<(i64, [u8; 32])>, record: &Record) -> Result<(), String> {
    let Some((position, hash)) = head else {
        return Ok(());
    };
    if record.position != position + 1 || record.prev_hash != hash {
        return Err(format!(
            "the chain is broken at position {}: run `bankgate audit verify`",
            record.position
        ));
    }
    if super::chain_hash(&hash, record.position, &record.event.canonical_bytes()) != record.hash {
        return Err(format!(
            "event {} does not match its hash: run `bankgate audit verify`",
            record.position
        ));
    }
    Ok(())
}

/// Prepares partitions and applies retention now and then every `interval`, until the
/// auditor is gone. Failures are logged and retried at the next round.
pub fn spawn_maintenance(auditor: &Auditor, interval: Duration) {
    let weak = auditor.downgrade();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(auditor) = weak.upgrade() else {
                return;
            };
            let now = Utc::now();
            match prepare_partitions(&auditor, now).await {
                Ok(0) => {}
                Ok(created) => tracing::info!(created, "audit partitions prepared"),
                Err(error) => {
                    tracing::warn!(error = %super::describe(&error), "cannot prepare audit partitions")
                }
            }
            if let Err(error) = apply(&auditor, now).await {
                tracing::error!(error = %super::describe(&error), "audit retention failed; the partition is kept");
            }
        }
    });
}
