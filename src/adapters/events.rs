//! Events a bank pushes to bankgate: UK OBIE event notifications (Event Notification API,
//! Real Time Event Notification profile), each a Security Event Token (RFC 8417) POSTed as
//! `application/jwt` to the callback URL bankgate registered at the bank.
//!
//! A SET is accepted only when it verifies against the bank's keys: the JWK Set at the
//! manifest's `events.jwks_uri` (fetched through the bank's HTTP client, kept, fetched again
//! when a SET names a key it does not hold, at most every [`REFETCH_AFTER`]). The checks:
//! - the header: an asymmetric algorithm bankgate takes (ES256, PS256, EdDSA; never `none` or
//!   a shared-secret HMAC), a `kid` naming a key of the set, the key's own `alg` if it pins
//!   one, `typ` absent, `JWT` or `secevent+jwt`; keys in the header (`jwk`, `jku`, `x5u`)
//!   are never used;
//! - the claims: `iss` the bank's event issuer (`events.issuer`, else `oauth.issuer`), `aud`
//!   bankgate's client id at the bank, `iat` a NumericDate (a number: RFC 7519 §2; the
//!   string the OBIE page's example JWT carries is refused) not in the future, `toe` a
//!   NumericDate when present, `jti` present, `events` an object with at least one event.
//!
//! What a verified SET says ([`BankEvent`]): a `resource-update` and/or a
//! `consent-authorization-revoked` about a resource (`rty`, `rid` of the OBIE subject). An
//! account access consent's (`rty` `account-access-consent`, singular or plural, as the
//! standard's examples spell both) is the bank-side consent of one of bankgate's consents;
//! other resources (payments, funds confirmation consents) are acknowledged and not acted on.
//!
//! Refusals name their RFC 8935 §2.4 error code ([`EventRefusal::code`]); the text is bankgate's
//! own, never the bank's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::Adapter;

/// The resource-update event.
pub const RESOURCE_UPDATE: &str = "urn:uk:org:openbanking:events:resource-update";
/// The consent-authorization-revoked event.
pub const CONSENT_REVOKED: &str = "urn:uk:org:openbanking:events:consent-authorization-revoked";
const RID: &str = "http://openbanking.org.uk/rid";
const RTY: &str = "http://openbanking.org.uk/rty";

/// Clock skew allowed on `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// How soon the bank's keys are fetched again for a SET naming a key not held.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// The algorithms bankgate takes in a bank's events.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA];

/// What a verified SET says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankEvent {
    pub jti: String,
    /// A resource of the bank changed.
    pub resource_update: bool,
    /// The customer's authorisation of a consent was revoked at the bank.
    pub consent_revoked: bool,
    /// The resource's type (`rty`) as the bank wrote it.
    pub resource_type: Option<String>,
    /// The resource's id (`rid`).
    pub resource_id: Option<String>,
}

impl BankEvent {
    /// The bank-side account access consent the event is about, if that is its resource.
    pub fn account_access_consent(&self) -> Option<&str> {
        let kind = self.resource_type.as_deref()?;
        (kind.trim_end_matches('s') == "account-access-consent")
            .then_some(self.resource_id.as_deref())
            .flatten()
    }
}

/// Why a SET was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventRefusal {
    #[error("{0}")]
    Request(String),
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Issuer(String),
    #[error("{0}")]
    Audience(String),
    #[error("the bank's event keys could not be read")]
    KeysUnavailable,
}

impl EventRefusal {
    /// The RFC 8935 §2.4 error code.
    pub fn code(&self) -> &'static str {
        match self {
            EventRefusal::Request(_) => "invalid_request",
            EventRefusal::Key(_) | EventRefusal::KeysUnavailable => "invalid_key",
            EventRefusal::Issuer(_) => "invalid_issuer",
            EventRefusal::Audience(_) => "invalid_audience",
        }
    }
}

fn request(message: &str) -> EventRefusal {
    EventRefusal::Request(message.to_owned())
}

