//! Re-consent before expiry: a platform extends one of its authorised consents, and the same
//! consent id lives on with a new expiry.
//!
//! 1. The platform pushes a request (PAR) whose one `authorization_details` entry is the
//!    consent's granted details plus `consent_id` and a new `expires_in_days`
//!    (`super::push` checks: the platform's own consent, authorised and not expired, same
//!    bank, purpose, user, scopes and history; granted anew under the policy in force).
//! 2. `/oauth/authorize` shows the consent screen worded as an extension ([`show_screen`]);
//!    the validated request waits under a fresh internal key, single use.
//! 3. "Continue to the bank" ([`decide`]) creates a new bank-side consent and sends the user to
//!    the bank; the request now waits under the bank's `state`.
//! 4. The bank's callback ([`finish`]) exchanges the code, extends the consent (compare-and-set:
//!    only while it is still authorised and unexpired), stores the new bank grant, audits
//!    `consent_authorised` with the reason `extended until …`, ends the previous bank grant at
//!    the bank, and redirects to the platform with a code. The token response names the same
//!    consent id; its tokens and refresh token live until the new expiry.
//!
//! Declining (on the screen or at the bank) changes nothing: the consent keeps its old expiry
//! and the platform gets `access_denied`.

use axum::response::Response;
use chrono::{Duration, Utc};

use super::{
    BANK_UNAVAILABLE, CallbackQuery, DecisionForm, EXTENSION_PREFIX, ToBank, ValidatedRequest,
    exchange_at_bank, issue_code, redirect_to, render_screen, screen, seal_grant, to_bank_with,
};
use crate::adapters::Adapter;
use crate::adapters::BankAuthorization;
use crate::adapters::bank_oauth::BankGrant;
use crate::app::App;
use crate::audit::Action;
use crate::consent::{Consent, ConsentStatus};
use crate::crypto;
use crate::error::Error;
use crate::lifecycle::{self, consent_event};
use crate::oauth::BANK_AUTHORIZATION_LIFETIME_SECS;
use crate::oauth::{Client, PushedRequest};

/// Where an extension waits for the user's decision (followed by a random key).
const SCREEN_PREFIX: &str = "screen:";
/// Where an extension waits for the bank (followed by the bank's `state`).
const BANK_PREFIX: &str = "bank:";

fn not_extendable() -> Error {
    Error::InvalidRequest("this consent can no longer be extended".into())
}

