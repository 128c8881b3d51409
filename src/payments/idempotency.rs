//! The platform's `Idempotency-Key` on `POST /v1/payments`: keys are scoped to the platform
//! and kept at least [`KEY_RETENTION`]; the same key with the same body gets the same payment
//! and response, with another body a 422, and while the first request with the key is still
//! in flight a 409. Pure: the store keeps the records, [`judge`] decides.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How long a key is remembered: at least a day, as the platforms are told.
pub const KEY_RETENTION: Duration = Duration::hours(48);

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A platform's idempotency key: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

/// Why a key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the Idempotency-Key header is required")]
    Missing,
    #[error("the Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters")]
    Malformed,
}

impl IdempotencyKey {
    /// Parses a header value.
    pub fn parse(value: Option<&str>) -> Result<IdempotencyKey, KeyError> {
        let value = value.ok_or(KeyError::Missing)?;
        if value.is_empty()
            || value.len() > MAX_KEY_LEN
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(KeyError::Malformed);
        }
        Ok(IdempotencyKey(value.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 (hex) of a request body's canonical JSON (keys sorted, no insignificant
/// whitespace): two bodies that differ only in formatting or key order are the same request.
pub fn fingerprint(body: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    crate::crypto::sha256_hex(&canonical)
}

/// The response a completed request got, replayed to a retry with the same key and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// One platform's key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub client_id: String,
    pub key: IdempotencyKey,
    /// [`fingerprint`] of the first request's body.
    pub fingerprint: String,
    /// The payment the first request recorded.
    pub payment_id: String,
    /// `None` while the first request is in flight.
    pub response: Option<StoredResponse>,
    pub created_at: DateTime<Utc>,
}

/// What to do with a request, given the record of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The key is new (or forgotten): go ahead.
    Proceed,
    /// Same key, same body, first request finished: answer what it got.
    Same(StoredResponse),
    /// Same key, same body, first request still in flight: 409, try again later.
    InFlight,
    /// Same key, another body: 422.
    Mismatch,
}

/// Decides a request with key record `existing` (the platform's own: keys of other platforms
/// are never looked at) and body fingerprint `fingerprint` at `now`.
pub fn judge(existing: Option<&KeyRecord>, fingerprint: &str, now: DateTime<Utc>) -> Replay {
    match existing {
        None => Replay::Proceed,
        Some(record) if now >= record.created_at + KEY_RETENTION => Replay::Proceed,
        Some(record) if record.fingerprint != fingerprint => Replay::Mismatch,
        Some(KeyRecord {
            response: Some(response),
            ..
        }) => Replay::Same(response.clone()),
        Some(_) => Replay::InFlight,
    }
}
