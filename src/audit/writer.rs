//! Group commit: the one task that turns many concurrent [`Auditor::record`] calls into few
//! commits.
//!
//! Callers put their event and a oneshot sender on a bounded queue and wait. The writer takes
//! everything waiting (up to `max_batch`) as one batch and hands it to the store, which chains
//! and commits it in one transaction; then every caller of the batch gets its own record, or
//! every one of them the error. While one batch commits the next one gathers, so batches grow
//! with load; a batch smaller than recent ones yields a moment for the rest of its burst (it
//! never sleeps), and an idle log commits a lone event at once. Up to `max_in_flight` batches
//! commit at the same time (they take the chain lock in turn).
//!
//! When the store is unavailable the writer fails fast for a short, growing pause (a circuit
//! breaker) instead of making every caller wait for a connect timeout, then tries again: it
//! recovers by itself when the database returns.
//!
//! [`Auditor::record`]: super::Auditor::record

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Checkpointer, Event, Record};
use crate::audit::AuditLog;
use crate::store_error::StoreError;

/// What the writer has done so far (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Events committed.
    pub events: AtomicU64,
    /// Batches that failed (their callers were told).
    pub failed_batches: AtomicU64,
}

/// One caller's event and where its outcome goes.
pub(crate) struct Submission {
    pub event: Event,
    pub reply: oneshot::Sender<Result<Record, StoreError>>,
}

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    pub max_batch: usize,
    pub max_in_flight: usize,
}

/// The first pause after a failure, and the longest.
const PAUSE_MIN: Duration = Duration::from_millis(50);
const PAUSE_MAX: Duration = Duration::from_secs(1);

/// What one batch came to, for the breaker and the checkpointer.
enum Outcome {
    /// Committed; the new head.
    Committed((i64, [u8; 32])),
    /// The store could not be reached.
    Unavailable,
    /// Failed otherwise (the callers were told).
    Failed,
}

/// Fails batches fast for a while after the store was unavailable.
struct Breaker {
    open_until: Option<Instant>,
    pause: Duration,
}

impl Breaker {
    fn new() -> Breaker {
        Breaker {
            open_until: None,
            pause: PAUSE_MIN,
        }
    }

    fn is_open(&self) -> bool {
        self.open_until.is_some_and(|until| Instant::now() < until)
    }

    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Committed(_) => {
                if self.open_until.take().is_some() {
                    tracing::info!("audit store reachable again");
                }
                self.pause = PAUSE_MIN;
            }
            Outcome::Unavailable => {
                self.open_until = Some(Instant::now() + self.pause);
                self.pause = (self.pause * 2).min(PAUSE_MAX);
            }
            Outcome::Failed => {}
        }
    }
}

/// Runs until every sender is gone and the queue is drained.
pub(crate) async fn run(
    store: Arc<dyn AuditLog>,
    mut queue: mpsc::Receiver<Submission>,
    config: WriterConfig,
    checkpointer: Arc<Checkpointer>,
    stats: Arc<WriterStats>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut breaker = Breaker::new();
    let mut open = true;
    // The sizes of the last `max_in_flight` batches: a burst of about their mean is worth a
    // short wait (with two in flight, callers come back in two cohorts, one per batch).
    let mut recent: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some((outcome, n_events)) = in_flight.next(), if !in_flight.is_empty() => {
                breaker.record(&outcome);
                match outcome {
                    Outcome::Committed(_) => {
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                        stats.events.fetch_add(n_events, Ordering::Relaxed);
                    }
                    Outcome::Unavailable | Outcome::Failed => {
                        stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Outcome::Committed(head) = outcome {
                    checkpointer.after_commit(head);
                }
            }
            first = queue.recv(), if open && in_flight.len() < config.max_in_flight => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let mut batch = Vec::with_capacity(config.max_batch.min(1024));
                batch.push(first);
                let expected = recent.iter().sum::<usize>().div_ceil(config.max_in_flight);
                gather(&mut queue, &mut batch, config.max_batch, expected).await;
                if recent.len() == config.max_in_flight {
                    recent.pop_front();
                }
                recent.push_back(batch.len());
                if breaker.is_open() {
                    let replies = batch.into_iter().map(|submission| submission.reply).collect();
                    fail(replies, || {
                        StoreError::Unavailable("the audit store is unavailable".into())
                    });
                    continue;
                }
                let n_events = batch.len() as u64;
                let store = store.clone();
                in_flight.push(async move {
                    let started = Instant::now();
                    let outcome = commit(store, batch).await;
                    record_metrics(&outcome, n_events, started.elapsed());
                    (outcome, n_events)
                });
            }
        }
    }
}

