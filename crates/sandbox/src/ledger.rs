//! The ledger every sandbox bank of a process shares: money that moved since the synthetic
//! customers were loaded, keyed by IBAN, and the sandbox clock that moves payments on.
//!
//! The customers of `customers.toml` are fixed data; the ledger holds what happened to them
//! since: a payment executed at one sandbox bank debits the payer's account and, when the
//! payee's IBAN is a sandbox account (at any sandbox bank of the process), credits it. Every
//! bank's balances and transactions endpoints show the account through [`Ledger::balances`]
//! and [`Ledger::transactions`], so both movements appear wherever the account is read.
//!
//! Amounts are exact `Decimal`s. A movement is pending until its payment settles (at once for
//! an instant payment, [`SETTLEMENT`] after acceptance otherwise, on the sandbox [`Clock`]),
//! then booked. Intraday balances that include pending items (available, expected,
//! authorised) move at once; the interim booked balance moves at settlement; end-of-day
//! balances, being of past days, never move.
//!
//! Refusals are ISO 20022 reason codes: `AM04` insufficient funds, `AC04` closed account,
//! `AC06` blocked account, `AM03` no account of the payer in the currency.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;

use crate::customers::{
    self, Account, AccountStatus, AsOf, Balance, BalanceKind, Customer, Money, Transaction,
    TransactionStatus,
};
use crate::plumbing::today;

/// How long an accepted (non-instant) payment takes to settle, in sandbox time.
pub const SETTLEMENT: TimeDelta = TimeDelta::minutes(10);
/// How long an accepted payment stays in technical validation (`ACTC`) before settlement is
/// in process (`ACSP`), in sandbox time.
pub const VALIDATION: TimeDelta = TimeDelta::minutes(1);

/// Why the ledger refused a transfer: an ISO 20022 status reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection(pub &'static str);

impl Rejection {
    pub const INSUFFICIENT_FUNDS: Rejection = Rejection("AM04");
    pub const ACCOUNT_CLOSED: Rejection = Rejection("AC04");
    pub const ACCOUNT_BLOCKED: Rejection = Rejection("AC06");
    pub const CURRENCY_NOT_HELD: Rejection = Rejection("AM03");
    pub const INVALID_DEBTOR_ACCOUNT: Rejection = Rejection("AC02");
    pub const INVALID_AMOUNT: Rejection = Rejection("AM12");
}

/// What a listener of [`Ledger::changes`] hears: the IBAN of an account whose balances or
/// transactions moved, or [`EVERY_ACCOUNT`] when the clock moved (pending items may have
/// been booked anywhere).
pub type Change = String;

/// The change of every account: the sandbox clock moved.
pub const EVERY_ACCOUNT: &str = "*";

/// The sandbox clock: real time plus an offset that tests advance.
#[derive(Debug)]
pub struct Clock {
    offset: Mutex<TimeDelta>,
    changes: tokio::sync::broadcast::Sender<Change>,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            offset: Mutex::default(),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Clock {
    /// Now, on the sandbox clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + *lock(&self.offset)
    }

    /// Moves the sandbox clock forward (a negative `by` is ignored).
    pub fn advance(&self, by: TimeDelta) {
        if by > TimeDelta::zero() {
            *lock(&self.offset) += by;
            let _ = self.changes.send(EVERY_ACCOUNT.to_owned());
        }
    }
}

/// One movement of money on an account, caused by a payment or by the account's activity
/// ([`Ledger::post`], [`Ledger::stream`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Unique in the ledger; also the transaction id banks show (once booked, when it has a
    /// `pending_id`).
    pub id: String,
    /// The id banks show while it is pending, when the bank books it under another one (card
    /// payments: the standards give the pending and the booked transaction different ids).
    pub pending_id: Option<String>,
    /// Negative leaves the account.
    pub money: Money,
    /// The payee of a debit, the payer of a credit.
    pub counterparty: String,
    pub description: String,
    /// The counterparty's country, if known.
    pub country: Option<String>,
    /// When the payment was accepted (sandbox clock).
    pub at: DateTime<Utc>,
    /// When it settles: pending before, booked from then on.
    pub settles_at: DateTime<Utc>,
}

