//! Fraud signals: the `[[signals]]` rules of a purpose's policy, which a compliance officer
//! can read, and their evaluation on the transactions a refresh sees for the first time
//! (pure: no I/O; `notify` gathers what they look at and emits `fraud.signal`).
//!
//! ```toml
//! [[signals]]
//! id = "large-debit"
//! title = "A large payment"
//! when = "debit_above"          # a new debit larger than `amount`
//! amount = "500.00"
//!
//! [[signals]]
//! id = "new-payee"
//! title = "A first payment to someone new"
//! when = "new_counterparty_above" # a new debit larger than `amount` to a counterparty not
//! amount = "200.00"               # seen on the account within the purpose's history window
//!
//! [[signals]]
//! id = "burst"
//! title = "Many payments in a short time"
//! when = "debits_within"          # more than `count` debits first seen within `minutes`
//! count = 3
//! minutes = 30
//!
//! [[signals]]
//! id = "low-balance"
//! title = "The balance runs low"
//! when = "balance_below"          # an available balance that changed to below `amount`
//! amount = "50.00"
//!
//! [[signals]]
//! id = "new-country"
//! title = "A payment in a new country"
//! when = "country_not_seen"       # a new debit to a counterparty in a country no other
//! days = 30                       # transaction of the account within `days` is from
//! ```
//!
//! `policies check` validates them (`path:line: message`); `notify` evaluates them and emits
//! `fraud.signal`.
//!
//! Amounts compare magnitudes in the account's currency, strictly: a debit of exactly the
//! threshold does not fire. Countries are the transactions' `counterparty_country` (what the
//! bank says: see `model::Transaction`); a debit whose country the bank does not say never
//! fires `country_not_seen`, and such transactions are no country seen. `days` look back no
//! further than what a refresh reads: the purpose's history window.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::model::{Balance, BalanceType, Transaction};

/// One rule of a policy's `[[signals]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    /// Unique within the policy: `[a-z0-9-]`, 1-64.
    pub id: String,
    /// What it means, in a sentence a user understands (the platform may show it).
    pub title: String,
    pub rule: Rule,
}

/// What a signal looks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "when", rename_all = "snake_case")]
pub enum Rule {
    /// A new debit whose magnitude is above `amount`.
    DebitAbove {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A new debit above `amount` to a counterparty the account's other transactions (within
    /// the history window) never name.
    NewCounterpartyAbove {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// More than `count` debits first seen within `minutes`.
    DebitsWithin { count: u32, minutes: u32 },
    /// An available balance that changed to below `amount`.
    BalanceBelow {
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A new debit whose counterparty's country no other transaction of the account (dated
    /// within the last `days`) has.
    CountryNotSeen { days: u32 },
}

impl Rule {
    /// The `when` names, for `policies check`.
    pub const NAMES: [&'static str; 5] = [
        "debit_above",
        "new_counterparty_above",
        "debits_within",
        "balance_below",
        "country_not_seen",
    ];

    /// Whether the rule looks at balances (the refresh then reads them).
    pub fn needs_balances(&self) -> bool {
        matches!(self, Rule::BalanceBelow { .. })
    }
}

/// What a refresh observed of one account, for the signals.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Transactions seen for the first time in this refresh.
    pub new: &'a [&'a Transaction],
    /// Every transaction listed now (the history window).
    pub listed: &'a [Transaction],
    /// When each debit listed now, but seen before this refresh, was first seen.
    pub earlier_debits: &'a [DateTime<Utc>],
    /// The time of this refresh.
    pub now: DateTime<Utc>,
    /// The balances read now, when the balance set changed since the last refresh (`None`:
    /// not read, or unchanged).
    pub changed_balances: Option<&'a [Balance]>,
}

/// A signal that fired: its rule and, for a transaction rule, the transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired<'a> {
    pub signal: &'a Signal,
    pub transaction: Option<&'a Transaction>,
    pub balance: Option<&'a Balance>,
}

/// Whether money left the account.
pub fn is_debit(transaction: &Transaction) -> bool {
    transaction.amount.is_sign_negative() && !transaction.amount.is_zero()
}

