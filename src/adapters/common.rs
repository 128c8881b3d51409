//! Normalisation helpers every profile shares: exact decimals from JSON text (never through
//! `f64`), ISO codes, dates, IBAN check digits, lenient scalars and deterministic transaction
//! ids. None of them panics on bank input.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::AdapterError;

/// Deterministic ids for transactions without a `transactionId`: a hash of what identifies
/// them, with the occurrence number when one report holds identical entries.
#[derive(Default)]
pub struct TransactionIds {
    seen: HashMap<String, usize>,
}

impl TransactionIds {
    /// The id for `key`, told apart from earlier identical keys by their count.
    pub fn derive(&mut self, key: String) -> String {
        let n_seen = self.seen.entry(key.clone()).or_default();
        let key = if *n_seen == 0 {
            key
        } else {
            format!("{key}\0{n_seen}")
        };
        *n_seen += 1;
        let digest = crate::crypto::sha256(key.as_bytes());
        format!("txn_{}", hex::encode(&digest[..12]))
    }

    /// A transaction's id: the bank's own (`given`), or where the bank gave none one derived
    /// from its account, its day (booking, else value date), amount, currency and description —
    /// the same key in every profile.
    pub fn id_or_derived(
        &mut self,
        given: Option<String>,
        account_id: &str,
        day: Option<NaiveDate>,
        amount: impl fmt::Display,
        currency: impl fmt::Display,
        description: Option<&str>,
    ) -> String {
        if let Some(id) = given {
            return id;
        }
        let day = day.map(|day| day.to_string()).unwrap_or_default();
        let description = description.unwrap_or_default();
        self.derive(format!(
            "{account_id}\0{day}\0{amount}\0{currency}\0{description}"
        ))
    }
}

/// A boolean, also accepted as the text `"true"` or `"false"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenientBool(pub bool);

impl<'de> Deserialize<'de> for LenientBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientBoolVisitor;

        impl Visitor<'_> for LenientBoolVisitor {
            type Value = LenientBool;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or \"true\"/\"false\"")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<LenientBool, E> {
                Ok(LenientBool(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<LenientBool, E> {
                match value.trim() {
                    text if text.eq_ignore_ascii_case("true") => Ok(LenientBool(true)),
                    text if text.eq_ignore_ascii_case("false") => Ok(LenientBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                }
            }
        }

        deserializer.deserialize_any(LenientBoolVisitor)
    }
}

/// A [`AdapterError::Decode`] naming where in the payload it happened.
pub fn decode(context: impl fmt::Display, message: impl fmt::Display) -> AdapterError {
    AdapterError::Decode(format!("{context}: {message}"))
}

/// The trimmed text, unless it is empty.
pub fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// An ISO 3166-1 alpha-2 country code as a bank wrote it, upper-cased; `UK` (which OBIE's own
/// examples use) as `GB`; anything but two letters is no country.
pub fn country(text: Option<&str>) -> Option<String> {
    let code = text?.trim().to_ascii_uppercase();
    match code.as_str() {
        "UK" => Some("GB".into()),
        _ if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) => Some(code),
        _ => None,
    }
}

/// The country of an IBAN: its first two letters.
pub fn iban_country(iban: Option<&str>) -> Option<String> {
    country(iban?.trim().get(..2))
}

/// The text of a JSON string or number (numbers as written, never through `f64`).
pub fn json_scalar_text(raw: &RawValue) -> Result<String, String> {
    let text = raw.get().trim();
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).map_err(|_| "not a string".to_owned());
    }
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(text.to_owned());
    }
    Err("not a string or number".to_owned())
}

/// Parses decimal text exactly, keeping its scale: `[+-]digits[.digits][e[+-]digits]`.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let text = text.trim();
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    let exponent_ok = exponent
        .is_none_or(|exponent| digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)));
    if !mantissa_ok || !exponent_ok {
        return Err("not a decimal number".into());
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let parsed = match exponent {
        Some(_) => Decimal::from_scientific(text),
        None => Decimal::from_str_exact(text),
    };
    let mut value = parsed.map_err(|_| "decimal out of range".to_owned())?;
    if value.is_zero() {
        value.set_sign_positive(true);
    }
    Ok(value)
}

