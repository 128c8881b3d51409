//! The `[mapping]` section of a manifest ([`MappingSpec`], serde) and its compiler
//! ([`compile`]): every rule is checked once, when the manifest is loaded, and a rule that
//! does not compile is a manifest error naming the rule (`mapping.balances.fields.amount: …`).
//!
//! A field rule is a JSON pointer (RFC 6901) into one item of the bank's list, or a constant,
//! with small transforms:
//!
//! ```toml
//! [mapping.balances.fields]
//! currency = "/ccy"                                    # a pointer
//! type = { pointer = "/kind", values = { BOOKED = "closing_booked" } }   # an enum table
//! amount = { pointer = "/amountMinor", minor_units = "currency",       # minor units, ISO 4217
//!            sign = { pointer = "/dc", debit = ["D"], credit = ["C"] } }  # sign from indicator
//! as_of = { pointer = "/asOf", format = "%d.%m.%Y %H:%M" }             # a date format
//! credit_limit_included = { value = "false" }                           # a constant
//! ```
//!
//! `format` is `iso` (the default), `unix` (seconds), `unix_ms`, or a chrono `strftime`
//! pattern. `minor_units` is `"currency"` (the ISO 4217 exponent of the record's currency) or
//! a fixed exponent. `values` maps the bank's codes to canonical ones; `default` stands in
//! when the field is missing or its code is not in the table.

use std::collections::BTreeMap;
use std::fmt;

use chrono::format::StrftimeItems;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::VariantNames;

use crate::model::Scope;
use crate::model::WireName;
use crate::payments::BankStatus;

/// `[mapping]`: how a proprietary API maps onto the canonical model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The bank's OAuth scope(s) (space-separated) for each canonical scope a consent covers,
    /// e.g. `{ accounts = "read:accounts", balances = "read:balances" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scopes: BTreeMap<String, String>,
    /// Constant headers sent with every data call (never credentials: those are refused).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A header that carries a fresh request id on every call, e.g. `X-Request-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id_header: Option<String>,
    /// A pointer into success bodies: when it points at something other than `null`, the
    /// answer is an error body (the profile's classification hook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_pointer: Option<String>,
    pub accounts: EndpointSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<EndpointSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<EndpointSpec>,
    /// Payment initiation ([`PaymentsSpec`]; applied by `mapping/payments.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<PaymentsSpec>,
}

/// One endpoint: where the list is and how its items map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Path under `api_base_url`; the segment `{account}` is the account's bank reference.
    pub path: String,
    /// Pointer to the array of items (`""`: the body is the array).
    #[serde(default)]
    pub items: String,
    /// Pointer to the next page's link, if the bank pages (followed on its own origin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Transactions: the query parameter that asks for entries from a day on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_param: Option<String>,
    /// Transactions: the day's format in `from_param` (strftime; default `%Y-%m-%d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_format: Option<String>,
    /// Canonical field name → rule.
    pub fields: BTreeMap<String, FieldRule>,
}

/// A field rule: a bare pointer, or a table with transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRule {
    Pointer(String),
    Rule(Rule),
}

/// A field rule with transforms (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// A constant instead of a pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The bank's codes → canonical values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// When the field is missing, or its code is not in `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Dates and date-times: `iso`, `unix`, `unix_ms` or a strftime pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Amounts in minor units: `"currency"` or a fixed exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_units: Option<MinorUnits>,
    /// Amounts: the sign comes from an indicator field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignSpec>,
}

/// How many decimals a minor-unit amount has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MinorUnits {
    /// Always this many.
    Exponent(u32),
    /// A name: `currency` (the record currency's ISO 4217 exponent) is the only one.
    Named(String),
}

/// `sign = { pointer = "/dc", debit = ["D"], credit = ["C"] }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignSpec {
    pub pointer: String,
    pub debit: Vec<String>,
    pub credit: Vec<String>,
}

