//! Consents: what a user allowed a platform to read from one bank, for one purpose, until when.
//!
//! Pure domain logic: the state machine and the types the OAuth flow and the stack share.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::Scope;
use crate::model::WireName;
use crate::store_error::StoreError;

/// The lifecycle of a consent.
///
/// `awaiting_authorisation → authorised → (revoked | expired)`, or `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ConsentStatus {
    AwaitingAuthorisation,
    Authorised,
    Rejected,
    Revoked,
    Expired,
}

impl ConsentStatus {
    /// Whether the state machine allows moving from `self` to `next`.
    pub fn can_become(self, next: ConsentStatus) -> bool {
        use ConsentStatus::*;
        matches!(
            (self, next),
            (AwaitingAuthorisation, Authorised | Rejected | Expired)
                | (Authorised, Revoked | Expired)
        )
    }
}

impl WireName for ConsentStatus {}

/// The Rich Authorization Request (RFC 9396) entry a platform sends at PAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationDetail {
    /// Always `account_information`.
    #[serde(rename = "type")]
    pub kind: String,
    pub bank: String,
    pub purpose: String,
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub history_days: u32,
    pub expires_in_days: u32,
    /// The platform's pseudonymous reference for its user.
    pub user_ref: String,
    /// At PAR only: the platform's authorised consent this request extends (re-consent before
    /// expiry); everything else must be that consent's, `expires_in_days` aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
}

/// The authorization details type bankgate understands.
pub const ACCOUNT_INFORMATION: &str = "account_information";

/// A consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub id: String,
    pub client_id: String,
    pub bank_id: String,
    pub purpose: String,
    pub scopes: Vec<Scope>,
    pub history_days: u32,
    pub user_ref: String,
    pub status: ConsentStatus,
    /// Content hash of the purpose policy the consent was granted under.
    pub policy_hash: String,
    /// The platform's redirect URI, state and PKCE challenge from its pushed request.
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// The DPoP key its pushed request bound the authorization code to, if any
    /// (RFC 9449 §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Consent {
    /// Whether the consent is authorised and unexpired at `now`. An authorised consent past
    /// its expiry is expired, whether or not it was marked so yet.
    pub fn check_usable(&self, now: DateTime<Utc>) -> Result<(), Unusable> {
        match self.status {
            ConsentStatus::Authorised if now < self.expires_at => Ok(()),
            ConsentStatus::Authorised | ConsentStatus::Expired => Err(Unusable::Expired),
            ConsentStatus::Revoked => Err(Unusable::Revoked),
            status => Err(Unusable::NotAuthorised(status)),
        }
    }

    /// Whether the consent lets a request for `scope` through at `now`.
    pub fn check_access(&self, scope: Scope, now: DateTime<Utc>) -> Result<(), AccessRefusal> {
        if self.status != ConsentStatus::Authorised {
            return Err(AccessRefusal::NotAuthorised(self.status));
        }
        if now >= self.expires_at {
            return Err(AccessRefusal::Expired);
        }
        if !self.scopes.contains(&scope) {
            return Err(AccessRefusal::ScopeNotGranted(scope));
        }
        Ok(())
    }

    /// The granted details, as returned to the platform with its token.
    pub fn granted_details(&self) -> AuthorizationDetail {
        let days = (self.expires_at - self.created_at).num_days().max(0);
        AuthorizationDetail {
            kind: ACCOUNT_INFORMATION.to_owned(),
            bank: self.bank_id.clone(),
            purpose: self.purpose.clone(),
            scopes: self.scopes.clone(),
            history_days: self.history_days,
            expires_in_days: u32::try_from(days).unwrap_or(u32::MAX),
            user_ref: self.user_ref.clone(),
            consent_id: None,
        }
    }
}

/// Why a consent cannot be used at a given time; the text is safe to show the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("the consent is {}", .0.as_str())]
    NotAuthorised(ConsentStatus),
    #[error("the consent was revoked")]
    Revoked,
    #[error("the consent has expired")]
    Expired,
}

impl Unusable {
    /// The stable slug of the problem type.
    pub fn slug(self) -> &'static str {
        match self {
            Unusable::NotAuthorised(_) => "consent-not-authorised",
            Unusable::Revoked => "consent-revoked",
            Unusable::Expired => "consent-expired",
        }
    }
}

/// Why a consent does not cover a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("consent is {}", .0.as_str())]
    NotAuthorised(ConsentStatus),
    #[error("consent has expired")]
    Expired,
    #[error("consent does not cover {0}")]
    ScopeNotGranted(Scope),
}

/// Consents: compare-and-set transitions, listing, expiry.
#[async_trait]
pub trait Consents: Send + Sync + 'static {
    async fn insert_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    async fn consent(&self, id: &str) -> Result<Option<Consent>, StoreError>;
    /// Moves a consent from `from` to `to` atomically; `false` if it was not in `from`.
    async fn transition_consent(
        &self,
        id: &str,
        from: ConsentStatus,
        to: ConsentStatus,
    ) -> Result<bool, StoreError>;
    /// Extends an authorised consent that has not expired at `now`: its new expiry and the
    /// policy version it is now granted under. Compare-and-set: `false` (and nothing changed)
    /// if the consent is not authorised or expired meanwhile.
    async fn extend_consent(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        policy_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// One platform's consents for one user, newest first.
    async fn consents_of(
        &self,
        client_id: &str,
        user_ref: &str,
    ) -> Result<Vec<Consent>, StoreError>;
    /// Records who authorised consent `id`: `bank_person`, the keyed digest of the bank's
    /// identifier for the person (`crypto::Sealer::bank_person`); `false` if there is no such
    /// consent.
    async fn set_bank_person(&self, id: &str, bank_person: &str) -> Result<bool, StoreError>;
    /// Every consent at `bank_id` authorised by the person `bank_person` names (as recorded by
    /// [`Consents::set_bank_person`]), across platforms, newest first.
    async fn consents_of_bank_person(
        &self,
        bank_id: &str,
        bank_person: &str,
    ) -> Result<Vec<Consent>, StoreError>;
    /// Moves every authorised consent whose `expires_at` is before `now` to `expired` and
    /// returns them: of several instances running this at once, each consent is returned once.
    async fn expire_consents(&self, now: DateTime<Utc>) -> Result<Vec<Consent>, StoreError>;
    /// Authorised consents expiring in `[from, until)`.
    async fn consents_expiring(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Consent>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConsentStatus::*;

    #[track_caller]
    fn check(from: ConsentStatus, to: ConsentStatus, allowed: bool) {
        assert_eq!(from.can_become(to), allowed, "{from:?} -> {to:?}");
    }

    #[test]
    fn state_machine() {
        check(AwaitingAuthorisation, Authorised, true);
        check(AwaitingAuthorisation, Rejected, true);
        check(AwaitingAuthorisation, Revoked, false);
        check(Authorised, Revoked, true);
        check(Authorised, Expired, true);
        check(Authorised, AwaitingAuthorisation, false);
        check(Rejected, Authorised, false);
        check(Revoked, Authorised, false);
        check(Expired, Authorised, false);
    }

    #[test]
    fn status_names_round_trip() {
        for status in [
            AwaitingAuthorisation,
            Authorised,
            Rejected,
            Revoked,
            Expired,
        ] {
            assert_eq!(ConsentStatus::parse(status.as_str()), Some(status));
        }
    }
}
