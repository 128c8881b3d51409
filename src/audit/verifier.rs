//! Whole-log verification: streams every chained row in position order (constant memory),
//! recomputes the chain, checks that each row's typed columns say what its hashed bytes say,
//! checks every signed checkpoint (signature, and that the chain still has its hash at its
//! position), and reports the first position where any of that fails.
//!
//! Partitions dropped by retention leave a gap; it is accepted only where archives account
//! for exactly those positions and a signed checkpoint at the gap's end carries the chain over
//! it. Used by `bankgate audit verify` and, through [`verify_chain`], by anyone else.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::{Archive, ChainBreak, Checkpoint, Event, GENESIS, StoredRecord, VerifyingKeys};
use crate::audit::AuditLog;
use crate::store_error::StoreError;

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Public keys that may have signed checkpoints; a checkpoint no key opens is a break.
    pub keys: VerifyingKeys,
    /// Start at this signed checkpoint (e.g. one kept outside the database) instead of the
    /// first event: the chain must still have its hash at its position and extend it.
    pub from: Option<Checkpoint>,
}

/// How far a verification got; passed to the progress callback about once a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Rows checked so far.
    pub verified: u64,
    /// The position reached.
    pub position: i64,
    /// The chain's head when verification began.
    pub head: i64,
    pub elapsed: Duration,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Verification started after this position (0: at the first event).
    pub start: i64,
    /// The last position that checked out, and its hash (hex).
    pub last: i64,
    pub last_hash: String,
    /// Rows checked.
    pub n_events: u64,
    /// Signed checkpoints checked (signature and hash).
    pub n_checkpoints: u64,
    /// Position ranges skipped because retention archived them (each bridged by a checkpoint).
    pub archived: Vec<(i64, i64)>,
    /// The first position that does not check out, and why; `None` if the log is intact.
    pub first_break: Option<ChainBreak>,
    pub elapsed: Duration,
}

impl Report {
    /// Whether everything checked out.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// How often the progress callback is called.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Verifies `store`'s whole log (or from `options.from`), calling `progress` about once a
/// second. A break is a finding, not an error: `Err` means the store could not be read.
pub async fn verify_chain(
    store: &dyn AuditLog,
    options: &VerifyOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<Report, StoreError> {
    let started = Instant::now();
    let head = store
        .audit_head()
        .await?
        .map_or(0, |(position, _)| position);
    let archives = store.audit_archives().await?;
    let mut walk = Walk {
        keys: &options.keys,
        position: 0,
        hash: GENESIS,
        report: Report {
            start: 0,
            last: 0,
            last_hash: hex::encode(GENESIS),
            n_events: 0,
            n_checkpoints: 0,
            archived: Vec::new(),
            first_break: None,
            elapsed: Duration::ZERO,
        },
    };
    let mut checkpoints = Checkpoints::new(store, 0);
    if let Some(from) = &options.from {
        if let Err(error) = options.keys.check(from) {
            walk.broken(from.position, format!("the starting checkpoint: {error}"));
            return Ok(walk.finish(started));
        }
        walk.position = from.position;
        walk.hash = from.hash;
        walk.report.start = from.position;
        walk.report.last = from.position;
        walk.report.last_hash = hex::encode(from.hash);
        checkpoints = Checkpoints::new(store, from.position + 1);
    }

    // From a checkpoint, its own row is read too: it must still carry the signed hash.
    let mut rows = store.audit_chain((walk.position - 1).max(0));
    let mut last_progress = Instant::now();
    while let Some(row) = rows.next().await {
        let row = row?;
        if options.from.is_some() && row.position <= walk.report.start {
            if row.position == walk.report.start && !walk.starting_row(&row) {
                return Ok(walk.finish(started));
            }
            continue;
        }
        let expected = walk.position + 1;
        if row.position > expected
            && !walk
                .skip_archived(expected, &row, &archives, &mut checkpoints)
                .await?
        {
            return Ok(walk.finish(started));
        }
        if !walk.row(&row) {
            return Ok(walk.finish(started));
        }
        if !walk.checkpoints_at(row.position, &mut checkpoints).await? {
            return Ok(walk.finish(started));
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            progress(&Progress {
                verified: walk.report.n_events,
                position: walk.position,
                head,
                elapsed: started.elapsed(),
            });
        }
    }

    // Nothing may be missing at the end: not what the spine knows of, not what a checkpoint
    // vouches for.
    let last = walk.position;
    if options.from.is_some() && walk.report.n_events == 0 && head < walk.report.start {
        walk.broken(
            head + 1,
            format!(
                "missing: the log ends at position {head}, but the starting checkpoint covers \
                 position {}",
                walk.report.start
            ),
        );
    } else if let Some(checkpoint) = checkpoints.next_after(last).await? {
        walk.broken(
            last + 1,
            format!(
                "missing: the log ends at position {last}, but a checkpoint signed at {} \
                 covers position {} (the tail was removed)",
                checkpoint.time, checkpoint.position
            ),
        );
    } else if head > last {
        walk.broken(
            last + 1,
            format!("missing: the log ends at position {last}, but the chain index reaches {head}"),
        );
    }
    Ok(walk.finish(started))
}

/// The verification's running state.
struct Walk<'a> {
    keys: &'a VerifyingKeys,
    /// The last position that checked out and its hash.
    position: i64,
    hash: [u8; 32],
    report: Report,
}

impl Walk<'_> {
    fn broken(&mut self, position: i64, what: String) {
        self.report.first_break = Some(ChainBreak { position, what });
    }

