//! Deterministic synthetic customers shared by every sandbox bank.
//!
//! Plain data tables, written to be read: three customers (`alice`, `bob`, `carol`), each with
//! two to four accounts in EUR, GBP, USD or several currencies, balances of many types and about
//! a year of history. Nothing here is specific to one standard: every sandbox (Berlin Group,
//! STET, OBIE and FDX) maps these rows onto its own wire format.
//!
//! Amounts are exact decimal strings, parsed with [`rust_decimal`] when served (never `f64`),
//! in cents except one interest accrual with five decimals, which each sandbox presents at its
//! standard's precision.
//! Dates are "N days before today", so that history windows can be tested against any date.

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

/// The customer a consent is approved as when nobody says otherwise.
pub const DEFAULT_CUSTOMER: &str = "alice";

/// One bank customer (a PSU in Berlin Group terms).
#[derive(Debug, PartialEq, Eq)]
pub struct Customer {
    /// Login id at the sandbox bank (`PSU-ID` in Berlin Group).
    pub id: &'static str,
    /// Full name, as the bank knows its account owner.
    pub name: &'static str,
    pub accounts: &'static [Account],
}

/// What kind of account it is, independent of any standard's code list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Current,
    Savings,
    Card,
}

/// Whether the account can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Enabled,
    Blocked,
}

/// One account of a customer.
#[derive(Debug, PartialEq, Eq)]
pub struct Account {
    /// The bank's stable resource id for the account.
    pub id: &'static str,
    pub kind: AccountKind,
    /// ISO 4217; `XXX` for a multi-currency account whose balances and transactions carry
    /// their own currencies.
    pub currency: &'static str,
    /// Valid IBAN (check digits computed), absent for card accounts.
    pub iban: Option<&'static str>,
    /// Masked card number, for card accounts.
    pub masked_pan: Option<&'static str>,
    /// BIC of the sandbox bank.
    pub bic: &'static str,
    /// The name the customer gave the account.
    pub name: &'static str,
    /// The bank's product name.
    pub product: &'static str,
    pub status: AccountStatus,
    /// The credit line of a card or an overdraft, if any.
    pub credit_limit: Option<Money>,
    pub balances: &'static [Balance],
    /// Most recent first.
    pub transactions: &'static [Transaction],
}

/// An amount with its currency, as exact decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Signed decimal text, e.g. `"-12.30"`.
    pub amount: &'static str,
    pub currency: &'static str,
}

impl Money {
    /// The amount as a decimal, keeping its scale (`"-12.30"` stays `-12.30`).
    pub fn decimal(&self) -> Result<Decimal, rust_decimal::Error> {
        Decimal::from_str_exact(self.amount)
    }
}

/// Balance types, named after what they mean rather than after one standard's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceKind {
    /// Booked balance at the end of a past day.
    ClosingBooked,
    /// Booked balance at the start of the reporting period.
    OpeningBooked,
    /// Booked balance during the day.
    InterimBooked,
    /// Available balance during the day (may include the credit line).
    InterimAvailable,
    /// Booked balance plus pending items.
    Expected,
    /// Balance available at a future date.
    ForwardAvailable,
    /// Expected balance plus the pre-approved credit line.
    Authorised,
    /// Card spending not yet invoiced: a code most standards lack (Berlin Group `nonInvoiced`).
    NonInvoiced,
}

/// When a balance was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// At the end of the day `days_ago` days before today.
    EndOfDay { days_ago: u64 },
    /// Now, during today.
    Intraday,
}

/// One balance of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub kind: BalanceKind,
    pub money: Money,
    /// Whether the amount includes the credit line; `None` when the bank does not say.
    pub credit_limit_included: Option<bool>,
    pub as_of: AsOf,
}

/// Booked or pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Booked,
    Pending,
}

/// One movement of money: negative amounts leave the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    /// The bank's transaction id, unique within the bank.
    pub id: &'static str,
    pub status: TransactionStatus,
    /// Booked: the booking (and value) date is today minus this; pending: the value date.
    pub days_ago: u64,
    pub money: Money,
    /// Payee of money out, payer of money in.
    pub counterparty: &'static str,
    pub description: &'static str,
    /// ISO 18245 merchant category code, for card payments.
    pub mcc: Option<&'static str>,
    /// ISO 20022 bank transaction code (domain-family-subfamily).
    pub bank_code: &'static str,
}

