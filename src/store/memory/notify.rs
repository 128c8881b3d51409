//! Notifications in memory: subscriptions, the refresh queue (leases as on PostgreSQL) and
//! the change-detection state.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::{MemoryStore, lock, micros};
use crate::consent::{Consent, ConsentStatus};
use crate::notify::{AccountState, Job, Seen, Subscription, Subscriptions};
use crate::store::StoreError;

/// A transaction seen on an account, and when it was first seen.
type SeenAt = (Seen, DateTime<Utc>);

/// Everything notifications keep, under one lock.
#[derive(Debug, Default)]
pub(super) struct NotifyRows {
    subscriptions: BTreeMap<String, Subscription>,
    jobs: HashMap<String, Job>,
    accounts: HashMap<(String, String), AccountState>,
    seen: HashMap<(String, String), Vec<SeenAt>>,
}

#[async_trait]
impl Subscriptions for MemoryStore {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut rows = lock(&self.notify);
        if rows.subscriptions.contains_key(&subscription.id) {
            return Err(StoreError::Conflict("subscription"));
        }
        rows.subscriptions.insert(
            subscription.id.clone(),
            Subscription {
                created_at: micros(subscription.created_at),
                ..subscription.clone()
            },
        );
        Ok(())
    }

    async fn subscriptions_of(&self, client_id: &str) -> Result<Vec<Subscription>, StoreError> {
        let mut found: Vec<Subscription> = lock(&self.notify)
            .subscriptions
            .values()
            .filter(|subscription| subscription.client_id == client_id)
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    async fn delete_subscription(&self, client_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut rows = lock(&self.notify);
        match rows.subscriptions.get(id) {
            Some(subscription) if subscription.client_id == client_id => {
                rows.subscriptions.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn subscriptions_for(&self, consent: &Consent) -> Result<Vec<Subscription>, StoreError> {
        let mut found: Vec<Subscription> = lock(&self.notify)
            .subscriptions
            .values()
            .filter(|subscription| subscription.covers(consent))
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(found)
    }

    async fn schedule_jobs(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let consents = lock(&self.consents);
        let mut rows = lock(&self.notify);
        let due: HashSet<String> = consents
            .values()
            .filter(|consent| {
                consent.status == ConsentStatus::Authorised
                    && consent.expires_at > now
                    && !rows.jobs.contains_key(&consent.id)
                    && rows
                        .subscriptions
                        .values()
                        .any(|subscription| subscription.covers(consent))
            })
            .map(|consent| consent.id.clone())
            .collect();
        for consent_id in &due {
            rows.jobs.insert(
                consent_id.clone(),
                Job {
                    consent_id: consent_id.clone(),
                    due_at: micros(now),
                    failures: 0,
                    last_error: None,
                    bank_consent_id: None,
                },
            );
        }
        Ok(u64::try_from(due.len()).unwrap_or(u64::MAX))
    }

    async fn claim_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut rows = lock(&self.notify);
        let mut due: Vec<&mut Job> = rows
            .jobs
            .values_mut()
            .filter(|job| job.due_at <= now)
            .collect();
        due.sort_by(|a, b| (a.due_at, &a.consent_id).cmp(&(b.due_at, &b.consent_id)));
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|job| {
                let claimed = job.clone();
                job.due_at = micros(lease_until);
                claimed
            })
            .collect())
    }

    async fn finish_job(
        &self,
        consent_id: &str,
        due_at: DateTime<Utc>,
        failures: i32,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(job) = lock(&self.notify).jobs.get_mut(consent_id) {
            job.due_at = micros(due_at);
            job.failures = failures;
            job.last_error = last_error.map(str::to_owned);
        }
        Ok(())
    }

    async fn note_bank_consent(
        &self,
        consent_id: &str,
        _bank_id: &str,
        bank_consent_id: &str,
    ) -> Result<(), StoreError> {
        if let Some(job) = lock(&self.notify).jobs.get_mut(consent_id) {
            job.bank_consent_id = Some(bank_consent_id.to_owned());
        }
        Ok(())
    }

    async fn due_for_bank_event(
        &self,
        bank_id: &str,
        bank_consent_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let consents = lock(&self.consents);
        let mut rows = lock(&self.notify);
        let job = rows.jobs.values_mut().find(|job| {
            job.bank_consent_id.as_deref() == Some(bank_consent_id)
                && consents
                    .get(&job.consent_id)
                    .is_some_and(|consent| consent.bank_id == bank_id)
        });
        Ok(job.map(|job| {
            job.due_at = job.due_at.min(micros(now));
            job.consent_id.clone()
        }))
    }

    async fn drop_job(&self, consent_id: &str) -> Result<(), StoreError> {
        let mut rows = lock(&self.notify);
        rows.jobs.remove(consent_id);
        rows.accounts
            .retain(|(consent, _), _| consent != consent_id);
        rows.seen.retain(|(consent, _), _| consent != consent_id);
        Ok(())
    }

    async fn spend_unattended(
        &self,
        consent_id: &str,
        day: NaiveDate,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut counts = lock(&self.access_counts);
        let used = counts.entry((consent_id.to_owned(), day)).or_insert(0);
        if *used < limit {
            *used += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn account_state(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountState>, StoreError> {
        Ok(lock(&self.notify)
            .accounts
            .get(&(consent_id.to_owned(), account_id.to_owned()))
            .cloned())
    }

    async fn swap_account_state(
        &self,
        consent_id: &str,
        account_id: &str,
        expected: Option<i64>,
        balance_digest: Option<&str>,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut rows = lock(&self.notify);
        let key = (consent_id.to_owned(), account_id.to_owned());
        let current = rows.accounts.get(&key).map(|state| state.generation);
        if current != expected {
            return Ok(false);
        }
        rows.accounts.insert(
            key,
            AccountState {
                balance_digest: balance_digest.map(str::to_owned),
                generation: expected.map_or(0, |generation| generation + 1),
            },
        );
        Ok(true)
    }

    async fn seen(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Vec<(Seen, DateTime<Utc>)>, StoreError> {
        Ok(lock(&self.notify)
            .seen
            .get(&(consent_id.to_owned(), account_id.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    async fn mark_seen(
        &self,
        consent_id: &str,
        account_id: &str,
        seen: &[(Seen, DateTime<Utc>)],
    ) -> Result<Vec<Seen>, StoreError> {
        let mut rows = lock(&self.notify);
        let known = rows
            .seen
            .entry((consent_id.to_owned(), account_id.to_owned()))
            .or_default();
        let mut fresh = Vec::new();
        for (one, at) in seen {
            if !known
                .iter()
                .any(|(known, _)| known.pseudonym == one.pseudonym)
            {
                known.push((one.clone(), micros(*at)));
                fresh.push(one.clone());
            }
        }
        Ok(fresh)
    }
}

impl NotifyRows {
    /// Removes the subscriptions and the refresh state of `consents` (erasure): how many
    /// subscriptions, and how many jobs, account states and seen lists.
    pub(super) fn erase(&mut self, consents: &std::collections::HashSet<String>) -> (u64, u64) {
        let count = |before: usize, after: usize| u64::try_from(before - after).unwrap_or(0);
        let before = self.subscriptions.len();
        self.subscriptions.retain(|_, subscription| {
            subscription
                .consent_id
                .as_ref()
                .is_none_or(|consent_id| !consents.contains(consent_id))
        });
        let subscriptions = count(before, self.subscriptions.len());
        let before = self.jobs.len() + self.accounts.len() + self.seen.len();
        self.jobs
            .retain(|consent_id, _| !consents.contains(consent_id));
        self.accounts
            .retain(|(consent_id, _), _| !consents.contains(consent_id));
        self.seen
            .retain(|(consent_id, _), _| !consents.contains(consent_id));
        let state = count(
            before,
            self.jobs.len() + self.accounts.len() + self.seen.len(),
        );
        (subscriptions, state)
    }
}