impl Movement {
    fn settled(&self, now: DateTime<Utc>) -> bool {
        now >= self.settles_at
    }
}

/// A transfer to execute.
#[derive(Debug, Clone)]
pub struct Transfer<'a> {
    pub debtor: &'static Account,
    pub debtor_name: &'a str,
    /// Electronic form (no spaces, upper case).
    pub creditor_iban: &'a str,
    pub creditor_name: &'a str,
    /// Positive.
    pub amount: Decimal,
    pub currency: &'a str,
    pub remittance: Option<&'a str>,
    pub instant: bool,
}

/// An executed transfer: when it was accepted and when it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execution {
    pub accepted_at: DateTime<Utc>,
    pub settles_at: DateTime<Utc>,
}

impl Execution {
    /// The ISO 20022 status of the payment at `now`: `ACTC`, then `ACSP`, then `ACSC`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if now >= self.settles_at {
            "ACSC"
        } else if now >= self.accepted_at + VALIDATION {
            "ACSP"
        } else {
            "ACTC"
        }
    }
}

#[derive(Default)]
struct Books {
    /// By IBAN, oldest first.
    movements: HashMap<String, Vec<Movement>>,
    /// Accounts whose activity streams, by IBAN.
    streams: HashMap<String, Stream>,
    /// IBANs closed by a test or an operator.
    closed: HashSet<String>,
    next_id: u64,
}

/// How far apart a stream's movements are, on the sandbox clock.
pub const STREAM_STEP: TimeDelta = TimeDelta::minutes(30);

/// How long a card payment stays pending, on the sandbox clock.
pub const CARD_PENDING: TimeDelta = TimeDelta::hours(2);

/// A movement to post on an account ([`Ledger::post`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Negative leaves the account.
    pub amount: Decimal,
    pub currency: String,
    pub counterparty: String,
    pub description: String,
    /// ISO 3166-1 alpha-2 country of the counterparty (a card payment abroad), if known.
    pub country: Option<String>,
    /// Zero: booked at once.
    pub pending_for: TimeDelta,
}

/// An account's activity stream: the next movement's number and time.
struct Stream {
    seed: u64,
    next: u64,
    next_at: DateTime<Utc>,
}

/// SplitMix64: a small, well-mixed generator, enough for a reproducible stream.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `n`th movement of the stream of `seed` in `currency`.
fn streamed(seed: u64, n: u64, currency: &str) -> Posting {
    const MERCHANTS: [&str; 6] = [
        "Café Central",
        "Rewe Markt",
        "Deutsche Bahn",
        "Spotify",
        "Shell Station",
        "Buchhandlung Lehmann",
    ];
    let draw = splitmix(seed ^ splitmix(n));
    match draw % 16 {
        0 => Posting {
            amount: Decimal::new(245_000, 2),
            currency: currency.to_owned(),
            counterparty: "ACME GmbH".into(),
            description: "Salary".into(),
            country: None,
            pending_for: TimeDelta::zero(),
        },
        1 => Posting {
            amount: Decimal::new(-89_900, 2),
            currency: currency.to_owned(),
            counterparty: "Electronics Wholesale Lagos".into(),
            description: "Card payment abroad".into(),
            country: Some("NG".into()),
            pending_for: CARD_PENDING,
        },
        _ => {
            let merchant = MERCHANTS[usize::try_from((draw >> 8) % 6).unwrap_or(0)];
            let cents = 350 + i64::try_from((draw >> 16) % 8_650).unwrap_or(0);
            Posting {
                amount: Decimal::new(-cents, 2),
                currency: currency.to_owned(),
                counterparty: merchant.into(),
                description: "Card payment".into(),
                country: None,
                pending_for: CARD_PENDING,
            }
        }
    }
}

impl Books {
    /// Posts the account's streamed movements due by `now`.
    fn catch_up(&mut self, iban: &str, now: DateTime<Utc>) {
        let Some(stream) = self.streams.get_mut(iban) else {
            return;
        };
        let currency = account_by_iban(iban)
            .map(|(_, account)| account.currency.clone())
            .filter(|currency| currency != "XXX")
            .unwrap_or_else(|| "EUR".into());
        let mut due = Vec::new();
        while stream.next_at <= now {
            due.push((
                streamed(stream.seed, stream.next, &currency),
                stream.next_at,
            ));
            stream.next += 1;
            stream.next_at += STREAM_STEP;
        }
        for (posting, at) in due {
            self.post(iban, posting, at);
        }
    }

