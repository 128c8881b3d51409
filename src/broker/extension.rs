//! Re-consent before expiry: a platform extends one of its authorised consents, and the same
//! consent id lives on with a new expiry.
//!
//! 1. The platform pushes a request (PAR) whose one `authorization_details` entry is the
//!    consent's granted details plus `consent_id` and a new `expires_in_days`
//!    ([`Broker::push`] checks it with [`extendable`]: the platform's own consent, authorised
//!    and not expired, same bank, purpose, user, scopes and history; granted anew under the
//!    policy in force).
//! 2. The consent screen is worded as an extension ([`screen`]); the validated request waits
//!    under a fresh internal key, single use.
//! 3. "Continue to the bank" ([`decide`]) creates a new bank-side consent and sends the user to
//!    the bank; the request now waits under the bank's `state`.
//! 4. The bank's answer ([`finish`]) is exchanged, the consent extended (compare-and-set: only
//!    while it is still authorised and unexpired), the new bank grant stored,
//!    `consent_authorised` audited with the reason `extended until …`, the previous bank grant
//!    ended at the bank, and the platform gets a code. The token response names the same
//!    consent id; its tokens and refresh token live until the new expiry.
//!
//! Declining (on the screen or at the bank) changes nothing: the consent keeps its old expiry
//! and the platform gets `access_denied`.

use chrono::{Duration, Utc};

use super::{
    BANK_UNAVAILABLE, BankAnswer, Broker, EXTENSION_PREFIX, Next, Screen, ScreenDecision, ToBank,
    ValidatedRequest,
};
use crate::adapters::bank_oauth::BankGrant;
use crate::adapters::{Adapter, BankAuthorization};
use crate::audit::Action;
use crate::consent::{AuthorizationDetail, Consent, ConsentStatus};
use crate::crypto;
use crate::error::Error;
use crate::lifecycle::{self, consent_event};
use crate::model::quoted;
use crate::oauth::BANK_AUTHORIZATION_LIFETIME_SECS;
use crate::oauth::{Client, PushedRequest};

/// Where an extension waits for the user's decision (followed by a random key).
const SCREEN_PREFIX: &str = "screen:";
/// Where an extension waits for the bank (followed by the bank's `state`).
const BANK_PREFIX: &str = "bank:";

fn not_extendable() -> Error {
    Error::InvalidRequest("this consent can no longer be extended".into())
}

/// Whether the platform `client_id` may extend consent `id` with `detail`: its own consent,
/// authorised and not expired, for the same bank, purpose, user, scopes and history (only the
/// lifetime changes). The consent id, or why not (a consent of another platform is unknown).
pub(super) async fn extendable(
    broker: &Broker,
    client_id: &str,
    id: &str,
    detail: &AuthorizationDetail,
) -> Result<Result<String, String>, Error> {
    let Some(consent) = broker
        .consents
        .consent(id)
        .await?
        .filter(|consent| consent.client_id == client_id)
    else {
        return Ok(Err(format!("unknown consent {}", quoted(id))));
    };
    if consent.status != ConsentStatus::Authorised || consent.expires_at <= Utc::now() {
        return Ok(Err(
            "only an authorised consent that has not expired can be extended".into(),
        ));
    }
    let mut scopes = detail.scopes.clone();
    let mut granted = consent.scopes.clone();
    scopes.sort_unstable();
    granted.sort_unstable();
    scopes.dedup();
    granted.dedup();
    if consent.bank_id != detail.bank
        || consent.purpose != detail.purpose
        || consent.user_ref != detail.user_ref
        || scopes != granted
        || consent.history_days != detail.history_days
    {
        return Ok(Err(
            "an extension keeps the consent's bank, purpose, user_ref, scopes \
                       and history_days; only expires_in_days changes"
                .into(),
        ));
    }
    Ok(Ok(consent.id))
}

