//! Erasure of a person (GDPR Art. 17) by crypto-shredding: for one platform's user, the key
//! their audit pseudonym is made with is destroyed ([`crate::audit::Pseudonymiser`]) and every
//! operational record about them is deleted — their consents with the account references,
//! bank grants, pending bank authorizations, codes, refresh and access tokens, access counts,
//! payments, payee handles, notification subscriptions and refresh state (seen hashes),
//! webhook deliveries about their consents and their pushed authorization requests. The audit events stay, as the
//! law asks, unchanged (so the chain still verifies), but nothing can link them to the person
//! any more.
//!
//! The erasure is itself audited ([`Action::SubjectErased`]) without naming the person: the
//! event carries the platform, the counts deleted, and neither `user_ref` nor a pseudonym.
//! A person whose events carry the legacy pseudonym (made before per-person keys) keeps it:
//! their erasure deletes the operational records only.

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::{Action, Auditor, Decision, Event, Record};
use crate::store_error::StoreError;

/// What one erasure deleted, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Whether the person's pseudonym key existed (and is now destroyed).
    pub key: bool,
    pub consents: u64,
    pub grants: u64,
    pub account_refs: u64,
    pub bank_authorizations: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub access_tokens: u64,
    pub access_counts: u64,
    pub payments: u64,
    pub subscriptions: u64,
    /// Refresh jobs, account states and seen hashes of notifications.
    pub notify_state: u64,
    pub webhook_deliveries: u64,
    pub pushed_requests: u64,
}

/// The storage side of erasure: deletes, at once, the key and every operational record of
/// `platform`'s `user_ref`.
#[async_trait]
pub trait Erasure: Send + Sync + 'static {
    async fn erase_subject(&self, platform: &str, user_ref: &str) -> Result<Erased, StoreError>;
}

/// Erases `platform`'s `user_ref` and records it (`subject_erased`, by `actor`, naming only
/// the platform and the counts). The records go first, in one transaction; the event follows.
pub async fn erase(
    store: &dyn Erasure,
    auditor: &Auditor,
    actor: &str,
    platform: &str,
    user_ref: &str,
    request_id: Option<String>,
) -> Result<(Erased, Record), StoreError> {
    let erased = store.erase_subject(platform, user_ref).await?;
    let mut event = Event::new(Action::SubjectErased, actor, Decision::Allow);
    event.platform = Some(platform.to_owned());
    event.n_records = u32::try_from(erased.consents).unwrap_or(u32::MAX);
    event.reason = serde_json::to_string(&erased).ok();
    event.request_id = request_id;
    let record = auditor.record(event).await?;
    Ok((erased, record))
}

/// Whether `request` (a pushed authorization request, as stored) names `user_ref` anywhere.
pub fn names_user_ref(request: &serde_json::Value, user_ref: &str) -> bool {
    match request {
        serde_json::Value::Object(map) => map.iter().any(|(name, value)| {
            (name == "user_ref" && value.as_str() == Some(user_ref))
                || names_user_ref(value, user_ref)
        }),
        serde_json::Value::Array(values) => {
            values.iter().any(|value| names_user_ref(value, user_ref))
        }
        _ => false,
    }
}
