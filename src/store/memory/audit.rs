//! The audit chain in memory: one chain, ids unique as in PostgreSQL, checkpoints by position
//! (no partitions, no archives).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use chrono::{DateTime, NaiveDate, Utc};

use super::{MemoryStore, lock, micros};
use crate::audit::{self, AuditLog, Event, Filter, GENESIS, Record};
use crate::model::WireName;
use crate::store::StoreError;

/// The audit chain, the ids in it (ids are unique, as in PostgreSQL) and its checkpoints.
#[derive(Debug, Default)]
pub(super) struct Chain {
    /// `records[i].position == i + 1`.
    records: Vec<Record>,
    ids: HashSet<String>,
    checkpoints: BTreeMap<i64, audit::Checkpoint>,
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, events: Vec<Event>) -> Result<Vec<Record>, StoreError> {
        let events: Vec<Event> = events
            .into_iter()
            .map(|event| Event {
                time: micros(event.time),
                ..event
            })
            .collect();
        let mut chain = lock(&self.audit);
        let mut batch_ids = HashSet::new();
        for event in &events {
            if chain.ids.contains(&event.id) || !batch_ids.insert(event.id.as_str()) {
                return Err(StoreError::Conflict("audit event"));
            }
        }
        let (position, hash) = chain
            .records
            .last()
            .map_or((0, GENESIS), |head| (head.position, head.hash));
        let records = audit::link(position, hash, events);
        chain
            .ids
            .extend(records.iter().map(|record| record.event.id.clone()));
        chain.records.extend(records.iter().cloned());
        Ok(records)
    }

    async fn audit_events(&self, filter: &Filter) -> Result<Vec<Record>, StoreError> {
        let chain = &lock(&self.audit).records;
        // Positions are gapless from 1, so the keyset `after` is also an index.
        let start = filter.after.map_or(0, |after| {
            chain.partition_point(|record| record.position <= after)
        });
        let page_size = usize::try_from(filter.page_size()).unwrap_or(usize::MAX);
        Ok(chain[start..]
            .iter()
            .filter(|record| filter.matches(record))
            .take(page_size)
            .cloned()
            .collect())
    }

    async fn audit_summary(
        &self,
        filter: &audit::SummaryFilter,
    ) -> Result<Vec<audit::SummaryRow>, StoreError> {
        type Key = (NaiveDate, Option<String>, Option<String>, &'static str);
        let mut counts: BTreeMap<Key, (audit::Decision, i64)> = BTreeMap::new();
        for record in &lock(&self.audit).records {
            let event = &record.event;
            if !filter.matches(event) {
                continue;
            }
            // Decisions order by name, as in PostgreSQL.
            let key = (
                event.time.date_naive(),
                event.platform.clone(),
                event.purpose.clone(),
                event.decision.as_str(),
            );
            counts.entry(key).or_insert((event.decision, 0)).1 += 1;
        }
        Ok(counts
            .into_iter()
            .map(
                |((day, platform, purpose, _), (decision, count))| audit::SummaryRow {
                    day,
                    platform,
                    purpose,
                    decision,
                    count,
                },
            )
            .collect())
    }

    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        Ok(lock(&self.audit)
            .records
            .last()
            .map(|record| (record.position, record.hash)))
    }

    fn audit_chain(
        &self,
        after: i64,
    ) -> BoxStream<'static, Result<audit::StoredRecord, StoreError>> {
        // A snapshot: the in-memory log is small enough to copy.
        let chain = lock(&self.audit);
        let start = chain
            .records
            .partition_point(|record| record.position <= after);
        let rows: Vec<_> = chain.records[start..]
            .iter()
            .map(|record| Ok(audit::StoredRecord::of(record)))
            .collect();
        futures_util::stream::iter(rows).boxed()
    }

    async fn add_audit_checkpoint(
        &self,
        checkpoint: &audit::Checkpoint,
        min_gap: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut chain = lock(&self.audit);
        let chained = usize::try_from(checkpoint.position - 1)
            .ok()
            .and_then(|index| chain.records.get(index));
        if chained.is_none_or(|record| record.hash != checkpoint.hash) {
            return Err(StoreError::Invariant(
                "a checkpoint must carry the chain's hash at its position",
            ));
        }
        let too_close = match min_gap {
            Some(gap) => chain
                .checkpoints
                .range(checkpoint.position.saturating_sub(gap).saturating_add(1)..)
                .next()
                .is_some(),
            None => chain.checkpoints.contains_key(&checkpoint.position),
        };
        if too_close {
            return Ok(false);
        }
        let checkpoint = audit::Checkpoint {
            time: micros(checkpoint.time),
            ..checkpoint.clone()
        };
        chain.checkpoints.insert(checkpoint.position, checkpoint);
        Ok(true)
    }

    async fn audit_checkpoints(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<audit::Checkpoint>, StoreError> {
        let chain = lock(&self.audit);
        let from = after.map_or(i64::MIN, |after| after.saturating_add(1));
        Ok(chain
            .checkpoints
            .range(from..)
            .map(|(_, checkpoint)| checkpoint.clone())
            .take(limit as usize)
            .collect())
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<audit::Checkpoint>, StoreError> {
        Ok(lock(&self.audit)
            .checkpoints
            .last_key_value()
            .map(|(_, checkpoint)| checkpoint.clone()))
    }

    async fn audit_partitions(&self) -> Result<Vec<audit::Partition>, StoreError> {
        Ok(Vec::new())
    }

    async fn prepare_audit_partitions(
        &self,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        Ok(0)
    }

    async fn audit_partition_extent(
        &self,
        _partition: &audit::Partition,
    ) -> Result<(i64, Option<i64>, Option<i64>), StoreError> {
        Err(StoreError::Invariant(
            "the in-memory audit log has no partitions",
        ))
    }

    async fn drop_audit_partition(
        &self,
        _archive: &audit::Archive,
        _retention: chrono::Duration,
    ) -> Result<(), StoreError> {
        Err(StoreError::Invariant(
            "the in-memory audit log has no partitions",
        ))
    }

    async fn audit_archives(&self) -> Result<Vec<audit::Archive>, StoreError> {
        Ok(Vec::new())
    }
}
