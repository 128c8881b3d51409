//! Verification of payee, as every sandbox bank answers it: the EPC verification-of-payee
//! scheme's request and response (`POST /vop/v1/payee-verifications`), the bank being the
//! responding PSP for the accounts of its customers.
//!
//! Request: the headers `X-Request-ID` and `X-Request-Timestamp`, and
//! `{"party": {"name": …}, "partyAccount": {"iban": …}, …}` (the agents' identifications are
//! accepted and not checked). Response: `200 {"partyNameMatch": "MTCH" | "CMTC" | "NMTC" |
//! "NOAP", "matchedName": …}` — `matchedName` only with a close match, as the scheme asks —
//! with `X-Request-ID` played back. `NOAP` for an account the bank cannot verify (unknown or
//! closed). A real responding PSP authenticates its requester (mutual TLS with a qualified
//! certificate); the sandbox does not.
//!
//! The bank's own matching (a bank's software is its own; bankgate's is `payee_match`): case,
//! accents, punctuation and word order do not count (`MTCH`); the same family name with the
//! other words matching by initial or one typing error is `CMTC`; anything else `NMTC`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Bank, Standard};
use crate::ledger::account_by_iban;

/// The path of the verification endpoint.
pub const VOP_PATH: &str = "/vop/v1/payee-verifications";

pub fn routes<S: Standard>() -> Router<Arc<Bank<S>>> {
    Router::new().route(VOP_PATH, post(verify::<S>))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VopRequest {
    party: Party,
    party_account: PartyAccount,
}

#[derive(Deserialize)]
struct Party {
    name: String,
}

#[derive(Deserialize)]
struct PartyAccount {
    iban: String,
}

async fn verify<S: Standard>(
    State(bank): State<Arc<Bank<S>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError<S>> {
    let request_id = headers
        .get("x-request-id")
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "X-Request-ID is required"))?;
    if !headers.contains_key("x-request-timestamp") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "X-Request-Timestamp is required",
        ));
    }
    let request: VopRequest = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "FORMAT_ERROR"))?;
    let answer = match account_by_iban(&request.party_account.iban) {
        Some((customer, _)) if !bank.ledger.is_closed(&request.party_account.iban) => {
            match compare(&request.party.name, &customer.name) {
                Outcome::Match => json!({"partyNameMatch": "MTCH"}),
                Outcome::Close => json!({"partyNameMatch": "CMTC", "matchedName": customer.name}),
                Outcome::None => json!({"partyNameMatch": "NMTC"}),
            }
        }
        _ => json!({"partyNameMatch": "NOAP"}),
    };
    let mut response = Json(answer).into_response();
    response.headers_mut().insert("x-request-id", request_id);
    response.headers_mut().insert(
        "x-response-timestamp",
        HeaderValue::from_str(&bank.ledger.clock().now().to_rfc3339())
            .unwrap_or(HeaderValue::from_static("1970-01-01T00:00:00Z")),
    );
    Ok(response)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Match,
    Close,
    None,
}

/// Lower-case ASCII words: accents dropped (the letters this sandbox's customers use),
/// punctuation separating words.
fn words(name: &str) -> Vec<String> {
    let folded: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().map(str::to_owned).collect()
}

fn compare(typed: &str, on_account: &str) -> Outcome {
    let mut typed = words(typed);
    let mut held = words(on_account);
    if typed.is_empty() {
        return Outcome::None;
    }
    let family = held.last().cloned().unwrap_or_default();
    typed.sort();
    held.sort();
    if typed == held {
        return Outcome::Match;
    }
    if typed.len() == held.len() && typed.contains(&family) {
        let mut others: Vec<&String> = held.iter().filter(|word| **word != family).collect();
        let close = typed.iter().filter(|word| **word != family).all(|word| {
            let found = others.iter().position(|other| {
                word.len() == 1 && other.starts_with(word.as_str()) || one_edit(word, other)
            });
            found.map(|index| others.remove(index)).is_some()
        });
        if close {
            return Outcome::Close;
        }
    }
    Outcome::None
}

/// Whether `a` becomes `b` by one insertion, deletion or substitution.
fn one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(&long).take_while(|(x, y)| x == y).count();
    if prefix == long.len() {
        true
    } else if short.len() == long.len() {
        short[prefix + 1..] == long[prefix + 1..]
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, compare};

    #[test]
    fn the_banks_own_matching() {
        let cases = [
            ("Alice Schmidt", "Alice Schmidt", Outcome::Match),
            ("SCHMIDT, alice", "Alice Schmidt", Outcome::Match),
            ("A. Schmidt", "Alice Schmidt", Outcome::Close),
            ("Alise Schmidt", "Alice Schmidt", Outcome::Close),
            ("Alice Schmid", "Alice Schmidt", Outcome::None),
            ("Bob Turner", "Alice Schmidt", Outcome::None),
            ("Schmidt", "Alice Schmidt", Outcome::None),
            ("", "Alice Schmidt", Outcome::None),
            ("Carol Nguyen", "Carol Nguyen", Outcome::Match),
            ("Carol Nguyên", "Carol Nguyen", Outcome::Match),
        ];
        for (typed, held, expected) in cases {
            assert_eq!(compare(typed, held), expected, "{typed:?} vs {held:?}");
        }
    }
}
