//! A person signs in to bankgate through their bank, to see and end what they granted (their
//! connected-apps page, `subject::connected`).
//!
//! 1. [`start`]: an authorization request at the bank with the scope `openid` only (and the
//!    manifest's extra scopes and parameters), PKCE S256 and a fresh `state`, pushed first
//!    where the bank wants PAR; it waits under that `state` like a consent's, marked as a
//!    sign-in ([`PENDING`], with the consent the page should open on, if any).
//! 2. The bank's answer comes to the one callback ([`super::Broker::callback`], which checks
//!    `state` — single use, unexpired — and `iss`) and [`finish`] exchanges the code: the ID
//!    token's claims are checked (`adapters::bank_oauth::id_token`) and its `sub` becomes the
//!    digest bankgate keeps of the person at that bank (`crypto::Sealer::bank_person`) — the
//!    digest the bank grants of their consents carry. The bank's tokens are of no further use
//!    and are revoked at the bank at once, where it offers revocation.
//!
//! PKCE binds the code to the pending request, so no `nonce` is sent: the ID token comes
//! straight from the bank's token endpoint in answer to this exchange.
//!
//! Anyone may start a sign-in, so each client address may start only so many a minute
//! ([`StartLimit`], `sign_in_starts_per_minute`, default [`DEFAULT_STARTS_PER_MINUTE`]; see
//! `sign_in/limit.rs`): over it, [`start`] answers [`Error::SignInThrottled`] before anything
//! is stored or sent to the bank. Only starts count: a signed-in person's page views do not.

mod limit;

pub use limit::{FORGET_EVERY, StartLimit, Throttled};

use std::net::IpAddr;

use chrono::{Duration, Utc};

use super::{BankAnswer, Broker, Next, invalid};
use crate::adapters::bank_oauth as bank_client;
use crate::adapters::{Adapter, BankAuthorization, Registry};
use crate::error::Error;
use crate::oauth::BANK_AUTHORIZATION_LIFETIME_SECS;

/// What a pending sign-in records in place of a consent id (followed by `:` and the consent
/// the page should open on, if any).
const PENDING: &str = "urn:bankgate:sign-in";

/// The scope that asks the bank who the person is.
const OPENID: &str = "openid";

/// The longest consent id the page is asked to open on.
const MAX_FOCUS: usize = 64;

/// The default of `sign_in_starts_per_minute`.
pub const DEFAULT_STARTS_PER_MINUTE: u32 = 10;

/// Whether `bank_id` is a bank people may sign in with (its manifest says `sign_in`).
pub fn offered(banks: &Registry, bank_id: &str) -> bool {
    banks
        .get(bank_id)
        .is_some_and(|adapter| adapter.offers_sign_in())
}

/// A consent id the page may be asked to open on: a short id of letters, digits and `-`.
pub fn focus_of(consent_id: Option<&str>) -> Option<String> {
    consent_id
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_FOCUS
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
}

/// Starts a sign-in at `bank_id` for the client at `peer` (`None`: no known address; see
/// [`StartLimit`]), the page to open on `focus` afterwards: the URL of the bank's
/// authorization endpoint to send the person to. A client over its limit is refused
/// ([`Error::SignInThrottled`]) with nothing stored and no call to the bank.
pub async fn start(
    broker: &Broker,
    peer: Option<IpAddr>,
    bank_id: &str,
    focus: Option<&str>,
) -> Result<String, Error> {
    let adapter = broker
        .banks
        .get(bank_id)
        .filter(|adapter| adapter.offers_sign_in())
        .ok_or_else(|| {
            Error::NotFound(format!("no sign-in at {}", crate::model::quoted(bank_id)))
        })?;
    broker
        .sign_in_starts
        .admit(peer)
        .map_err(|Throttled { retry_after_secs }| Error::SignInThrottled { retry_after_secs })?;
    let redirect = bank_client::start_authorization(
        &adapter.bank,
        &broker.callback_url(),
        &[OPENID.to_owned()],
        &[],
    )
    .await?;
    let pending = match focus_of(focus) {
        Some(consent_id) => format!("{PENDING}:{consent_id}"),
        None => PENDING.to_owned(),
    };
    broker
        .grants
        .insert_bank_authorization(&BankAuthorization {
            state: redirect.state.clone(),
            consent_id: pending,
            bank_id: bank_id.to_owned(),
            pkce_verifier: broker
                .sealer
                .seal(redirect.state.as_bytes(), redirect.pkce_verifier.as_bytes())?,
            bank_consent_id: None,
            expires_at: Utc::now() + Duration::seconds(BANK_AUTHORIZATION_LIFETIME_SECS),
        })
        .await?;
    Ok(redirect.url.to_string())
}

/// The consent a pending authorization's sign-in should open on: `None` when it is no
/// sign-in, `Some(None)` for a sign-in without one.
pub(super) fn pending(authorization: &BankAuthorization) -> Option<Option<String>> {
    let rest = authorization.consent_id.strip_prefix(PENDING)?;
    match rest.strip_prefix(':') {
        Some(consent_id) => Some(focus_of(Some(consent_id))),
        None if rest.is_empty() => Some(None),
        None => None,
    }
}

/// Finishes a sign-in at the callback: the person the bank's ID token names, as bankgate
/// keeps them.
pub(super) async fn finish(
    broker: &Broker,
    adapter: &Adapter,
    authorization: BankAuthorization,
    focus: Option<String>,
    answer: BankAnswer,
) -> Result<Next, Error> {
    if answer.error.is_some() {
        return Err(invalid("the bank did not sign you in"));
    }
    let (grant, person) = broker
        .exchange_at_bank(adapter, &authorization, answer.code)
        .await?;
    // Nothing is read with these tokens: end them now (best effort; they expire anyway).
    if adapter.bank.manifest.oauth.revocation_endpoint.is_some()
        && let Err(error) = bank_client::revoke(&adapter.bank, &grant).await
    {
        tracing::warn!(bank = %authorization.bank_id, %error, "sign-in tokens not revoked");
    }
    let person = person.ok_or_else(|| {
        Error::Bank(crate::adapters::AdapterError::Refused(
            "the bank did not say who signed in (no ID token)".into(),
        ))
    })?;
    Ok(Next::SignedIn {
        person: broker
            .sealer
            .bank_person(&authorization.bank_id, &person.subject),
        bank: authorization.bank_id,
        focus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Sealer;

    fn authorization(consent_id: &str) -> BankAuthorization {
        let sealer = Sealer::ephemeral().unwrap();
        BankAuthorization {
            state: "s".into(),
            consent_id: consent_id.into(),
            bank_id: "obie-bank".into(),
            pkce_verifier: sealer.seal(b"s", b"v").unwrap(),
            bank_consent_id: None,
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn a_pending_sign_in_is_told_from_a_consent() {
        assert_eq!(pending(&authorization(PENDING)), Some(None));
        assert_eq!(
            pending(&authorization(&format!("{PENDING}:c-1"))),
            Some(Some("c-1".into()))
        );
        assert_eq!(
            pending(&authorization(&format!("{PENDING}:<script>"))),
            Some(None)
        );
        assert_eq!(pending(&authorization(&format!("{PENDING}x"))), None);
        assert_eq!(
            pending(&authorization("5f0c7e9e-1111-4e55-9c1d-000000000000")),
            None
        );
        assert_eq!(focus_of(Some(&"a".repeat(65))), None);
        assert_eq!(focus_of(Some("")), None);
    }
}
