//! Reading and validating policy files: every problem becomes a [`Diagnostic`] with its file
//! and line (from `toml::Spanned` and the parser's error spans), and all of them are reported
//! at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::signals::{Rule, Signal};
use super::{
    LegalBasis, LocalText, Object, Policy, PolicyError, PolicySet, Prohibited, REGIONS,
    TEXT_LANGUAGES,
};
use crate::model::Scope;
use crate::model::WireName;
use crate::payments::PaymentLimits;
use rust_decimal::Decimal;

/// The file in a policy directory that lists prohibited purposes instead of a policy.
pub const PROHIBITED_FILE: &str = "prohibited.toml";

/// The longest consent any policy may allow (two years).
const MAX_CONSENT_DAYS: i64 = 730;
/// The longest history or retention any policy may allow (ten years).
const MAX_DAYS: i64 = 3650;
/// The most unattended requests per day any policy may allow (one a minute).
const MAX_UNATTENDED_PER_DAY: i64 = 1440;

/// One problem in one file, at one line when it has one: `path:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based; `None` for problems of the whole file (it cannot be read).
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// A policy file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: Spanned<String>,
    title: Spanned<String>,
    description: Spanned<String>,
    /// `[text.<lang>]`: title and description in another language.
    text: Option<BTreeMap<Spanned<String>, RawText>>,
    legal_basis: Spanned<String>,
    legal_reference: Option<Spanned<String>>,
    scopes: Spanned<Vec<Spanned<String>>>,
    max_consent_days: Spanned<i64>,
    max_history_days: Spanned<i64>,
    max_unattended_per_day: Spanned<i64>,
    regions: Spanned<Vec<Spanned<String>>>,
    retention_days: Spanned<i64>,
    onward_sharing: bool,
    fields: Option<Spanned<RawFields>>,
    /// `[payment]`: the purpose initiates payments, within these limits.
    payment: Option<Spanned<RawPayment>>,
    /// `[[signals]]`: fraud rules.
    #[serde(default)]
    signals: Vec<Spanned<RawSignal>>,
}

/// A policy file's `[payment]` table. Amounts are strings (`"250.00"`): exact, never floats.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayment {
    max_amount_per_payment: Spanned<String>,
    max_amount_per_day: Spanned<String>,
    currencies: Spanned<Vec<Spanned<String>>>,
    instant_allowed: bool,
}

type FieldList = Spanned<Vec<Spanned<String>>>;

/// A `[text.<lang>]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    title: Spanned<String>,
    description: Spanned<String>,
}

/// A policy file's `[fields]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    account: Option<FieldList>,
    balance: Option<FieldList>,
    transaction: Option<FieldList>,
    identity: Option<FieldList>,
}

impl RawFields {
    fn get(&self, object: Object) -> Option<&FieldList> {
        match object {
            Object::Account => self.account.as_ref(),
            Object::Balance => self.balance.as_ref(),
            Object::Transaction => self.transaction.as_ref(),
            Object::Identity => self.identity.as_ref(),
        }
    }
}

/// `policies/prohibited.toml`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProhibitedFile {
    prohibited: Vec<RawProhibited>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProhibited {
    id: Spanned<String>,
    title: Spanned<String>,
    reason: Spanned<String>,
}

/// Collects the diagnostics of one file.
struct File<'a> {
    path: &'a Path,
    text: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> File<'a> {
    fn new(path: &'a Path, text: &'a str) -> Self {
        File {
            path,
            text,
            diagnostics: Vec::new(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text
            .get(..end)
            .map_or(0, |before| before.matches('\n').count())
            + 1
    }

    fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.line_of(offset);
        self.diagnostics.push(Diagnostic {
            path: self.path.to_owned(),
            line: Some(line),
            message: message.into(),
        });
    }

    fn error<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.error_at(spanned.span().start, message);
    }

    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str(self.text) {
            Ok(value) => Some(value),
            Err(error) => {
                let line = error.span().map(|span| self.line_of(span.start));
                self.diagnostics.push(Diagnostic {
                    path: self.path.to_owned(),
                    line,
                    message: error.message().trim().to_owned(),
                });
                None
            }
        }
    }

    /// A whole number in `range`, or a diagnostic naming the key.
    fn days(
        &mut self,
        key: &str,
        value: &Spanned<i64>,
        range: std::ops::RangeInclusive<i64>,
    ) -> u32 {
        let number = *value.get_ref();
        if !range.contains(&number) {
            self.error(
                value,
                format!(
                    "{key} must be between {} and {}, not {number}",
                    range.start(),
                    range.end()
                ),
            );
        }
        u32::try_from(number).unwrap_or(0)
    }

    fn text(&mut self, key: &str, value: &Spanned<String>, max_chars: usize) -> String {
        let text = value.get_ref().trim();
        if text.is_empty() {
            self.error(value, format!("{key} must not be empty"));
        } else if text.chars().count() > max_chars {
            self.error(
                value,
                format!("{key} must be at most {max_chars} characters"),
            );
        }
        text.to_owned()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<Diagnostic>> {
        match value {
            Some(value) if self.diagnostics.is_empty() => Ok(value),
            _ => Err(self.diagnostics),
        }
    }
}

