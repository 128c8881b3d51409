//! In-memory store: the embedded default for trying bankgate without PostgreSQL. Everything
//! is lost when the process ends.
//!
//! It keeps the PostgreSQL store's semantics (the conformance suite runs against both):
//! single-use takes, compare-and-set transitions, every manifest version kept, one audit chain,
//! timestamps kept to the microsecond.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

mod access;
mod audit;
mod payments;

use crate::consent::{Consent, ConsentStatus};
use crate::store::{
    AccountRef, AuthorizationCode, BankAuthorization, BankVersion, Client, DeliveryOutcome,
    DeliveryStatus, IssuedToken, PushedRequest, RefreshToken, Store, StoreError, StoredCode,
    StoredGrant, WebhookDelivery,
};

/// A [`Store`] in process memory.
///
/// Each aggregate has its own lock; no lock is held across an `.await` (no method awaits).
#[derive(Debug, Default)]
pub struct MemoryStore {
    clients: Mutex<HashMap<String, Client>>,
    /// Every version of every bank, oldest first; ordered by bank id for listing.
    banks: Mutex<BTreeMap<String, Vec<BankVersion>>>,
    pushed_requests: Mutex<HashMap<String, PushedRequest>>,
    consents: Mutex<HashMap<String, Consent>>,
    bank_authorizations: Mutex<HashMap<String, BankAuthorization>>,
    grants: Mutex<HashMap<String, StoredGrant>>,
    /// Codes by hash, with whether they were redeemed.
    codes: Mutex<HashMap<String, (AuthorizationCode, bool)>>,
    account_refs: Mutex<HashMap<(String, String), AccountRef>>,
    audit: Mutex<audit::Chain>,
    /// Unattended accesses counted per consent and UTC day.
    access_counts: Mutex<HashMap<(String, NaiveDate), u32>>,
    /// `(scope, jti)` → expiry.
    jtis: Mutex<HashMap<(String, String), DateTime<Utc>>>,
    refresh_tokens: Mutex<HashMap<String, RefreshToken>>,
    /// Access tokens by `jti`, with when they were revoked.
    access_tokens: Mutex<HashMap<String, RevocableToken>>,
    /// Webhook deliveries in enqueue order.
    webhooks: Mutex<Vec<WebhookDelivery>>,
    payments: Mutex<payments::PaymentRows>,
}