impl<'de> Deserialize<'de> for FieldRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldRuleVisitor;

        impl<'de> Visitor<'de> for FieldRuleVisitor {
            type Value = FieldRule;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON pointer or a rule table")
            }

            fn visit_str<E: de::Error>(self, pointer: &str) -> Result<FieldRule, E> {
                Ok(FieldRule::Pointer(pointer.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldRule, A::Error> {
                // Keeps the rule's own error ("unknown field `pointr`").
                Rule::deserialize(de::value::MapAccessDeserializer::new(map)).map(FieldRule::Rule)
            }
        }

        deserializer.deserialize_any(FieldRuleVisitor)
    }
}

impl Serialize for FieldRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldRule::Pointer(pointer) => serializer.serialize_str(pointer),
            FieldRule::Rule(rule) => rule.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MinorUnitsVisitor;

        impl Visitor<'_> for MinorUnitsVisitor {
            type Value = MinorUnits;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"currency\" or an exponent (0-18)")
            }

            fn visit_u64<E: de::Error>(self, exponent: u64) -> Result<MinorUnits, E> {
                u32::try_from(exponent)
                    .map(MinorUnits::Exponent)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(exponent), &self))
            }

            fn visit_i64<E: de::Error>(self, exponent: i64) -> Result<MinorUnits, E> {
                u32::try_from(exponent)
                    .map(MinorUnits::Exponent)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(exponent), &self))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<MinorUnits, E> {
                Ok(MinorUnits::Named(name.to_owned()))
            }
        }

        deserializer.deserialize_any(MinorUnitsVisitor)
    }
}

impl Serialize for MinorUnits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MinorUnits::Exponent(exponent) => serializer.serialize_u32(*exponent),
            MinorUnits::Named(name) => serializer.serialize_str(name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the rules map onto

/// What kind of value a canonical field holds, which decides the transforms it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// ISO 4217.
    Currency,
    /// A decimal amount (minor units and sign allowed).
    Amount,
    Date,
    DateTime,
    Bool,
    /// One of these canonical codes.
    Enum(&'static [&'static str]),
}

/// Canonical account types.
pub const ACCOUNT_TYPES: &[&str] = &["current", "savings", "card", "loan", "other"];
/// Canonical account statuses.
pub const ACCOUNT_STATUSES: &[&str] = &["enabled", "blocked", "deleted"];
/// Canonical balance types (`other` keeps the bank's code as the original name).
pub const BALANCE_TYPES: &[&str] = &[
    "closing_booked",
    "opening_booked",
    "interim_booked",
    "interim_available",
    "expected",
    "forward_available",
    "authorised",
    "credit_limit",
    "other",
];
/// Canonical transaction statuses.
pub const TRANSACTION_STATUSES: &[&str] = &["booked", "pending"];
const BOOLEANS: &[&str] = &["true", "false"];

/// The fields of an account item, and which of them a mapping must give.
pub const ACCOUNT_FIELDS: &[(&str, Kind)] = &[
    ("bank_ref", Kind::Text),
    ("display_name", Kind::Text),
    ("type", Kind::Enum(ACCOUNT_TYPES)),
    ("currency", Kind::Currency),
    ("iban", Kind::Text),
    ("bban", Kind::Text),
    ("sort_code", Kind::Text),
    ("account_number", Kind::Text),
    ("pan_masked", Kind::Text),
    ("holder_name", Kind::Text),
    ("status", Kind::Enum(ACCOUNT_STATUSES)),
];
const ACCOUNT_REQUIRED: &[&str] = &["bank_ref"];

/// The fields of a balance item.
pub const BALANCE_FIELDS: &[(&str, Kind)] = &[
    ("type", Kind::Enum(BALANCE_TYPES)),
    ("amount", Kind::Amount),
    ("currency", Kind::Currency),
    ("credit_limit_included", Kind::Bool),
    ("as_of", Kind::DateTime),
];
const BALANCE_REQUIRED: &[&str] = &["type", "amount", "currency"];

