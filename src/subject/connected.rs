//! A person's connected apps: the consents they gave through bankgate at one bank, across
//! platforms, found by who approved them at the bank (`Consents::consents_of_bank_person`),
//! each with its platform, purpose, data, lifetime and the accesses of the last 90 days from
//! the audit log — and the person's own revocation of any of them.
//!
//! The person is signed in through their bank (`broker::sign_in`): the bank's identifier for
//! them, as bankgate keeps it (`crypto::Sealer::bank_person`), travels in a short-lived
//! [`Session`] whose token is MACed under bankgate's key; the revocation form carries a
//! token bound to the session and the consent ([`Session::form_token`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Sources;
use crate::audit::{Action, Auditor, Decision, Event, Filter, Record};
use crate::consent::{Consent, ConsentStatus};
use crate::crypto::Sealer;
use crate::lifecycle::{self, Lifecycle, LifecycleError};
use crate::model::Scope;
use crate::store_error::StoreError;

/// How long a sign-in lasts.
pub const SESSION_LIFETIME_SECS: i64 = 15 * 60;
/// How far back the page shows a consent's accesses.
pub const ACCESS_WINDOW_DAYS: i64 = 90;
/// The actor of a revocation on the page, in the audit log and the webhook's reason.
pub const ACTOR: &str = "person";
/// Why the consent ended, as the audit log and the platform's webhook say.
pub const REVOKED_REASON: &str = "revoked by the person on their connected-apps page";

/// What the MAC of a session token covers (before the payload).
const SESSION_MAC: &str = "connected-apps session\0";
/// What the MAC of a revocation form covers (before the session token and the consent).
const FORM_MAC: &str = "connected-apps revoke\0";

/// A person signed in through their bank: who they are there (the digest bankgate keeps,
/// never the bank's identifier), until when.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub bank: String,
    pub person: String,
    /// Unix seconds.
    pub expires: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("bank", &self.bank)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `person` at `bank`, from `now` for [`SESSION_LIFETIME_SECS`].
    pub fn new(bank: &str, person: &str, now: DateTime<Utc>) -> Session {
        Session {
            bank: bank.to_owned(),
            person: person.to_owned(),
            expires: (now + Duration::seconds(SESSION_LIFETIME_SECS)).timestamp(),
        }
    }

    /// The session as a token: base64url of its JSON, `.`, a MAC under `sealer`'s key.
    pub fn token(&self, sealer: &Sealer) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let tag = sealer.mac(format!("{SESSION_MAC}{payload}").as_bytes());
        format!("{payload}.{tag}")
    }

    /// The session a token holds, if its MAC verifies and it has not expired at `now`.
    pub fn open(sealer: &Sealer, token: &str, now: DateTime<Utc>) -> Option<Session> {
        let (payload, tag) = token.split_once('.')?;
        if !sealer.verify_mac(format!("{SESSION_MAC}{payload}").as_bytes(), tag) {
            return None;
        }
        let session: Session = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())?;
        (session.expires > now.timestamp()).then_some(session)
    }

    /// The token a revocation form carries for `consent_id`: bound to this session's token,
    /// so a form made for one person cannot be posted in another's.
    pub fn form_token(&self, sealer: &Sealer, consent_id: &str) -> String {
        sealer.mac(format!("{FORM_MAC}{}\0{consent_id}", self.token_id()).as_bytes())
    }

    /// Whether `token` is this session's form token for `consent_id`.
    pub fn check_form_token(&self, sealer: &Sealer, consent_id: &str, token: &str) -> bool {
        sealer.verify_mac(
            format!("{FORM_MAC}{}\0{consent_id}", self.token_id()).as_bytes(),
            token,
        )
    }

    /// What identifies the session in a form token (its fields, not its MAC).
    fn token_id(&self) -> String {
        format!("{}\0{}\0{}", self.bank, self.person, self.expires)
    }
}

/// One access of the audit log, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    pub time: DateTime<Utc>,
    /// Who asked: the platform, or bankgate's refresh engine on its behalf.
    pub actor: String,
    pub allowed: bool,
    /// The kinds of data released (or asked for, when refused).
    pub categories: Vec<String>,
    pub n_records: u32,
}

/// One consent on the page.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApp {
    pub consent_id: String,
    pub platform: String,
    /// The platform's registered name (its id when it has none).
    pub platform_name: String,
    pub purpose: String,
    pub scopes: Vec<Scope>,
    pub status: ConsentStatus,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The last access of any age (the audit log keeps them all).
    pub last_access: Option<DateTime<Utc>>,
    /// The accesses of the last [`ACCESS_WINDOW_DAYS`] days, newest first.
    pub accesses: Vec<Access>,
}

