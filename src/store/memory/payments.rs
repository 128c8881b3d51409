//! Payments and the platforms' idempotency keys in memory, with PostgreSQL's semantics: the
//! payment and its key in one critical section, one payment per consent, compare-and-set on
//! `updated_at`, a lease on due payments.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::{MemoryStore, lock, micros};
use crate::payments::idempotency::{self, StoredResponse};
use crate::payments::{
    DayCount, IdempotencyKey, KeyRecord, Payment, PaymentStatus, Payments, Replay, Submission,
};
use crate::store::StoreError;

/// The payments and the keys, under one lock so that a payment and its key are stored together.
#[derive(Debug, Default)]
pub(super) struct PaymentRows {
    payments: HashMap<String, Payment>,
    /// `(client_id, key)` → record.
    keys: HashMap<(String, String), KeyRecord>,
    /// Payment id → when it was counted against its user's day (`count_payment`).
    counted: HashMap<String, DateTime<Utc>>,
}

impl PaymentRows {
    /// Whether a payment was recorded under `consent_id` (retention keeps such a consent).
    pub(super) fn holds_consent(&self, consent_id: &str) -> bool {
        self.payments
            .values()
            .any(|payment| payment.consent_id == consent_id)
    }

    /// What the user of `payment` has counted on `day` in its currency, not refused or
    /// rejected since, other payments than `except`.
    fn spent(
        &self,
        client_id: &str,
        user_ref: &str,
        currency: &str,
        day: NaiveDate,
        except: Option<&str>,
    ) -> Result<Decimal, StoreError> {
        self.payments
            .values()
            .filter(|payment| {
                payment.client_id == client_id
                    && payment.request.user_ref == user_ref
                    && payment.request.instructed_amount.currency == currency
                    && Some(payment.id.as_str()) != except
                    && self
                        .counted
                        .get(&payment.id)
                        .is_some_and(|at| at.date_naive() == day)
                    && payment.submission != Submission::Refused
                    && !payment
                        .status
                        .as_ref()
                        .is_some_and(|s| matches!(s.status, PaymentStatus::Rejected { .. }))
            })
            .try_fold(Decimal::ZERO, |sum, payment| {
                sum.checked_add(payment.request.instructed_amount.amount)
            })
            .ok_or(StoreError::Invariant("payment sum overflows"))
    }

    /// What [`idempotency::judge`] says of the platform's record of `key` at `now`.
    fn judge(&self, key: &KeyRecord, now: DateTime<Utc>) -> Replay {
        let slot = (key.client_id.clone(), key.key.as_str().to_owned());
        idempotency::judge(self.keys.get(&slot), &key.fingerprint, now)
    }

    /// Stores `key` as claimed, its request in flight (no response yet).
    fn claim(&mut self, key: &KeyRecord) {
        let slot = (key.client_id.clone(), key.key.as_str().to_owned());
        self.keys.insert(
            slot,
            KeyRecord {
                response: None,
                created_at: micros(key.created_at),
                ..key.clone()
            },
        );
    }

    /// Stores a new payment: `Conflict("payment")` when its id or its consent has one already.
    fn insert(&mut self, payment: &Payment) -> Result<(), StoreError> {
        let duplicate =
            self.payments.contains_key(&payment.id) || self.holds_consent(&payment.consent_id);
        if duplicate {
            return Err(StoreError::Conflict("payment"));
        }
        self.payments.insert(payment.id.clone(), stored(payment));
        Ok(())
    }
}

fn stored(payment: &Payment) -> Payment {
    Payment {
        created_at: micros(payment.created_at),
        updated_at: micros(payment.updated_at),
        next_poll_at: payment.next_poll_at.map(micros),
        ..payment.clone()
    }
}