/// The fields of a transaction item.
pub const TRANSACTION_FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("status", Kind::Enum(TRANSACTION_STATUSES)),
    ("booking_date", Kind::Date),
    ("value_date", Kind::Date),
    ("amount", Kind::Amount),
    ("currency", Kind::Currency),
    ("description", Kind::Text),
    ("counterparty_name", Kind::Text),
    ("merchant_category_code", Kind::Text),
    ("bank_code", Kind::Text),
];
const TRANSACTION_REQUIRED: &[&str] = &["amount", "currency"];

// ---------------------------------------------------------------------------------------------
// Compiled rules

/// A rule that does not compile, named by its place in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping rule {rule}: {message}")]
pub struct RuleError {
    /// e.g. `mapping.balances.fields.amount`.
    pub rule: String,
    pub message: String,
}

/// An RFC 6901 JSON pointer, split into unescaped reference tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    pub text: String,
    pub tokens: Vec<String>,
}

impl Pointer {
    /// Parses `text`: empty (the whole value) or `/`-separated tokens with `~0` and `~1`.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer (it must start with /)"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    token.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => return Err(format!("{text:?}: ~ must be followed by 0 or 1")),
                }
            }
            tokens.push(token);
        }
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
        })
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pointer(Pointer),
    Constant(String),
}

/// How a date or date-time is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    Iso,
    Unix,
    UnixMillis,
    Strftime(String),
}

/// How many decimals a minor-unit amount has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exponent {
    Fixed(u32),
    /// The record currency's ISO 4217 exponent.
    Currency,
}

/// A compiled sign indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    pub pointer: Pointer,
    pub debit: Vec<String>,
    pub credit: Vec<String>,
}

/// A compiled field rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub kind: Kind,
    pub source: Source,
    pub values: Option<BTreeMap<String, String>>,
    pub default: Option<String>,
    pub format: DateFormat,
    pub minor_units: Option<Exponent>,
    pub sign: Option<Sign>,
}

/// A compiled endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Path segments; `None` is the `{account}` placeholder.
    pub segments: Vec<Option<String>>,
    pub query: Option<String>,
    pub items: Pointer,
    pub next: Option<Pointer>,
    pub from_param: Option<String>,
    pub from_format: String,
    pub fields: BTreeMap<&'static str, Compiled>,
}

impl Endpoint {
    /// The path's template (`/api/v2/me/accounts/{account}/positions`): the route of a call.
    pub fn route(&self) -> String {
        let mut route = String::new();
        for segment in &self.segments {
            route.push('/');
            route.push_str(segment.as_deref().unwrap_or("{account}"));
        }
        route
    }

    /// The rule of a canonical field, if the mapping gives one.
    pub fn field(&self, name: &str) -> Option<&Compiled> {
        self.fields.get(name)
    }
}

/// A compiled `[mapping]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledMapping {
    /// The bank's OAuth scopes per canonical scope.
    pub scopes: BTreeMap<Scope, Vec<String>>,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub request_id_header: Option<reqwest::header::HeaderName>,
    pub error_pointer: Option<Pointer>,
    pub accounts: Endpoint,
    pub balances: Option<Endpoint>,
    pub transactions: Option<Endpoint>,
    pub payments: Option<CompiledPayments>,
}

/// Headers a mapping may not set: credentials travel by reference only.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
];