/// Reads the claims of a SET whose signature and `iss`/`aud` were checked (or, in tests, a
/// SET's decoded body): the NumericDates, `jti` and the events.
pub fn read_claims(claims: &Value, now: i64) -> Result<BankEvent, EventRefusal> {
    let iat = claims
        .get("iat")
        .ok_or_else(|| request("iat is missing"))?
        .as_i64()
        .ok_or_else(|| request("iat must be a NumericDate (a number of seconds)"))?;
    if iat > now + LEEWAY_SECS {
        return Err(request("iat lies in the future"));
    }
    if let Some(toe) = claims.get("toe")
        && !toe.is_i64()
    {
        return Err(request("toe must be a NumericDate (a number of seconds)"));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|jti| !jti.is_empty())
        .ok_or_else(|| request("jti is missing"))?;
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .filter(|events| !events.is_empty())
        .ok_or_else(|| request("events must name at least one event"))?;
    let subject = events
        .values()
        .filter_map(|event| event.get("subject"))
        .find(|subject| subject.is_object());
    let text = |name: &str| {
        subject
            .and_then(|subject| subject.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(BankEvent {
        jti: jti.to_owned(),
        resource_update: events.contains_key(RESOURCE_UPDATE),
        consent_revoked: events.contains_key(CONSENT_REVOKED),
        resource_type: text(RTY),
        resource_id: text(RID),
    })
}

/// Verifies `token` against `keys` for a bank whose events come from `issuer` to bankgate's
/// client `audience`, at `now` (seconds).
pub fn verify_with(
    keys: &JwkSet,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<BankEvent, EventRefusal> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| request("the body is not a signed JWT (compact JWS)"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(EventRefusal::Key(format!(
            "alg {:?} is not taken; ES256, PS256 or EdDSA",
            header.alg
        )));
    }
    if let Some(typ) = header.typ.as_deref()
        && !matches!(typ, "JWT" | "secevent+jwt")
    {
        return Err(request("typ must be JWT or secevent+jwt"));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| EventRefusal::Key("kid is missing".into()))?;
    let jwk = keys
        .find(kid)
        .ok_or_else(|| EventRefusal::Key("kid names no key of the bank".into()))?;
    if let Some(pinned) = jwk.common.key_algorithm
        && pinned != KeyAlgorithm::from(header.alg)
    {
        return Err(EventRefusal::Key(
            "alg differs from the algorithm of the bank's key".into(),
        ));
    }
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| EventRefusal::Key("the bank's key is not usable".into()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.validate_exp = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::InvalidIssuer => {
                    EventRefusal::Issuer("iss is not the bank's event issuer".into())
                }
                ErrorKind::InvalidAudience => {
                    EventRefusal::Audience("aud is not bankgate's client id at the bank".into())
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    EventRefusal::Request(format!("{claim} is missing"))
                }
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    EventRefusal::Key("the signature does not verify with the bank's key".into())
                }
                _ => request("the SET could not be read"),
            }
        })?
        .claims;
    read_claims(&claims, now)
}

/// The banks' event keys, fetched when first needed and kept.
#[derive(Default)]
pub struct EventKeys {
    held: Mutex<HashMap<String, (JwkSet, Instant)>>,
}

impl std::fmt::Debug for EventKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventKeys").finish_non_exhaustive()
    }
}

impl EventKeys {
    fn held(&self, bank: &str) -> Option<(JwkSet, Instant)> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(bank)
            .cloned()
    }

    async fn fetch(&self, adapter: &Adapter, uri: &str) -> Result<JwkSet, EventRefusal> {
        let answer = adapter
            .bank
            .http
            .get(uri)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| EventRefusal::KeysUnavailable)?;
        if !answer.status().is_success() {
            return Err(EventRefusal::KeysUnavailable);
        }
        let keys: JwkSet = answer
            .json()
            .await
            .map_err(|_| EventRefusal::KeysUnavailable)?;
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(adapter.bank.id().to_owned(), (keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// Verifies a SET `adapter`'s bank pushed, at `now` (seconds); `None` when the bank's
    /// manifest says it pushes no events.
    pub async fn verify(
        &self,
        adapter: &Adapter,
        token: &str,
        now: i64,
    ) -> Option<Result<BankEvent, EventRefusal>> {
        let manifest = &adapter.bank.manifest;
        let events = manifest.events.as_ref()?;
        let issuer = events.issuer.as_ref().or(manifest.oauth.issuer.as_ref())?;
        let audience = adapter.bank.client_id.as_str();
        // What is not a JWS is refused before anything is fetched from the bank.
        if jsonwebtoken::decode_header(token).is_err() {
            return Some(Err(request("the body is not a signed JWT (compact JWS)")));
        }
        let held = self.held(adapter.bank.id());
        let keys = match &held {
            Some((keys, _)) => keys.clone(),
            None => match self.fetch(adapter, &events.jwks_uri).await {
                Ok(keys) => keys,
                Err(refusal) => return Some(Err(refusal)),
            },
        };
        let verified = verify_with(&keys, token, issuer, audience, now);
        // A key the bank rotated in: its set is fetched again (not too often).
        let stale = held.is_some_and(|(_, at)| at.elapsed() >= REFETCH_AFTER);
        if stale
            && matches!(&verified, Err(EventRefusal::Key(message)) if message.starts_with("kid names"))
        {
            return Some(match self.fetch(adapter, &events.jwks_uri).await {
                Ok(keys) => verify_with(&keys, token, issuer, audience, now),
                Err(refusal) => Err(refusal),
            });
        }
        Some(verified)
    }
}

#[cfg(test)]
mod tests;