/// The platform `client_id`'s consent `id`, if it is authorised and has not expired.
async fn live_consent(broker: &Broker, id: &str, client_id: &str) -> Result<Consent, Error> {
    broker
        .consents
        .consent(id)
        .await?
        .filter(|consent| {
            consent.client_id == client_id
                && consent.status == ConsentStatus::Authorised
                && consent.expires_at > Utc::now()
        })
        .ok_or_else(not_extendable)
}

/// What the screen's MAC covers: the consent and the pending extension's key.
fn screen_message(consent_id: &str, key: &str) -> String {
    format!("extension-screen\0{consent_id}\0{key}")
}

/// Back to the platform that asked for the extension.
fn back(request: &ValidatedRequest, params: &[(&str, &str)]) -> Next {
    Next::back(&request.redirect_uri, request.state.as_deref(), params)
}

/// Parks `request` under `key` for [`BANK_AUTHORIZATION_LIFETIME_SECS`] (single use).
async fn park(
    broker: &Broker,
    key: String,
    client_id: &str,
    request: &ValidatedRequest,
) -> Result<(), Error> {
    broker
        .authorizations
        .insert_pushed_request(&PushedRequest {
            request_uri: key,
            client_id: client_id.to_owned(),
            request: serde_json::to_value(request)
                .map_err(|error| Error::Internal(error.to_string()))?,
            expires_at: Utc::now() + Duration::seconds(BANK_AUTHORIZATION_LIFETIME_SECS),
        })
        .await?;
    Ok(())
}

/// Takes a parked request back (once, unexpired).
async fn unpark(broker: &Broker, key: &str) -> Result<Option<(String, ValidatedRequest)>, Error> {
    let Some(parked) = broker
        .authorizations
        .take_pushed_request(key)
        .await?
        .filter(|parked| parked.expires_at > Utc::now())
    else {
        return Ok(None);
    };
    let request = serde_json::from_value(parked.request)
        .map_err(|_| Error::Internal("parked extension does not decode".into()))?;
    Ok(Some((parked.client_id, request)))
}

/// The consent screen for an extension: the consent's purpose and data, and the new lifetime.
pub(super) async fn screen(
    broker: &Broker,
    client: &Client,
    request: ValidatedRequest,
) -> Result<Screen, Error> {
    let id = request.extends.clone().ok_or_else(not_extendable)?;
    let consent = live_consent(broker, &id, &client.client_id).await?;
    let key = format!(
        "{EXTENSION_PREFIX}{SCREEN_PREFIX}{}",
        crypto::random_token(32)?
    );
    park(broker, key.clone(), &client.client_id, &request).await?;
    let days = request.detail.expires_in_days;
    let proposed = Consent {
        expires_at: Utc::now() + Duration::days(i64::from(days)),
        ..consent
    };
    let screen_token = broker
        .sealer
        .mac(screen_message(&proposed.id, &key).as_bytes());
    Ok(Screen {
        platform: client.name.clone(),
        consent: proposed,
        days,
        extension: Some(key),
        screen_token,
        payment: None,
    })
}

/// The user's decision on an extension screen: to the bank, or back to the platform.
pub(super) async fn decide(
    broker: &Broker,
    decision: ScreenDecision,
    key: &str,
) -> Result<Next, Error> {
    let screen_ok = key.starts_with(&format!("{EXTENSION_PREFIX}{SCREEN_PREFIX}"))
        && broker.sealer.verify_mac(
            screen_message(&decision.consent_id, key).as_bytes(),
            &decision.screen_token,
        );
    if !screen_ok {
        return Err(Error::InvalidRequest(
            "this consent screen is not valid".into(),
        ));
    }
    let (client_id, request) = unpark(broker, key).await?.ok_or_else(|| {
        Error::InvalidRequest("this consent screen was already used or has expired".into())
    })?;
    if request.extends.as_deref() != Some(decision.consent_id.as_str()) {
        return Err(Error::InvalidRequest(
            "this consent screen is not valid".into(),
        ));
    }
    let consent = live_consent(broker, &decision.consent_id, &client_id).await?;
    if !decision.approve {
        return Ok(back(&request, &[("error", "access_denied")]));
    }
    let days = i64::from(request.detail.expires_in_days);
    let valid_until = (Utc::now() + Duration::days(days)).date_naive();
    let parked = (client_id.as_str(), &request);
    match broker
        .to_bank(&consent, valid_until, Some(parked), None)
        .await?
    {
        ToBank::Redirect(url) => Ok(Next::Bank(url)),
        ToBank::Unavailable => Ok(back(&request, BANK_UNAVAILABLE)),
    }
}