/// Batch size, commit time and failures for `/metrics` (no-ops unless metrics are on).
fn record_metrics(outcome: &Outcome, n_events: u64, took: Duration) {
    use crate::telemetry::metrics::{
        AUDIT_BATCH_SIZE, AUDIT_COMMIT_DURATION, AUDIT_COMMIT_FAILURES, AUDIT_EVENTS,
    };
    match outcome {
        Outcome::Committed(_) => {
            metrics::histogram!(AUDIT_BATCH_SIZE).record(n_events as f64);
            metrics::histogram!(AUDIT_COMMIT_DURATION).record(took.as_secs_f64());
            metrics::counter!(AUDIT_EVENTS).increment(n_events);
        }
        Outcome::Unavailable | Outcome::Failed => {
            metrics::counter!(AUDIT_COMMIT_FAILURES).increment(1);
        }
    }
}

/// How many yields in a row may bring nothing before a short batch goes anyway.
const IDLE_YIELDS: u32 = 2;

/// Adds what is waiting (up to `max_batch`) to `batch`. While that is fewer than `expected`
/// (about what recent batches took) and events are still arriving, it yields to let the rest
/// of the burst in: callers released together come back together, and one commit for all of
/// them beats one for the first and one for the others. It never sleeps: once a couple of
/// yields bring nothing the batch goes, so at low load a lone event is committed at once.
async fn gather(
    queue: &mut mpsc::Receiver<Submission>,
    batch: &mut Vec<Submission>,
    max_batch: usize,
    expected: usize,
) {
    let target = expected.clamp(1, max_batch);
    let mut idle = 0;
    loop {
        let before = batch.len();
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(submission) => batch.push(submission),
                Err(_) => break,
            }
        }
        idle = if batch.len() == before { idle + 1 } else { 0 };
        if batch.len() >= target || idle > IDLE_YIELDS {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Commits one batch and answers its callers.
async fn commit(store: Arc<dyn AuditLog>, batch: Vec<Submission>) -> Outcome {
    let (events, replies): (Vec<Event>, Vec<_>) = batch
        .into_iter()
        .map(|submission| (submission.event, submission.reply))
        .unzip();
    let n_events = events.len();
    // Kept in case the batch must be retried one by one.
    let retry = (n_events > 1).then(|| events.clone());
    match store.append_audit(events).await {
        Ok(records) if records.len() == n_events => {
            let head = records
                .last()
                .map(|record| (record.position, record.hash))
                .unwrap_or((0, super::GENESIS));
            for (record, reply) in records.into_iter().zip(replies) {
                // A caller that gave up no longer listens; its event is committed all the same.
                let _ = reply.send(Ok(record));
            }
            Outcome::Committed(head)
        }
        Ok(_) => {
            tracing::error!("audit store returned a different number of records");
            fail(replies, || {
                StoreError::Invariant("audit append returned a different number of records")
            });
            Outcome::Failed
        }
        // One event is a duplicate: commit the others one by one so only it fails.
        Err(StoreError::Conflict(_)) if retry.is_some() => {
            let mut outcome = Outcome::Failed;
            for (event, reply) in retry.unwrap_or_default().into_iter().zip(replies) {
                let result = store
                    .append_audit(vec![event])
                    .await
                    .and_then(|mut records| {
                        records
                            .pop()
                            .ok_or(StoreError::Invariant("audit append returned no record"))
                    });
                match &result {
                    Ok(record) => outcome = Outcome::Committed((record.position, record.hash)),
                    Err(StoreError::Unavailable(_)) => outcome = Outcome::Unavailable,
                    Err(_) => {}
                }
                let _ = reply.send(result);
            }
            outcome
        }
        Err(error) => {
            let unavailable = matches!(error, StoreError::Unavailable(_));
            tracing::error!(error = %super::describe(&error), n_events, "audit batch failed; its callers release nothing");
            let shared = Arc::new(error);
            fail(replies, || share(&shared));
            if unavailable {
                Outcome::Unavailable
            } else {
                Outcome::Failed
            }
        }
    }
}

/// Tells every caller of a batch that it failed.
fn fail(replies: Vec<oneshot::Sender<Result<Record, StoreError>>>, error: impl Fn() -> StoreError) {
    for reply in replies {
        let _ = reply.send(Err(error()));
    }
}

/// One caller's copy of a batch's error, of the same kind.
fn share(error: &Arc<StoreError>) -> StoreError {
    let source = SharedError(error.clone());
    match error.as_ref() {
        StoreError::Unavailable(_) => StoreError::Unavailable(Box::new(source)),
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::Corrupt(what) => StoreError::Corrupt(what.clone()),
        StoreError::Query(_) => StoreError::Query(Box::new(source)),
        StoreError::Invariant(what) => StoreError::Invariant(what),
    }
}

/// A batch's error, shared by its callers.
#[derive(Debug)]
struct SharedError(Arc<StoreError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.0.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, AuditConfig, Auditor, Decision, Pseudonymiser};
    use crate::crypto::Sealer;
    use crate::store::memory::MemoryStore;

    fn auditor(store: Arc<dyn AuditLog>) -> Auditor {
        Auditor::start(
            store,
            AuditConfig::default(),
            None,
            Pseudonymiser::new(
                Arc::new(Sealer::ephemeral().unwrap()),
                Arc::new(MemoryStore::new()),
            ),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duplicate_fails_alone_and_the_rest_of_its_batch_commits() {
        let store: Arc<dyn AuditLog> = Arc::new(MemoryStore::new());
        let auditor = auditor(store.clone());
        let twice = Event::new(Action::TokenIssued, "gateway", Decision::Allow);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let auditor = auditor.clone();
            let event = if i % 20 == 0 {
                twice.clone()
            } else {
                Event::new(Action::TokenIssued, "gateway", Decision::Allow)
            };
            tasks.push(tokio::spawn(async move { auditor.record(event).await }));
        }
        let mut conflicts = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => conflicts += 1,
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(conflicts, 1);
        let head = store
            .audit_head()
            .await
            .unwrap()
            .map(|(position, _)| position);
        assert_eq!(head, Some(39));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let store: Arc<dyn AuditLog> = Arc::new(MemoryStore::new());
        let auditor = Auditor::start(
            store,
            AuditConfig {
                queue_capacity: 1,
                ..AuditConfig::default()
            },
            None,
            Pseudonymiser::new(
                Arc::new(Sealer::ephemeral().unwrap()),
                Arc::new(MemoryStore::new()),
            ),
        );
        // On a current-thread runtime the writer cannot run between these sends.
        let first = auditor.record(Event::new(Action::TokenIssued, "gateway", Decision::Allow));
        let second = auditor.record(Event::new(Action::TokenIssued, "gateway", Decision::Allow));
        let (first, second) = tokio::join!(first, second);
        assert!(first.is_ok());
        assert!(
            matches!(second, Err(StoreError::Unavailable(_))),
            "{second:?}"
        );
    }
}
