//! The detached JWS OBIE requires on payment requests (`x-jws-signature`, Read/Write API
//! 3.1.4 and later): RFC 7515 with a detached, unencoded payload (RFC 7797, `b64: false`),
//! signed with bankgate's key at the bank (its `private_key_jwt` key, which the bank has
//! registered). The header carries OBIE's critical claims — `http://openbanking.org.uk/iat`
//! (now), `…/iss` (bankgate's client id at the bank) and `…/tan` (the trust anchor) — and the
//! signature covers `BASE64URL(header) || '.' || body`, the body bytes exactly as sent.

use serde_json::json;

use crate::adapters::AdapterError;
use crate::jose::{ClientKey, alg_name};

/// The request header.
pub const HEADER: &str = "x-jws-signature";
/// The Open Banking directory's trust anchor.
pub const TRUST_ANCHOR: &str = "openbanking.org.uk";

/// `BASE64URL(header)..BASE64URL(signature)` over `body` for the client `iss` at `now`
/// (seconds).
pub fn detached(key: &ClientKey, iss: &str, body: &[u8], now: i64) -> Result<String, AdapterError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let header = json!({
        "alg": alg_name(key.alg),
        "kid": key.kid,
        "typ": "JOSE",
        "cty": "application/json",
        "b64": false,
        "http://openbanking.org.uk/iat": now,
        "http://openbanking.org.uk/iss": iss,
        "http://openbanking.org.uk/tan": TRUST_ANCHOR,
        "crit": [
            "b64",
            "http://openbanking.org.uk/iat",
            "http://openbanking.org.uk/iss",
            "http://openbanking.org.uk/tan",
        ],
    });
    let encoded = URL_SAFE_NO_PAD.encode(header.to_string());
    let mut input = Vec::with_capacity(encoded.len() + 1 + body.len());
    input.extend_from_slice(encoded.as_bytes());
    input.push(b'.');
    input.extend_from_slice(body);
    let signature = key
        .sign_input(&input)
        .map_err(|_| AdapterError::Refused("the payment request could not be signed".into()))?;
    Ok(format!("{encoded}..{signature}"))
}