impl Transaction {
    /// The booking date; pending transactions have none.
    pub fn booking_date(&self, today: NaiveDate) -> Option<NaiveDate> {
        match self.status {
            TransactionStatus::Booked => Some(days_before(today, self.days_ago)),
            TransactionStatus::Pending => None,
        }
    }

    /// The value date (for pending transactions, the date the card was used).
    pub fn value_date(&self, today: NaiveDate) -> NaiveDate {
        days_before(today, self.days_ago)
    }
}

/// `today` minus `days` (the earliest representable date if that underflows).
pub fn days_before(today: NaiveDate, days: u64) -> NaiveDate {
    today
        .checked_sub_days(Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}

/// Every customer, in a stable order.
pub static CUSTOMERS: &[Customer] = &[ALICE, BOB, CAROL];

/// The customer with this id.
pub fn find(id: &str) -> Option<&'static Customer> {
    CUSTOMERS.iter().find(|customer| customer.id == id)
}

impl Customer {
    /// The customer's account with this resource id.
    pub fn account(&self, id: &str) -> Option<&'static Account> {
        self.accounts.iter().find(|account| account.id == id)
    }
}

// Short names that keep the tables below on one line per row.
const EUR: &str = "EUR";
const GBP: &str = "GBP";
const USD: &str = "USD";
const BIC: &str = "BKGTDEB1XXX";
const CARD: &str = "PMNT-CCRD-POSD";
const CASH: &str = "PMNT-CCRD-CWDL";
const TRANSFER_IN: &str = "PMNT-RCDT-ESCT";
const TRANSFER_OUT: &str = "PMNT-ICDT-ESCT";
const DOMESTIC_IN: &str = "PMNT-RCDT-DMCT";
const DOMESTIC_OUT: &str = "PMNT-ICDT-DMCT";
const STANDING_ORDER: &str = "PMNT-ICDT-STDO";
const DIRECT_DEBIT: &str = "PMNT-IDDT-ESDD";
const INTEREST: &str = "ACMT-MDOP-INTR";
const FEES: &str = "ACMT-MDOP-CHRG";
const FX: &str = "FORX-SPOT-OTHR";

const fn money(amount: &'static str, currency: &'static str) -> Money {
    Money { amount, currency }
}

const fn balance(
    kind: BalanceKind,
    amount: &'static str,
    currency: &'static str,
    credit_limit_included: Option<bool>,
    as_of: AsOf,
) -> Balance {
    Balance {
        kind,
        money: money(amount, currency),
        credit_limit_included,
        as_of,
    }
}

const fn closing(amount: &'static str, currency: &'static str) -> Balance {
    balance(
        BalanceKind::ClosingBooked,
        amount,
        currency,
        None,
        AsOf::EndOfDay { days_ago: 1 },
    )
}

#[allow(clippy::too_many_arguments)]
const fn transaction(
    id: &'static str,
    status: TransactionStatus,
    days_ago: u64,
    amount: &'static str,
    currency: &'static str,
    counterparty: &'static str,
    description: &'static str,
    mcc: Option<&'static str>,
    bank_code: &'static str,
) -> Transaction {
    Transaction {
        id,
        status,
        days_ago,
        money: money(amount, currency),
        counterparty,
        description,
        mcc,
        bank_code,
    }
}

#[allow(clippy::too_many_arguments)]
const fn booked(
    id: &'static str,
    days_ago: u64,
    amount: &'static str,
    currency: &'static str,
    counterparty: &'static str,
    description: &'static str,
    mcc: Option<&'static str>,
    bank_code: &'static str,
) -> Transaction {
    transaction(
        id,
        TransactionStatus::Booked,
        days_ago,
        amount,
        currency,
        counterparty,
        description,
        mcc,
        bank_code,
    )
}

#[allow(clippy::too_many_arguments)]
const fn pending(
    id: &'static str,
    days_ago: u64,
    amount: &'static str,
    currency: &'static str,
    counterparty: &'static str,
    description: &'static str,
    mcc: Option<&'static str>,
    bank_code: &'static str,
) -> Transaction {
    transaction(
        id,
        TransactionStatus::Pending,
        days_ago,
        amount,
        currency,
        counterparty,
        description,
        mcc,
        bank_code,
    )
}

use AsOf::{EndOfDay, Intraday};
use BalanceKind::*;

