//! The audit log: events, the hash chain that makes it tamper-evident, and the [`Auditor`]
//! that appends them durably.
//!
//! Invariant: no data leaves without a committed audit record. Callers await
//! [`Auditor::record`]; when it returns `Ok`, the event is committed in the chain (group
//! commit: concurrent callers share one commit, see [`writer`]).
//! Events never carry account data, balances or bank payloads, and user references are stored
//! pseudonymised ([`Pseudonymiser`]).
//!
//! The rest of the log: signed checkpoints ([`checkpoint`]), whole-chain verification
//! ([`verifier`]) and retention of expired partitions ([`retention`]).

pub mod checkpoint;
pub mod retention;
pub mod storage;
pub mod verifier;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::crypto::Sealer;
use crate::jose::keys::SigningKey;
use crate::model::WireName;
use crate::store_error::StoreError;

pub use checkpoint::{Checkpoint, Checkpointer, VerifyingKeys};
pub use storage::AuditLog;
pub use writer::WriterStats;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    ConsentCreated,
    ConsentAuthorised,
    ConsentRejected,
    ConsentRevoked,
    ConsentExpired,
    /// A platform's read of its consents (refusals only: reads that are answered are not
    /// audited).
    ConsentQueried,
    DataAccess,
    TokenIssued,
    AdapterRegistered,
    /// A client changed its own registration (RFC 7592): its keys, name, redirect URIs or
    /// webhook URL.
    ClientUpdated,
    PolicyLoaded,
    AuditQueried,
    /// An expired partition of the log was archived and dropped.
    AuditArchived,
    /// A platform submitted a payment (`allow`), or its submission was refused (`deny`).
    PaymentSubmitted,
    /// A payment's status changed: the bank's answer, a look-up of the status job.
    PaymentStatusChanged,
    /// A platform asked whether a name is the name on an account (`allow` with the answer,
    /// or `deny`: throttled).
    PayeeVerified,
    /// A platform registered or re-pointed a payee handle for a payee consent (`allow`), or
    /// was refused one another consent holds (`deny`).
    PayeeRegistered,
    /// A platform deleted a payee handle of its consent.
    PayeeRemoved,
    /// A person was erased: their key destroyed and their operational records deleted. The
    /// event names neither the person nor any pseudonym of theirs.
    SubjectErased,
}

impl WireName for Action {}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    /// Allowed, but the bank failed: nothing was released.
    Error,
}

impl WireName for Decision {}