/// Compiles a `[mapping]` section; the error names the first rule that does not compile.
pub fn compile(spec: &MappingSpec) -> Result<CompiledMapping, RuleError> {
    let error = |rule: &str, message: String| RuleError {
        rule: format!("mapping.{rule}"),
        message,
    };
    let mut scopes = BTreeMap::new();
    for (name, bank_scopes) in &spec.scopes {
        let scope = Scope::parse(name).ok_or_else(|| {
            error(
                &format!("scopes.{name}"),
                "not a canonical scope (accounts, balances, transactions, identity)".into(),
            )
        })?;
        let tokens: Vec<String> = bank_scopes
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        if tokens.is_empty() || tokens.iter().any(|token| token.contains('"')) {
            return Err(error(
                &format!("scopes.{name}"),
                "must name one or more OAuth scopes".into(),
            ));
        }
        scopes.insert(scope, tokens);
    }
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        let rule = format!("headers.{name}");
        let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| error(&rule, "not a header name".into()))?;
        if FORBIDDEN_HEADERS.contains(&header.as_str()) {
            return Err(error(
                &rule,
                "may not be set by a mapping (credentials are resolved by reference)".into(),
            ));
        }
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| error(&rule, "not a header value".into()))?;
        headers.push((header, value));
    }
    let request_id_header = spec
        .request_id_header
        .as_deref()
        .map(|name| {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error("request_id_header", "not a header name".into()))
        })
        .transpose()?;
    let error_pointer = spec
        .error_pointer
        .as_deref()
        .map(|text| Pointer::parse(text).map_err(|message| error("error_pointer", message)))
        .transpose()?;
    let accounts = endpoint(
        "accounts",
        &spec.accounts,
        ACCOUNT_FIELDS,
        ACCOUNT_REQUIRED,
        false,
    )?;
    let balances = spec
        .balances
        .as_ref()
        .map(|spec| endpoint("balances", spec, BALANCE_FIELDS, BALANCE_REQUIRED, true))
        .transpose()?;
    let transactions = spec
        .transactions
        .as_ref()
        .map(|spec| {
            endpoint(
                "transactions",
                spec,
                TRANSACTION_FIELDS,
                TRANSACTION_REQUIRED,
                true,
            )
        })
        .transpose()?;
    let payments = spec.payments.as_ref().map(compile_payments).transpose()?;
    Ok(CompiledMapping {
        scopes,
        headers,
        request_id_header,
        error_pointer,
        accounts,
        balances,
        transactions,
        payments,
    })
}

fn endpoint(
    name: &str,
    spec: &EndpointSpec,
    known: &'static [(&'static str, Kind)],
    required: &[&str],
    per_account: bool,
) -> Result<Endpoint, RuleError> {
    let error = |rule: &str, message: String| RuleError {
        rule: format!("mapping.{name}.{rule}"),
        message,
    };
    let (path, query) = match spec.path.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (spec.path.as_str(), None),
    };
    let Some(path) = path.strip_prefix('/') else {
        return Err(error("path", "must start with /".into()));
    };
    let mut segments = Vec::new();
    for segment in path.split('/') {
        if segment == "{account}" {
            segments.push(None);
        } else if segment.contains(['{', '}']) {
            return Err(error(
                "path",
                format!("{segment:?}: the only placeholder is the whole segment {{account}}"),
            ));
        } else if segment == "." || segment == ".." {
            return Err(error("path", "must not contain . or .. segments".into()));
        } else {
            segments.push(Some(segment.to_owned()));
        }
    }
    let placeholders = segments.iter().filter(|segment| segment.is_none()).count();
    match (per_account, placeholders) {
        (true, 1) | (false, 0) => {}
        (true, _) => {
            return Err(error(
                "path",
                "must contain the segment {account} exactly once".into(),
            ));
        }
        (false, _) => return Err(error("path", "lists accounts: no {account} here".into())),
    }
    let items = Pointer::parse(&spec.items).map_err(|message| error("items", message))?;
    let next = spec
        .next
        .as_deref()
        .map(|text| Pointer::parse(text).map_err(|message| error("next", message)))
        .transpose()?;
    let is_transactions = known == TRANSACTION_FIELDS;
    if !is_transactions && (spec.from_param.is_some() || spec.from_format.is_some()) {
        return Err(error(
            "from_param",
            "only transactions are asked for from a day".into(),
        ));
    }
    if spec
        .from_param
        .as_deref()
        .is_some_and(|param| param.trim().is_empty())
    {
        return Err(error("from_param", "must name a query parameter".into()));
    }
    let from_format = spec
        .from_format
        .clone()
        .unwrap_or_else(|| "%Y-%m-%d".into());
    check_strftime(&from_format).map_err(|message| error("from_format", message))?;
    let sample = chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap_or_default();
    if format_day(sample, &from_format).is_none() {
        return Err(error(
            "from_format",
            format!("{from_format:?} cannot write a day (it asks for a time or zone)"),
        ));
    }
    let mut fields = BTreeMap::new();
    for (field, rule) in &spec.fields {
        let place = format!("fields.{field}");
        let Some((canonical, kind)) = known.iter().find(|(known, _)| known == field) else {
            let names: Vec<&str> = known.iter().map(|(name, _)| *name).collect();
            return Err(error(
                &place,
                format!("unknown field; expected one of {}", names.join(", ")),
            ));
        };
        let compiled = compile_rule(*kind, rule).map_err(|message| error(&place, message))?;
        fields.insert(*canonical, compiled);
    }
    for field in required {
        if !fields.contains_key(field) {
            return Err(error(&format!("fields.{field}"), "is required".to_owned()));
        }
    }
    Ok(Endpoint {
        segments,
        query,
        items,
        next,
        from_param: spec.from_param.clone(),
        from_format,
        fields,
    })
}