fn counterparty(transaction: &Transaction) -> Option<String> {
    transaction
        .counterparty_name
        .as_deref()
        .map(|name| {
            name.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .filter(|name| !name.is_empty())
}

/// Evaluates `signals` on what a refresh saw; every firing, in rule order.
pub fn evaluate<'a>(signals: &'a [Signal], seen: &Observed<'a>) -> Vec<Fired<'a>> {
    let mut fired = Vec::new();
    let new_debits: Vec<&Transaction> = seen.new.iter().copied().filter(|t| is_debit(t)).collect();
    for signal in signals {
        match &signal.rule {
            Rule::DebitAbove { amount } => {
                for transaction in &new_debits {
                    if transaction.amount.abs() > *amount {
                        fired.push(Fired {
                            signal,
                            transaction: Some(transaction),
                            balance: None,
                        });
                    }
                }
            }
            Rule::NewCounterpartyAbove { amount } => {
                let new_ids: HashSet<&str> = seen.new.iter().map(|t| t.id.as_str()).collect();
                let known: HashSet<String> = seen
                    .listed
                    .iter()
                    .filter(|t| !new_ids.contains(t.id.as_str()))
                    .filter_map(counterparty)
                    .collect();
                for transaction in &new_debits {
                    let Some(name) = counterparty(transaction) else {
                        continue;
                    };
                    if transaction.amount.abs() > *amount && !known.contains(&name) {
                        fired.push(Fired {
                            signal,
                            transaction: Some(transaction),
                            balance: None,
                        });
                    }
                }
            }
            Rule::DebitsWithin { count, minutes } => {
                let since = seen.now - Duration::minutes(i64::from(*minutes));
                let earlier = seen.earlier_debits.iter().filter(|at| **at > since).count();
                let total = earlier + new_debits.len();
                if let Some(last) = new_debits.last()
                    && total > usize::try_from(*count).unwrap_or(usize::MAX)
                {
                    fired.push(Fired {
                        signal,
                        transaction: Some(last),
                        balance: None,
                    });
                }
            }
            Rule::CountryNotSeen { days } => {
                let since = (seen.now - Duration::days(i64::from(*days))).date_naive();
                let new_ids: HashSet<&str> = seen.new.iter().map(|t| t.id.as_str()).collect();
                let known: HashSet<&str> = seen
                    .listed
                    .iter()
                    .filter(|t| !new_ids.contains(t.id.as_str()))
                    .filter(|t| t.value_date.or(t.booking_date).is_none_or(|d| d >= since))
                    .filter_map(|t| t.counterparty_country.as_deref())
                    .collect();
                for transaction in &new_debits {
                    if let Some(country) = transaction.counterparty_country.as_deref()
                        && !known.contains(country)
                    {
                        fired.push(Fired {
                            signal,
                            transaction: Some(transaction),
                            balance: None,
                        });
                    }
                }
            }
            Rule::BalanceBelow { amount } => {
                let Some(balances) = seen.changed_balances else {
                    continue;
                };
                if let Some(balance) = available(balances)
                    && balance.amount < *amount
                {
                    fired.push(Fired {
                        signal,
                        transaction: None,
                        balance: Some(balance),
                    });
                }
            }
        }
    }
    fired
}

/// The balance that says what the account can spend: interim available, else expected, else
/// interim booked, else closing booked.
pub fn available(balances: &[Balance]) -> Option<&Balance> {
    [
        BalanceType::InterimAvailable,
        BalanceType::Expected,
        BalanceType::InterimBooked,
        BalanceType::ClosingBooked,
    ]
    .iter()
    .find_map(|kind| balances.iter().find(|balance| balance.kind == *kind))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::model::TransactionStatus;

    fn debit(id: &str, amount: &str, counterparty: &str) -> Transaction {
        Transaction {
            id: id.into(),
            account_id: "acc_1".into(),
            status: TransactionStatus::Booked,
            booking_date: NaiveDate::from_ymd_opt(2026, 12, 5),
            value_date: NaiveDate::from_ymd_opt(2026, 12, 5),
            amount: amount.parse().unwrap(),
            currency: "EUR".into(),
            description: None,
            counterparty_name: Some(counterparty.into()),
            counterparty_country: None,
            merchant_category_code: None,
            bank_code: None,
        }
    }

    fn signal(rule: Rule) -> Signal {
        Signal {
            id: "rule".into(),
            title: "A rule".into(),
            rule,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
    }

    /// The ids of the transactions `rule` fires on, given what is new, what is listed besides
    /// and when earlier debits were first seen.
    #[track_caller]
    fn check(
        rule: Rule,
        new: &[Transaction],
        older: &[Transaction],
        earlier: &[i64],
        fires: &[&str],
    ) {
        let signals = [signal(rule)];
        let new_refs: Vec<&Transaction> = new.iter().collect();
        let listed: Vec<Transaction> = older.iter().chain(new).cloned().collect();
        let earlier: Vec<DateTime<Utc>> = earlier
            .iter()
            .map(|minutes_ago| now() - Duration::minutes(*minutes_ago))
            .collect();
        let fired = evaluate(
            &signals,
            &Observed {
                new: &new_refs,
                listed: &listed,
                earlier_debits: &earlier,
                now: now(),
                changed_balances: None,
            },
        );
        let ids: Vec<&str> = fired
            .iter()
            .map(|fired| fired.transaction.unwrap().id.as_str())
            .collect();
        assert_eq!(ids, fires);
    }

    fn amount(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn debit_above_fires_above_and_not_at_the_threshold() {
        let rule = || Rule::DebitAbove {
            amount: amount("500.00"),
        };
        check(rule(), &[debit("a", "-500.01", "X")], &[], &[], &["a"]);
        check(rule(), &[debit("b", "-500.00", "X")], &[], &[], &[]);
        // A credit of any size is not a debit.
        check(rule(), &[debit("c", "900.00", "X")], &[], &[], &[]);
        // Only what is new: a large debit seen before does not fire again.
        check(rule(), &[], &[debit("d", "-900.00", "X")], &[], &[]);
    }

    #[test]
    fn new_counterparty_above_fires_for_strangers_only() {
        let rule = || Rule::NewCounterpartyAbove {
            amount: amount("200.00"),
        };
        let known = [debit("old", "-10.00", "Hausverwaltung Berlin GmbH")];
        check(
            rule(),
            &[debit("a", "-250.00", "Blumen Meyer")],
            &known,
            &[],
            &["a"],
        );
        // Paid before (names compared trimmed, case-insensitive): no.
        check(
            rule(),
            &[debit("b", "-250.00", " hausverwaltung  berlin gmbh")],
            &known,
            &[],
            &[],
        );
        // A stranger, but not above the amount: no.
        check(
            rule(),
            &[debit("c", "-200.00", "Blumen Meyer")],
            &known,
            &[],
            &[],
        );
    }

    #[test]
    fn debits_within_counts_more_than_count_in_the_window() {
        let rule = || Rule::DebitsWithin {
            count: 3,
            minutes: 120,
        };
        let new = [debit("a", "-1.00", "X")];
        // Three earlier in the window and one new: four, more than three.
        check(rule(), &new, &[], &[10, 60, 119], &["a"]);
        // One of them just outside the window: three, not more than three.
        check(rule(), &new, &[], &[10, 60, 121], &[]);
        // No new debit, nothing to tell about.
        check(rule(), &[], &[], &[1, 2, 3, 4, 5], &[]);
        // New credits do not count.
        check(rule(), &[debit("c", "5.00", "X")], &[], &[1, 2, 3], &[]);
    }

    #[test]
    fn country_not_seen_fires_on_a_new_country_only() {
        let rule = || Rule::CountryNotSeen { days: 30 };
        let from = |id: &str, country: Option<&str>, days_ago: i64| Transaction {
            counterparty_country: country.map(str::to_owned),
            value_date: Some((now() - Duration::days(days_ago)).date_naive()),
            booking_date: Some((now() - Duration::days(days_ago)).date_naive()),
            ..debit(id, "-20.00", "X")
        };
        let home = [from("de-1", Some("DE"), 3), from("fr-old", Some("FR"), 45)];
        // Nigeria was never seen: fires.
        check(rule(), &[from("a", Some("NG"), 0)], &home, &[], &["a"]);
        // Germany was, three days ago: no.
        check(rule(), &[from("b", Some("DE"), 0)], &home, &[], &[]);
        // France only 45 days ago, beyond the 30 looked at: fires.
        check(rule(), &[from("c", Some("FR"), 0)], &home, &[], &["c"]);
        // A country the bank does not say never fires.
        check(rule(), &[from("d", None, 0)], &home, &[], &[]);
        // Money in from a new country is no debit.
        let credit = Transaction {
            amount: amount("20.00"),
            ..from("e", Some("NG"), 0)
        };
        check(rule(), &[credit], &home, &[], &[]);
    }

    #[test]
    fn balance_below_fires_on_a_change_below_the_threshold() {
        use crate::model::BalanceType;
        let balance = |kind, amount_text: &str| Balance {
            account_id: "acc_1".into(),
            kind,
            amount: amount(amount_text),
            currency: "EUR".into(),
            credit_limit_included: None,
            as_of: None,
        };
        let signals = [signal(Rule::BalanceBelow {
            amount: amount("50.00"),
        })];
        let fired = |balances: Option<&[Balance]>| {
            evaluate(
                &signals,
                &Observed {
                    new: &[],
                    listed: &[],
                    earlier_debits: &[],
                    now: now(),
                    changed_balances: balances,
                },
            )
            .len()
        };
        let low = [
            balance(BalanceType::ClosingBooked, "900.00"),
            balance(BalanceType::InterimAvailable, "49.99"),
        ];
        let at = [balance(BalanceType::InterimAvailable, "50.00")];
        assert_eq!(fired(Some(&low)), 1, "the available balance decides");
        assert_eq!(fired(Some(&at)), 0, "at the threshold is not below it");
        assert_eq!(fired(None), 0, "unchanged balances do not fire again");
    }
}