    fn post(&mut self, iban: &str, posting: Posting, at: DateTime<Utc>) -> String {
        self.next_id += 1;
        let id = format!("mv-{}", self.next_id);
        let pending = posting.pending_for > TimeDelta::zero();
        self.movements
            .entry(iban.to_owned())
            .or_default()
            .push(Movement {
                pending_id: pending.then(|| format!("{id}-pending")),
                id: id.clone(),
                money: Money {
                    amount: posting.amount,
                    currency: posting.currency,
                },
                counterparty: posting.counterparty,
                description: posting.description,
                country: posting.country,
                at,
                settles_at: at + posting.pending_for,
            });
        id
    }
}

/// Money moved by payments, shared by the sandbox banks of a process, and its clock.
#[derive(Default)]
pub struct Ledger {
    clock: Clock,
    books: Mutex<Books>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static SHARED: LazyLock<Arc<Ledger>> = LazyLock::new(Arc::default);

/// The electronic form of an IBAN: no spaces, upper case.
pub fn compact_iban(iban: &str) -> String {
    iban.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// The sandbox account with this IBAN, and its owner, at whichever sandbox bank.
pub fn account_by_iban(iban: &str) -> Option<(&'static Customer, &'static Account)> {
    let iban = compact_iban(iban);
    customers::CUSTOMERS.iter().find_map(|customer| {
        customer
            .accounts
            .iter()
            .find(|account| account.iban.as_deref() == Some(iban.as_str()))
            .map(|account| (customer, account))
    })
}

/// Whether an account holds money in `currency` (its own, or one of a multi-currency
/// account's balances).
fn holds(account: &Account, currency: &str) -> bool {
    account.currency == currency
        || (account.currency == "XXX"
            && account
                .balances
                .iter()
                .any(|balance| balance.money.currency == currency))
}

/// The account `customer` pays from in `currency`: the one named, if it is the customer's,
/// else the customer's first current account with an IBAN in that currency.
pub fn debit_account(
    customer: &'static Customer,
    currency: &str,
    named_iban: Option<&str>,
) -> Result<&'static Account, Rejection> {
    if let Some(named) = named_iban {
        let named = compact_iban(named);
        return customer
            .accounts
            .iter()
            .find(|account| account.iban.as_deref() == Some(named.as_str()))
            .ok_or(Rejection::INVALID_DEBTOR_ACCOUNT);
    }
    customer
        .accounts
        .iter()
        .filter(|account| account.iban.is_some() && holds(account, currency))
        .min_by_key(|account| account.kind != customers::AccountKind::Current)
        .ok_or(Rejection::CURRENCY_NOT_HELD)
}

impl Ledger {
    /// The ledger of the sandbox banks `crate::start` starts in this process.
    pub fn shared() -> Arc<Ledger> {
        SHARED.clone()
    }

    /// The sandbox clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Closes the account with this IBAN: payments from or to it are rejected (`AC04`).
    pub fn close(&self, iban: &str) {
        lock(&self.books).closed.insert(compact_iban(iban));
    }

    /// Whether the account with this IBAN was closed by [`Ledger::close`].
    pub fn is_closed(&self, iban: &str) -> bool {
        lock(&self.books).closed.contains(&compact_iban(iban))
    }

    /// Reopens an account closed by [`Ledger::close`].
    pub fn reopen(&self, iban: &str) {
        lock(&self.books).closed.remove(&compact_iban(iban));
    }

    /// The movements on the account with this IBAN, oldest first (its stream's, up to now on
    /// the sandbox clock, included).
    pub fn movements(&self, iban: &str) -> Vec<Movement> {
        let iban = compact_iban(iban);
        let now = self.clock.now();
        let mut books = lock(&self.books);
        books.catch_up(&iban, now);
        books.movements.get(&iban).cloned().unwrap_or_default()
    }