/// One audit event before it has a place in the chain.
///
/// The field order is the canonical order: [`Event::canonical_bytes`] serialises the fields
/// in exactly this order, and that is what the chain hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUIDv7) of the event.
    pub id: String,
    /// When it happened, truncated to microseconds (what PostgreSQL stores).
    pub time: DateTime<Utc>,
    /// Who caused it: a client id, `user`, `bank:<id>`, `operator` or `gateway`.
    pub actor: String,
    pub action: Action,
    pub platform: Option<String>,
    pub bank: Option<String>,
    pub consent: Option<String>,
    /// The platform's reference for the user; [`Auditor::record`] replaces it by its
    /// pseudonym ([`Pseudonymiser::user_ref`]) before it is stored or hashed.
    pub user_ref: Option<String>,
    pub purpose: Option<String>,
    /// Content hash of the purpose policy in force.
    pub policy_hash: Option<String>,
    /// Data categories concerned (scopes).
    pub categories: Vec<String>,
    /// Names of the fields released (data access only).
    pub fields: Vec<String>,
    /// Number of records released.
    pub n_records: u32,
    pub decision: Decision,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl Event {
    /// A new event of `action` by `actor`, now, everything else empty.
    pub fn new(action: Action, actor: impl Into<String>, decision: Decision) -> Event {
        Event {
            id: uuid::Uuid::now_v7().to_string(),
            time: Utc::now().trunc_subsecs(6),
            actor: actor.into(),
            action,
            platform: None,
            bank: None,
            consent: None,
            user_ref: None,
            purpose: None,
            policy_hash: None,
            categories: Vec::new(),
            fields: Vec::new(),
            n_records: 0,
            decision,
            reason: None,
            request_id: None,
        }
    }

    /// The event with every U+0000 in its text replaced by U+FFFD. PostgreSQL text cannot hold
    /// U+0000, and an event the store refuses would fail every event committed with it, so
    /// whatever a caller managed to put into an event, it is stored (and hashed) this way on
    /// every store.
    pub fn without_nul(mut self) -> Event {
        fn clean(text: &mut String) {
            if text.contains('\0') {
                *text = text.replace('\0', "\u{FFFD}");
            }
        }
        for text in [&mut self.id, &mut self.actor] {
            clean(text);
        }
        for text in [
            &mut self.platform,
            &mut self.bank,
            &mut self.consent,
            &mut self.user_ref,
            &mut self.purpose,
            &mut self.policy_hash,
            &mut self.reason,
            &mut self.request_id,
        ]
        .into_iter()
        .flatten()
        {
            clean(text);
        }
        self.categories
            .iter_mut()
            .chain(&mut self.fields)
            .for_each(clean);
        self
    }

    /// The bytes the chain hashes: compact JSON, fields in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising a plain struct of strings, numbers and vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Gapless position, starting at 1.
    pub position: i64,
    #[serde(with = "hex::serde")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex::serde")]
    pub hash: [u8; 32],
    #[serde(flatten)]
    pub event: Event,
}

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// `h_n = SHA-256(h_{n-1} ‖ n ‖ canonical bytes of event n)`, with `n` as 8 big-endian bytes.
pub fn chain_hash(prev: &[u8; 32], position: i64, canonical: &[u8]) -> [u8; 32] {
    let mut input = Vec::with_capacity(32 + 8 + canonical.len());
    input.extend_from_slice(prev);
    input.extend_from_slice(&position.to_be_bytes());
    input.extend_from_slice(canonical);
    crate::crypto::sha256(&input)
}

/// Links `events` onto a chain whose head is (`head_position`, `head_hash`).
pub fn link(head_position: i64, head_hash: [u8; 32], events: Vec<Event>) -> Vec<Record> {
    let canonical: Vec<Vec<u8>> = events.iter().map(Event::canonical_bytes).collect();
    link_canonical(head_position, head_hash, events, &canonical)
}

/// [`link`] for events whose canonical bytes are already at hand (`canonical[i]` of
/// `events[i]`).
pub fn link_canonical(
    head_position: i64,
    head_hash: [u8; 32],
    events: Vec<Event>,
    canonical: &[Vec<u8>],
) -> Vec<Record> {
    let mut prev = head_hash;
    let mut position = head_position;
    events
        .into_iter()
        .zip(canonical)
        .map(|(event, bytes)| {
            position += 1;
            let hash = chain_hash(&prev, position, bytes);
            let record = Record {
                position,
                prev_hash: prev,
                hash,
                event,
            };
            prev = hash;
            record
        })
        .collect()
}

/// Where a chain stops being valid: the first position that does not check out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain broken at position {position}: {what}")]
pub struct ChainBreak {
    pub position: i64,
    pub what: String,
}

/// Verifies consecutive records starting after (`head_position`, `head_hash`); returns the new
/// head.
pub fn verify(
    head_position: i64,
    head_hash: [u8; 32],
    records: &[Record],
) -> Result<(i64, [u8; 32]), ChainBreak> {
    let (mut position, mut prev) = (head_position, head_hash);
    for record in records {
        let fail = |what: &str| ChainBreak {
            position: record.position,
            what: what.to_owned(),
        };
        if record.position != position + 1 {
            return Err(fail("gap or reordering"));
        }
        if record.prev_hash != prev {
            return Err(fail("previous hash does not match"));
        }
        if chain_hash(&prev, record.position, &record.event.canonical_bytes()) != record.hash {
            return Err(fail("hash does not match the event"));
        }
        (position, prev) = (record.position, record.hash);
    }
    Ok((position, prev))
}

