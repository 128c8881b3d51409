//! The refresh engine: reads subscribed consents from their banks on a schedule and tells
//! platforms what changed.
//!
//! One run ([`Engine::run_once`]) puts newly subscribed consents in the queue, claims the jobs
//! that are due (`FOR UPDATE SKIP LOCKED` on PostgreSQL: any number of instances share the
//! queue, each job runs on one of them, and a crashed instance's job is due again when its
//! lease runs out), and refreshes each:
//! 1. the consent is read again: revoked, expired or no longer subscribed, it leaves the
//!    queue at once and nothing is read;
//! 2. the purpose's policy in force decides as for an unattended platform call (platform
//!    approval, region, scopes, lifetime): refused, nothing is read;
//! 3. one unit of the consent's unattended budget is spent — the same daily count platform
//!    calls spend, so together they never exceed `max_unattended_per_day`; spent, the job
//!    waits for the next UTC day;
//! 4. the bank is read (through its adapter's outbound stack: its limits and circuit breaker
//!    hold); a failure backs off ([`backoff`]) and announces nothing;
//! 5. changes are detected (`notify/detect.rs`), the purpose's fraud rules
//!    (`policy::signals`) evaluated on what is new, and each subscription that wants them gets
//!    a signed event through the [`Outbox`]; a delivery that carries data is audited first, as
//!    a release (`data_access`, actor `gateway`), and so is every fired signal.
//!
//! Refreshes are spread over the day: the next is due `24 h / max_unattended_per_day` later,
//! jittered by up to a tenth of that either way (a keyed hash of the consent and the time, so
//! consents subscribed together drift apart). The first refresh of an account only records
//! what it holds (announcing a whole history would be noise).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::detect::{self, Keys};
use super::{EventType, Job, Mode, Outbox, Seen, Subscription, Subscriptions};
use crate::audit::{Action, Auditor, Decision, Event};
use crate::consent::{Consent, ConsentStatus, Consents};
use crate::model::WireName;
use crate::model::{Account, Balance, Scope, Transaction};
use crate::oauth::Clients;
use crate::policy::signals;
use crate::policy::{DataRequest, Live, Obligations, Policy, Presence};
use crate::store_error::StoreError;

/// What to read of a consent's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    pub balances: bool,
    /// `Some(from)`: the transactions booked on or after `from`.
    pub transactions_from: Option<NaiveDate>,
}

/// One account as a refresh read it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountData {
    pub account: Account,
    pub balances: Vec<Balance>,
    pub transactions: Vec<Transaction>,
}

/// What a refresh read of a consent at its bank.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BankRead {
    pub accounts: Vec<AccountData>,
    /// The consent's bank-side consent id, where the standard has one (bank-pushed events
    /// name it).
    pub bank_consent_id: Option<String>,
}

/// Reads a consent's accounts at its bank (`notify/bank.rs` over the live adapters).
#[async_trait]
pub trait BankReader: Send + Sync + 'static {
    async fn read(&self, consent: &Consent, reads: Reads) -> Result<BankRead, ReadError>;
}

/// Why a bank read failed; the text names the bank and the kind, never the bank's message.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Bank(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the audit log is unavailable: {0}")]
    Audit(StoreError),
    #[error("outbox: {0}")]
    Outbox(#[from] super::OutboxError),
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Consents newly put in the queue.
    pub scheduled: u64,
    /// Jobs claimed.
    pub claimed: usize,
    /// Refreshes that read the bank.
    pub refreshed: usize,
    /// Jobs left waiting for the next day: the budget was spent.
    pub budget_spent: usize,
    /// Refreshes whose bank read failed (backing off).
    pub failed: usize,
    /// Consents taken out of the queue (revoked, expired, unsubscribed).
    pub dropped: usize,
    /// Refreshes the policy in force refused.
    pub refused: usize,
    /// Events enqueued.
    pub events: usize,
}

/// How often a serving instance looks for due jobs.
pub const TICK: std::time::Duration = std::time::Duration::from_secs(5);

/// How the engine paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Jobs one run claims.
    pub batch: u32,
    /// How long a claimed job stays hidden from other instances.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            batch: 64,
            lease: Duration::minutes(2),
        }
    }
}

/// The delay after `failures` failed refreshes in a row: 1 minute doubling, never beyond
/// `interval` (the regular pace).
pub fn backoff(failures: i32, interval: Duration) -> Duration {
    let exponent = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    Duration::minutes(1_i64 << exponent).min(interval)
}