/// An ISO 4217 code, upper-cased.
pub fn currency(code: Option<&str>) -> Result<String, String> {
    let code = code.map(str::trim).unwrap_or_default();
    if code.is_empty() {
        return Err("currency is missing".into());
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("currency is not an ISO 4217 code".into());
    }
    Ok(code.to_ascii_uppercase())
}

/// An account's currency; a missing one means several or unknown (`XXX`).
pub fn account_currency(code: Option<&str>) -> Result<String, String> {
    match code.map(str::trim) {
        None | Some("") => Ok("XXX".into()),
        Some(code) => currency(Some(code)),
    }
}

/// An ISO date, also accepted with a time appended.
pub fn date(text: Option<&str>) -> Result<Option<NaiveDate>, String> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let day = match text.split_once('T') {
        Some((day, _)) => day,
        None => text,
    };
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| "not an ISO date".into())
}

/// An ISO date-time; one without zone is taken as UTC.
pub fn date_time(text: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|time| Some(time.and_utc()))
        .map_err(|_| "not an ISO date-time".into())
}

/// The IBAN without spaces, upper-cased, if its ISO 13616 check digits hold.
pub fn normalise_iban(text: &str) -> Option<String> {
    let iban: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = iban.as_bytes();
    let shape_ok = (15..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(u8::is_ascii_alphanumeric);
    if !shape_ok {
        return None;
    }
    let mut remainder = 0u32;
    for &b in bytes[4..].iter().chain(&bytes[..4]) {
        let value = u32::from(b);
        remainder = if b.is_ascii_digit() {
            (remainder * 10 + (value - u32::from(b'0'))) % 97
        } else {
            (remainder * 100 + (value - u32::from(b'A') + 10)) % 97
        };
    }
    (remainder == 1).then_some(iban)
}

/// The links of a list answer that bankgate follows: `{"next": {"href": "…"}}` (Berlin
/// Group's `_links` of a report, STET's `_links`, FDX's `links`).
#[derive(Debug, Default, Deserialize)]
pub struct NextLink {
    pub next: Option<Href>,
}

impl NextLink {
    /// The next page's `href` (trimmed), if there is one that is not empty.
    pub fn href(&self) -> Option<&str> {
        self.next
            .as_ref()
            .and_then(|next| next.href.as_deref())
            .map(str::trim)
            .filter(|href| !href.is_empty())
    }
}

/// `{"href": "..."}` (other members, such as `templated`, are ignored).
#[derive(Debug, Deserialize)]
pub struct Href {
    pub href: Option<String>,
}

/// An amount as Berlin Group and STET write it, `{"currency": "EUR", "amount": "-12.30"}`;
/// the amount is kept as raw JSON text and read exactly by [`Amount::money`].
#[derive(Debug, Deserialize)]
pub struct Amount {
    pub currency: Option<String>,
    pub amount: Option<Box<RawValue>>,
}

impl Amount {
    /// The amount and its currency.
    pub fn money(&self) -> Result<(Decimal, String), String> {
        let raw = self.amount.as_deref().ok_or("amount is missing")?;
        Ok((decimal(raw)?, currency(self.currency.as_deref())?))
    }
}

/// A payment's `instructedAmount` as Berlin Group and STET write it (ISO 20022's currency and
/// amount, both required); the amount is kept as raw JSON text, to be read exactly
/// ([`decimal`]).
#[derive(Debug, Deserialize)]
pub struct InstructedAmount {
    pub currency: String,
    pub amount: Box<RawValue>,
}

/// A Berlin Group or STET balance's amount, currency and time: `balanceAmount`, and
/// `lastChangeDateTime` or else a `referenceDate` alone, taken as the start of that day, UTC;
/// `context` names the balance in errors.
pub fn balance_amount(
    context: &str,
    amount: &Amount,
    last_change_date_time: Option<&str>,
    reference_date: Option<&str>,
) -> Result<(Decimal, String, Option<DateTime<Utc>>), AdapterError> {
    let (amount, currency) = amount
        .money()
        .map_err(|message| decode(format!("{context}.balanceAmount"), message))?;
    let changed = date_time(last_change_date_time)
        .map_err(|message| decode(format!("{context}.lastChangeDateTime"), message))?;
    let reference = date(reference_date)
        .map_err(|message| decode(format!("{context}.referenceDate"), message))?;
    let as_of = changed.or_else(|| reference.map(|day| day.and_time(NaiveTime::MIN).and_utc()));
    Ok((amount, currency, as_of))
}

/// A JSON string or number read as an exact decimal (numbers from their text, never `f64`).
pub fn decimal(raw: &RawValue) -> Result<Decimal, String> {
    parse_decimal(&json_scalar_text(raw)?)
}

/// Applies a credit/debit indicator to an amount a standard sends unsigned: debits become
/// negative. An amount the bank signed anyway is taken by its magnitude, the indicator wins.
pub fn signed(amount: Decimal, debit: bool) -> Decimal {
    let magnitude = amount.abs();
    if debit && !magnitude.is_zero() {
        -magnitude
    } else {
        magnitude
    }
}

/// The text after `schemes` such as `UK.OBIE.` or `OBIE.`, for comparing scheme names.
pub fn scheme_suffix<'a>(scheme: &'a str, prefixes: &[&str]) -> &'a str {
    prefixes
        .iter()
        .find_map(|prefix| scheme.strip_prefix(prefix))
        .unwrap_or(scheme)
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing the profiles share