/// Filters for audit queries; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub platform: Option<String>,
    pub bank: Option<String>,
    pub consent: Option<String>,
    pub user_ref: Option<String>,
    pub purpose: Option<String>,
    pub action: Option<Action>,
    pub decision: Option<Decision>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Keyset pagination: only positions strictly greater.
    pub after: Option<i64>,
    /// Page size (the store caps it).
    pub limit: Option<u32>,
    /// Further pseudonyms that match as `user_ref` does (set by
    /// [`Auditor::pseudonymise_filter`]: one person may be known by their own key's pseudonym
    /// and by the legacy one).
    #[serde(skip)]
    pub user_ref_also: Vec<String>,
}

impl Filter {
    /// The largest page a query returns.
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size in force.
    pub fn page_size(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, Self::MAX_LIMIT)
    }

    /// Whether `record` matches (the in-memory store's query and a check for tests).
    pub fn matches(&self, record: &Record) -> bool {
        let event = &record.event;
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|want| have.as_ref() == Some(want))
        };
        eq(&self.platform, &event.platform)
            && eq(&self.bank, &event.bank)
            && eq(&self.consent, &event.consent)
            && (eq(&self.user_ref, &event.user_ref)
                || self
                    .user_ref_also
                    .iter()
                    .any(|also| event.user_ref.as_ref() == Some(also)))
            && eq(&self.purpose, &event.purpose)
            && self.action.is_none_or(|action| action == event.action)
            && self
                .decision
                .is_none_or(|decision| decision == event.decision)
            && self.from.is_none_or(|from| event.time >= from)
            && self.to.is_none_or(|to| event.time < to)
            && self.after.is_none_or(|after| record.position > after)
    }
}

/// What a summary of the log counts: events whose `time` is in `[from, to)` (`to` absent:
/// up to now), narrowed by the optional fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryFilter {
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub platform: Option<String>,
    pub purpose: Option<String>,
    pub bank: Option<String>,
}

impl SummaryFilter {
    /// Whether `event` is counted (the in-memory store's summary).
    pub fn matches(&self, event: &Event) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|want| have.as_ref() == Some(want))
        };
        event.time >= self.from
            && self.to.is_none_or(|to| event.time < to)
            && eq(&self.platform, &event.platform)
            && eq(&self.purpose, &event.purpose)
            && eq(&self.bank, &event.bank)
    }
}

/// One row of a summary: how many events of one UTC day, platform, purpose and decision.
/// Summaries order rows by day, platform, purpose (absent first, then byte order) and decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub day: chrono::NaiveDate,
    pub platform: Option<String>,
    pub purpose: Option<String>,
    pub decision: Decision,
    pub count: i64,
}

/// An error with its causes, `: `-separated, for logs (store errors keep the database's
/// message in their source; it never holds a secret).
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One chained row as the store holds it, for verification: the hashed bytes, the links, and
/// the typed columns that compliance queries filter on (decoded, or why they do not decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub position: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// The bytes the chain hashed.
    pub canonical: Vec<u8>,
    /// The event as the typed columns tell it.
    pub columns: Result<Event, String>,
}

impl StoredRecord {
    /// The stored form of a record whose columns and bytes agree.
    pub fn of(record: &Record) -> StoredRecord {
        StoredRecord {
            position: record.position,
            prev_hash: record.prev_hash.to_vec(),
            hash: record.hash.to_vec(),
            canonical: record.event.canonical_bytes(),
            columns: Ok(record.event.clone()),
        }
    }
}

/// A monthly partition of the log (PostgreSQL; the in-memory store has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub name: String,
    /// Holds the events chained in `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// When retention dropped it (after archiving it).
    pub dropped_at: Option<DateTime<Utc>>,
}

