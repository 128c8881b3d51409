//! The OBIE bank's event notifications (Event Notification API, Real Time Event Notification
//! profile): the client registers its callback URL (`POST /open-banking/{version}/callback-urls`
//! with a client credentials token, `OBCallbackUrl1`), the bank publishes its event-signing key
//! at `/open-banking/jwks`, and whenever the ledger moves an account an authorised account
//! access consent covers, it POSTs a signed `urn:uk:org:openbanking:events:resource-update`
//! SET naming that consent (`rty` `account-access-consent`, `rid` its id) to the callback URL;
//! when the customer revokes a consent in the bank's app, a
//! `urn:uk:org:openbanking:events:consent-authorization-revoked` one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{Bank, ObError, Version, client};
use crate::ledger::{EVERY_ACCOUNT, compact_iban};
use crate::scaffold::{ApiError, Consent as _};

/// The resource-update event.
pub const RESOURCE_UPDATE: &str = "urn:uk:org:openbanking:events:resource-update";
/// The consent-authorization-revoked event.
pub const CONSENT_REVOKED: &str = "urn:uk:org:openbanking:events:consent-authorization-revoked";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CallbackBody {
    data: CallbackData,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CallbackData {
    url: String,
    version: String,
}

/// `POST /open-banking/{version}/callback-urls`: registers (or replaces) the client's one
/// callback URL.
pub async fn create_callback(
    State(bank): State<Arc<Bank>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ObError> {
    let version = Version::parse(&version)?;
    client(&bank, &headers)?;
    let body: CallbackBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("callback URL request: {error}")))?;
    let url = url::Url::parse(&body.data.url)
        .ok()
        .filter(|url| matches!(url.scheme(), "https" | "http"))
        .ok_or_else(|| ApiError::bad_request("Data.Url must be an absolute http(s) URL"))?;
    bank.events.register(url.to_string());
    let id = format!("cbu-{}", uuid::Uuid::new_v4());
    let answer = json!({
        "Data": {"CallbackUrlId": id, "Url": url.as_str(), "Version": body.data.version},
        "Links": {"Self": format!("{}/open-banking/{}/callback-urls/{id}",
            bank.auth.origin(), version.path())},
        "Meta": {},
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /open-banking/jwks`: the keys the bank's event notifications verify with.
pub async fn jwks(State(bank): State<Arc<Bank>>) -> Json<Value> {
    Json(bank.events.jwks())
}

/// The SET of `event` about account access consent `id`.
fn set(bank: &Bank, id: &str, event: &str) -> Value {
    let origin = bank.auth.origin();
    let link = format!("{origin}/open-banking/v4.0/aisp/account-access-consents/{id}");
    let now = Utc::now().timestamp();
    json!({
        "iss": origin,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": link,
        "aud": bank.auth.client_id(),
        "txn": uuid::Uuid::new_v4().to_string(),
        "toe": now,
        "events": {
            event: {
                "subject": {
                    "subject_type": "http://openbanking.org.uk/rid_http://openbanking.org.uk/rty",
                    "http://openbanking.org.uk/rid": id,
                    "http://openbanking.org.uk/rty": "account-access-consent",
                    "http://openbanking.org.uk/rlk": [{"version": "v4.0", "link": link}],
                }
            }
        },
    })
}

/// The resource updates a ledger change makes: one per usable consent whose customer holds the
/// account (every usable consent when the clock moved).
fn resource_updates(bank: &Bank, change: &str) -> Vec<Value> {
    let ids: Vec<String> = bank
        .consents()
        .iter()
        .filter(|(_, consent)| consent.usable())
        .filter(|(_, consent)| {
            change == EVERY_ACCOUNT
                || consent.customer().accounts.iter().any(|account| {
                    account
                        .iban
                        .as_deref()
                        .is_some_and(|iban| compact_iban(iban) == change)
                })
        })
        .map(|(id, _)| id.clone())
        .collect();
    ids.iter()
        .map(|id| set(bank, id, RESOURCE_UPDATE))
        .collect()
}

/// Listens to the ledger while the bank runs and pushes a resource update for each consent a
/// change touches, once a callback URL is registered.
pub fn start(bank: &Arc<Bank>) {
    let weak = Arc::downgrade(bank);
    let mut changes = bank.ledger.changes();
    tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(change) => change,
                Err(RecvError::Lagged(_)) => EVERY_ACCOUNT.to_owned(),
                Err(RecvError::Closed) => return,
            };
            let Some(bank) = weak.upgrade() else { return };
            if bank.events.callback().is_none() {
                continue;
            }
            for claims in resource_updates(&bank, &change) {
                bank.events.send(&claims).await;
            }
        }
    });
}

/// Tells the client that the customer revoked consent `id` (in the background).
pub fn revoked(bank: &Arc<Bank>, id: &str) {
    if bank.events.callback().is_none() {
        return;
    }
    let claims = set(bank, id, CONSENT_REVOKED);
    let bank = bank.clone();
    tokio::spawn(async move {
        bank.events.send(&claims).await;
    });
}