    /// Posts a movement on the account with this IBAN at the sandbox clock's now: pending
    /// under `<id>-pending` for `posting.pending_for`, then booked under its id (returned).
    pub fn post(&self, iban: &str, posting: Posting) -> String {
        let iban = compact_iban(iban);
        let now = self.clock.now();
        let id = {
            let mut books = lock(&self.books);
            books.catch_up(&iban, now);
            books.post(&iban, posting, now)
        };
        self.changed(iban);
        id
    }

    /// Tells the listeners of [`Ledger::changes`] that the account `iban` moved.
    fn changed(&self, iban: String) {
        let _ = self.clock.changes.send(iban);
    }

    /// Hears of every movement posted or executed from now on, and of the clock moving (a
    /// bank that pushes event notifications listens here). A listener too slow to keep up
    /// misses changes (`RecvError::Lagged`) and should treat it as [`EVERY_ACCOUNT`].
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.clock.changes.subscribe()
    }

    /// Starts the account's activity stream (if it has none): from now on the sandbox clock,
    /// every [`STREAM_STEP`] a movement drawn from `seed` — card payments (pending, then
    /// booked under another id), now and then a salary, and a suspicious foreign debit. The
    /// same seed gives the same stream.
    pub fn stream(&self, iban: &str, seed: u64) {
        let iban = compact_iban(iban);
        let now = self.clock.now();
        lock(&self.books).streams.entry(iban).or_insert(Stream {
            seed,
            next: 0,
            next_at: now + STREAM_STEP,
        });
    }

    fn usable(books: &Books, account: &Account) -> Result<(), Rejection> {
        if account
            .iban
            .as_deref()
            .is_some_and(|iban| books.closed.contains(iban))
        {
            return Err(Rejection::ACCOUNT_CLOSED);
        }
        if account.status == AccountStatus::Blocked {
            return Err(Rejection::ACCOUNT_BLOCKED);
        }
        Ok(())
    }

    /// Executes a transfer, all or nothing: checks both accounts and the payer's funds, then
    /// debits the payer and credits the payee if the payee banks at a sandbox bank (an
    /// external payee: debit only).
    pub fn execute(&self, transfer: &Transfer<'_>) -> Result<Execution, Rejection> {
        if transfer.amount <= Decimal::ZERO {
            return Err(Rejection::INVALID_AMOUNT);
        }
        let debtor_iban = transfer
            .debtor
            .iban
            .clone()
            .ok_or(Rejection::INVALID_DEBTOR_ACCOUNT)?;
        let creditor = account_by_iban(transfer.creditor_iban);
        let now = self.clock.now();
        let mut books = lock(&self.books);
        Self::usable(&books, transfer.debtor)?;
        if let Some((_, account)) = creditor {
            Self::usable(&books, account)?;
        }
        let available = available(
            transfer.debtor,
            transfer.currency,
            books.movements.get(&debtor_iban).map_or(&[], Vec::as_slice),
        )
        .ok_or(Rejection::CURRENCY_NOT_HELD)?;
        if available < transfer.amount {
            return Err(Rejection::INSUFFICIENT_FUNDS);
        }
        let settles_at = if transfer.instant {
            now
        } else {
            now + SETTLEMENT
        };
        let description = transfer
            .remittance
            .map_or_else(|| "SEPA credit transfer".to_owned(), str::to_owned);
        books.next_id += 1;
        let id = books.next_id;
        let debit = Movement {
            id: format!("mv-{id}-d"),
            pending_id: None,
            money: Money {
                amount: -transfer.amount,
                currency: transfer.currency.to_owned(),
            },
            counterparty: transfer.creditor_name.to_owned(),
            description: description.clone(),
            country: None,
            at: now,
            settles_at,
        };
        books
            .movements
            .entry(debtor_iban.clone())
            .or_default()
            .push(debit);
        let mut changed = vec![debtor_iban];
        if let Some((_, account)) = creditor
            && let Some(iban) = &account.iban
        {
            let credit = Movement {
                id: format!("mv-{id}-c"),
                pending_id: None,
                money: Money {
                    amount: transfer.amount,
                    currency: transfer.currency.to_owned(),
                },
                counterparty: transfer.debtor_name.to_owned(),
                description,
                country: None,
                at: now,
                settles_at,
            };
            books
                .movements
                .entry(iban.clone())
                .or_default()
                .push(credit);
            changed.push(iban.clone());
        }
        drop(books);
        for iban in changed {
            self.changed(iban);
        }
        Ok(Execution {
            accepted_at: now,
            settles_at,
        })
    }