/// An archived (and then dropped) partition: what the export holds and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub partition: String,
    pub n_events: i64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
    /// SHA-256 (hex) of the JSON Lines file.
    pub sha256: String,
    pub file: String,
}

/// Turns user references into pseudonyms, so the log never holds the platform's reference
/// itself, yet a compliance officer who knows a reference can still find its events (the filter
/// is hashed the same way).
///
/// Each person (a platform and its `user_ref`) has a key of their own: 32 random bytes, kept
/// sealed outside the chain ([`SubjectKeys`]), made when the first event about them is
/// recorded. Their pseudonym is `up_` + base64url(HMAC-SHA-256 under that key). Erasing the
/// person destroys the key (crypto-shredding): their events stay in the chain, unchanged and
/// verifiable, but nothing can compute their pseudonym any more.
///
/// Events recorded before per-person keys carry the legacy pseudonym, `ur_` + HMAC under a key
/// derived from the grant key; queries by `user_ref` still find them ([`Pseudonymiser::legacy`]),
/// and erasing such a person cannot unlink them (anyone with the grant key can recompute it).
#[derive(Clone)]
pub struct Pseudonymiser {
    sealer: Arc<Sealer>,
    keys: Arc<dyn SubjectKeys>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymiser").finish_non_exhaustive()
    }
}

/// Where the per-person keys of [`Pseudonymiser`] are kept, sealed, outside the chain.
#[async_trait::async_trait]
pub trait SubjectKeys: Send + Sync + 'static {
    /// The sealed key of `platform`'s `user_ref`, if they have one.
    async fn subject_key(
        &self,
        platform: &str,
        user_ref: &str,
    ) -> Result<Option<crate::crypto::Sealed>, StoreError>;
    /// Every platform that has a key for `user_ref`, with the sealed key.
    async fn subject_keys_of(
        &self,
        user_ref: &str,
    ) -> Result<Vec<(String, crate::crypto::Sealed)>, StoreError>;
    /// Stores `key` for `platform`'s `user_ref` unless they have one already; returns the key
    /// in force (theirs, or `key`).
    async fn insert_subject_key(
        &self,
        platform: &str,
        user_ref: &str,
        key: &crate::crypto::Sealed,
    ) -> Result<crate::crypto::Sealed, StoreError>;
}

impl Pseudonymiser {
    /// The prefix of legacy pseudonyms (one key for everyone).
    pub const PREFIX: &'static str = "ur_";
    /// The prefix of per-person pseudonyms.
    pub const PERSONAL_PREFIX: &'static str = "up_";

    /// Pseudonyms under per-person keys kept in `keys`, sealed by `sealer` (whose derived MAC
    /// key makes the legacy pseudonyms).
    pub fn new(sealer: Arc<Sealer>, keys: Arc<dyn SubjectKeys>) -> Pseudonymiser {
        Pseudonymiser { sealer, keys }
    }

    /// The legacy pseudonym of `user_ref`: `ur_` + base64url(HMAC-SHA-256) under a key derived
    /// from the grant key. Events without a platform still get it.
    pub fn legacy(&self, user_ref: &str) -> String {
        let mut message = b"bankgate audit user_ref\0".to_vec();
        message.extend_from_slice(user_ref.as_bytes());
        format!("{}{}", Self::PREFIX, self.sealer.mac(&message))
    }

    fn context(platform: &str, user_ref: &str) -> Vec<u8> {
        format!("bankgate subject key\0{platform}\0{user_ref}").into_bytes()
    }

