//! A request's state in memory: the same reads and spends as PostgreSQL's one statement, in
//! one critical section (every lock involved held at once, always taken in this order).

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};

use super::{MemoryStore, lock, micros};
use crate::consent::ConsentStatus;
use crate::store::StoreError;
use crate::store::access::AccessCount;
use crate::store::access::{AccessQuery, AccessReads, AccessState, TokenState};

#[async_trait]
impl AccessReads for MemoryStore {
    async fn access_state(&self, query: &AccessQuery) -> Result<AccessState, StoreError> {
        let tokens = lock(&self.access_tokens);
        let mut jtis = lock(&self.jtis);
        let clients = lock(&self.clients);
        let consents = lock(&self.consents);
        let mut counts = lock(&self.access_counts);
        let grants = lock(&self.grants);
        let refs = lock(&self.account_refs);

        let token = match tokens.get(&query.jti) {
            Some((_, None)) => TokenState::Active,
            Some((_, Some(_))) => TokenState::Revoked,
            None => TokenState::Unknown,
        };
        let proof_fresh = query.proof.as_ref().map(|proof| {
            let key = (proof.scope.clone(), proof.jti.clone());
            let replayed = jtis.get(&key).is_some_and(|until| *until >= Utc::now());
            if !replayed {
                jtis.insert(key, micros(proof.expires_at));
            }
            !replayed
        });
        let client = clients.get(&query.client_id).cloned();
        let Some(data) = &query.data else {
            return Ok(AccessState {
                token,
                proof_fresh,
                client,
                consent: None,
                budget: None,
                bank_grant: None,
                account: None,
            });
        };
        let consent = consents.get(&data.consent_id).cloned();
        let owned = consent
            .as_ref()
            .filter(|consent| consent.client_id == query.client_id);
        let limit = data.budget.as_ref().and_then(|budget| {
            let consent = owned?;
            let eligible = token == TokenState::Active
                && proof_fresh != Some(false)
                && client.is_some()
                && consent.status == ConsentStatus::Authorised
                && consent.expires_at > data.now
                && consent.scopes.contains(&data.scope);
            let (_, limit) = budget
                .limits
                .iter()
                .find(|(purpose, _)| *purpose == consent.purpose)?;
            eligible.then_some((budget.day, *limit))
        });
        let budget = limit.zip(owned).map(|((day, limit), consent)| {
            let used = counts.entry((consent.id.clone(), day)).or_insert(0);
            let admitted = *used < limit;
            if admitted {
                *used += 1;
            }
            AccessCount {
                admitted,
                used: *used,
            }
        });
        Ok(AccessState {
            token,
            proof_fresh,
            client,
            budget,
            bank_grant: owned.and_then(|consent| grants.get(&consent.id).cloned()),
            account: owned.and_then(|consent| {
                let account_id = data.account_id.clone()?;
                refs.get(&(consent.id.clone(), account_id)).cloned()
            }),
            consent,
        })
    }

    async fn refund_access(&self, consent_id: &str, day: NaiveDate) -> Result<(), StoreError> {
        let mut counts = lock(&self.access_counts);
        let key = (consent_id.to_owned(), day);
        match counts.get_mut(&key) {
            Some(used) if *used > 1 => *used -= 1,
            Some(_) => {
                counts.remove(&key);
            }
            None => {}
        }
        Ok(())
    }
}