    /// Whether `checkpoint`'s signature holds; a break at its position otherwise.
    fn signed(&mut self, checkpoint: &Checkpoint) -> bool {
        match self.keys.check(checkpoint) {
            Ok(()) => true,
            Err(error) => {
                self.broken(
                    checkpoint.position,
                    format!(
                        "the checkpoint at position {}: {error}",
                        checkpoint.position
                    ),
                );
                false
            }
        }
    }

    fn finish(mut self, started: Instant) -> Report {
        self.report.elapsed = started.elapsed();
        self.report
    }

    /// The row of the starting checkpoint: its hash must be the signed one.
    fn starting_row(&mut self, row: &StoredRecord) -> bool {
        if row.hash != self.hash {
            self.broken(
                row.position,
                "the chain differs from the starting checkpoint: events up to here were \
                 rewritten"
                    .into(),
            );
            return false;
        }
        match content_problem(row) {
            Some(what) => {
                self.broken(row.position, what);
                false
            }
            None => true,
        }
    }

    /// Checks one row against the chain so far; `false` (and the break) if it fails.
    fn row(&mut self, row: &StoredRecord) -> bool {
        let expected = self.position + 1;
        if row.position < expected {
            self.broken(
                row.position,
                format!("position {} appears twice or out of order", row.position),
            );
            return false;
        }
        if row.position > expected {
            let what = if row.position == expected + 1 {
                format!("missing: no event at position {expected}")
            } else {
                format!(
                    "missing: no events at positions {expected}..={}",
                    row.position - 1
                )
            };
            self.broken(expected, what);
            return false;
        }
        if row.prev_hash != self.hash {
            self.broken(
                row.position,
                format!(
                    "its previous hash is not the hash of position {}",
                    self.position
                ),
            );
            return false;
        }
        if super::chain_hash(&self.hash, row.position, &row.canonical)[..] != row.hash[..] {
            self.broken(
                row.position,
                "its hash does not match its stored event bytes (the event was edited)".into(),
            );
            return false;
        }
        if let Some(what) = content_problem(row) {
            self.broken(row.position, what);
            return false;
        }
        let Ok(hash) = <[u8; 32]>::try_from(row.hash.as_slice()) else {
            self.broken(row.position, "its hash is not 32 bytes".into());
            return false;
        };
        self.position = row.position;
        self.hash = hash;
        self.report.n_events += 1;
        self.report.last = row.position;
        self.report.last_hash = hex::encode(hash);
        true
    }

    /// Checks the checkpoints at `position` (just verified); `false` on a break.
    async fn checkpoints_at(
        &mut self,
        position: i64,
        checkpoints: &mut Checkpoints<'_>,
    ) -> Result<bool, StoreError> {
        while let Some(checkpoint) = checkpoints.take_through(position).await? {
            if !self.signed(&checkpoint) {
                return Ok(false);
            }
            if checkpoint.position != position || checkpoint.hash != self.hash {
                self.broken(
                    checkpoint.position,
                    format!(
                        "the chain differs from the checkpoint signed at {}: events up to here \
                         were rewritten",
                        checkpoint.time
                    ),
                );
                return Ok(false);
            }
            self.report.n_checkpoints += 1;
        }
        Ok(true)
    }