/// The regular pace of a purpose allowing `limit` unattended accesses a day.
pub fn interval(limit: u32) -> Duration {
    Duration::seconds(86_400 / i64::from(limit.max(1)))
}

/// The refresh engine, with its dependencies passed in.
#[derive(Clone)]
pub struct Engine {
    pub subscriptions: Arc<dyn Subscriptions>,
    pub consents: Arc<dyn Consents>,
    pub clients: Arc<dyn Clients>,
    pub bank: Arc<dyn BankReader>,
    pub outbox: Arc<dyn Outbox>,
    pub auditor: Auditor,
    pub policies: Live,
    pub keys: Keys,
    pub settings: Settings,
}

/// How a refresh ended, for the report.
enum Outcome {
    Refreshed(usize),
    BudgetSpent,
    Failed,
    Dropped,
    Refused,
    Idle,
}

impl Engine {
    /// One run at `now`: schedule, claim, refresh each claimed job.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<RunReport, EngineError> {
        let mut report = RunReport {
            scheduled: self.subscriptions.schedule_jobs(now).await?,
            ..RunReport::default()
        };
        let jobs = self
            .subscriptions
            .claim_jobs(now, self.settings.batch, now + self.settings.lease)
            .await?;
        report.claimed = jobs.len();
        for job in jobs {
            match self.refresh(&job, now).await? {
                Outcome::Refreshed(events) => {
                    report.refreshed += 1;
                    report.events += events;
                }
                Outcome::BudgetSpent => report.budget_spent += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::Dropped => report.dropped += 1,
                Outcome::Refused => report.refused += 1,
                Outcome::Idle => {}
            }
        }
        Ok(report)
    }

    /// A bank told bankgate (a verified event it pushed) that the data of its consent
    /// `bank_consent_id` changed: that consent's refresh is due at `now`, within its budget
    /// as ever. The consent's id, if one of bankgate's subscribed consents has it.
    pub async fn bank_changed(
        &self,
        bank_id: &str,
        bank_consent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.subscriptions
            .due_for_bank_event(bank_id, bank_consent_id, now)
            .await
    }

    /// Runs every `every` until the process ends, and again at once after a run that claimed a
    /// full batch; failures are logged and retried.
    pub fn spawn(self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // A full batch means more may be due: the backlog is worked off at once rather
                // than one batch a tick.
                loop {
                    match self.run_once(Utc::now()).await {
                        Ok(report) => {
                            if report.claimed > 0 {
                                tracing::info!(?report, "notify");
                            }
                            if report.claimed < self.settings.batch as usize {
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "notify run failed");
                            break;
                        }
                    }
                }
            }
        })
    }

    async fn refresh(&self, job: &Job, now: DateTime<Utc>) -> Result<Outcome, EngineError> {
        let id = job.consent_id.as_str();
        let consent = match self.consents.consent(id).await? {
            Some(consent)
                if consent.status == ConsentStatus::Authorised && consent.expires_at > now =>
            {
                consent
            }
            _ => {
                self.subscriptions.drop_job(id).await?;
                return Ok(Outcome::Dropped);
            }
        };
        let subscriptions = self.subscriptions.subscriptions_for(&consent).await?;
        let Some(policy) = self.policies.get(&consent.purpose) else {
            self.subscriptions.drop_job(id).await?;
            return Ok(Outcome::Dropped);
        };
        let wanted: BTreeSet<EventType> = subscriptions
            .iter()
            .flat_map(|subscription| subscription.events.iter().copied())
            .filter(|event| event.allowed_by(&policy) && consent.scopes.contains(&event.scope()))
            .collect();
        if wanted.is_empty() {
            self.subscriptions.drop_job(id).await?;
            return Ok(Outcome::Dropped);
        }
        let limit = policy.max_unattended_per_day;
        let pace = interval(limit);
        let next = now + pace + jitter(&consent.id, now, pace);
        if !self.outbox.has_webhook(&consent.client_id).await? {
            self.subscriptions
                .finish_job(id, next, 0, Some("the platform has no webhook"))
                .await?;
            return Ok(Outcome::Idle);
        }
        let obligations = match self.obligations(&consent, &policy, &wanted, now).await? {
            Some(obligations) => obligations,
            None => {
                self.subscriptions
                    .finish_job(id, next, 0, Some("the policy in force refuses"))
                    .await?;
                return Ok(Outcome::Refused);
            }
        };
        if limit == 0
            || !self
                .subscriptions
                .spend_unattended(id, now.date_naive(), limit)
                .await?
        {
            let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
            let midnight = tomorrow.and_time(chrono::NaiveTime::MIN).and_utc();
            let due = midnight + jitter(&consent.id, midnight, pace).abs();
            self.subscriptions
                .finish_job(
                    id,
                    due,
                    0,
                    Some("the unattended budget of the day is spent"),
                )
                .await?;
            return Ok(Outcome::BudgetSpent);
        }
        let signals_read_balances = wanted.contains(&EventType::FraudSignal)
            && consent.scopes.contains(&Scope::Balances)
            && policy
                .signals
                .iter()
                .any(|signal| signal.rule.needs_balances());
        let reads = Reads {
            balances: wanted.contains(&EventType::BalanceChanged) || signals_read_balances,
            transactions_from: (wanted.contains(&EventType::TransactionsCreated)
                || wanted.contains(&EventType::FraudSignal))
            .then(|| {
                (now - Duration::days(i64::from(obligations.transactions.history_days)))
                    .date_naive()
            }),
        };
        let read = match self.bank.read(&consent, reads).await {
            Ok(read) => read,
            Err(ReadError::Store(error)) => return Err(error.into()),
            Err(ReadError::Bank(error)) => {
                let failures = job.failures.saturating_add(1);
                tracing::info!(consent = %consent.id, bank = %consent.bank_id, %error,
                    failures, "refresh failed; backing off");
                self.subscriptions
                    .finish_job(id, now + backoff(failures, pace), failures, Some(&error))
                    .await?;
                return Ok(Outcome::Failed);
            }
        };
        if let Some(bank_consent_id) = &read.bank_consent_id
            && job.bank_consent_id.as_ref() != Some(bank_consent_id)
        {
            self.subscriptions
                .note_bank_consent(id, &consent.bank_id, bank_consent_id)
                .await?;
        }
        let mut events = 0;
        for data in &read.accounts {
            events += self
                .detect(
                    &consent,
                    &policy,
                    &subscriptions,
                    &obligations,
                    reads,
                    data,
                    now,
                )
                .await?;
        }
        self.subscriptions.finish_job(id, next, 0, None).await?;
        Ok(Outcome::Refreshed(events))
    }

    /// The obligations of the policy in force for what the refresh releases, decided as an
    /// unattended call of the platform would be; `None` if it refuses.
    async fn obligations(
        &self,
        consent: &Consent,
        policy: &Policy,
        wanted: &BTreeSet<EventType>,
        now: DateTime<Utc>,
    ) -> Result<Option<Released>, StoreError> {
        let Some(client) = self.clients.client(&consent.client_id).await? else {
            return Ok(None);
        };
        let decide = |scope: Scope| {
            policy
                .decide(&DataRequest::under(
                    consent,
                    scope,
                    client.platform(),
                    Presence::Unattended,
                    now,
                ))
                .ok()
        };
        let mut scopes: Vec<Scope> = wanted.iter().map(|event| event.scope()).collect();
        scopes.dedup();
        for scope in scopes {
            if decide(scope).is_none() {
                return Ok(None);
            }
        }
        let none = || Obligations {
            object: crate::policy::Object::of_scope(Scope::Balances),
            fields: BTreeSet::new(),
            history_days: 0,
            unattended_limit: None,
        };
        Ok(Some(Released {
            // The account's own fields travel with its data only under the accounts scope.
            accounts: consent
                .scopes
                .contains(&Scope::Accounts)
                .then(|| decide(Scope::Accounts))
                .flatten(),
            balances: decide(Scope::Balances).unwrap_or_else(none),
            transactions: decide(Scope::Transactions).unwrap_or_else(none),
        }))
    }

    /// Detects the changes of one account and announces them; returns the events enqueued.
    #[allow(clippy::too_many_arguments)]
    async fn detect(
        &self,
        consent: &Consent,
        policy: &Policy,
        subscriptions: &[Subscription],
        released: &Released,
        reads: Reads,
        data: &AccountData,
        now: DateTime<Utc>,
    ) -> Result<usize, EngineError> {
        let account_id = data.account.id.as_str();
        let state = self
            .subscriptions
            .account_state(&consent.id, account_id)
            .await?;
        let digest = reads.balances.then(|| {
            self.keys
                .balance_digest(&consent.id, account_id, &data.balances)
        });
        let mut events = 0;
        let refresh = Refresh {
            consent,
            policy,
            released,
            data,
            now,
        };

        // Transactions: first recorded, then announced (each new id is taken by one caller).
        let mut new: Vec<&Transaction> = Vec::new();
        let mut earlier_debits = Vec::new();
        if reads.transactions_from.is_some() {
            let seen_at = self.subscriptions.seen(&consent.id, account_id).await?;
            let seen: Vec<Seen> = seen_at.iter().map(|(seen, _)| seen.clone()).collect();
            let listed: Vec<(&Transaction, Seen)> = data
                .transactions
                .iter()
                .map(|transaction| {
                    (
                        transaction,
                        self.keys.seen(&consent.id, account_id, transaction),
                    )
                })
                .collect();
            // When each debit still listed was first seen (for the rules that count them).
            earlier_debits = listed
                .iter()
                .filter(|(transaction, _)| signals::is_debit(transaction))
                .filter_map(|(_, key)| {
                    seen_at
                        .iter()
                        .find(|(seen, _)| seen.pseudonym == key.pseudonym)
                        .map(|(_, at)| *at)
                })
                .collect();
            let sorted = detect::sort(listed, &seen);
            // First seen now; what an account's first refresh finds counts as seen long ago
            // (its time is unknown), and a booked transaction keeps its pending one's time.
            let first_seen = if state.is_some() {
                now
            } else {
                DateTime::UNIX_EPOCH
            };
            let mut record: Vec<_> = sorted
                .new
                .iter()
                .map(|(_, seen)| (seen.clone(), first_seen))
                .collect();
            record.extend(
                sorted
                    .renamed
                    .iter()
                    .map(|(_, seen, earlier)| (seen.clone(), seen_at[*earlier].1)),
            );
            let fresh = self
                .subscriptions
                .mark_seen(&consent.id, account_id, &record)
                .await?;
            new = sorted
                .new
                .iter()
                .filter(|(_, seen)| fresh.contains(seen))
                .map(|(transaction, _)| *transaction)
                .collect();
            // The first refresh of an account records what it holds, and announces nothing.
            if state.is_some() && !new.is_empty() {
                for subscription in subscriptions {
                    if subscription.wants(EventType::TransactionsCreated) {
                        events += self
                            .announce_transactions(&refresh, subscription, &new)
                            .await? as usize;
                    }
                }
            }
        }

        // Balances: compare-and-set on the generation; the change is enqueued under its
        // generation first, so a repeated refresh enqueues it once.
        let expected = state.as_ref().map(|state| state.generation);
        let generation = expected.unwrap_or_default() + 1;
        let previous = state
            .as_ref()
            .and_then(|state| state.balance_digest.clone());
        let changed = match (&previous, &digest) {
            (Some(previous), Some(digest)) => previous != digest,
            _ => false,
        };
        if changed {
            for subscription in subscriptions {
                if subscription.wants(EventType::BalanceChanged) {
                    events += self
                        .announce_balances(&refresh, subscription, generation)
                        .await? as usize;
                }
            }
        }

        // Fraud signals: the purpose's rules on what this refresh saw for the first time.
        let signalled = subscriptions
            .iter()
            .any(|subscription| subscription.wants(EventType::FraudSignal));
        if state.is_some() && signalled && EventType::FraudSignal.allowed_by(policy) {
            let observed = signals::Observed {
                new: &new,
                listed: &data.transactions,
                earlier_debits: &earlier_debits,
                now,
                changed_balances: changed.then_some(data.balances.as_slice()),
            };
            for fired in signals::evaluate(&policy.signals, &observed) {
                for subscription in subscriptions {
                    if subscription.wants(EventType::FraudSignal) {
                        events += self
                            .announce_signal(&refresh, subscription, &fired, generation)
                            .await? as usize;
                    }
                }
            }
        }
        if state.is_none() || changed || (previous.is_none() && digest.is_some()) {
            self.subscriptions
                .swap_account_state(&consent.id, account_id, expected, digest.as_deref(), now)
                .await?;
        }
        Ok(events)
    }

    async fn announce_balances(
        &self,
        refresh: &Refresh<'_>,
        subscription: &Subscription,
        generation: i64,
    ) -> Result<bool, EngineError> {
        let event = EventType::BalanceChanged;
        let account_id = &refresh.data.account.id;
        let mut detail = thin(refresh.consent, subscription, account_id, "balances");
        if subscription.mode == Mode::Data {
            let obligations = &refresh.released.balances;
            let balances = &refresh.data.balances;
            self.release(
                refresh,
                event,
                Scope::Balances,
                obligations,
                balances,
                &mut detail,
            )
            .await?;
        }
        self.send(
            refresh,
            subscription,
            event,
            detail,
            &generation.to_string(),
        )
        .await
    }

    async fn announce_transactions(
        &self,
        refresh: &Refresh<'_>,
        subscription: &Subscription,
        new: &[&Transaction],
    ) -> Result<bool, EngineError> {
        let event = EventType::TransactionsCreated;
        let consent = refresh.consent;
        let account_id = &refresh.data.account.id;
        let mut detail = thin(consent, subscription, account_id, "transactions");
        detail["count"] = json!(new.len());
        if subscription.mode == Mode::Data {
            let obligations = &refresh.released.transactions;
            self.release(
                refresh,
                event,
                Scope::Transactions,
                obligations,
                new,
                &mut detail,
            )
            .await?;
        }
        let mut ids: Vec<String> = new
            .iter()
            .map(|transaction| {
                self.keys
                    .seen(&consent.id, account_id, transaction)
                    .pseudonym
            })
            .collect();
        ids.sort();
        let which = crate::crypto::sha256_hex(ids.join(",").as_bytes());
        self.send(refresh, subscription, event, detail, &which)
            .await
    }

    /// A fired fraud signal: the rule (id, title, what it looks for) and, in data mode, the
    /// transaction (or balance) with the purpose's fields. Audited whatever the mode: a
    /// signal is a decision about the user's payments.
    async fn announce_signal(
        &self,
        refresh: &Refresh<'_>,
        subscription: &Subscription,
        fired: &signals::Fired<'_>,
        generation: i64,
    ) -> Result<bool, EngineError> {
        let event = EventType::FraudSignal;
        let Refresh {
            consent,
            policy,
            released,
            ..
        } = *refresh;
        let account_id = &refresh.data.account.id;
        let signal = fired.signal;
        let mut detail = thin(consent, subscription, account_id, "transactions");
        detail["signal"] = json!({
            "id": signal.id,
            "title": signal.title,
            "rule": signal.rule,
        });
        let (scope, fields, n_records) = match (fired.transaction, fired.balance) {
            (Some(transaction), _) if subscription.mode == Mode::Data => {
                let (mut values, fields) = released.transactions.apply(&[transaction]);
                detail["transaction"] = values.pop().unwrap_or_default();
                (Scope::Transactions, fields, 1)
            }
            (None, Some(balance)) if subscription.mode == Mode::Data => {
                let (mut values, fields) = released.balances.apply(&[balance]);
                detail["balance"] = values.pop().unwrap_or_default();
                (Scope::Balances, fields, 1)
            }
            (None, Some(_)) => (Scope::Balances, Vec::new(), 0),
            _ => (Scope::Transactions, Vec::new(), 0),
        };
        if subscription.mode == Mode::Data {
            refresh.add_account(&mut detail);
        }
        self.audit(
            consent,
            policy,
            &format!("notification {} {}", event.as_str(), signal.id),
            scope,
            &fields,
            n_records,
        )
        .await?;
        let which = match fired.transaction {
            Some(transaction) => {
                self.keys
                    .seen(&consent.id, account_id, transaction)
                    .pseudonym
            }
            None => format!("g{generation}"),
        };
        self.send(
            refresh,
            subscription,
            event,
            detail,
            &format!("{}:{which}", signal.id),
        )
        .await
    }

    /// Puts the `records` the purpose allows into `detail` under the scope's name, with the
    /// account's own fields, after auditing them as a release.
    async fn release<T: Serialize + Sync>(
        &self,
        refresh: &Refresh<'_>,
        event: EventType,
        scope: Scope,
        obligations: &Obligations,
        records: &[T],
        detail: &mut Value,
    ) -> Result<(), EngineError> {
        let (values, fields) = obligations.apply(records);
        self.audit_release(
            refresh.consent,
            refresh.policy,
            event,
            scope,
            &fields,
            values.len(),
        )
        .await?;
        detail[scope.as_str()] = Value::Array(values);
        refresh.add_account(detail);
        Ok(())
    }

    /// Enqueues `detail` for `subscription` under a key naming the event, the subscription,
    /// the consent, the account and `which` of them it is, so that a repeated refresh
    /// enqueues it once.
    async fn send(
        &self,
        refresh: &Refresh<'_>,
        subscription: &Subscription,
        event: EventType,
        detail: Value,
        which: &str,
    ) -> Result<bool, EngineError> {
        let key = format!(
            "{}:{}:{}:{}:{which}",
            event.as_str(),
            subscription.id,
            refresh.consent.id,
            refresh.data.account.id
        );
        Ok(self
            .outbox
            .send(refresh.consent, event.as_str(), detail, key, refresh.now)
            .await?)
    }

    /// Audits a delivery that carries data, before it is enqueued: a release like an API
    /// response (`data_access`, `allow`, the fields and records it carries).
    async fn audit_release(
        &self,
        consent: &Consent,
        policy: &Policy,
        event_type: EventType,
        scope: Scope,
        fields: &[String],
        n_records: usize,
    ) -> Result<(), EngineError> {
        let reason = format!("notification {}", event_type.as_str());
        self.audit(consent, policy, &reason, scope, fields, n_records)
            .await
    }

    /// Appends a `data_access` event of the gateway about `consent`, and waits for it.
    async fn audit(
        &self,
        consent: &Consent,
        policy: &Policy,
        reason: &str,
        scope: Scope,
        fields: &[String],
        n_records: usize,
    ) -> Result<(), EngineError> {
        let mut event = Event::new(Action::DataAccess, "gateway", Decision::Allow);
        event.platform = Some(consent.client_id.clone());
        event.bank = Some(consent.bank_id.clone());
        event.consent = Some(consent.id.clone());
        event.user_ref = Some(consent.user_ref.clone());
        event.purpose = Some(consent.purpose.clone());
        event.policy_hash = Some(policy.hash.clone());
        event.categories = vec![scope.as_str().to_owned()];
        event.fields = fields.to_vec();
        event.n_records = u32::try_from(n_records).unwrap_or(u32::MAX);
        event.reason = Some(reason.to_owned());
        self.auditor
            .record(event)
            .await
            .map_err(EngineError::Audit)?;
        Ok(())
    }
}