    /// What the account can pay in `currency` now (its available balance with the movements
    /// applied), if it holds that currency.
    pub fn available(&self, account: &Account, currency: &str) -> Option<Decimal> {
        let movements = account
            .iban
            .as_deref()
            .map(|iban| self.movements(iban))
            .unwrap_or_default();
        available(account, currency, &movements)
    }

    /// The account's balances with the movements applied.
    pub fn balances(&self, account: &Account) -> Vec<Balance> {
        let Some(iban) = &account.iban else {
            return account.balances.clone();
        };
        let movements = self.movements(iban);
        let now = self.clock.now();
        account
            .balances
            .iter()
            .map(|balance| {
                let mut balance = balance.clone();
                balance.money.amount += shift(&balance, &movements, now);
                balance
            })
            .collect()
    }

    /// The account's transactions, newest first: the movements, then the synthetic history.
    pub fn transactions(&self, account: &Account) -> Vec<Transaction> {
        let Some(iban) = &account.iban else {
            return account.transactions.clone();
        };
        let now = self.clock.now();
        let today = today();
        let mut transactions: Vec<Transaction> = self
            .movements(iban)
            .into_iter()
            .rev()
            .map(|movement| {
                let debit = movement.money.is_debit();
                let settled = movement.settled(now);
                let id = match (&movement.pending_id, settled) {
                    (Some(pending_id), false) => pending_id.clone(),
                    _ => movement.id.clone(),
                };
                Transaction {
                    status: if settled {
                        TransactionStatus::Booked
                    } else {
                        TransactionStatus::Pending
                    },
                    days_ago: u64::try_from((today - movement.at.date_naive()).num_days())
                        .unwrap_or(0),
                    counterparty: movement.counterparty,
                    description: movement.description,
                    mcc: None,
                    country: movement.country,
                    bank_code: if debit {
                        "PMNT-ICDT-ESCT"
                    } else {
                        "PMNT-RCDT-ESCT"
                    }
                    .to_owned(),
                    id,
                    money: movement.money,
                }
            })
            .collect();
        transactions.extend(account.transactions.iter().cloned());
        transactions
    }
}

/// How much the movements change one balance: intraday balances that include pending items
/// take every movement in their currency, the interim booked balance the settled ones,
/// end-of-day balances none.
fn shift(balance: &Balance, movements: &[Movement], now: DateTime<Utc>) -> Decimal {
    if balance.as_of != AsOf::Intraday {
        return Decimal::ZERO;
    }
    let settled_only = match balance.kind {
        BalanceKind::InterimAvailable | BalanceKind::Expected | BalanceKind::Authorised => false,
        BalanceKind::InterimBooked => true,
        _ => return Decimal::ZERO,
    };
    movements
        .iter()
        .filter(|movement| movement.money.currency == balance.money.currency)
        .filter(|movement| !settled_only || movement.settled(now))
        .map(|movement| movement.money.amount)
        .sum()
}