    fn personal(
        &self,
        platform: &str,
        user_ref: &str,
        sealed: &crate::crypto::Sealed,
    ) -> Result<String, StoreError> {
        let key = self
            .sealer
            .open(&Self::context(platform, user_ref), sealed)
            .map_err(|error| StoreError::Corrupt(format!("subject key: {error}")))?;
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
            user_ref.as_bytes(),
        );
        use base64::Engine as _;
        Ok(format!(
            "{}{}",
            Self::PERSONAL_PREFIX,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        ))
    }

    /// The pseudonym to record for `platform`'s `user_ref`, making their key if they have
    /// none yet; without a platform, the legacy pseudonym.
    pub async fn user_ref(
        &self,
        platform: Option<&str>,
        user_ref: &str,
    ) -> Result<String, StoreError> {
        let Some(platform) = platform else {
            return Ok(self.legacy(user_ref));
        };
        let sealed = match self.keys.subject_key(platform, user_ref).await? {
            Some(sealed) => sealed,
            None => {
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key)
                    .map_err(|_| StoreError::Corrupt("no randomness for a subject key".into()))?;
                let sealed = self
                    .sealer
                    .seal(&Self::context(platform, user_ref), &key)
                    .map_err(|error| StoreError::Corrupt(format!("subject key: {error}")))?;
                self.keys
                    .insert_subject_key(platform, user_ref, &sealed)
                    .await?
            }
        };
        self.personal(platform, user_ref, &sealed)
    }

    /// Every pseudonym `user_ref` (of `platform`, or of any platform) may be recorded under:
    /// the per-person ones whose key still exists, then the legacy one. Makes no key.
    pub async fn pseudonyms(
        &self,
        platform: Option<&str>,
        user_ref: &str,
    ) -> Result<Vec<String>, StoreError> {
        let keys = match platform {
            Some(platform) => self
                .keys
                .subject_key(platform, user_ref)
                .await?
                .map(|sealed| vec![(platform.to_owned(), sealed)])
                .unwrap_or_default(),
            None => self.keys.subject_keys_of(user_ref).await?,
        };
        let mut pseudonyms = keys
            .iter()
            .map(|(platform, sealed)| self.personal(platform, user_ref, sealed))
            .collect::<Result<Vec<_>, _>>()?;
        pseudonyms.push(self.legacy(user_ref));
        Ok(pseudonyms)
    }
}

/// Settings of the audit log: the write path, checkpoints and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Events that may wait for a commit; beyond that [`Auditor::record`] fails at once.
    pub queue_capacity: usize,
    /// The most events one commit takes.
    pub max_batch: usize,
    /// Batches committing at once, each on its own connection. They take the chain lock in
    /// turn, so a second one only hides the round trip between two commits: worth it for a
    /// distant database, not for a near one (it halves batches and doubles commits).
    pub max_in_flight: usize,
    /// A signed checkpoint at least every this many events...
    pub checkpoint_every: u64,
    /// ...and after this long when the chain grew at all.
    pub checkpoint_interval: Duration,
    /// How long events are kept before their partition is archived and dropped.
    pub retention: chrono::Duration,
    /// Where expired partitions are archived (JSON Lines); without it nothing is dropped.
    pub archive_dir: Option<PathBuf>,
    /// How many months of partitions to prepare ahead.
    pub partitions_ahead_months: u32,
    /// How often partitions and retention are looked after.
    pub maintenance_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            queue_capacity: 65_536,
            max_batch: 4096,
            max_in_flight: 1,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(60),
            retention: chrono::Duration::days(5 * 365 + 1),
            archive_dir: None,
            partitions_ahead_months: 3,
            maintenance_interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// Appends events durably. Cheap to clone; the writer task stops when the last clone is
/// dropped (after committing what it was given).
#[derive(Clone)]
pub struct Auditor {
    queue: mpsc::Sender<writer::Submission>,
    shared: Shared,
}