/// Whether `id` is a purpose id: lowercase letters, digits and `-`, 1-64 characters.
fn is_purpose_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Policy {
    /// Parses and validates one policy file's text; every problem is reported with its line.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        parse_policy(path, text).map_err(PolicyError::Invalid)
    }
}

fn parse_policy(path: &Path, text: &str) -> Result<Policy, Vec<Diagnostic>> {
    let mut file = File::new(path, text);
    let policy = file
        .parse::<RawPolicy>()
        .map(|raw| validate(&mut file, raw));
    file.finish(policy)
}

fn validate(file: &mut File<'_>, raw: RawPolicy) -> Policy {
    if !is_purpose_id(raw.id.get_ref()) {
        file.error(
            &raw.id,
            format!(
                "id {:?} must be 1-64 lowercase letters, digits or '-'",
                raw.id.get_ref()
            ),
        );
    }
    let title = file.text("title", &raw.title, 80);
    let description = file.text("description", &raw.description, 2000);
    let mut text = BTreeMap::new();
    for (lang, local) in raw.text.iter().flatten() {
        if !TEXT_LANGUAGES.contains(&lang.get_ref().as_str()) {
            file.error(
                lang,
                format!(
                    "[text.{}]: unknown language; expected one of {} (title and description \
                     are the English text)",
                    lang.get_ref(),
                    TEXT_LANGUAGES.join(", ")
                ),
            );
            continue;
        }
        let local = LocalText {
            title: file.text(&format!("text.{}.title", lang.get_ref()), &local.title, 80),
            description: file.text(
                &format!("text.{}.description", lang.get_ref()),
                &local.description,
                2000,
            ),
        };
        text.insert(lang.get_ref().clone(), local);
    }
    let legal_basis = LegalBasis::parse(raw.legal_basis.get_ref()).unwrap_or_else(|| {
        let known: Vec<&str> = LegalBasis::ALL.iter().map(|basis| basis.as_str()).collect();
        file.error(
            &raw.legal_basis,
            format!(
                "unknown legal_basis {:?}; expected one of {}",
                raw.legal_basis.get_ref(),
                known.join(", ")
            ),
        );
        LegalBasis::Consent
    });
    let legal_reference = raw
        .legal_reference
        .as_ref()
        .map(|reference| file.text("legal_reference", reference, 300));

    let mut scopes = BTreeSet::new();
    match (&raw.payment, raw.scopes.get_ref().is_empty()) {
        (None, true) => file.error(&raw.scopes, "scopes must name at least one scope"),
        (Some(_), false) => file.error(
            &raw.scopes,
            "a payment purpose ([payment]) reads no account data: scopes must be []",
        ),
        _ => {}
    }
    for name in raw.scopes.get_ref() {
        match Scope::parse(name.get_ref()) {
            Some(scope) if !scopes.insert(scope) => {
                file.error(name, format!("scope {:?} is listed twice", name.get_ref()));
            }
            Some(_) => {}
            None => {
                let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
                file.error(
                    name,
                    format!(
                        "unknown scope {:?}; expected one of {}",
                        name.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
    }

    let max_consent_days = file.days(
        "max_consent_days",
        &raw.max_consent_days,
        1..=MAX_CONSENT_DAYS,
    );
    let max_history_days = file.days("max_history_days", &raw.max_history_days, 0..=MAX_DAYS);
    if max_history_days > 0 && !scopes.contains(&Scope::Transactions) {
        file.error(
            &raw.max_history_days,
            "max_history_days limits transactions, but scope \"transactions\" is not allowed: \
             set it to 0",
        );
    }
    let max_unattended_per_day = file.days(
        "max_unattended_per_day",
        &raw.max_unattended_per_day,
        0..=MAX_UNATTENDED_PER_DAY,
    );
    let retention_days = file.days("retention_days", &raw.retention_days, 0..=MAX_DAYS);

    let mut regions = BTreeSet::new();
    if raw.regions.get_ref().is_empty() {
        file.error(&raw.regions, "regions must name at least one region");
    }
    for region in raw.regions.get_ref() {
        let name = region.get_ref();
        if !REGIONS.contains(&name.as_str()) {
            file.error(
                region,
                format!(
                    "unknown region {name:?}; expected one of {}",
                    REGIONS.join(", ")
                ),
            );
        } else if !regions.insert(name.clone()) {
            file.error(region, format!("region {name:?} is listed twice"));
        }
    }

    let fields = validate_fields(file, &raw, &scopes);
    let payment = raw
        .payment
        .as_ref()
        .map(|payment| validate_payment(file, payment.get_ref()));
    let signals = validate_signals(file, &raw.signals, &scopes);
    Policy {
        id: raw.id.into_inner(),
        title,
        description,
        text,
        legal_basis,
        legal_reference,
        scopes,
        max_consent_days,
        max_history_days,
        max_unattended_per_day,
        regions,
        retention_days,
        onward_sharing: raw.onward_sharing,
        fields,
        payment,
        signals,
        hash: format!("sha256:{}", crate::crypto::sha256_hex(file.text.as_bytes())),
    }
}

/// A `[[signals]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    id: Spanned<String>,
    title: Spanned<String>,
    when: Spanned<String>,
    amount: Option<Spanned<String>>,
    count: Option<Spanned<i64>>,
    minutes: Option<Spanned<i64>>,
    days: Option<Spanned<i64>>,
}

/// The `[[signals]]`: known rules with exactly their parameters, positive amounts as strings,
/// ids unique; transaction rules need the transactions scope, `balance_below` the balances
/// scope.
fn validate_signals(
    file: &mut File<'_>,
    raw: &[Spanned<RawSignal>],
    scopes: &BTreeSet<Scope>,
) -> Vec<Signal> {
    let mut signals = Vec::new();
    let mut ids = BTreeSet::new();
    for spanned in raw {
        let signal = spanned.get_ref();
        let id = signal.id.get_ref();
        if !is_purpose_id(id) {
            file.error(
                &signal.id,
                format!("signals: id {id:?} must be 1-64 lowercase letters, digits or '-'"),
            );
        } else if !ids.insert(id.clone()) {
            file.error(&signal.id, format!("signals: id {id:?} is used twice"));
        }
        let title = file.text(&format!("signals.{id}.title"), &signal.title, 120);
        let when = signal.when.get_ref().as_str();
        // Which parameters the rule takes.
        let (amount, count_and_minutes) = match when {
            "debit_above" | "new_counterparty_above" | "balance_below" => (true, false),
            "debits_within" => (false, true),
            "country_not_seen" => (false, false),
            _ => {
                file.error(
                    &signal.when,
                    format!(
                        "signals.{id}: unknown rule {when:?}; expected one of {}",
                        Rule::NAMES.join(", ")
                    ),
                );
                continue;
            }
        };
        let extra = |file: &mut File<'_>, present: bool, key: &str| {
            if present {
                file.error(spanned, format!("signals.{id}: {when} takes no {key}"));
            }
        };
        extra(file, !amount && signal.amount.is_some(), "amount");
        extra(file, !count_and_minutes && signal.count.is_some(), "count");
        extra(
            file,
            !count_and_minutes && signal.minutes.is_some(),
            "minutes",
        );
        extra(
            file,
            when != "country_not_seen" && signal.days.is_some(),
            "days",
        );
        let needed = if when == "balance_below" {
            Scope::Balances
        } else {
            Scope::Transactions
        };
        if !scopes.contains(&needed) {
            file.error(
                &signal.when,
                format!(
                    "signals.{id}: {when} looks at {}, but scope {:?} is not allowed",
                    needed.as_str(),
                    needed.as_str()
                ),
            );
        }
        let threshold = |file: &mut File<'_>| match &signal.amount {
            Some(value) => positive_amount(file, &format!("signals.{id}.amount"), "500.00", value),
            None => {
                file.error(
                    spanned,
                    format!("signals.{id}: {when} needs an amount (\"500.00\")"),
                );
                Decimal::ZERO
            }
        };
        let rule = match when {
            "debit_above" => Rule::DebitAbove {
                amount: threshold(file),
            },
            "new_counterparty_above" => Rule::NewCounterpartyAbove {
                amount: threshold(file),
            },
            "balance_below" => Rule::BalanceBelow {
                amount: threshold(file),
            },
            "country_not_seen" => {
                let Some(days) = &signal.days else {
                    file.error(
                        spanned,
                        format!("signals.{id}: country_not_seen needs days"),
                    );
                    continue;
                };
                Rule::CountryNotSeen {
                    days: file.days(&format!("signals.{id}.days"), days, 1..=3650),
                }
            }
            _ => {
                let (Some(count), Some(minutes)) = (&signal.count, &signal.minutes) else {
                    file.error(
                        spanned,
                        format!("signals.{id}: debits_within needs count and minutes"),
                    );
                    continue;
                };
                Rule::DebitsWithin {
                    count: file.days(&format!("signals.{id}.count"), count, 1..=1000),
                    minutes: file.days(&format!("signals.{id}.minutes"), minutes, 1..=10_080),
                }
            }
        };
        signals.push(Signal {
            id: id.clone(),
            title,
            rule,
        });
    }
    signals
}

/// The amount at `key` (a signal's threshold, a `[payment]` limit): a decimal string greater
/// than zero; the error shows `example`.
fn positive_amount(
    file: &mut File<'_>,
    key: &str,
    example: &str,
    value: &Spanned<String>,
) -> Decimal {
    match Decimal::from_str_exact(value.get_ref().trim()) {
        Ok(amount) if amount > Decimal::ZERO => amount,
        _ => {
            file.error(
                value,
                format!(
                    "{key} must be an amount greater than zero written as a string \
                     (\"{example}\"), not {:?}",
                    value.get_ref()
                ),
            );
            Decimal::ZERO
        }
    }
}

/// The `[payment]` table: positive amounts, a daily limit no smaller than one payment, known
/// ISO 4217 currencies, each once.
fn validate_payment(file: &mut File<'_>, raw: &RawPayment) -> PaymentLimits {
    let per_payment = positive_amount(
        file,
        "payment.max_amount_per_payment",
        "250.00",
        &raw.max_amount_per_payment,
    );
    let per_day = positive_amount(
        file,
        "payment.max_amount_per_day",
        "250.00",
        &raw.max_amount_per_day,
    );
    if per_payment > Decimal::ZERO && per_day > Decimal::ZERO && per_day < per_payment {
        file.error(
            &raw.max_amount_per_day,
            "payment.max_amount_per_day must be at least max_amount_per_payment",
        );
    }
    let mut currencies = BTreeSet::new();
    if raw.currencies.get_ref().is_empty() {
        file.error(
            &raw.currencies,
            "payment.currencies must name at least one currency",
        );
    }
    for code in raw.currencies.get_ref() {
        let name = code.get_ref();
        match crate::payments::currency(name).and_then(crate::payments::exponent) {
            Err(_) => file.error(
                code,
                format!("unknown currency {name:?}; expected an ISO 4217 code such as \"EUR\""),
            ),
            Ok(_) if !currencies.insert(name.clone()) => {
                file.error(code, format!("currency {name:?} is listed twice"));
            }
            Ok(_) => {}
        }
    }
    PaymentLimits {
        max_amount_per_payment: per_payment,
        max_amount_per_day: per_day,
        currencies,
        instant_allowed: raw.instant_allowed,
    }
}

/// The `[fields]` table: known fields only, each under an allowed scope, and a non-empty
/// list for every scope that releases records.
fn validate_fields(
    file: &mut File<'_>,
    raw: &RawPolicy,
    scopes: &BTreeSet<Scope>,
) -> BTreeMap<Object, BTreeSet<String>> {
    let mut allowed = BTreeMap::new();
    let table = raw.fields.as_ref().map(Spanned::get_ref);
    for &object in Object::ALL {
        let list = table.and_then(|table| table.get(object));
        let scope_allowed = scopes.contains(&object.scope());
        let Some(list) = list else {
            if scope_allowed {
                let at = raw
                    .scopes
                    .get_ref()
                    .iter()
                    .find(|name| name.get_ref() == object.scope().as_str())
                    .map_or(raw.scopes.span().start, |name| name.span().start);
                file.error_at(
                    at,
                    format!(
                        "scope {:?} is allowed but [fields] has no {} list: name the fields it \
                         may release",
                        object.scope().as_str(),
                        object.as_str()
                    ),
                );
            }
            continue;
        };
        if !scope_allowed {
            file.error(
                list,
                format!(
                    "fields.{} allows fields but scope {:?} is not allowed",
                    object.as_str(),
                    object.scope().as_str()
                ),
            );
        }
        if list.get_ref().is_empty() && scope_allowed {
            file.error(
                list,
                format!(
                    "fields.{} is empty: scope {:?} would release empty records",
                    object.as_str(),
                    object.scope().as_str()
                ),
            );
        }
        let mut names = BTreeSet::new();
        for field in list.get_ref() {
            let name = field.get_ref();
            if !object.fields().contains(&name.as_str()) {
                file.error(
                    field,
                    format!(
                        "fields.{}: unknown field {name:?}; {} fields are {}",
                        object.as_str(),
                        object.as_str(),
                        object.fields().join(", ")
                    ),
                );
            } else if !names.insert(name.clone()) {
                file.error(
                    field,
                    format!("fields.{}: {name:?} is listed twice", object.as_str()),
                );
            } else if object == Object::Account
                && name == "holder_name"
                && !scopes.contains(&Scope::Identity)
            {
                file.error(
                    field,
                    "fields.account: \"holder_name\" is identity data and needs scope \
                     \"identity\"",
                );
            }
        }
        allowed.insert(object, names);
    }
    allowed
}

fn parse_prohibited(path: &Path, text: &str) -> Result<Vec<Prohibited>, Vec<Diagnostic>> {
    let mut file = File::new(path, text);
    let list = file.parse::<RawProhibitedFile>().map(|raw| {
        let mut seen = BTreeSet::new();
        let mut list = Vec::new();
        for entry in raw.prohibited {
            if !is_purpose_id(entry.id.get_ref()) {
                file.error(
                    &entry.id,
                    format!(
                        "id {:?} must be 1-64 lowercase letters, digits or '-'",
                        entry.id.get_ref()
                    ),
                );
            } else if !seen.insert(entry.id.get_ref().clone()) {
                file.error(
                    &entry.id,
                    format!("{:?} is listed twice", entry.id.get_ref()),
                );
            }
            let title = file.text("title", &entry.title, 80);
            let reason = file.text("reason", &entry.reason, 1000);
            list.push(Prohibited {
                id: entry.id.into_inner(),
                title,
                reason,
            });
        }
        list
    });
    file.finish(list)
}

/// The line of the top-level `id = …` key of a policy file, for set-level diagnostics.
fn id_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix("id")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|index| index + 1)
}