/// `day` written with a strftime pattern; `None` if the pattern needs what a day lacks.
pub fn format_day(day: chrono::NaiveDate, pattern: &str) -> Option<String> {
    use std::fmt::Write as _;
    let items = StrftimeItems::new(pattern).parse().ok()?;
    let mut out = String::new();
    write!(out, "{}", day.format_with_items(items.iter())).ok()?;
    Some(out)
}

fn check_strftime(format: &str) -> Result<(), String> {
    let items = StrftimeItems::new(format)
        .parse()
        .map_err(|_| format!("{format:?} is not a valid strftime format"))?;
    if items.is_empty() {
        return Err("the format is empty".into());
    }
    Ok(())
}

/// Compiles one field rule for a field of `kind`; the error says what is wrong with it.
pub fn compile_rule(kind: Kind, rule: &FieldRule) -> Result<Compiled, String> {
    let rule = match rule {
        FieldRule::Pointer(pointer) => Rule {
            pointer: Some(pointer.clone()),
            ..Rule::default()
        },
        FieldRule::Rule(rule) => rule.clone(),
    };
    let source = match (&rule.pointer, &rule.value) {
        (Some(pointer), None) => Source::Pointer(Pointer::parse(pointer)?),
        (None, Some(value)) => Source::Constant(value.clone()),
        (Some(_), Some(_)) => return Err("give a pointer or a value, not both".into()),
        (None, None) => return Err("needs a pointer or a value".into()),
    };
    let dated = matches!(kind, Kind::Date | Kind::DateTime);
    let format = match rule.format.as_deref() {
        None | Some("iso") => DateFormat::Iso,
        Some(_) if !dated => return Err("format is for dates and date-times only".into()),
        Some("unix") => DateFormat::Unix,
        Some("unix_ms") => DateFormat::UnixMillis,
        Some(pattern) => {
            check_strftime(pattern)?;
            DateFormat::Strftime(pattern.to_owned())
        }
    };
    if kind != Kind::Amount && (rule.minor_units.is_some() || rule.sign.is_some()) {
        return Err("minor_units and sign are for amounts only".into());
    }
    if matches!(kind, Kind::Amount | Kind::Date | Kind::DateTime) && rule.values.is_some() {
        return Err("values tables are for codes and texts, not amounts or dates".into());
    }
    if kind == Kind::Amount && matches!(source, Source::Constant(_)) {
        return Err("an amount cannot be a constant".into());
    }
    let minor_units = match &rule.minor_units {
        None => None,
        Some(MinorUnits::Exponent(exponent)) if *exponent <= 18 => Some(Exponent::Fixed(*exponent)),
        Some(MinorUnits::Exponent(_)) => return Err("minor_units exponent must be 0-18".into()),
        Some(MinorUnits::Named(name)) if name == "currency" => Some(Exponent::Currency),
        Some(MinorUnits::Named(name)) => {
            return Err(format!(
                "minor_units {name:?}: expected \"currency\" or an exponent"
            ));
        }
    };
    let sign = match &rule.sign {
        None => None,
        Some(sign) => {
            let pointer =
                Pointer::parse(&sign.pointer).map_err(|message| format!("sign: {message}"))?;
            if sign.debit.is_empty() || sign.credit.is_empty() {
                return Err("sign needs debit and credit indicator values".into());
            }
            if sign.debit.iter().any(|debit| sign.credit.contains(debit)) {
                return Err("sign: a value cannot be both debit and credit".into());
            }
            Some(Sign {
                pointer,
                debit: sign.debit.clone(),
                credit: sign.credit.clone(),
            })
        }
    };
    let allowed = match kind {
        Kind::Enum(allowed) => Some(allowed),
        Kind::Bool => Some(BOOLEANS),
        _ => None,
    };
    if let Some(allowed) = allowed {
        let check = |what: &str, value: &str| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{what} {value:?} is not one of {}",
                    allowed.join(", ")
                ))
            }
        };
        for value in rule.values.iter().flat_map(|values| values.values()) {
            check("value", value)?;
        }
        if let Some(default) = &rule.default {
            check("default", default)?;
        }
        if let (Source::Constant(value), None) = (&source, &rule.values) {
            check("value", value)?;
        }
    }
    let compiled = Compiled {
        kind,
        source,
        values: rule.values,
        default: rule.default,
        format,
        minor_units,
        sign,
    };
    // A constant must convert like any value the bank could send.
    if let Source::Constant(value) = &compiled.source {
        super::check_constant(&compiled, value)?;
    }
    Ok(compiled)
}