/// The person's consents at `session.bank`, newest first, with their accesses as of `now`.
pub async fn connected_apps(
    sources: &Sources<'_>,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<Vec<ConnectedApp>, StoreError> {
    let consents = sources
        .consents
        .consents_of_bank_person(&session.bank, &session.person)
        .await?;
    let mut apps = Vec::with_capacity(consents.len());
    // A platform's name is read once, however many of its consents the person has.
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for consent in consents {
        let platform_name = match names.get(&consent.client_id) {
            Some(name) => name.clone(),
            None => {
                let name = sources
                    .clients
                    .client(&consent.client_id)
                    .await?
                    .map_or_else(|| consent.client_id.clone(), |client| client.name);
                names.insert(consent.client_id.clone(), name.clone());
                name
            }
        };
        let accesses = super::all_events(
            sources.auditor,
            Filter {
                consent: Some(consent.id.clone()),
                action: Some(Action::DataAccess),
                ..Filter::default()
            },
        )
        .await?;
        let last_access = accesses
            .iter()
            .filter(|record| record.event.decision == Decision::Allow)
            .map(|record| record.event.time)
            .max();
        let since = now - Duration::days(ACCESS_WINDOW_DAYS);
        let mut recent: Vec<Access> = accesses
            .iter()
            .filter(|record| record.event.time >= since)
            .map(|record| Access {
                time: record.event.time,
                actor: record.event.actor.clone(),
                allowed: record.event.decision == Decision::Allow,
                categories: record.event.categories.clone(),
                n_records: record.event.n_records,
            })
            .collect();
        recent.reverse();
        apps.push(ConnectedApp {
            consent_id: consent.id,
            platform: consent.client_id,
            platform_name,
            purpose: consent.purpose,
            scopes: consent.scopes,
            status: consent.status,
            since: consent.created_at,
            until: consent.expires_at,
            last_access,
            accesses: recent,
        });
    }
    Ok(apps)
}

/// Records that the person signed in at `session.bank` was shown their connected apps — what
/// their consents are and the accesses of the audit log — before the page leaves
/// (`audit_queried`, actor [`ACTOR`], the bank and how many consents it showed; never who the
/// person is). Fail closed.
pub async fn audit_view(
    auditor: &Auditor,
    session: &Session,
    apps: &[ConnectedApp],
    request_id: Option<String>,
) -> Result<Record, StoreError> {
    let mut event = Event::new(Action::AuditQueried, ACTOR, Decision::Allow);
    event.bank = Some(session.bank.clone());
    event.n_records = u32::try_from(apps.len()).unwrap_or(u32::MAX);
    event.reason =
        Some(serde_json::json!({"query": "connected-apps", "bank": session.bank}).to_string());
    event.request_id = request_id;
    auditor.record(event).await
}

/// What came of a person's revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now: tokens revoked, audited, the platform's webhook enqueued, the bank told.
    Revoked,
    /// It had already ended (revoked, expired, rejected): nothing to do.
    AlreadyEnded,
    /// Not one of this person's consents at this bank (or no such consent).
    NotTheirs,
}

/// Revokes consent `consent_id` for the signed-in person, as a platform's revocation does
/// (`lifecycle::revoke`, actor [`ACTOR`], reason [`REVOKED_REASON`]) — only one of their own
/// consents at the session's bank.
pub async fn revoke(
    lifecycle: &Lifecycle,
    sources: &Sources<'_>,
    session: &Session,
    consent_id: &str,
) -> Result<Revocation, LifecycleError> {
    let theirs: Option<Consent> = sources
        .consents
        .consents_of_bank_person(&session.bank, &session.person)
        .await?
        .into_iter()
        .find(|consent| consent.id == consent_id);
    let Some(consent) = theirs else {
        return Ok(Revocation::NotTheirs);
    };
    if consent.status != ConsentStatus::Authorised {
        return Ok(Revocation::AlreadyEnded);
    }
    Ok(
        if lifecycle::revoke(lifecycle, &consent, ACTOR, REVOKED_REASON).await? {
            Revocation::Revoked
        } else {
            Revocation::AlreadyEnded
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_token_opens_only_unchanged_and_unexpired() {
        let sealer = Sealer::ephemeral().unwrap();
        let now = Utc::now();
        let session = Session::new("obie-bank", "bp_0123", now);
        let token = session.token(&sealer);
        assert_eq!(Session::open(&sealer, &token, now), Some(session.clone()));
        // Expired.
        let later = now + Duration::seconds(SESSION_LIFETIME_SECS);
        assert_eq!(Session::open(&sealer, &token, later), None);
        // Another key, a changed payload, a changed tag, nonsense.
        let other = Sealer::ephemeral().unwrap();
        assert_eq!(Session::open(&other, &token, now), None);
        let forged = Session {
            person: "bp_someone-else".into(),
            ..session.clone()
        };
        let (_, tag) = token.split_once('.').unwrap();
        let (payload, _) = forged
            .token(&other)
            .split_once('.')
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
            .unwrap();
        assert_eq!(
            Session::open(&sealer, &format!("{payload}.{tag}"), now),
            None
        );
        assert_eq!(Session::open(&sealer, &format!("{token}x"), now), None);
        assert_eq!(Session::open(&sealer, "no-dot", now), None);

        // A form token holds for its session and consent only.
        let form = session.form_token(&sealer, "c-1");
        assert!(session.check_form_token(&sealer, "c-1", &form));
        assert!(!session.check_form_token(&sealer, "c-2", &form));
        let another = Session::new("obie-bank", "bp_4567", now);
        assert!(!another.check_form_token(&sealer, "c-1", &form));
    }
}
