//! Verification of payee (`POST /v1/payee-verifications`): before a payer pays an account they
//! typed, the payee's bank says whether the name they typed is the name on the account. Pure —
//! no I/O, no HTTP types: the request and its checks, the four answers of the EPC
//! verification-of-payee scheme ([`Outcome`]), what the platform is shown ([`Outcome::view`]:
//! the account masked, the name on the account only with a close match), the audit facts, and
//! the per-platform throttle that keeps the endpoint from enumerating account holders
//! ([`Throttle`], counted by the stores through [`VerificationCounts`]).
//!
//! Where the answer comes from is the caller's: the verification endpoint of the bank that
//! holds the IBAN (its manifest's `[verification_of_payee]`, `adapters::verification`), or
//! `not_possible` when no bank answers for it.

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Invalid, MAX_CREDITOR_NAME_CHARS, parse_iban};
use crate::store_error::StoreError;

/// What a platform asks: is `name` the name on the account `iban`?
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    pub iban: String,
    pub name: String,
}

/// A request whose IBAN is valid (format and checksum) and whose name is 1 to
/// [`MAX_CREDITOR_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidVerification {
    /// Electronic form.
    pub iban: String,
    /// Trimmed.
    pub name: String,
}

impl VerificationRequest {
    /// Checks the request as a payment's payee would be checked (the same problems).
    pub fn validate(&self) -> Result<ValidVerification, Invalid> {
        let iban = parse_iban(&self.iban)?;
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_CREDITOR_NAME_CHARS || name.contains('\0')
        {
            return Err(Invalid::CreditorName);
        }
        Ok(ValidVerification {
            iban,
            name: name.to_owned(),
        })
    }
}

/// The answer: the EPC scheme's four (`MTCH`, `CMTC`, `NMTC`, `NOAP`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The name is the account holder's.
    Match,
    /// Almost: the name on the account is shown so that the payer can check it.
    CloseMatch { name_on_account: String },
    /// The name is not the account holder's.
    NoMatch,
    /// No bank could check it (no bank answers for this IBAN, the account is unknown or
    /// closed, or the bank failed).
    NotPossible,
}

impl Outcome {
    /// The wire name (`close_match`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::CloseMatch { .. } => "close_match",
            Outcome::NoMatch => "no_match",
            Outcome::NotPossible => "not_possible",
        }
    }

    /// The scheme's answer: `partyNameMatch` and, with a close match, `matchedName`. An
    /// unknown code, or a close match without a name, is not an answer.
    pub fn from_epc(code: &str, matched_name: Option<&str>) -> Option<Outcome> {
        match (code, matched_name.map(str::trim)) {
            ("MTCH", _) => Some(Outcome::Match),
            ("CMTC", Some(name)) if !name.is_empty() => Some(Outcome::CloseMatch {
                name_on_account: name.chars().take(140).collect(),
            }),
            ("NMTC", _) => Some(Outcome::NoMatch),
            ("NOAP", _) => Some(Outcome::NotPossible),
            _ => None,
        }
    }

    /// What the platform is shown: `result`, the account masked (`DE89 •••• 3000`), and the
    /// name on the account with a close match only.
    pub fn view(&self, iban: &str) -> serde_json::Value {
        let mut view = serde_json::json!({
            "result": self.as_str(),
            "account": crate::model::show_iban(iban),
        });
        if let Outcome::CloseMatch { name_on_account } = self {
            view["name_on_account"] = serde_json::Value::String(name_on_account.clone());
        }
        view
    }
}

impl ValidVerification {
    /// The audit facts: the account masked (never in the clear) and, once known, the answer.
    pub fn facts(&self, outcome: Option<&Outcome>) -> Vec<String> {
        let mut facts = vec![format!(
            "payee_account:{}",
            crate::model::mask_iban(&self.iban)
        )];
        if let Some(outcome) = outcome {
            facts.push(format!("result:{}", outcome.as_str()));
        }
        facts
    }
}