/// `<api_base_url>/<segments…>`, each segment percent-encoded.
pub fn endpoint(bank: &super::Bank, segments: &[&str]) -> Result<url::Url, AdapterError> {
    let bad_base = || AdapterError::Refused("bank manifest has a bad api_base_url".into());
    let mut url = url::Url::parse(&bank.manifest.api_base_url).map_err(|_| bad_base())?;
    url.path_segments_mut()
        .map_err(|_| bad_base())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The path of a URL the manifest names (an OAuth endpoint): the route of a call to it.
pub fn route_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|url| url.path().to_owned())
        .unwrap_or_default()
}

/// A bank account reference safe to put in a path.
pub fn account_ref(bank_ref: &str) -> Result<&str, AdapterError> {
    if bank_ref.is_empty() || bank_ref == "." || bank_ref == ".." {
        return Err(AdapterError::UnknownAccount);
    }
    Ok(bank_ref)
}

/// The pages of one list a bank serves link by link: at most [`Pages::MAX`], never one twice,
/// so a bank whose links loop or never end gets a clear error instead of a request that hangs.
pub struct Pages {
    visited: std::collections::HashSet<String>,
}

impl Pages {
    /// The most pages one list may have.
    pub const MAX: usize = 100;

    /// A list whose first page is at `first`.
    pub fn new(first: &url::Url) -> Pages {
        Pages {
            visited: [first.to_string()].into(),
        }
    }

    /// `next` as the following page to fetch, unless the list has been there already or
    /// would pass [`Pages::MAX`] pages.
    pub fn admit(&mut self, next: url::Url) -> Result<url::Url, AdapterError> {
        if self.visited.contains(next.as_str()) {
            return Err(AdapterError::Decode("pages link in a circle".into()));
        }
        if self.visited.len() == Self::MAX {
            return Err(AdapterError::Decode(format!(
                "list has more than {} pages",
                Self::MAX
            )));
        }
        self.visited.insert(next.to_string());
        Ok(next)
    }
}