/// Alice Schmidt, Berlin: an overdrawn current account, savings and a credit card (EUR).
#[rustfmt::skip]
const ALICE: Customer = Customer {
    id: "alice",
    name: "Alice Schmidt",
    accounts: &[
        Account {
            id: "alice-giro",
            kind: AccountKind::Current,
            currency: EUR,
            iban: Some("DE92999900000012345601"),
            masked_pan: None,
            bic: BIC,
            name: "Main Account",
            product: "Girokonto",
            status: AccountStatus::Enabled,
            credit_limit: Some(money("2000.00", EUR)),
            balances: &[
                balance(ClosingBooked, "-152.37", EUR, Some(false), EndOfDay { days_ago: 1 }),
                balance(OpeningBooked, "1204.55", EUR, Some(false), EndOfDay { days_ago: 30 }),
                balance(InterimAvailable, "1760.51", EUR, Some(true), Intraday),
                balance(Expected, "-239.49", EUR, Some(false), Intraday),
            ],
            transactions: &[
                pending("tx-alice-giro-16", 0, "-54.20", EUR, "Lidl Dienstleistung", "Kartenzahlung Lidl Berlin-Mitte", Some("5411"), CARD),
                pending("tx-alice-giro-15", 1, "-32.92", EUR, "Shell Deutschland", "Kartenzahlung Shell Station 4711", Some("5541"), CARD),
                booked("tx-alice-giro-14", 2, "-23.80", EUR, "Café Einstein", "Kartenzahlung Café Einstein Unter den Linden", Some("5812"), CARD),
                booked("tx-alice-giro-13", 3, "-61.35", EUR, "REWE Markt GmbH", "Kartenzahlung REWE Torstraße", Some("5411"), CARD),
                booked("tx-alice-giro-12", 5, "-1150.00", EUR, "Hausverwaltung Berlin GmbH", "Miete Wohnung 3B", None, STANDING_ORDER),
                booked("tx-alice-giro-11", 6, "3120.44", EUR, "Acme Software GmbH", "Gehalt", None, TRANSFER_IN),
                booked("tx-alice-giro-10", 9, "-89.99", EUR, "Vodafone GmbH", "Mobilfunk Rechnung Kd-Nr 55501234", None, DIRECT_DEBIT),
                booked("tx-alice-giro-09", 14, "-200.00", EUR, "Berliner Sparkasse", "Bargeldauszahlung Alexanderplatz", Some("6011"), CASH),
                booked("tx-alice-giro-08", 20, "-45.60", EUR, "DB Fernverkehr AG", "Fahrkarte Berlin-Hamburg", Some("4112"), CARD),
                booked("tx-alice-giro-07", 33, "-1150.00", EUR, "Hausverwaltung Berlin GmbH", "Miete Wohnung 3B", None, STANDING_ORDER),
                booked("tx-alice-giro-06", 36, "3120.44", EUR, "Acme Software GmbH", "Gehalt", None, TRANSFER_IN),
                booked("tx-alice-giro-05", 60, "-12.30", EUR, "Spotify AB", "Spotify Premium", Some("5815"), CARD),
                booked("tx-alice-giro-04", 95, "-500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_OUT),
                booked("tx-alice-giro-03", 180, "-329.00", EUR, "MediaMarkt Berlin", "Kopfhörer", Some("5732"), CARD),
                booked("tx-alice-giro-02", 270, "45.00", EUR, "Bob Turner", "Konzertkarten", None, TRANSFER_IN),
                booked("tx-alice-giro-01", 390, "-740.18", EUR, "Deutsche Lufthansa AG", "Flug BER-LIS", Some("4511"), CARD),
            ],
        },
        Account {
            id: "alice-savings",
            kind: AccountKind::Savings,
            currency: EUR,
            iban: Some("DE65999900000012345602"),
            masked_pan: None,
            bic: BIC,
            name: "Savings",
            product: "Tagesgeld",
            status: AccountStatus::Enabled,
            credit_limit: None,
            balances: &[
                closing("12531.25", EUR),
                balance(InterimBooked, "12531.25", EUR, None, Intraday),
                balance(ForwardAvailable, "12531.25", EUR, None, EndOfDay { days_ago: 0 }),
            ],
            transactions: &[
                // Interest accrues to five decimals; each standard presents it at its own
                // precision (OBIE and FDX in full, Berlin Group to three places, STET to two).
                pending("tx-alice-sav-11", 0, "1.23456", EUR, "Sandbox Bank", "Zinsabgrenzung", None, INTEREST),
                booked("tx-alice-sav-10", 4, "10.42", EUR, "Sandbox Bank", "Zinsen Q3", None, INTEREST),
                booked("tx-alice-sav-09", 35, "500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_IN),
                booked("tx-alice-sav-08", 65, "500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_IN),
                booked("tx-alice-sav-07", 95, "500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_IN),
                booked("tx-alice-sav-06", 96, "9.87", EUR, "Sandbox Bank", "Zinsen Q2", None, INTEREST),
                booked("tx-alice-sav-05", 125, "500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_IN),
                booked("tx-alice-sav-04", 150, "-1000.00", EUR, "Alice Schmidt", "Urlaub", None, TRANSFER_OUT),
                booked("tx-alice-sav-03", 187, "8.96", EUR, "Sandbox Bank", "Zinsen Q1", None, INTEREST),
                booked("tx-alice-sav-02", 245, "500.00", EUR, "Alice Schmidt", "Sparen", None, TRANSFER_IN),
                booked("tx-alice-sav-01", 380, "10000.00", EUR, "Alice Schmidt", "Erstanlage", None, TRANSFER_IN),
            ],
        },
        Account {
            id: "alice-card",
            kind: AccountKind::Card,
            currency: EUR,
            iban: None,
            masked_pan: Some("489537******7421"),
            bic: BIC,
            name: "Credit Card",
            product: "Visa Classic",
            status: AccountStatus::Enabled,
            credit_limit: Some(money("3000.00", EUR)),
            balances: &[
                balance(ClosingBooked, "-734.90", EUR, Some(false), EndOfDay { days_ago: 1 }),
                balance(NonInvoiced, "-212.45", EUR, None, Intraday),
                balance(Authorised, "2052.65", EUR, Some(true), Intraday),
            ],
            transactions: &[
                pending("tx-alice-card-12", 0, "-18.90", EUR, "Uber BV", "Uber Trip", Some("4121"), CARD),
                pending("tx-alice-card-11", 2, "-45.00", EUR, "Thalia Bücher GmbH", "Bücher", Some("5942"), CARD),
                booked("tx-alice-card-10", 4, "-89.95", EUR, "Zalando SE", "Online-Bestellung 10-4471", Some("5691"), CARD),
                booked("tx-alice-card-09", 8, "29.95", EUR, "Zalando SE", "Retoure 10-4471", Some("5691"), CARD),
                booked("tx-alice-card-08", 12, "-13.99", EUR, "Netflix International BV", "Netflix Abo", Some("4899"), CARD),
                booked("tx-alice-card-07", 25, "-312.00", EUR, "Hotel Avenida Lisboa", "Hotel 2 Nächte", Some("7011"), CARD),
                booked("tx-alice-card-06", 31, "520.30", EUR, "Alice Schmidt", "Kartenabrechnung", None, TRANSFER_IN),
                booked("tx-alice-card-05", 44, "-64.10", EUR, "Aral AG", "Tankstelle Aral 0815", Some("5541"), CARD),
                booked("tx-alice-card-04", 71, "-24.50", EUR, "Kino International", "Kinokarten", Some("7832"), CARD),
                booked("tx-alice-card-03", 120, "-17.85", EUR, "Apotheke am Markt", "Apotheke", Some("5912"), CARD),
                booked("tx-alice-card-02", 210, "-189.99", EUR, "easyJet Airline Company", "Flug BER-CPH", Some("4511"), CARD),
                booked("tx-alice-card-01", 330, "-76.40", EUR, "Restaurant Nobelhart", "Abendessen", Some("5812"), CARD),
            ],
        },
    ],
};

/// Bob Turner, London: a current account, a multi-currency travel wallet and a card (GBP).
#[rustfmt::skip]
const BOB: Customer = Customer {
    id: "bob",
    name: "Bob Turner",
    accounts: &[
        Account {
            id: "bob-current",
            kind: AccountKind::Current,
            currency: GBP,
            iban: Some("GB62BKGT40051531926819"),
            masked_pan: None,
            bic: "BKGTGB2LXXX",
            name: "Everyday",
            product: "Current Account",
            status: AccountStatus::Enabled,
            credit_limit: None,
            balances: &[
                closing("2304.18", GBP),
                balance(InterimBooked, "2304.18", GBP, None, Intraday),
                balance(InterimAvailable, "2189.53", GBP, Some(false), Intraday),
                balance(Expected, "2189.53", GBP, None, Intraday),
            ],
            transactions: &[
                pending("tx-bob-cur-15", 0, "-86.40", GBP, "Tesco Stores Ltd", "Tesco Express Shoreditch", Some("5411"), CARD),
                pending("tx-bob-cur-14", 1, "-28.25", GBP, "Transport for London", "TfL Travel Charge", Some("4111"), CARD),
                booked("tx-bob-cur-13", 2, "-6.45", GBP, "Pret A Manger", "Pret Liverpool St", Some("5814"), CARD),
                booked("tx-bob-cur-12", 4, "-52.18", GBP, "J Sainsbury plc", "Sainsbury's Islington", Some("5411"), CARD),
                booked("tx-bob-cur-11", 7, "2850.00", GBP, "Northwind Traders Ltd", "Salary", None, DOMESTIC_IN),
                booked("tx-bob-cur-10", 8, "-1400.00", GBP, "Foxtons Lettings", "Rent Flat 2", None, STANDING_ORDER),
                booked("tx-bob-cur-09", 10, "-142.00", GBP, "London Borough of Hackney", "Council Tax", None, DIRECT_DEBIT),
                booked("tx-bob-cur-08", 15, "-68.00", GBP, "British Gas", "Energy bill", None, DIRECT_DEBIT),
                booked("tx-bob-cur-07", 22, "-35.00", GBP, "PureGym Ltd", "Membership", Some("7997"), CARD),
                booked("tx-bob-cur-06", 29, "-23.99", GBP, "Amazon UK", "Order 204-5551", Some("5942"), CARD),
                booked("tx-bob-cur-05", 33, "23.99", GBP, "Amazon UK", "Refund 204-5551", Some("5942"), CARD),
                booked("tx-bob-cur-04", 38, "2850.00", GBP, "Northwind Traders Ltd", "Salary", None, DOMESTIC_IN),
                booked("tx-bob-cur-03", 39, "-1400.00", GBP, "Foxtons Lettings", "Rent Flat 2", None, STANDING_ORDER),
                booked("tx-bob-cur-02", 200, "-45.00", GBP, "Alice Schmidt", "Concert tickets", None, DOMESTIC_OUT),
                booked("tx-bob-cur-01", 365, "-2.50", GBP, "Sandbox Bank", "Monthly account fee", None, FEES),
            ],
        },
        Account {
            id: "bob-wallet",
            kind: AccountKind::Current,
            currency: "XXX",
            iban: Some("GB40BKGT40051531926827"),
            masked_pan: None,
            bic: "BKGTGB2LXXX",
            name: "Travel Wallet",
            product: "Multi-Currency Account",
            status: AccountStatus::Enabled,
            credit_limit: None,
            balances: &[
                closing("250.00", GBP),
                closing("1320.75", EUR),
                closing("-18.40", USD),
                balance(InterimAvailable, "1290.75", EUR, Some(false), Intraday),
                balance(Expected, "-18.40", USD, None, Intraday),
            ],
            transactions: &[
                pending("tx-bob-wal-12", 1, "-30.00", EUR, "Le Petit Zinc", "Dinner Paris", Some("5812"), CARD),
                booked("tx-bob-wal-11", 3, "-42.60", EUR, "RATP", "Navigo week pass", Some("4111"), CARD),
                booked("tx-bob-wal-10", 4, "-118.40", USD, "Hudson News", "JFK Terminal 4", Some("5994"), CARD),
                booked("tx-bob-wal-09", 5, "100.00", USD, "Bob Turner", "Exchange GBP to USD", None, FX),
                booked("tx-bob-wal-08", 5, "-79.15", GBP, "Bob Turner", "Exchange GBP to USD", None, FX),
                booked("tx-bob-wal-07", 30, "-215.00", EUR, "Hôtel du Nord", "2 nights", Some("7011"), CARD),
                booked("tx-bob-wal-06", 31, "1500.00", EUR, "Bob Turner", "Exchange GBP to EUR", None, FX),
                booked("tx-bob-wal-05", 31, "-1284.60", GBP, "Bob Turner", "Exchange GBP to EUR", None, FX),
                booked("tx-bob-wal-04", 32, "1500.00", GBP, "Bob Turner", "Top up from Everyday", None, DOMESTIC_IN),
                booked("tx-bob-wal-03", 160, "-64.00", USD, "Yellow Cab NYC", "Taxi JFK", Some("4121"), CARD),
                booked("tx-bob-wal-02", 160, "64.00", USD, "Bob Turner", "Exchange GBP to USD", None, FX),
                booked("tx-bob-wal-01", 300, "113.75", GBP, "Bob Turner", "Top up from Everyday", None, DOMESTIC_IN),
            ],
        },
        Account {
            id: "bob-card",
            kind: AccountKind::Card,
            currency: GBP,
            iban: None,
            masked_pan: Some("535522******0087"),
            bic: "BKGTGB2LXXX",
            name: "Mastercard",
            product: "Mastercard Platinum",
            status: AccountStatus::Enabled,
            credit_limit: Some(money("5000.00", GBP)),
            balances: &[
                balance(ClosingBooked, "-1287.33", GBP, Some(false), EndOfDay { days_ago: 1 }),
                balance(InterimBooked, "-1402.83", GBP, Some(false), Intraday),
                balance(InterimAvailable, "3597.17", GBP, Some(true), Intraday),
            ],
            transactions: &[
                pending("tx-bob-card-11", 0, "-115.50", GBP, "John Lewis plc", "John Lewis Oxford St", Some("5311"), CARD),
                booked("tx-bob-card-10", 3, "-24.00", GBP, "Odeon Cinemas", "Cinema tickets", Some("7832"), CARD),
                booked("tx-bob-card-09", 9, "-342.19", GBP, "Currys plc", "Laptop stand and monitor", Some("5732"), CARD),
                booked("tx-bob-card-08", 17, "-58.70", GBP, "Dishoom Ltd", "Dinner", Some("5812"), CARD),
                booked("tx-bob-card-07", 28, "900.00", GBP, "Bob Turner", "Card repayment", None, DOMESTIC_IN),
                booked("tx-bob-card-06", 41, "-410.00", GBP, "British Airways", "LHR-JFK", Some("4511"), CARD),
                booked("tx-bob-card-05", 58, "-9.99", GBP, "Apple Services", "iCloud+", Some("5818"), CARD),
                booked("tx-bob-card-04", 88, "-71.45", GBP, "Shell UK", "Fuel", Some("5541"), CARD),
                booked("tx-bob-card-03", 140, "-25.00", GBP, "Sandbox Bank", "Annual card fee", None, FEES),
                booked("tx-bob-card-02", 250, "-146.00", GBP, "Eurostar International", "London-Paris", Some("4112"), CARD),
                booked("tx-bob-card-01", 395, "-12.60", GBP, "Boots UK", "Pharmacy", Some("5912"), CARD),
            ],
        },
    ],
};

/// Carol Nguyen, Dublin: a USD account, an overdrawn EUR account and a blocked savings account.
#[rustfmt::skip]
const CAROL: Customer = Customer {
    id: "carol",
    name: "Carol Nguyen",
    accounts: &[
        Account {
            id: "carol-usd",
            kind: AccountKind::Current,
            currency: USD,
            iban: Some("IE76BKGT99002148270591"),
            masked_pan: None,
            bic: "BKGTIE2DXXX",
            name: "Dollar Account",
            product: "USD Current Account",
            status: AccountStatus::Enabled,
            credit_limit: None,
            balances: &[
                closing("8423.10", USD),
                balance(InterimAvailable, "8298.10", USD, Some(false), Intraday),
                balance(Expected, "8298.10", USD, None, Intraday),
            ],
            transactions: &[
                pending("tx-carol-usd-12", 1, "-125.00", USD, "Amazon Web Services", "AWS invoice 88123", Some("7372"), CARD),
                booked("tx-carol-usd-11", 6, "2400.00", USD, "Stripe Payments Europe", "Payout po_1NxA", None, TRANSFER_IN),
                booked("tx-carol-usd-10", 11, "-49.00", USD, "GitHub Inc", "Team plan", Some("5734"), CARD),
                booked("tx-carol-usd-09", 19, "-20.00", USD, "Figma Inc", "Professional plan", Some("5734"), CARD),
                booked("tx-carol-usd-08", 36, "2400.00", USD, "Stripe Payments Europe", "Payout po_1MwZ", None, TRANSFER_IN),
                booked("tx-carol-usd-07", 41, "-118.34", USD, "Amazon Web Services", "AWS invoice 87002", Some("7372"), CARD),
                booked("tx-carol-usd-06", 66, "3650.00", USD, "Contoso Inc", "Invoice 2024-017", None, TRANSFER_IN),
                booked("tx-carol-usd-05", 70, "-1500.00", USD, "Carol Nguyen", "Transfer to EUR account", None, FX),
                booked("tx-carol-usd-04", 130, "-35.00", USD, "Sandbox Bank", "Incoming wire fee", None, FEES),
                booked("tx-carol-usd-03", 131, "1200.00", USD, "Fabrikam LLC", "Consulting March", None, TRANSFER_IN),
                booked("tx-carol-usd-02", 220, "-300.00", USD, "Carol Nguyen", "Transfer to savings", None, TRANSFER_OUT),
                booked("tx-carol-usd-01", 385, "500.00", USD, "Carol Nguyen", "Opening deposit", None, TRANSFER_IN),
            ],
        },
        Account {
            id: "carol-main",
            kind: AccountKind::Current,
            currency: EUR,
            iban: Some("NL18BKGT0417164300"),
            masked_pan: None,
            bic: "BKGTNL2AXXX",
            name: "Main",
            product: "Current Account",
            status: AccountStatus::Enabled,
            credit_limit: Some(money("1000.00", EUR)),
            balances: &[
                balance(ClosingBooked, "-45.08", EUR, Some(false), EndOfDay { days_ago: 1 }),
                balance(OpeningBooked, "312.40", EUR, Some(false), EndOfDay { days_ago: 7 }),
                balance(InterimAvailable, "919.02", EUR, Some(true), Intraday),
                balance(Authorised, "919.02", EUR, Some(true), Intraday),
                balance(Expected, "-80.98", EUR, Some(false), Intraday),
            ],
            transactions: &[
                pending("tx-carol-main-13", 0, "-35.90", EUR, "Albert Heijn", "AH to go Dublin Airport", Some("5411"), CARD),
                booked("tx-carol-main-12", 1, "-4.20", EUR, "Bewley's Café", "Coffee", Some("5814"), CARD),
                booked("tx-carol-main-11", 3, "-89.00", EUR, "Electric Ireland", "Electricity", None, DIRECT_DEBIT),
                booked("tx-carol-main-10", 6, "-1650.00", EUR, "Ballsbridge Properties", "Rent", None, STANDING_ORDER),
                booked("tx-carol-main-09", 12, "-23.50", EUR, "Dublin Bus", "Leap card top-up", Some("4111"), CARD),
                booked("tx-carol-main-08", 18, "-67.80", EUR, "Tesco Ireland", "Groceries", Some("5411"), CARD),
                booked("tx-carol-main-07", 27, "-54.99", EUR, "Eir", "Broadband", None, DIRECT_DEBIT),
                booked("tx-carol-main-06", 36, "-1650.00", EUR, "Ballsbridge Properties", "Rent", None, STANDING_ORDER),
                booked("tx-carol-main-05", 69, "1382.55", EUR, "Carol Nguyen", "Transfer from USD account", None, FX),
                booked("tx-carol-main-04", 100, "-120.00", EUR, "Gaiety Theatre", "Tickets", Some("7922"), CARD),
                booked("tx-carol-main-03", 160, "-0.05", EUR, "Sandbox Bank", "Rounding adjustment", None, FEES),
                booked("tx-carol-main-02", 240, "75.00", EUR, "Alice Schmidt", "Dinner share", None, TRANSFER_IN),
                booked("tx-carol-main-01", 399, "2000.00", EUR, "Carol Nguyen", "Opening deposit", None, TRANSFER_IN),
            ],
        },
        Account {
            id: "carol-savings",
            kind: AccountKind::Savings,
            currency: EUR,
            iban: Some("IE86BKGT99002148270605"),
            masked_pan: None,
            bic: "BKGTIE2DXXX",
            name: "Rainy Day",
            product: "Fixed Term Savings",
            status: AccountStatus::Blocked,
            credit_limit: None,
            balances: &[
                closing("25000.00", EUR),
                balance(ForwardAvailable, "25375.00", EUR, None, EndOfDay { days_ago: 0 }),
            ],
            transactions: &[
                booked("tx-carol-sav-10", 2, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-09", 32, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-08", 62, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-07", 92, "-93.75", EUR, "Sandbox Bank", "Interest paid out", None, INTEREST),
                booked("tx-carol-sav-06", 93, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-05", 123, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-04", 153, "31.25", EUR, "Sandbox Bank", "Interest", None, INTEREST),
                booked("tx-carol-sav-03", 183, "-93.75", EUR, "Sandbox Bank", "Interest paid out", None, INTEREST),
                booked("tx-carol-sav-02", 200, "5000.00", EUR, "Carol Nguyen", "Top up", None, TRANSFER_IN),
                booked("tx-carol-sav-01", 392, "20000.00", EUR, "Carol Nguyen", "Fixed term deposit", None, TRANSFER_IN),
            ],
        },
    ],
};

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn iban_is_valid(iban: &str) -> bool {
        let rotated = iban[4..].chars().chain(iban[..4].chars());
        let mut remainder = 0u32;
        for c in rotated {
            let Some(value) = c.to_digit(36) else {
                return false;
            };
            remainder = if value < 10 {
                (remainder * 10 + value) % 97
            } else {
                (remainder * 100 + value) % 97
            };
        }
        remainder == 1
    }

    #[test]
    fn every_amount_is_exact_decimal_text() {
        for customer in CUSTOMERS {
            for account in customer.accounts {
                let monies = account
                    .balances
                    .iter()
                    .map(|balance| balance.money)
                    .chain(account.transactions.iter().map(|tx| tx.money))
                    .chain(account.credit_limit);
                for money in monies {
                    let amount = money.decimal().unwrap();
                    assert_eq!(amount.to_string(), money.amount, "{}", account.id);
                    // Cents, or up to five decimals (OBIE's precision) for accruals.
                    assert!(
                        (2..=5).contains(&amount.scale()),
                        "{}: {}",
                        account.id,
                        money.amount
                    );
                    assert!(["EUR", "GBP", "USD"].contains(&money.currency));
                }
            }
        }
    }

    #[test]
    fn ids_are_unique_and_ibans_valid() {
        let mut ids = HashSet::new();
        for customer in CUSTOMERS {
            assert!(ids.insert(customer.id));
            assert!(
                (2..=4).contains(&customer.accounts.len()),
                "{}",
                customer.id
            );
            for account in customer.accounts {
                assert!(ids.insert(account.id), "{}", account.id);
                if let Some(iban) = account.iban {
                    assert!(iban_is_valid(iban), "{iban}");
                }
                assert_eq!(
                    account.kind == AccountKind::Card,
                    account.masked_pan.is_some()
                );
                assert!(
                    (10..=20).contains(&account.transactions.len()),
                    "{}",
                    account.id
                );
                for tx in account.transactions {
                    assert!(ids.insert(tx.id), "{}", tx.id);
                    if account.currency != "XXX" {
                        assert_eq!(tx.money.currency, account.currency, "{}", tx.id);
                    }
                }
            }
        }
        assert!(find(DEFAULT_CUSTOMER).is_some());
    }

    #[test]
    fn history_is_newest_first_and_spans_a_year_with_pending_items() {
        for customer in CUSTOMERS {
            for account in customer.accounts {
                let days: Vec<u64> = account.transactions.iter().map(|tx| tx.days_ago).collect();
                assert!(days.windows(2).all(|w| w[0] <= w[1]), "{}", account.id);
                assert!(days.last().is_some_and(|d| (300..=400).contains(d)));
            }
            let n_pending = customer
                .accounts
                .iter()
                .flat_map(|account| account.transactions)
                .filter(|tx| tx.status == TransactionStatus::Pending)
                .count();
            assert!(n_pending > 0, "{}", customer.id);
        }
    }

    #[test]
    fn the_data_covers_what_tests_rely_on() {
        let accounts: Vec<&Account> = CUSTOMERS.iter().flat_map(|c| c.accounts).collect();
        let balances: Vec<&Balance> = accounts.iter().flat_map(|a| a.balances).collect();
        assert!(balances.iter().any(|b| b.money.amount.starts_with('-')));
        assert!(balances.iter().any(|b| b.kind == BalanceKind::NonInvoiced));
        assert!(accounts.iter().any(|a| a.currency == "XXX"));
        assert!(accounts.iter().any(|a| a.status == AccountStatus::Blocked));
        for kind in [
            AccountKind::Current,
            AccountKind::Savings,
            AccountKind::Card,
        ] {
            assert!(accounts.iter().any(|a| a.kind == kind));
        }
    }

    #[test]
    fn dates_count_back_from_today() {
        let today = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        let tx = &ALICE.accounts[0].transactions[2];
        assert_eq!(tx.booking_date(today), NaiveDate::from_ymd_opt(2025, 2, 27));
        let pending = &ALICE.accounts[0].transactions[0];
        assert_eq!(pending.booking_date(today), None);
        assert_eq!(pending.value_date(today), today);
    }
}