    /// A gap before `row`: accepted (and skipped) only if archives hold exactly the missing
    /// positions and a valid checkpoint at the gap's end has the hash `row` links to.
    async fn skip_archived(
        &mut self,
        expected: i64,
        row: &StoredRecord,
        archives: &[Archive],
        checkpoints: &mut Checkpoints<'_>,
    ) -> Result<bool, StoreError> {
        let end = row.position - 1;
        let archived: i64 = archives
            .iter()
            .filter(|archive| {
                archive
                    .first_position
                    .is_some_and(|first| first >= expected)
                    && archive.last_position.is_some_and(|last| last <= end)
            })
            .map(|archive| archive.n_events)
            .sum();
        if archived != end - expected + 1 {
            // Not archived: `row` reports the gap.
            return Ok(true);
        }
        let mut bridge = None;
        while let Some(checkpoint) = checkpoints.take_through(end).await? {
            if !self.signed(&checkpoint) {
                return Ok(false);
            }
            self.report.n_checkpoints += 1;
            bridge = Some(checkpoint);
        }
        match bridge {
            Some(checkpoint)
                if checkpoint.position == end && checkpoint.hash[..] == row.prev_hash[..] =>
            {
                self.report.archived.push((expected, end));
                self.position = end;
                self.hash = checkpoint.hash;
                Ok(true)
            }
            _ => {
                self.broken(
                    row.position,
                    format!(
                        "positions {expected}..={end} were archived, but no signed checkpoint \
                         at {end} carries the chain over to this event"
                    ),
                );
                Ok(false)
            }
        }
    }
}

/// What is wrong with a row's content, whatever its place: bytes that are not a canonical
/// event, or typed columns that say something else.
fn content_problem(row: &StoredRecord) -> Option<String> {
    let event: Event = match serde_json::from_slice(&row.canonical) {
        Ok(event) => event,
        Err(_) => return Some("its stored event bytes are not an event".into()),
    };
    if event.canonical_bytes() != row.canonical {
        return Some("its stored event bytes are not in canonical form".into());
    }
    match &row.columns {
        Err(what) => Some(format!("its typed columns do not decode: {what}")),
        Ok(columns) if *columns != event => Some(format!(
            "its typed columns disagree with the hashed event bytes ({})",
            differing_fields(columns, &event).join(", ")
        )),
        Ok(_) => None,
    }
}

/// The names of the fields in which two events differ.
fn differing_fields(a: &Event, b: &Event) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["?".into()];
    };
    a.iter()
        .filter(|(name, value)| b.get(*name) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The store's checkpoints in position order, a page at a time.
struct Checkpoints<'a> {
    store: &'a dyn AuditLog,
    /// Fetch those above this position next.
    after: i64,
    buffer: VecDeque<Checkpoint>,
    exhausted: bool,
}

impl<'a> Checkpoints<'a> {
    const PAGE: u32 = 1000;

    /// Those at positions ≥ `from` (all of them from 0).
    fn new(store: &'a dyn AuditLog, from: i64) -> Self {
        Checkpoints {
            store,
            after: from - 1,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }

    async fn peek(&mut self) -> Result<Option<&Checkpoint>, StoreError> {
        if self.buffer.is_empty() && !self.exhausted {
            let page = self
                .store
                .audit_checkpoints(Some(self.after), Self::PAGE)
                .await?;
            self.exhausted = page.len() < Self::PAGE as usize;
            if let Some(last) = page.last() {
                self.after = last.position;
            }
            self.buffer.extend(page);
        }
        Ok(self.buffer.front())
    }

    /// The next checkpoint if it is at or below `position`.
    async fn take_through(&mut self, position: i64) -> Result<Option<Checkpoint>, StoreError> {
        match self.peek().await? {
            Some(next) if next.position <= position => Ok(self.buffer.pop_front()),
            _ => Ok(None),
        }
    }

    /// The next checkpoint if it is above `position`.
    async fn next_after(&mut self, position: i64) -> Result<Option<Checkpoint>, StoreError> {
        while let Some(next) = self.peek().await? {
            if next.position > position {
                return Ok(self.buffer.pop_front());
            }
            self.buffer.pop_front();
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