/// Resolves a pagination link: absolute, origin-relative (`/…`) or, as STET and FDX examples
/// write them, relative to the API base (`v1/accounts?page=2`). The result must stay on the
/// API's origin, since it gets the bearer token.
pub fn follow_link(api_base: &str, href: &str) -> Result<url::Url, AdapterError> {
    let bad = || AdapterError::Decode("answer has a bad next link".into());
    let base =
        url::Url::parse(&format!("{}/", api_base.trim_end_matches('/'))).map_err(|_| bad())?;
    let next = base.join(href).map_err(|_| bad())?;
    if next.origin() != base.origin() {
        return Err(AdapterError::Decode(
            "answer links to another origin".into(),
        ));
    }
    Ok(next)
}

/// Keeps what was booked (or, lacking a booking date, valued) on or after `from`; pending
/// transactions without any date are current by definition.
pub fn within(
    transactions: Vec<crate::model::Transaction>,
    from: Option<NaiveDate>,
) -> Vec<crate::model::Transaction> {
    let Some(from) = from else {
        return transactions;
    };
    transactions
        .into_iter()
        .filter(
            |transaction| match transaction.booking_date.or(transaction.value_date) {
                Some(date) => date >= from,
                None => transaction.status == crate::model::TransactionStatus::Pending,
            },
        )
        .collect()
}

/// Sends a request through the bank's outbound stack and decodes the 2xx JSON answer into
/// `T`; `route` is the template of its path at the bank ([`super::Bank::fetch`]);
/// `error_in_body` is the profile's classification hook naming the error of a success answer
/// that carries one (banks send those too).
pub async fn send<T: serde::de::DeserializeOwned>(
    bank: &super::Bank,
    request: reqwest::RequestBuilder,
    route: &'static str,
    error_in_body: fn(&[u8]) -> Option<String>,
) -> Result<T, AdapterError> {
    let body = bank.fetch(request, route, error_in_body).await?;
    serde_json::from_slice(&body).map_err(|error| AdapterError::Decode(error.to_string()))
}

/// Decodes a 2xx body: an error body is [`AdapterError::ErrorBody`], a body not of type `T`
/// [`AdapterError::Decode`] (what [`send`] does after the outbound stack, for tests and for
/// `bankgate adapters normalise`).
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    error_in_body: fn(&[u8]) -> Option<String>,
) -> Result<T, AdapterError> {
    if let Some(error) = error_in_body(body) {
        return Err(AdapterError::ErrorBody(error));
    }
    serde_json::from_slice(body).map_err(|error| AdapterError::Decode(error.to_string()))
}

/// The bank's answer to the deletion of a consent: done when it succeeded, and when the bank no
/// longer knows the consent (it is gone already).
pub fn consent_deleted(status: u16) -> Result<(), AdapterError> {
    if (200..300).contains(&status) || status == 404 {
        return Ok(());
    }
    Err(AdapterError::Status { status })
}

/// A fresh request id (UUID v4).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod pages_tests {
    use super::{AdapterError, Pages};

    fn page(n: usize) -> url::Url {
        url::Url::parse(&format!("https://bank.example/accounts?page={n}")).unwrap()
    }

    #[test]
    fn a_list_may_not_link_back_to_a_page_it_served() {
        let mut pages = Pages::new(&page(1));
        assert_eq!(pages.admit(page(2)).unwrap(), page(2));
        for back in [page(1), page(2)] {
            assert!(matches!(
                pages.admit(back),
                Err(AdapterError::Decode(message)) if message == "pages link in a circle"
            ));
        }
    }

    #[test]
    fn a_list_has_at_most_max_pages() {
        let mut pages = Pages::new(&page(1));
        for n in 2..=Pages::MAX {
            pages.admit(page(n)).unwrap();
        }
        assert!(matches!(
            pages.admit(page(Pages::MAX + 1)),
            Err(AdapterError::Decode(message)) if message == "list has more than 100 pages"
        ));
    }
}