/// An issued access token and when it was revoked, if it was.
type RevocableToken = (IssuedToken, Option<DateTime<Utc>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

/// Locks `mutex`. A poisoned lock is still consistent: every critical section below is a
/// single insert, remove or push that cannot panic halfway.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What PostgreSQL keeps of a timestamp: microseconds.
fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

/// Inserts `value` under `key` unless the key exists: `Conflict(what)`.
fn insert_new<V>(
    map: &Mutex<HashMap<String, V>>,
    key: &str,
    value: V,
    what: &'static str,
) -> Result<(), StoreError> {
    let mut map = lock(map);
    if map.contains_key(key) {
        return Err(StoreError::Conflict(what));
    }
    map.insert(key.to_owned(), value);
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        // As PostgreSQL's CHECK: a bank client is bound to one bank, no other client is.
        if (client.role == crate::store::Role::Bank) != client.bank_id.is_some() {
            return Err(StoreError::Invariant(
                "a bank client is bound to exactly one bank; other clients to none",
            ));
        }
        check_one_key_source(client)?;
        let client = Client {
            created_at: micros(client.created_at),
            ..client.clone()
        };
        insert_new(&self.clients, &client.client_id.clone(), client, "client")
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(lock(&self.clients).get(client_id).cloned())
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        check_one_key_source(client)?;
        let mut clients = lock(&self.clients);
        let Some(stored) = clients.get_mut(&client.client_id) else {
            return Ok(false);
        };
        *stored = Client {
            client_id: stored.client_id.clone(),
            role: stored.role,
            bank_id: stored.bank_id.clone(),
            created_at: stored.created_at,
            ..client.clone()
        };
        Ok(true)
    }

    async fn put_bank(
        &self,
        bank_id: &str,
        manifest: &serde_json::Value,
    ) -> Result<BankVersion, StoreError> {
        let mut banks = lock(&self.banks);
        let versions = banks.entry(bank_id.to_owned()).or_default();
        let next = match versions.last() {
            Some(active) if active.manifest == *manifest => return Ok(active.clone()),
            Some(active) => active
                .version
                .checked_add(1)
                .ok_or(StoreError::Invariant("bank version overflows"))?,
            None => 1,
        };
        let version = BankVersion {
            bank_id: bank_id.to_owned(),
            version: next,
            manifest: manifest.clone(),
            created_at: micros(Utc::now()),
        };
        versions.push(version.clone());
        Ok(version)
    }

    async fn bank(&self, bank_id: &str) -> Result<Option<BankVersion>, StoreError> {
        Ok(lock(&self.banks)
            .get(bank_id)
            .and_then(|versions| versions.last())
            .cloned())
    }

    async fn bank_versions(&self, bank_id: &str) -> Result<Vec<BankVersion>, StoreError> {
        Ok(lock(&self.banks).get(bank_id).cloned().unwrap_or_default())
    }

    async fn banks(&self) -> Result<Vec<BankVersion>, StoreError> {
        Ok(lock(&self.banks)
            .values()
            .filter_map(|versions| versions.last())
            .cloned()
            .collect())
    }

    async fn insert_pushed_request(&self, request: &PushedRequest) -> Result<(), StoreError> {
        let request = PushedRequest {
            expires_at: micros(request.expires_at),
            ..request.clone()
        };
        insert_new(
            &self.pushed_requests,
            &request.request_uri.clone(),
            request,
            "pushed request",
        )
    }

    async fn take_pushed_request(
        &self,
        request_uri: &str,
    ) -> Result<Option<PushedRequest>, StoreError> {
        Ok(lock(&self.pushed_requests).remove(request_uri))
    }

    async fn insert_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let consent = Consent {
            created_at: micros(consent.created_at),
            expires_at: micros(consent.expires_at),
            ..consent.clone()
        };
        insert_new(&self.consents, &consent.id.clone(), consent, "consent")
    }

    async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError> {
        Ok(lock(&self.consents).get(id).cloned())
    }

    async fn transition_consent(
        &self,
        id: &str,
        from: ConsentStatus,
        to: ConsentStatus,
    ) -> Result<bool, StoreError> {
        let mut consents = lock(&self.consents);
        match consents.get_mut(id) {
            Some(consent) if consent.status == from => {
                consent.status = to;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn extend_consent(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        policy_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut consents = lock(&self.consents);
        match consents.get_mut(id) {
            Some(consent)
                if consent.status == ConsentStatus::Authorised && consent.expires_at > now =>
            {
                consent.expires_at = micros(expires_at);
                consent.policy_hash = policy_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn insert_bank_authorization(
        &self,
        authorization: &BankAuthorization,
    ) -> Result<(), StoreError> {
        let authorization = BankAuthorization {
            expires_at: micros(authorization.expires_at),
            ..authorization.clone()
        };
        insert_new(
            &self.bank_authorizations,
            &authorization.state.clone(),
            authorization,
            "bank authorization",
        )
    }

    async fn take_bank_authorization(
        &self,
        state: &str,
    ) -> Result<Option<BankAuthorization>, StoreError> {
        Ok(lock(&self.bank_authorizations).remove(state))
    }

    async fn put_grant(&self, grant: &StoredGrant) -> Result<(), StoreError> {
        let grant = StoredGrant {
            updated_at: micros(grant.updated_at),
            ..grant.clone()
        };
        lock(&self.grants).insert(grant.consent_id.clone(), grant);
        Ok(())
    }

    async fn grant(&self, consent_id: &str) -> Result<Option<StoredGrant>, StoreError> {
        Ok(lock(&self.grants).get(consent_id).cloned())
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let code = AuthorizationCode {
            expires_at: micros(code.expires_at),
            ..code.clone()
        };
        insert_new(
            &self.codes,
            &code.code_hash.clone(),
            (code, false),
            "authorization code",
        )
    }

    async fn code(&self, code_hash: &str) -> Result<StoredCode, StoreError> {
        Ok(match lock(&self.codes).get(code_hash) {
            None => StoredCode::Unknown,
            Some((code, true)) => StoredCode::Redeemed(code.clone()),
            Some((code, false)) => StoredCode::Unused(code.clone()),
        })
    }

    async fn redeem_code(&self, code_hash: &str) -> Result<bool, StoreError> {
        Ok(match lock(&self.codes).get_mut(code_hash) {
            Some((_, used)) if !*used => {
                *used = true;
                true
            }
            _ => false,
        })
    }

    async fn release_code(&self, code_hash: &str) -> Result<(), StoreError> {
        if let Some((_, used)) = lock(&self.codes).get_mut(code_hash) {
            *used = false;
        }
        Ok(())
    }

    async fn put_account_refs(
        &self,
        consent_id: &str,
        refs: &[AccountRef],
    ) -> Result<(), StoreError> {
        let mut account_refs = lock(&self.account_refs);
        for account in refs {
            // The first mapping recorded for an account id stays, as in PostgreSQL.
            account_refs
                .entry((consent_id.to_owned(), account.account_id.clone()))
                .or_insert_with(|| account.clone());
        }
        Ok(())
    }

    async fn account_ref(
        &self,
        consent_id: &str,
        account_id: &str,
    ) -> Result<Option<AccountRef>, StoreError> {
        Ok(lock(&self.account_refs)
            .get(&(consent_id.to_owned(), account_id.to_owned()))
            .cloned())
    }

    async fn remember_jti(
        &self,
        scope: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut jtis = lock(&self.jtis);
        let key = (scope.to_owned(), jti.to_owned());
        match jtis.get(&key) {
            Some(seen_until) if *seen_until >= Utc::now() => Ok(false),
            _ => {
                jtis.insert(key, micros(expires_at));
                Ok(true)
            }
        }
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut purged = 0;
        {
            let mut jtis = lock(&self.jtis);
            let before = jtis.len();
            jtis.retain(|_, expires_at| *expires_at >= now);
            purged += before - jtis.len();
        }
        let mut tokens = lock(&self.access_tokens);
        let before = tokens.len();
        tokens.retain(|_, (token, _)| token.expires_at >= now);
        purged += before - tokens.len();
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        let token = RefreshToken {
            created_at: micros(token.created_at),
            expires_at: micros(token.expires_at),
            revoked_at: token.revoked_at.map(micros),
            ..token.clone()
        };
        insert_new(
            &self.refresh_tokens,
            &token.token_hash.clone(),
            token,
            "refresh token",
        )
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        Ok(lock(&self.refresh_tokens).get(token_hash).cloned())
    }

    async fn record_access_token(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let token = IssuedToken {
            expires_at: micros(token.expires_at),
            ..token.clone()
        };
        insert_new(
            &self.access_tokens,
            &token.jti.clone(),
            (token, None),
            "access token",
        )
    }

    async fn revoke_access_token(&self, jti: &str) -> Result<bool, StoreError> {
        let mut tokens = lock(&self.access_tokens);
        match tokens.get_mut(jti) {
            Some((_, revoked_at @ None)) => {
                *revoked_at = Some(micros(Utc::now()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_consent_tokens(&self, consent_id: &str) -> Result<u64, StoreError> {
        let now = micros(Utc::now());
        let mut revoked = 0u64;
        for (token, revoked_at) in lock(&self.access_tokens).values_mut() {
            if token.consent_id.as_deref() == Some(consent_id) && revoked_at.is_none() {
                *revoked_at = Some(now);
                revoked += 1;
            }
        }
        for token in lock(&self.refresh_tokens).values_mut() {
            if token.consent_id == consent_id && token.revoked_at.is_none() {
                token.revoked_at = Some(now);
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    async fn consents_of(
        &self,
        client_id: &str,
        user_ref: &str,
    ) -> Result<Vec<Consent>, StoreError> {
        let mut consents: Vec<Consent> = lock(&self.consents)
            .values()
            .filter(|consent| consent.client_id == client_id && consent.user_ref == user_ref)
            .cloned()
            .collect();
        consents.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(consents)
    }

    async fn expire_consents(&self, now: DateTime<Utc>) -> Result<Vec<Consent>, StoreError> {
        let mut expired = Vec::new();
        for consent in lock(&self.consents).values_mut() {
            if consent.status == ConsentStatus::Authorised && consent.expires_at < now {
                consent.status = ConsentStatus::Expired;
                expired.push(consent.clone());
            }
        }
        Ok(expired)
    }

    async fn consents_expiring(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Consent>, StoreError> {
        Ok(lock(&self.consents)
            .values()
            .filter(|consent| {
                consent.status == ConsentStatus::Authorised
                    && consent.expires_at >= from
                    && consent.expires_at < until
            })
            .cloned()
            .collect())
    }

    async fn replace_grant(
        &self,
        expected: &StoredGrant,
        grant: &StoredGrant,
    ) -> Result<bool, StoreError> {
        let mut grants = lock(&self.grants);
        match grants.get_mut(&grant.consent_id) {
            Some(current) if current.updated_at == micros(expected.updated_at) => {
                *current = StoredGrant {
                    updated_at: micros(grant.updated_at),
                    ..grant.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool, StoreError> {
        let mut webhooks = lock(&self.webhooks);
        if webhooks
            .iter()
            .any(|existing| existing.dedupe_key == delivery.dedupe_key)
        {
            return Ok(false);
        }
        if webhooks.iter().any(|existing| existing.id == delivery.id) {
            return Err(StoreError::Conflict("webhook delivery"));
        }
        webhooks.push(WebhookDelivery {
            next_attempt_at: micros(delivery.next_attempt_at),
            created_at: micros(delivery.created_at),
            delivered_at: delivery.delivered_at.map(micros),
            ..delivery.clone()
        });
        Ok(true)
    }

    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut webhooks = lock(&self.webhooks);
        let mut due: Vec<&mut WebhookDelivery> = webhooks
            .iter_mut()
            .filter(|delivery| {
                delivery.status == DeliveryStatus::Pending && delivery.next_attempt_at <= now
            })
            .collect();
        due.sort_by_key(|delivery| delivery.next_attempt_at);
        Ok(due
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|delivery| {
                delivery.attempts += 1;
                delivery.next_attempt_at = micros(lease_until);
                delivery.clone()
            })
            .collect())
    }

    async fn finish_webhook(
        &self,
        id: &str,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut webhooks = lock(&self.webhooks);
        let delivery = webhooks
            .iter_mut()
            .find(|delivery| delivery.id == id)
            .ok_or(StoreError::Invariant(
                "finishing an unknown webhook delivery",
            ))?;
        match outcome {
            DeliveryOutcome::Delivered => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(micros(now));
                delivery.last_error = None;
            }
            DeliveryOutcome::Retry { at, error } => {
                delivery.next_attempt_at = micros(*at);
                delivery.last_error = Some(error.clone());
            }
            DeliveryOutcome::Failed { error } => {
                delivery.status = DeliveryStatus::Failed;
                delivery.last_error = Some(error.clone());
            }
        }
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        client_id: &str,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        Ok(lock(&self.webhooks)
            .iter()
            .rev()
            .filter(|delivery| delivery.client_id == client_id)
            .cloned()
            .collect())
    }

    async fn operational_counts(&self) -> Result<super::OperationalCounts, StoreError> {
        let mut by_state = std::collections::BTreeMap::<&'static str, i64>::new();
        for consent in lock(&self.consents).values() {
            *by_state.entry(consent.status.as_str()).or_default() += 1;
        }
        let webhooks_pending = lock(&self.webhooks)
            .iter()
            .filter(|delivery| delivery.status == DeliveryStatus::Pending)
            .count();
        Ok(super::OperationalCounts {
            consents_by_state: by_state
                .into_iter()
                .map(|(state, n)| (state.to_owned(), n))
                .collect(),
            webhooks_pending: i64::try_from(webhooks_pending).unwrap_or(i64::MAX),
        })
    }
}

/// As PostgreSQL's CHECK: a client's keys come by value or by reference, never both.
fn check_one_key_source(client: &Client) -> Result<(), StoreError> {
    if client.jwks.is_some() && client.jwks_uri.is_some() {
        return Err(StoreError::Invariant(
            "a client registers jwks or jwks_uri, not both",
        ));
    }
    Ok(())
}
