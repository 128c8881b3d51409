//! The audit log's storage: [`AuditLog`], implemented by `store/pg/audit.rs` and
//! `store/memory/audit.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use crate::audit;
use crate::store_error::StoreError;

/// The hash-chained log, its checkpoints, partitions and archives.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends events to the chain in one commit; returns them with positions and hashes.
    /// All or nothing: on error no event took a position. `Conflict` if an event id exists.
    async fn append_audit(
        &self,
        events: Vec<audit::Event>,
    ) -> Result<Vec<audit::Record>, StoreError>;
    /// Events matching `filter`, by ascending position, at most `filter.page_size()`.
    async fn audit_events(&self, filter: &audit::Filter) -> Result<Vec<audit::Record>, StoreError>;

    /// Counts the events `filter` selects by UTC day of their `time`, platform, purpose and
    /// decision; rows ordered by day, platform, purpose (absent first, then byte order) and
    /// decision. The caller bounds the range.
    async fn audit_summary(
        &self,
        filter: &audit::SummaryFilter,
    ) -> Result<Vec<audit::SummaryRow>, StoreError>;

    /// The last position of the chain and its hash; `None` while the log is empty.
    async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError>;
    /// Every chained row after position `after`, by ascending position, as stored (nothing
    /// checked), streamed in constant memory: what verification reads.
    fn audit_chain(
        &self,
        after: i64,
    ) -> BoxStream<'static, Result<audit::StoredRecord, StoreError>>;
    /// Stores a signed checkpoint; `false` if one exists at its position, or (with
    /// `min_gap = Some(n)`) at any position above `checkpoint.position - n`. Its hash must be
    /// the chain's at its position (`Invariant` otherwise).
    async fn add_audit_checkpoint(
        &self,
        checkpoint: &audit::Checkpoint,
        min_gap: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Checkpoints by ascending position after `after`, at most `limit`.
    async fn audit_checkpoints(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<audit::Checkpoint>, StoreError>;
    /// The checkpoint at the highest position.
    async fn latest_audit_checkpoint(&self) -> Result<Option<audit::Checkpoint>, StoreError>;
    /// The monthly partitions of the log, oldest first (none in memory).
    async fn audit_partitions(&self) -> Result<Vec<audit::Partition>, StoreError>;
    /// Makes sure partitions exist for the months from `from` to `to`; returns how many it
    /// created.
    async fn prepare_audit_partitions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
    /// How many events `partition` holds, and its first and last position.
    async fn audit_partition_extent(
        &self,
        partition: &audit::Partition,
    ) -> Result<(i64, Option<i64>, Option<i64>), StoreError>;
    /// Records `archive` and drops its partition, in one transaction; refused unless the
    /// partition ended more than `retention` ago and the archive matches what it holds (count,
    /// first and last position) with a checkpoint at its last position.
    async fn drop_audit_partition(
        &self,
        archive: &audit::Archive,
        retention: chrono::Duration,
    ) -> Result<(), StoreError>;
    /// Archived partitions, by ascending last position.
    async fn audit_archives(&self) -> Result<Vec<audit::Archive>, StoreError>;
}
