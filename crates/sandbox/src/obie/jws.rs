//! The OBIE detached JWS (`x-jws-signature`, Read/Write API 3.1.4 and later): RFC 7515 with
//! a detached, unencoded payload (RFC 7797, `b64: false`), the header
//! `{alg, kid, b64: false, crit: ["b64", "http://openbanking.org.uk/iat",
//! "http://openbanking.org.uk/iss", "http://openbanking.org.uk/tan"], …}` and the signature
//! over `BASE64URL(header) || '.' || body`, written `BASE64URL(header)..BASE64URL(signature)`.
//!
//! The bank verifies it against the keys the TPP registered (its `private_key_jwt` keys):
//! the algorithm the key pins, the `kid`, `b64` false, the critical OB claims present and
//! understood, `iss` the TPP's client id, `tan` the trust anchor `openbanking.org.uk`, `iat`
//! not in the future; then the signature over the body bytes exactly as received.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::oauth::ClientKeys;

/// The request header carrying the signature.
pub const HEADER: &str = "x-jws-signature";
/// The trust anchor the sandbox accepts.
pub const TRUST_ANCHOR: &str = "openbanking.org.uk";
const IAT: &str = "http://openbanking.org.uk/iat";
const ISS: &str = "http://openbanking.org.uk/iss";
const TAN: &str = "http://openbanking.org.uk/tan";
/// Clock skew allowed on `iat`.
const LEEWAY_SECS: i64 = 60;

/// Why a signature was refused: the OBIE error code and what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn malformed(message: &str) -> Refusal {
    refuse("UK.OBIE.Signature.Malformed", message)
}

fn invalid_claim(message: &str) -> Refusal {
    refuse("UK.OBIE.Signature.InvalidClaim", message)
}

fn missing_claim(message: &str) -> Refusal {
    refuse("UK.OBIE.Signature.MissingClaim", message)
}

/// Verifies `signature` (the header's value, if any) over `body` for `client_id` with its
/// registered `keys` at `now` (seconds).
pub fn verify(
    signature: Option<&str>,
    body: &[u8],
    keys: Option<&ClientKeys>,
    client_id: &str,
    now: i64,
) -> Result<(), Refusal> {
    let signature = signature
        .ok_or_else(|| refuse("UK.OBIE.Signature.Missing", "x-jws-signature is missing"))?;
    let keys = keys.ok_or_else(|| {
        refuse(
            "UK.OBIE.Signature.Invalid",
            "the TPP has registered no key to verify signatures with",
        )
    })?;
    let mut parts = signature.trim().split('.');
    let (Some(encoded_header), Some(""), Some(encoded_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "x-jws-signature must be a detached JWS: header..signature",
        ));
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| malformed("the JWS header is not base64url JSON"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| missing_claim("kid is missing"))?;
    let (alg, key) = keys
        .find(Some(kid))
        .ok_or_else(|| refuse("UK.OBIE.Signature.Invalid", "unknown kid"))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if serde_json::to_value(alg)
        .ok()
        .as_ref()
        .and_then(Value::as_str)
        != Some(alg_name)
    {
        return Err(invalid_claim("alg is not the algorithm of the key"));
    }
    if header.get("b64") != Some(&Value::Bool(false)) {
        return Err(invalid_claim("b64 must be false"));
    }
    let crit: Vec<&str> = header
        .get("crit")
        .and_then(Value::as_array)
        .ok_or_else(|| missing_claim("crit is missing"))?
        .iter()
        .map(|name| name.as_str().unwrap_or_default())
        .collect();
    for required in ["b64", IAT, ISS, TAN] {
        if !crit.contains(&required) {
            return Err(missing_claim(&format!("crit must list {required}")));
        }
    }
    if let Some(unknown) = crit
        .iter()
        .find(|name| !["b64", IAT, ISS, TAN].contains(name))
    {
        return Err(invalid_claim(&format!(
            "crit names {unknown:?}, not understood"
        )));
    }
    let iat = header
        .get(IAT)
        .and_then(Value::as_i64)
        .ok_or_else(|| missing_claim("http://openbanking.org.uk/iat must be a number"))?;
    if iat > now + LEEWAY_SECS {
        return Err(invalid_claim(
            "http://openbanking.org.uk/iat lies in the future",
        ));
    }
    if header.get(ISS).and_then(Value::as_str) != Some(client_id) {
        return Err(invalid_claim(
            "http://openbanking.org.uk/iss is not the TPP",
        ));
    }
    if header.get(TAN).and_then(Value::as_str) != Some(TRUST_ANCHOR) {
        return Err(invalid_claim(
            "http://openbanking.org.uk/tan is not a trusted anchor",
        ));
    }
    let mut message = Vec::with_capacity(encoded_header.len() + 1 + body.len());
    message.extend_from_slice(encoded_header.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    match jsonwebtoken::crypto::verify(encoded_signature, &message, key, alg) {
        Ok(true) => Ok(()),
        _ => Err(refuse(
            "UK.OBIE.Signature.Invalid",
            "the signature does not verify over the body",
        )),
    }
}