/// The obligations of what a refresh may release.
struct Released {
    /// `None`: the consent has no accounts scope (deliveries name the account by id only).
    accounts: Option<Obligations>,
    balances: Obligations,
    transactions: Obligations,
}

impl Released {
    /// The account's fields the policy allows.
    fn account(&self, account: &Account) -> Option<Value> {
        let (mut values, _) = self.accounts.as_ref()?.apply(std::slice::from_ref(account));
        values.pop()
    }
}

/// One account's refresh, as each of its announcements sees it.
#[derive(Clone, Copy)]
struct Refresh<'a> {
    consent: &'a Consent,
    policy: &'a Policy,
    released: &'a Released,
    data: &'a AccountData,
    now: DateTime<Utc>,
}

impl Refresh<'_> {
    /// Adds the account's fields the policy allows to `detail`, if any.
    fn add_account(&self, detail: &mut Value) {
        if let Some(account) = self.released.account(&self.data.account) {
            detail["account"] = account;
        }
    }
}

/// What every delivery says: the consent, the user, the account, where to fetch the data.
fn thin(consent: &Consent, subscription: &Subscription, account_id: &str, what: &str) -> Value {
    json!({
        "subscription_id": subscription.id,
        "consent_id": consent.id,
        "user_ref": consent.user_ref,
        "bank": consent.bank_id,
        "account_id": account_id,
        "href": format!("/v1/accounts/{account_id}/{what}"),
    })
}

/// Up to a tenth of `pace` either way, from a hash of the consent and the time.
fn jitter(consent_id: &str, at: DateTime<Utc>, pace: Duration) -> Duration {
    let hash = crate::crypto::sha256(format!("{consent_id}\0{}", at.timestamp()).as_bytes());
    let mut bytes = [0_u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    let spread = (pace.num_seconds() / 5).max(1);
    let offset = i64::try_from(u64::from_be_bytes(bytes) % spread.unsigned_abs()).unwrap_or(0);
    Duration::seconds(offset - spread / 2)
}
