//! Verification of payee at the payee's bank: which bank answers for an IBAN (the longest
//! `[verification_of_payee].iban_prefixes` entry of the banks in force) and the EPC
//! verification-of-payee request to its endpoint, through the bank's outbound stack.
//!
//! Request: `X-Request-ID` (a fresh UUID), `X-Request-Timestamp`, and `{"party": {"name"},
//! "partyAccount": {"iban"}}`. Answer: `{"partyNameMatch": "MTCH" | "CMTC" | "NMTC" | "NOAP",
//! "matchedName"}`, read into a [`Outcome`]; anything else is a [`AdapterError::Decode`].

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde::Deserialize;

use super::registry::Registry;
use super::{Adapter, AdapterError, outbound};
use crate::payments::verification::{Outcome, ValidVerification};

/// The bank whose manifest answers for `iban` (electronic form): the longest matching prefix,
/// then the lowest bank id; `None` when no bank does.
pub fn bank_for(banks: &Registry, iban: &str) -> Option<Arc<Adapter>> {
    banks
        .iter()
        .filter_map(|adapter| {
            let longest = adapter
                .bank
                .manifest
                .verification_of_payee
                .as_ref()?
                .iban_prefixes
                .iter()
                .filter(|prefix| iban.starts_with(prefix.as_str()))
                .map(String::len)
                .max()?;
            Some((longest, adapter))
        })
        // `iter` is by bank id: the first of the longest wins.
        .fold(
            None,
            |best: Option<(usize, Arc<Adapter>)>, (len, adapter)| match best {
                Some((best_len, _)) if best_len >= len => best,
                _ => Some((len, adapter)),
            },
        )
        .map(|(_, adapter)| adapter)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    party_name_match: String,
    #[serde(default)]
    matched_name: Option<String>,
}

/// Asks `adapter`'s bank whether `request.name` is the name on `request.iban`.
pub async fn ask(adapter: &Adapter, request: &ValidVerification) -> Result<Outcome, AdapterError> {
    let bank = &adapter.bank;
    let Some(endpoint) = &bank.manifest.verification_of_payee else {
        return Err(AdapterError::Refused(
            "the bank declares no verification of payee".into(),
        ));
    };
    let body = serde_json::json!({
        "party": {"name": request.name},
        "partyAccount": {"iban": request.iban},
    });
    let call = bank
        .http
        .post(&endpoint.endpoint)
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .header(
            "x-request-timestamp",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        )
        .json(&body);
    let bytes = bank
        .fetch(call, "verification_of_payee", outbound::no_error_in_body)
        .await
        .map_err(|error| error.at(bank.id()))?;
    let answer: Answer = serde_json::from_slice(&bytes)
        .map_err(|error| AdapterError::Decode(error.to_string()).at(bank.id()))?;
    Outcome::from_epc(&answer.party_name_match, answer.matched_name.as_deref()).ok_or_else(|| {
        AdapterError::Decode("not a verification-of-payee answer".into()).at(bank.id())
    })
}