/// The platform `client_id`'s consent `id`, if it is authorised and has not expired.
async fn live_consent(app: &App, id: &str, client_id: &str) -> Result<Consent, Error> {
    app.store
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
fn back(app: &App, request: &ValidatedRequest, params: &[(&str, &str)]) -> Response {
    redirect_to(app, &request.redirect_uri, request.state.as_deref(), params)
}

/// Parks `request` under `key` for [`BANK_AUTHORIZATION_LIFETIME_SECS`] (single use).
async fn park(
    app: &App,
    key: String,
    client_id: &str,
    request: &ValidatedRequest,
) -> Result<(), Error> {
    app.store
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
async fn unpark(app: &App, key: &str) -> Result<Option<(String, ValidatedRequest)>, Error> {
    let Some(parked) = app
        .store
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
pub(super) async fn show_screen(
    app: &App,
    client: &Client,
    request: ValidatedRequest,
    lang: screen::Lang,
) -> Result<Response, Error> {
    let id = request.extends.clone().ok_or_else(not_extendable)?;
    let consent = live_consent(app, &id, &client.client_id).await?;
    let key = format!(
        "{EXTENSION_PREFIX}{SCREEN_PREFIX}{}",
        crypto::random_token(32)?
    );
    park(app, key.clone(), &client.client_id, &request).await?;
    let days = request.detail.expires_in_days;
    let proposed = Consent {
        expires_at: Utc::now() + Duration::days(i64::from(days)),
        ..consent
    };
    let screen_token = app
        .sealer
        .mac(screen_message(&proposed.id, &key).as_bytes());
    Ok(render_screen(
        app,
        lang,
        &client.name,
        &proposed,
        days,
        Some(&key),
        &screen_token,
    ))
}

/// The user's decision on an extension screen: to the bank, or back to the platform.
pub(super) async fn decide(app: &App, form: DecisionForm, key: &str) -> Result<Response, Error> {
    let screen_ok = key.starts_with(&format!("{EXTENSION_PREFIX}{SCREEN_PREFIX}"))
        && app.sealer.verify_mac(
            screen_message(&form.consent_id, key).as_bytes(),
            &form.screen_token,
        );
    if !screen_ok {
        return Err(Error::InvalidRequest(
            "this consent screen is not valid".into(),
        ));
    }
    let (client_id, request) = unpark(app, key).await?.ok_or_else(|| {
        Error::InvalidRequest("this consent screen was already used or has expired".into())
    })?;
    if request.extends.as_deref() != Some(form.consent_id.as_str()) {
        return Err(Error::InvalidRequest(
            "this consent screen is not valid".into(),
        ));
    }
    let consent = live_consent(app, &form.consent_id, &client_id).await?;
    if form.decision != "approve" {
        return Ok(back(app, &request, &[("error", "access_denied")]));
    }
    let days = i64::from(request.detail.expires_in_days);
    let valid_until = (Utc::now() + Duration::days(days)).date_naive();
    let parked = (client_id.as_str(), &request);
    match to_bank_with(app, &consent, valid_until, Some(parked), None).await? {
        ToBank::Redirect(response) => Ok(response),
        ToBank::Unavailable => Ok(back(app, &request, BANK_UNAVAILABLE)),
    }
}

/// Parks the extension under the bank's `state` (called by `to_bank_with`).
pub(super) async fn park_for_bank(
    app: &App,
    state: &str,
    client_id: &str,
    request: &ValidatedRequest,
) -> Result<(), Error> {
    park(
        app,
        format!("{EXTENSION_PREFIX}{BANK_PREFIX}{state}"),
        client_id,
        request,
    )
    .await
}

/// The extension waiting for the bank's answer under `state`, if the answer is for one.
pub(super) async fn pending(app: &App, state: &str) -> Result<Option<ValidatedRequest>, Error> {
    Ok(
        unpark(app, &format!("{EXTENSION_PREFIX}{BANK_PREFIX}{state}"))
            .await?
            .map(|(_, request)| request),
    )
}

/// The bank's answer to an extension: the consent extended and a code for the platform, or
/// the consent unchanged and `access_denied`.
pub(super) async fn finish(
    app: &App,
    adapter: &Adapter,
    pending: BankAuthorization,
    request: ValidatedRequest,
    query: CallbackQuery,
) -> Result<Response, Error> {
    let consent = app
        .store
        .consent(&pending.consent_id)
        .await?
        .ok_or_else(|| Error::Internal("pending authorization without consent".into()))?;
    if query.error.is_some() {
        return Ok(back(app, &request, &[("error", "access_denied")]));
    }
    let grant = exchange_at_bank(app, adapter, &pending.state, &pending, query.code).await?;
    let previous = current_grant(app, &consent.id).await;
    let now = Utc::now();
    let expires_at = now + Duration::days(i64::from(request.detail.expires_in_days));
    if !app
        .store
        .extend_consent(&consent.id, expires_at, &request.policy_hash, now)
        .await?
    {
        // Revoked or expired while the user was at the bank: the new grant is not needed.
        lifecycle::end_bank_grant(adapter, &consent.id, &grant).await;
        return Ok(back(
            app,
            &request,
            &[
                ("error", "access_denied"),
                ("error_description", "the consent can no longer be extended"),
            ],
        ));
    }
    app.store
        .put_grant(&seal_grant(app, &consent.id, &grant)?)
        .await?;
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
    app.auditor
        .record(event)
        .await
        .map_err(Error::AuditUnavailable)?;
    // The previous grant is replaced: its tokens and bank-side consent end at the bank.
    if let Some(previous) = previous {
        lifecycle::end_bank_grant(adapter, &extended.id, &previous).await;
    }
    let code = issue_code(
        app,
        &extended,
        &request.redirect_uri,
        &request.code_challenge,
        request.dpop_jkt.clone(),
    )
    .await?;
    Ok(back(app, &request, &[("code", &code)]))
}

/// The consent's bank grant in force, if it can be read.
async fn current_grant(app: &App, consent_id: &str) -> Option<BankGrant> {
    let stored = app.store.grant(consent_id).await.ok()??;
    let plaintext = app
        .sealer
        .open(consent_id.as_bytes(), &stored.sealed)
        .ok()?;
    serde_json::from_slice(&plaintext).ok()
}