/// How many verifications a platform may ask per minute (every instance counted together):
/// enough for its users' payments, too few to walk through account numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub per_minute: u32,
}

/// The default of `payee_verifications_per_minute`.
pub const DEFAULT_PER_MINUTE: u32 = 30;

impl Throttle {
    /// The window `now` counts in: its UTC minute.
    pub fn window(now: DateTime<Utc>) -> DateTime<Utc> {
        now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now)
    }

    /// Seconds until the next window (at least 1): the `Retry-After` of a throttled request.
    pub fn retry_after_secs(now: DateTime<Utc>) -> u64 {
        let next = Throttle::window(now) + TimeDelta::minutes(1);
        u64::try_from((next - now).num_seconds())
            .unwrap_or(0)
            .max(1)
    }
}

/// The verifications counted per platform and minute, in the store (so that every instance
/// counts against one limit).
#[async_trait]
pub trait VerificationCounts: Send + Sync + 'static {
    /// Counts one verification of `client_id` in `window` if fewer than `limit` were counted
    /// there; whether it was (concurrent calls never count past the limit). Windows before
    /// `window` are forgotten as it goes.
    async fn count_verification(
        &self,
        client_id: &str,
        window: DateTime<Utc>,
        limit: u32,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_like_a_payee() {
        let ok = VerificationRequest {
            iban: "de89 3704 0044 0532 0130 00".into(),
            name: " Max Mustermann ".into(),
        }
        .validate()
        .unwrap();
        assert_eq!(ok.iban, "DE89370400440532013000");
        assert_eq!(ok.name, "Max Mustermann");
        let bad_iban = VerificationRequest {
            iban: "DE89370400440532013001".into(),
            name: "Max".into(),
        };
        assert_eq!(bad_iban.validate(), Err(Invalid::InvalidIban));
        for name in ["", "  ", &"x".repeat(71)] {
            let request = VerificationRequest {
                iban: "DE89370400440532013000".into(),
                name: name.into(),
            };
            assert_eq!(request.validate(), Err(Invalid::CreditorName), "{name:?}");
        }
    }

    #[test]
    fn the_four_answers_and_what_the_platform_sees() {
        let iban = "DE89370400440532013000";
        let close = Outcome::from_epc("CMTC", Some("Max Mustermann")).unwrap();
        assert_eq!(
            close.view(iban),
            serde_json::json!({"result": "close_match", "account": "DE89 •••• 3000",
                "name_on_account": "Max Mustermann"})
        );
        for (code, result) in [
            ("MTCH", "match"),
            ("NMTC", "no_match"),
            ("NOAP", "not_possible"),
        ] {
            let outcome = Outcome::from_epc(code, Some("Max Mustermann")).unwrap();
            let view = outcome.view(iban);
            assert_eq!(view["result"], result);
            assert!(view.get("name_on_account").is_none(), "{view}");
            assert!(!view.to_string().contains("0532"), "{view}");
        }
        assert_eq!(Outcome::from_epc("CMTC", None), None);
        assert_eq!(Outcome::from_epc("CMTC", Some(" ")), None);
        assert_eq!(Outcome::from_epc("XXXX", None), None);
        let valid = ValidVerification {
            iban: iban.into(),
            name: "Max".into(),
        };
        let facts = valid.facts(Some(&close)).join(" ");
        assert!(!facts.contains(iban), "{facts}");
        assert!(facts.contains("result:close_match"), "{facts}");
    }

    #[test]
    fn the_throttle_counts_by_minute() {
        let now: DateTime<Utc> = "2026-03-01T10:15:42.5Z".parse().unwrap();
        assert_eq!(
            Throttle::window(now),
            "2026-03-01T10:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(Throttle::retry_after_secs(now), 17);
        let edge: DateTime<Utc> = "2026-03-01T10:15:00Z".parse().unwrap();
        assert_eq!(Throttle::retry_after_secs(edge), 60);
    }
}