/// The ISO 4217 exponent (minor unit digits) of a currency; `None` for codes without minor
/// units (precious metals, `XXX`, testing codes).
pub fn currency_exponent(code: &str) -> Option<u32> {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    const NONE: &[&str] = &[
        "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX",
    ];
    let code = code.to_ascii_uppercase();
    let code = code.as_str();
    if NONE.contains(&code) {
        None
    } else if ZERO.contains(&code) {
        Some(0)
    } else if THREE.contains(&code) {
        Some(3)
    } else if FOUR.contains(&code) {
        Some(4)
    } else {
        Some(2)
    }
}

// Payments (`[mapping.payments]`, applied by `mapping/payments.rs`).

/// `[mapping.payments]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsSpec {
    /// Path (under `api_base_url`) of the POST that creates a payment.
    pub create: String,
    /// Path of the GET that reads one; the segment `{payment}` is the bank's id.
    pub read: String,
    /// The bank's OAuth scope(s), space-separated, under which the user authorises a payment.
    pub scope: String,
    /// The authorization request parameter that names the payment to authorise.
    pub authorization_param: String,
    /// Pointer to the payment's id in the creation's answer.
    pub id: String,
    /// Pointer to the payment's status code in the creation's and the read's answers.
    pub status: String,
    /// Pointer to a rejection's ISO 20022 reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pointer to the IBAN of the account the user paid from, once authorised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debtor_iban: Option<String>,
    /// The bank's status codes → ISO 20022 status codes (`RCVD`, `ACCP`, `ACSC`, `RJCT`, …).
    pub statuses: BTreeMap<String, String>,
    /// The creation's body: JSON pointer → order field (module docs).
    pub body: BTreeMap<String, String>,
}

/// What goes at a pointer of the creation's body, by its name in a manifest (`amount_minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum OrderField {
    /// bankgate's payment id (the end-to-end id).
    PaymentId,
    /// The amount as a decimal string (`"12.50"`).
    Amount,
    /// The amount in minor units of its currency, a JSON integer (`1250`).
    AmountMinor,
    Currency,
    CreditorIban,
    CreditorName,
    /// Left out when the order has none.
    Remittance,
    /// A JSON boolean.
    Instant,
}

/// A path with the `{payment}` placeholder (`None` segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentPath {
    pub segments: Vec<Option<String>>,
}

impl PaymentPath {
    /// The route of a call (`/payments/{payment}`), for metrics and logs.
    pub fn route(&self) -> String {
        let mut route = String::new();
        for segment in &self.segments {
            route.push('/');
            route.push_str(segment.as_deref().unwrap_or("{payment}"));
        }
        route
    }
}