#[async_trait]
impl Payments for MemoryStore {
    async fn record_payment(
        &self,
        payment: &Payment,
        key: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<Replay, StoreError> {
        payment.check_key(key)?;
        let mut rows = lock(&self.payments);
        match rows.judge(key, now) {
            Replay::Proceed => {}
            other => return Ok(other),
        }
        rows.insert(payment)?;
        rows.claim(key);
        Ok(Replay::Proceed)
    }

    async fn insert_payment(&self, payment: &Payment) -> Result<(), StoreError> {
        lock(&self.payments).insert(payment)
    }

    async fn payment_of_consent(&self, consent_id: &str) -> Result<Option<Payment>, StoreError> {
        Ok(lock(&self.payments)
            .payments
            .values()
            .find(|payment| payment.consent_id == consent_id)
            .cloned())
    }

    async fn claim_key(&self, key: &KeyRecord, now: DateTime<Utc>) -> Result<Replay, StoreError> {
        let mut rows = lock(&self.payments);
        if rows
            .payments
            .get(&key.payment_id)
            .is_none_or(|payment| payment.client_id != key.client_id)
        {
            return Err(StoreError::Invariant(
                "a key is claimed for a recorded payment",
            ));
        }
        match rows.judge(key, now) {
            Replay::Proceed => {}
            other => return Ok(other),
        }
        let claimed_by_another = rows.keys.iter().any(|((client_id, name), record)| {
            *client_id == key.client_id
                && record.payment_id == key.payment_id
                && name != key.key.as_str()
                && record
                    .response
                    .as_ref()
                    .is_none_or(|response| response.status < 400)
        });
        if claimed_by_another {
            return Err(StoreError::Conflict("payment"));
        }
        rows.claim(key);
        Ok(Replay::Proceed)
    }

    async fn complete_key(
        &self,
        client_id: &str,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let mut rows = lock(&self.payments);
        if let Some(record) = rows
            .keys
            .get_mut(&(client_id.to_owned(), key.as_str().to_owned()))
        {
            record.response = Some(response.clone());
        }
        Ok(())
    }

    async fn payment(&self, client_id: &str, id: &str) -> Result<Option<Payment>, StoreError> {
        Ok(lock(&self.payments)
            .payments
            .get(id)
            .filter(|payment| payment.client_id == client_id)
            .cloned())
    }

    async fn update_payment(
        &self,
        payment: &Payment,
        expected: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut rows = lock(&self.payments);
        let Some(current) = rows.payments.get_mut(&payment.id) else {
            return Ok(false);
        };
        if current.updated_at != micros(expected) {
            return Ok(false);
        }
        // What the UPDATE sets; the rest of the row stays as recorded.
        let next = stored(payment);
        current.submission = next.submission;
        current.bank_payment_id = next.bank_payment_id;
        current.status = next.status;
        current.updated_at = next.updated_at;
        current.next_poll_at = next.next_poll_at;
        current.polls = next.polls;
        Ok(true)
    }

    async fn due_payments(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut rows = lock(&self.payments);
        let mut due: Vec<&mut Payment> = rows
            .payments
            .values_mut()
            .filter(|payment| payment.next_poll_at.is_some_and(|at| at <= now))
            .collect();
        due.sort_by_key(|payment| payment.next_poll_at);
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|payment| {
                payment.next_poll_at = Some(micros(lease_until));
                payment.clone()
            })
            .collect())
    }

    async fn count_payment(
        &self,
        payment: &Payment,
        max_per_day: Decimal,
        now: DateTime<Utc>,
    ) -> Result<DayCount, StoreError> {
        let mut rows = lock(&self.payments);
        if !rows.payments.contains_key(&payment.id) {
            return Err(StoreError::Invariant("a recorded payment is counted"));
        }
        if rows.counted.contains_key(&payment.id) {
            return Ok(DayCount::Counted);
        }
        let request = &payment.request;
        let spent = rows.spent(
            &payment.client_id,
            &request.user_ref,
            &request.instructed_amount.currency,
            now.date_naive(),
            Some(&payment.id),
        )?;
        let within = spent
            .checked_add(request.instructed_amount.amount)
            .is_some_and(|total| total <= max_per_day);
        if !within {
            return Ok(DayCount::OverLimit { spent });
        }
        rows.counted.insert(payment.id.clone(), micros(now));
        Ok(DayCount::Counted)
    }

    async fn spent_on(
        &self,
        client_id: &str,
        user_ref: &str,
        currency: &str,
        day: NaiveDate,
    ) -> Result<Decimal, StoreError> {
        lock(&self.payments).spent(client_id, user_ref, currency, day, None)
    }

    async fn purge_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut rows = lock(&self.payments);
        let count = rows.keys.len();
        rows.keys.retain(|_, record| record.created_at >= before);
        Ok(u64::try_from(count - rows.keys.len()).unwrap_or(u64::MAX))
    }
}

impl PaymentRows {
    /// Removes the payments of `client_id`'s `user_ref` or of `consents`, with their keys and
    /// day counts (erasure): how many payments.
    pub(super) fn erase(
        &mut self,
        client_id: &str,
        user_ref: &str,
        consents: &std::collections::HashSet<String>,
    ) -> u64 {
        let gone: Vec<String> = self
            .payments
            .values()
            .filter(|payment| {
                (payment.client_id == client_id && payment.request.user_ref == user_ref)
                    || consents.contains(&payment.consent_id)
            })
            .map(|payment| payment.id.clone())
            .collect();
        for id in &gone {
            self.payments.remove(id);
            self.counted.remove(id);
        }
        self.keys
            .retain(|_, record| !gone.contains(&record.payment_id));
        u64::try_from(gone.len()).unwrap_or(u64::MAX)
    }
}