/// What an [`Auditor`] and a [`WeakAuditor`] hold besides the writer's queue.
#[derive(Clone)]
struct Shared {
    store: Arc<dyn AuditLog>,
    pseudonymiser: Pseudonymiser,
    checkpointer: Arc<Checkpointer>,
    config: AuditConfig,
    stats: Arc<WriterStats>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Starts the writer task (group commit) and the checkpoint timer on the current tokio
    /// runtime. Checkpoints are signed with `signer`; without one none are made.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns tasks).
    pub fn start(
        store: Arc<dyn AuditLog>,
        config: AuditConfig,
        signer: Option<Arc<SigningKey>>,
        pseudonymiser: Pseudonymiser,
    ) -> Auditor {
        let (queue, submissions) = mpsc::channel(config.queue_capacity.max(1));
        let checkpointer = Arc::new(Checkpointer::new(
            store.clone(),
            signer,
            config.checkpoint_every,
        ));
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(writer::run(
            store.clone(),
            submissions,
            writer::WriterConfig {
                max_batch: config.max_batch.max(1),
                max_in_flight: config.max_in_flight.max(1),
            },
            checkpointer.clone(),
            stats.clone(),
        ));
        tokio::spawn(checkpoint::run_timer(
            queue.downgrade(),
            checkpointer.clone(),
            config.checkpoint_interval,
        ));
        Auditor {
            queue,
            shared: Shared {
                store,
                pseudonymiser,
                checkpointer,
                config,
                stats,
            },
        }
    }

    /// Batches and events the writer committed so far.
    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// Events past the last signed checkpoint (see [`Checkpointer::lag`]).
    pub fn checkpoint_lag(&self) -> Option<i64> {
        self.shared.checkpointer.lag()
    }

    /// Events waiting in the queue for a commit.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Whether [`Auditor::record`] would take an event now: the writer task runs and its
    /// queue has room. (Whether the store can commit is the store's readiness: the writer
    /// retries by itself once it can.) `Err` says which not.
    pub fn accepting(&self) -> Result<(), &'static str> {
        if self.queue.is_closed() {
            Err("the audit writer has stopped")
        } else if self.queue.capacity() == 0 {
            Err("the audit queue is full")
        } else {
            Ok(())
        }
    }

    /// Appends `event` (its user reference pseudonymised) and returns it with its place in the
    /// chain once that is committed. Fails with `Unavailable` when the queue is full or the
    /// store cannot commit: the caller must then release nothing.
    pub async fn record(&self, event: Event) -> Result<Record, StoreError> {
        use tracing::Instrument;
        let span = tracing::info_span!("audit_commit", action = event.action.as_str());
        self.commit(event).instrument(span).await
    }

    /// [`Auditor::record`], inside its span.
    async fn commit(&self, event: Event) -> Result<Record, StoreError> {
        let mut event = event.without_nul();
        if let Some(user_ref) = event.user_ref.take() {
            event.user_ref = Some(
                self.shared
                    .pseudonymiser
                    .user_ref(event.platform.as_deref(), &user_ref)
                    .await?,
            );
        }
        let (reply, receipt) = oneshot::channel();
        self.queue
            .try_send(writer::Submission { event, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the audit queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("the audit writer has stopped".into())
                }
            })?;
        receipt
            .await
            .map_err(|_| StoreError::Unavailable("the audit writer has stopped".into()))?
    }

    /// Events matching `filter` (its `user_ref` pseudonymised like the stored ones).
    pub async fn events(&self, filter: &Filter) -> Result<Vec<Record>, StoreError> {
        self.shared
            .store
            .audit_events(&self.pseudonymise_filter(filter).await?)
            .await
    }

    /// `filter` with its `user_ref` replaced by the pseudonyms the person may be recorded
    /// under (see [`Pseudonymiser::pseudonyms`]): what the store compares, and what may be
    /// written down (e.g. in an `audit_queried` event). Makes no key.
    pub async fn pseudonymise_filter(&self, filter: &Filter) -> Result<Filter, StoreError> {
        let Some(user_ref) = filter.user_ref.as_deref() else {
            return Ok(filter.clone());
        };
        let mut pseudonyms = self
            .shared
            .pseudonymiser
            .pseudonyms(filter.platform.as_deref(), user_ref)
            .await?
            .into_iter();
        Ok(Filter {
            user_ref: pseudonyms.next(),
            user_ref_also: pseudonyms.collect(),
            ..filter.clone()
        })
    }

    /// The pseudonym the log stores for `platform`'s `user_ref` now: their own key's, or the
    /// legacy one while they have no key. Makes no key.
    pub async fn pseudonym(&self, platform: &str, user_ref: &str) -> Result<String, StoreError> {
        Ok(self
            .shared
            .pseudonymiser
            .pseudonyms(Some(platform), user_ref)
            .await?
            .swap_remove(0))
    }

    /// Signs a checkpoint at the current head now, unless one is already there.
    pub async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.shared.checkpointer.checkpoint_head().await
    }

    /// Signed checkpoints by ascending position, after `after`, at most `limit` (≤ 1000).
    pub async fn checkpoints(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.shared
            .store
            .audit_checkpoints(after, limit.clamp(1, Filter::MAX_LIMIT))
            .await
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<dyn AuditLog> {
        &self.shared.store
    }

    /// What signs checkpoints.
    pub fn checkpointer(&self) -> &Arc<Checkpointer> {
        &self.shared.checkpointer
    }

    /// Its settings.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// A handle that does not keep the writer running.
    pub fn downgrade(&self) -> WeakAuditor {
        WeakAuditor {
            queue: self.queue.downgrade(),
            shared: self.shared.clone(),
        }
    }
}