/// A compiled `[mapping.payments]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPayments {
    pub create: PaymentPath,
    pub read: PaymentPath,
    pub scope: Vec<String>,
    pub authorization_param: String,
    pub id: Pointer,
    pub status: Pointer,
    pub reason: Option<Pointer>,
    pub debtor_iban: Option<Pointer>,
    pub statuses: BTreeMap<String, String>,
    pub body: Vec<(Pointer, OrderField)>,
}

/// Compiles `[mapping.payments]`; the error names the rule.
pub fn compile_payments(spec: &PaymentsSpec) -> Result<CompiledPayments, RuleError> {
    let error = |rule: &str, message: String| RuleError {
        rule: format!("mapping.payments.{rule}"),
        message,
    };
    let path = |rule: &str, text: &str, placeholder: bool| {
        let segments: Vec<Option<String>> = text
            .trim_matches('/')
            .split('/')
            .map(|segment| (segment != "{payment}").then(|| segment.to_owned()))
            .collect();
        let holes = segments.iter().filter(|segment| segment.is_none()).count();
        let bad = segments
            .iter()
            .flatten()
            .any(|segment| segment.is_empty() || segment.contains(['{', '}', '?', '#']));
        if !text.starts_with('/') || bad || holes != usize::from(placeholder) {
            return Err(error(
                rule,
                format!(
                    "{text:?} must be a path starting with /{}",
                    if placeholder {
                        " with one {payment} segment"
                    } else {
                        " without placeholders"
                    }
                ),
            ));
        }
        Ok(PaymentPath { segments })
    };
    let pointer = |rule: &str, text: &str| Pointer::parse(text).map_err(|m| error(rule, m));
    let scope: Vec<String> = spec
        .scope
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    if scope.is_empty() || scope.iter().any(|token| token.contains('"')) {
        return Err(error("scope", "must name one or more OAuth scopes".into()));
    }
    if spec.authorization_param.trim().is_empty() {
        return Err(error("authorization_param", "must not be empty".into()));
    }
    let mut statuses = BTreeMap::new();
    for (code, iso) in &spec.statuses {
        if BankStatus::from_iso20022(iso, None).is_none() {
            return Err(error(
                &format!("statuses.{code}"),
                format!("{iso:?} is not an ISO 20022 payment status bankgate knows"),
            ));
        }
        statuses.insert(code.clone(), iso.clone());
    }
    let mut body = Vec::new();
    for (at, name) in &spec.body {
        let rule = format!("body.{at:?}");
        let field = name.parse::<OrderField>().map_err(|_| {
            error(
                &rule,
                format!(
                    "{name:?} is not an order field ({})",
                    OrderField::VARIANTS.join(", ")
                ),
            )
        })?;
        let at = pointer(&rule, at)?;
        if at.tokens.is_empty() {
            return Err(error(
                &rule,
                "the body itself is an object of fields".into(),
            ));
        }
        body.push((at, field));
    }
    for required in [
        OrderField::Currency,
        OrderField::CreditorIban,
        OrderField::CreditorName,
    ] {
        if !body.iter().any(|(_, field)| *field == required) {
            return Err(error("body", format!("must place {required:?}")));
        }
    }
    if !body
        .iter()
        .any(|(_, field)| matches!(field, OrderField::Amount | OrderField::AmountMinor))
    {
        return Err(error("body", "must place amount or amount_minor".into()));
    }
    Ok(CompiledPayments {
        create: path("create", &spec.create, false)?,
        read: path("read", &spec.read, true)?,
        scope,
        authorization_param: spec.authorization_param.clone(),
        id: pointer("id", &spec.id)?,
        status: pointer("status", &spec.status)?,
        reason: spec
            .reason
            .as_deref()
            .map(|text| pointer("reason", text))
            .transpose()?,
        debtor_iban: spec
            .debtor_iban
            .as_deref()
            .map(|text| pointer("debtor_iban", text))
            .transpose()?,
        statuses,
        body,
    })
}
