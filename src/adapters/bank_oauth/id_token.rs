//! The person a bank's OpenID Connect ID token names: the bank's own identifier for the person
//! who approved (`sub`), read from the token answer of the code exchange.
//!
//! The ID token comes straight from the bank's token endpoint, over bankgate's own client
//! connection to the bank (which never follows redirects), so — as OpenID Connect Core 1.0
//! §3.1.3.7 allows for a token received that way — the bank's server identity stands in for
//! the token's signature, which is not checked. Its claims are: `iss` must be the bank's
//! issuer, `aud` must name bankgate's client id at the bank, `exp` must lie ahead, and `sub`
//! must be a non-empty identifier of at most 255 characters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::adapters::{AdapterError, Bank};

/// The person an ID token names at one bank.
#[derive(Clone, PartialEq, Eq)]
pub struct BankPerson {
    /// The bank's identifier for the person (`sub`), unique at the bank.
    pub subject: String,
    /// The person's name, when the bank gives it (`name`).
    pub name: Option<String>,
}

impl std::fmt::Debug for BankPerson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankPerson").finish_non_exhaustive()
    }
}

/// An audience: one client id or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    name: Option<String>,
}

/// The longest `sub` OpenID Connect allows.
const MAX_SUBJECT: usize = 255;

fn refused(what: &str) -> AdapterError {
    AdapterError::Refused(format!("the bank's ID token {what}"))
}

/// The person `id_token` names, checked against `bank` at `now` (see the module's text).
pub fn person(bank: &Bank, id_token: &str, now: DateTime<Utc>) -> Result<BankPerson, AdapterError> {
    let issuer = bank
        .manifest
        .oauth
        .issuer
        .as_deref()
        .ok_or_else(|| refused("cannot be checked: the bank's manifest names no issuer"))?;
    check(issuer, &bank.client_id, id_token, now)
}

fn check(
    issuer: &str,
    client_id: &str,
    id_token: &str,
    now: DateTime<Utc>,
) -> Result<BankPerson, AdapterError> {
    let mut parts = id_token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("is not a compact JWT"));
    };
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| refused("has unreadable claims"))?;
    if claims.iss != issuer {
        return Err(refused("was issued by another issuer"));
    }
    let audience_ok = match &claims.aud {
        Audience::One(audience) => audience == client_id,
        Audience::Many(audiences) => audiences.iter().any(|audience| audience == client_id),
    };
    if !audience_ok {
        return Err(refused("is meant for another client"));
    }
    if claims.exp <= now.timestamp() {
        return Err(refused("has expired"));
    }
    let subject_ok = !claims.sub.is_empty()
        && claims.sub.chars().count() <= MAX_SUBJECT
        && !claims.sub.chars().any(char::is_control);
    if !subject_ok {
        return Err(refused("names no usable subject"));
    }
    Ok(BankPerson {
        subject: claims.sub,
        name: claims
            .name
            .filter(|name| !name.trim().is_empty() && !name.chars().any(char::is_control)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        format!(
            "{}.{}.{}",
            encode(br#"{"alg":"HS256"}"#),
            encode(claims.to_string().as_bytes()),
            encode(b"signature")
        )
    }

    #[track_caller]
    fn check_claims(claims: serde_json::Value, expected: Result<&str, &str>) {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let answer = check("https://bank.example", "bankgate", &token(claims), now);
        match (answer, expected) {
            (Ok(person), Ok(subject)) => assert_eq!(person.subject, subject),
            (Err(error), Err(text)) => assert!(error.to_string().contains(text), "{error}"),
            (answer, expected) => panic!("{answer:?} where {expected:?} was expected"),
        }
    }

    #[test]
    fn id_token_claims_are_checked() {
        let good = serde_json::json!({"iss": "https://bank.example", "sub": "alice",
            "aud": "bankgate", "exp": 1_000_060, "name": "Alice"});
        check_claims(good.clone(), Ok("alice"));
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = good.clone();
            claims[key] = value;
            claims
        };
        check_claims(
            with("aud", serde_json::json!(["x", "bankgate"])),
            Ok("alice"),
        );
        check_claims(
            with("iss", "https://other.example".into()),
            Err("another issuer"),
        );
        check_claims(with("aud", "someone-else".into()), Err("another client"));
        check_claims(with("aud", serde_json::json!(["x"])), Err("another client"));
        check_claims(with("exp", 1_000_000.into()), Err("expired"));
        check_claims(with("sub", "".into()), Err("no usable subject"));
        check_claims(with("sub", "a\nb".into()), Err("no usable subject"));
        check_claims(
            with("sub", "x".repeat(256).into()),
            Err("no usable subject"),
        );
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        for broken in ["", "a.b", "a.b.c.d", "a.!!!.c"] {
            assert!(check("https://bank.example", "bankgate", broken, now).is_err());
        }
    }
}