/// What the account can pay in `currency` now: its available balance (else authorised,
/// expected, interim booked, closing booked) with the movements applied.
fn available(account: &Account, currency: &str, movements: &[Movement]) -> Option<Decimal> {
    const ORDER: [BalanceKind; 5] = [
        BalanceKind::InterimAvailable,
        BalanceKind::Authorised,
        BalanceKind::Expected,
        BalanceKind::InterimBooked,
        BalanceKind::ClosingBooked,
    ];
    let balance = ORDER.iter().find_map(|kind| {
        account
            .balances
            .iter()
            .find(|balance| balance.kind == *kind && balance.money.currency == currency)
    })?;
    let moved: Decimal = movements
        .iter()
        .filter(|movement| movement.money.currency == currency)
        .map(|movement| movement.money.amount)
        .sum();
    // A closing or pending-blind balance does not know today's movements yet.
    Some(balance.money.amount + moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice_giro() -> (&'static Customer, &'static Account) {
        account_by_iban("DE92 9999 0000 0012 3456 01").unwrap()
    }

    fn transfer(amount: &str, creditor_iban: &'static str, instant: bool) -> Transfer<'static> {
        let (customer, account) = alice_giro();
        Transfer {
            debtor: account,
            debtor_name: &customer.name,
            creditor_iban,
            creditor_name: "Carol Nguyen",
            amount: amount.parse().unwrap(),
            currency: "EUR",
            remittance: Some("pizza"),
            instant,
        }
    }

    fn balance(ledger: &Ledger, iban: &str, kind: BalanceKind) -> Decimal {
        let (_, account) = account_by_iban(iban).unwrap();
        ledger
            .balances(account)
            .into_iter()
            .find(|balance| balance.kind == kind && balance.as_of == AsOf::Intraday)
            .unwrap()
            .money
            .amount
    }

    #[test]
    fn a_transfer_between_sandbox_accounts_moves_money_exactly() {
        let ledger = Ledger::default();
        let carol = "NL18BKGT0417164300";
        let before = balance(&ledger, carol, BalanceKind::InterimAvailable);
        let execution = ledger
            .execute(&transfer("12.50", carol, false))
            .expect("executed");
        assert_eq!(
            balance(
                &ledger,
                "DE92999900000012345601",
                BalanceKind::InterimAvailable
            ),
            "1748.01".parse().unwrap()
        );
        assert_eq!(
            balance(&ledger, carol, BalanceKind::InterimAvailable) - before,
            "12.50".parse().unwrap()
        );
        assert_eq!(execution.status(execution.accepted_at), "ACTC");
        assert_eq!(execution.status(execution.accepted_at + VALIDATION), "ACSP");
        assert_eq!(execution.status(execution.settles_at), "ACSC");
        let (_, account) = account_by_iban(carol).unwrap();
        let newest = &ledger.transactions(account)[0];
        assert_eq!(newest.status, TransactionStatus::Pending);
        assert_eq!(newest.counterparty, "Alice Schmidt");
        ledger.clock().advance(SETTLEMENT);
        assert_eq!(
            ledger.transactions(account)[0].status,
            TransactionStatus::Booked
        );
    }

    #[test]
    fn refusals_leave_the_ledger_unchanged() {
        let ledger = Ledger::default();
        let check = |transfer: Transfer<'_>, expected: Rejection| {
            assert_eq!(ledger.execute(&transfer), Err(expected));
        };
        check(
            transfer("1760.52", "NL18BKGT0417164300", true),
            Rejection::INSUFFICIENT_FUNDS,
        );
        check(
            transfer("1.00", "IE86BKGT99002148270605", true),
            Rejection::ACCOUNT_BLOCKED,
        );
        ledger.close("NL18BKGT0417164300");
        check(
            transfer("1.00", "NL18BKGT0417164300", true),
            Rejection::ACCOUNT_CLOSED,
        );
        check(
            transfer("0", "NL18BKGT0417164300", true),
            Rejection::INVALID_AMOUNT,
        );
        assert!(ledger.movements("DE92999900000012345601").is_empty());
        // The whole available balance can go, to an external payee: debit only.
        ledger
            .execute(&transfer("1760.51", "FR7630006000011234567890189", true))
            .expect("executed");
        assert_eq!(ledger.movements("DE92999900000012345601").len(), 1);
        assert!(ledger.movements("FR7630006000011234567890189").is_empty());
    }

    #[test]
    fn the_payer_pays_from_an_account_in_the_currency() {
        let bob = customers::find("bob").unwrap();
        assert_eq!(debit_account(bob, "EUR", None).unwrap().id, "bob-wallet");
        assert_eq!(debit_account(bob, "GBP", None).unwrap().id, "bob-current");
        assert_eq!(
            debit_account(bob, "JPY", None).err(),
            Some(Rejection::CURRENCY_NOT_HELD)
        );
        assert_eq!(
            debit_account(bob, "EUR", Some("DE92999900000012345601")).err(),
            Some(Rejection::INVALID_DEBTOR_ACCOUNT)
        );
    }
}