/// An [`Auditor`] for background tasks: usable while some `Auditor` lives.
pub struct WeakAuditor {
    queue: mpsc::WeakSender<writer::Submission>,
    shared: Shared,
}

impl WeakAuditor {
    /// The auditor, unless every `Auditor` is gone.
    pub fn upgrade(&self) -> Option<Auditor> {
        Some(Auditor {
            queue: self.queue.upgrade()?,
            shared: self.shared.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut event = Event::new(Action::DataAccess, "platform-a", Decision::Allow);
                event.n_records = i as u32;
                event
            })
            .collect()
    }

    #[test]
    fn linked_chain_verifies_and_detects_an_edit() {
        let mut records = link(0, GENESIS, events(5));
        assert_eq!(verify(0, GENESIS, &records).unwrap().0, 5);
        records[2].event.n_records = 99;
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
    }

    #[test]
    fn detects_deletion_and_reordering() {
        let mut records = link(0, GENESIS, events(4));
        records.remove(1);
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
        let mut records = link(0, GENESIS, events(4));
        records.swap(1, 2);
        assert_eq!(verify(0, GENESIS, &records).unwrap_err().position, 3);
    }

    #[test]
    fn batches_continue_a_chain() {
        let first = link(0, GENESIS, events(3));
        let head = first.last().unwrap();
        let second = link(head.position, head.hash, events(2));
        assert_eq!(second[0].position, 4);
        assert_eq!(second[0].prev_hash, head.hash);
        let all: Vec<Record> = first.into_iter().chain(second).collect();
        assert!(verify(0, GENESIS, &all).is_ok());
    }

    #[test]
    fn nul_in_any_text_becomes_a_replacement_character() {
        let mut event = Event::new(Action::DataAccess, "a\0b", Decision::Deny);
        event.bank = Some("\0".into());
        event.reason = Some("x\0y\0".into());
        event.fields = vec!["f\0".into()];
        let clean = event.clone().without_nul();
        assert_eq!(clean.actor, "a\u{FFFD}b");
        assert_eq!(clean.bank.as_deref(), Some("\u{FFFD}"));
        assert_eq!(clean.reason.as_deref(), Some("x\u{FFFD}y\u{FFFD}"));
        assert_eq!(clean.fields, ["f\u{FFFD}"]);
        assert_eq!(clean.id, event.id);
        assert!(
            !String::from_utf8(clean.canonical_bytes())
                .unwrap()
                .contains("\\u0000")
        );
    }

    #[test]
    fn canonical_bytes_are_stable_through_json() {
        let event = events(1).pop().unwrap();
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back.canonical_bytes(), event.canonical_bytes());
    }
}