impl PolicySet {
    /// Loads and validates every `*.toml` in `dir`: one policy per file (named after its
    /// purpose id) and the prohibited purposes in [`PROHIBITED_FILE`]. Reports every problem
    /// in every file, each with its line.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let mut diagnostics = Vec::new();
        let whole_file = |path: &Path, message: String| Diagnostic {
            path: path.to_owned(),
            line: None,
            message,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                return Err(PolicyError::Invalid(vec![whole_file(
                    dir,
                    format!("cannot read the policy directory: {error}"),
                )]));
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();

        let mut texts = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => texts.push((path, text)),
                Err(error) => diagnostics.push(whole_file(&path, format!("cannot read: {error}"))),
            }
        }
        let is_prohibited_file =
            |path: &Path| path.file_name().is_some_and(|name| name == PROHIBITED_FILE);

        let mut prohibited = BTreeMap::new();
        for (path, text) in texts.iter().filter(|(path, _)| is_prohibited_file(path)) {
            match parse_prohibited(path, text) {
                Ok(list) => {
                    prohibited.extend(list.into_iter().map(|entry| (entry.id.clone(), entry)));
                }
                Err(found) => diagnostics.extend(found),
            }
        }

        let mut policies: BTreeMap<String, (PathBuf, Policy)> = BTreeMap::new();
        for (path, text) in texts.iter().filter(|(path, _)| !is_prohibited_file(path)) {
            let policy = match parse_policy(path, text) {
                Ok(policy) => policy,
                Err(found) => {
                    diagnostics.extend(found);
                    continue;
                }
            };
            let at_id = |message: String| Diagnostic {
                path: path.clone(),
                line: id_line(text),
                message,
            };
            if let Some(entry) = prohibited.get(&policy.id) {
                diagnostics.push(at_id(format!(
                    "purpose {:?} is prohibited ({PROHIBITED_FILE}): {}",
                    policy.id, entry.reason
                )));
                continue;
            }
            if path.file_stem().and_then(|stem| stem.to_str()) != Some(policy.id.as_str()) {
                diagnostics.push(at_id(format!(
                    "id {:?} does not match the file name: name the file {}.toml",
                    policy.id, policy.id
                )));
            }
            if let Some((first, _)) = policies.get(&policy.id) {
                diagnostics.push(at_id(format!(
                    "duplicate purpose id {:?} (also in {})",
                    policy.id,
                    first.display()
                )));
                continue;
            }
            policies.insert(policy.id.clone(), (path.clone(), policy));
        }
        if policies.is_empty() && diagnostics.is_empty() {
            diagnostics.push(whole_file(dir, "no policies found".into()));
        }
        if !diagnostics.is_empty() {
            return Err(PolicyError::Invalid(diagnostics));
        }
        Ok(PolicySet::new(
            policies.into_values().map(|(_, policy)| policy),
            prohibited.into_values(),
        ))
    }
}