/// Parks the extension under the bank's `state` (called by [`Broker::to_bank`]).
pub(super) async fn park_for_bank(
    broker: &Broker,
    state: &str,
    client_id: &str,
    request: &ValidatedRequest,
) -> Result<(), Error> {
    park(
        broker,
        format!("{EXTENSION_PREFIX}{BANK_PREFIX}{state}"),
        client_id,
        request,
    )
    .await
}

/// The extension waiting for the bank's answer under `state`, if the answer is for one.
pub(super) async fn pending(
    broker: &Broker,
    state: &str,
) -> Result<Option<ValidatedRequest>, Error> {
    Ok(
        unpark(broker, &format!("{EXTENSION_PREFIX}{BANK_PREFIX}{state}"))
            .await?
            .map(|(_, request)| request),
    )
}

/// The bank's answer to an extension: the consent extended and a code for the platform, or
/// the consent unchanged and `access_denied`.
pub(super) async fn finish(
    broker: &Broker,
    adapter: &Adapter,
    pending: BankAuthorization,
    request: ValidatedRequest,
    answer: BankAnswer,
) -> Result<Next, Error> {
    let consent = broker
        .consents
        .consent(&pending.consent_id)
        .await?
        .ok_or_else(|| Error::Internal("pending authorization without consent".into()))?;
    if answer.error.is_some() {
        return Ok(back(&request, &[("error", "access_denied")]));
    }
    let (grant, person) = broker
        .exchange_at_bank(adapter, &pending, answer.code)
        .await?;
    let previous = current_grant(broker, &consent.id).await;
    let now = Utc::now();
    let expires_at = now + Duration::days(i64::from(request.detail.expires_in_days));
    if !broker
        .consents
        .extend_consent(&consent.id, expires_at, &request.policy_hash, now)
        .await?
    {
        // Revoked or expired while the user was at the bank: the new grant is not needed.
        lifecycle::end_bank_grant(adapter, &consent.id, &grant).await;
        return Ok(back(
            &request,
            &[
                ("error", "access_denied"),
                ("error_description", "the consent can no longer be extended"),
            ],
        ));
    }
    broker
        .grants
        .put_grant(&broker.seal_grant(&consent.id, &grant)?)
        .await?;
    if let Some(person) = person {
        let bank_person = broker.sealer.bank_person(&pending.bank_id, &person.subject);
        broker
            .consents
            .set_bank_person(&consent.id, &bank_person)
            .await?;
    }
    let extended = Consent {
        expires_at,
        policy_hash: request.policy_hash.clone(),
        ..consent
    };
    let mut event = consent_event(
        Action::ConsentAuthorised,
        &format!("bank:{}", pending.bank_id),
        &extended,
    );
    event.reason = Some(format!(
        "extended until {}",
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    broker
        .auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    // The previous grant is replaced: its tokens and bank-side consent end at the bank.
    if let Some(previous) = previous {
        lifecycle::end_bank_grant(adapter, &extended.id, &previous).await;
    }
    let code = broker
        .issue_code(
            &extended,
            &request.redirect_uri,
            &request.code_challenge,
            request.dpop_jkt.clone(),
        )
        .await?;
    Ok(back(&request, &[("code", &code)]))
}

/// The consent's bank grant in force, if it can be read.
async fn current_grant(broker: &Broker, consent_id: &str) -> Option<BankGrant> {
    let stored = broker.grants.grant(consent_id).await.ok()??;
    let plaintext = broker
        .sealer
        .open(consent_id.as_bytes(), &stored.sealed)
        .ok()?;
    serde_json::from_slice(&plaintext).ok()
}
