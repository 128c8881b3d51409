//! Payment initiation as every paying sandbox bank keeps it, whatever standard it speaks: the
//! payment resources a bank received ([`Payments`]), each an [`Order`] moving through its
//! [`Stage`]s — received, approved by the customer at the bank (SCA), confirmed by the TPP
//! where the bank asks for that, executed on the shared [`Ledger`] or rejected with a reason —
//! the bank-side idempotency of creation requests, and the counts a test reads to prove a
//! payment was not sent twice ([`Counters`]).
//!
//! A standard brings its wire format and routes (`berlin_group/payments.rs`,
//! `stet/payments.rs`); the scaffold files payments beside consents, so the same OAuth
//! authorization server has the customer approve either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::customers::{Account, Customer};
use crate::ledger::{self, Execution, Ledger, Rejection, Transfer};

/// What a TPP asked the bank to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The TPP's end-to-end identification.
    pub end_to_end_id: Option<String>,
    /// Positive, exact.
    pub amount: Decimal,
    /// ISO 4217.
    pub currency: String,
    /// Electronic form.
    pub creditor_iban: String,
    pub creditor_name: String,
    pub remittance: Option<String>,
    pub instant: bool,
    /// The account to pay from, when the TPP names it; otherwise the customer picks at the
    /// bank (the sandbox takes the customer's account in the currency).
    pub debtor_iban: Option<String>,
}

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Created, waiting for the customer's approval.
    Received,
    /// Approved by the customer; the bank waits for the TPP's confirmation.
    Approved { debtor: &'static Account },
    /// Money moved on the ledger.
    Executed {
        debtor: &'static Account,
        execution: Execution,
    },
    /// Refused by the customer (`by_customer`) or by the bank, with an ISO 20022 reason.
    Rejected {
        reason: Option<&'static str>,
        by_customer: bool,
    },
    /// Cancelled by the TPP before approval.
    Cancelled,
}

/// A payment resource.
#[derive(Debug, Clone)]
pub struct Payment {
    /// The standard's product or kind (`sepa-credit-transfers`).
    pub product: String,
    pub order: Order,
    /// The customer it is (or will be) approved as.
    pub customer: &'static Customer,
    pub stage: Stage,
    /// When it was created (sandbox clock).
    pub created_at: DateTime<Utc>,
    /// Whether the bank waits for the TPP's confirmation after the customer approved.
    pub confirms: bool,
    /// Where the bank's own approval page sends the customer back (the redirect approach,
    /// where the TPP asked for it): after an approval, and after a refusal if it differs.
    pub redirect_uris: Option<(String, Option<String>)>,
    /// The order as the TPP wrote it, where the standard plays it back (OBIE `Initiation`).
    pub wire: Value,
    /// Whether the TPP submitted (confirmed) it.
    pub submitted: bool,
}

impl Payment {
    /// The ISO 20022 status at `now` and the reason of a rejection.
    pub fn status(&self, now: DateTime<Utc>) -> (&'static str, Option<&'static str>) {
        match self.stage {
            Stage::Received => ("RCVD", None),
            Stage::Approved { .. } => ("ACCP", None),
            Stage::Executed { execution, .. } => (execution.status(now), None),
            Stage::Rejected { reason, .. } => ("RJCT", reason),
            Stage::Cancelled => ("CANC", None),
        }
    }

    /// The account it is paid from, once the customer chose it.
    pub fn debtor(&self) -> Option<&'static Account> {
        match self.stage {
            Stage::Approved { debtor } | Stage::Executed { debtor, .. } => Some(debtor),
            _ => None,
        }
    }

    /// Whether the customer approved it (tokens may be issued for it).
    pub fn approved(&self) -> bool {
        match self.stage {
            Stage::Approved { .. } | Stage::Executed { .. } => true,
            Stage::Rejected { by_customer, .. } => !by_customer,
            Stage::Received | Stage::Cancelled => false,
        }
    }

    /// What the approval page shows.
    pub fn items(&self) -> Vec<String> {
        let order = &self.order;
        let mut items = vec![format!(
            "pay {} {} to {} ({})",
            order.amount,
            order.currency,
            order.creditor_name,
            masked(&order.creditor_iban)
        )];
        if let Some(remittance) = &order.remittance {
            items.push(format!("reference: {remittance}"));
        }
        if order.instant {
            items.push("as an instant transfer".into());
        }
        items
    }
}

/// The exact amount of a JSON string or number, positive, at most two decimals.
pub fn parse_amount(raw: &RawValue) -> Result<Decimal, String> {
    let text = raw.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|text| text.strip_suffix('"'))
        .unwrap_or(text);
    let amount = Decimal::from_str_exact(text).map_err(|_| "amount is not a number".to_owned())?;
    if amount <= Decimal::ZERO {
        return Err("amount must be positive".into());
    }
    if amount.scale() > 2 {
        return Err("amount has more than two decimals".into());
    }
    Ok(amount)
}

/// A currency code: three capital letters.
pub fn check_currency(currency: &str) -> Result<(), String> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("currency must be an ISO 4217 code".into())
    }
}

/// An IBAN with all but its country, check digits and last four characters hidden.
pub fn masked(iban: &str) -> String {
    let chars: Vec<char> = iban.chars().collect();
    if chars.len() <= 8 {
        return iban.to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// What a bank counted of its payments (all since it started).
#[derive(Debug, Default)]
pub struct Counters {
    /// Creation requests that made a new payment resource.
    created: AtomicU64,
    /// Creation requests answered with an existing payment (same request id and body).
    replayed: AtomicU64,
    /// Confirmation (or submission) requests received, executed or not.
    confirmations: AtomicU64,
    /// Payments whose money moved.
    executed: AtomicU64,
    /// Payments rejected by the bank or the customer.
    rejected: AtomicU64,
}

impl Counters {
    /// Creation requests that made a new payment resource.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::SeqCst)
    }

    /// Creation requests answered with an existing payment.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::SeqCst)
    }

    /// Confirmation or submission requests received.
    pub fn confirmations(&self) -> u64 {
        self.confirmations.load(Ordering::SeqCst)
    }

    /// Payments whose money moved.
    pub fn executed(&self) -> u64 {
        self.executed.load(Ordering::SeqCst)
    }

    /// Payments rejected.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::SeqCst)
    }

    /// All of them, as the admin route answers.
    pub fn json(&self) -> Value {
        json!({
            "created": self.created(),
            "replayed": self.replayed(),
            "confirmations": self.confirmations(),
            "executed": self.executed(),
            "rejected": self.rejected(),
        })
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// A creation request reused an idempotency key (request id) for another payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyReused;

/// Why a confirmation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmError {
    Unknown,
    /// Not approved by the customer yet.
    NotApproved,
    /// Executed, rejected or cancelled already: nothing happens a second time.
    Final,
}

/// Why a submission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The idempotency key was used for another submission.
    KeyReused,
    Confirm(ConfirmError),
}

#[derive(Default)]
struct Books {
    payments: HashMap<String, Payment>,
    /// Idempotency key (request id) → payment id.
    keys: HashMap<String, String>,
    /// Submission idempotency key → the payment and body submitted.
    submissions: HashMap<String, (String, Value)>,
}

/// The payments one bank received.
pub struct Payments {
    books: Mutex<Books>,
    ledger: Arc<Ledger>,
    counters: Arc<Counters>,
    /// Whether the TPP must confirm a payment after the customer approved it (STET).
    confirmation_required: AtomicBool,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments").finish_non_exhaustive()
    }
}

impl Payments {
    /// The payments of a bank on `ledger`, counted in `counters`.
    pub fn new(ledger: Arc<Ledger>, counters: Arc<Counters>) -> Payments {
        Payments {
            books: Mutex::new(Books::default()),
            ledger,
            counters,
            confirmation_required: AtomicBool::new(true),
        }
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Now, on the sandbox clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.ledger.clock().now()
    }

    /// The counts.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether new payments wait for the TPP's confirmation (where the standard has one).
    pub fn confirmation_required(&self) -> bool {
        self.confirmation_required.load(Ordering::SeqCst)
    }

    /// Sets whether new payments wait for the TPP's confirmation.
    pub fn require_confirmation(&self, required: bool) {
        self.confirmation_required.store(required, Ordering::SeqCst);
    }

    /// Files a payment, or — when `key` was seen with the same product and order — returns
    /// the one filed then (`true`: replayed). A key seen with another order is refused.
    pub fn create(
        &self,
        key: Option<&str>,
        product: &str,
        order: Order,
        customer: &'static Customer,
        confirms: bool,
    ) -> Result<(String, bool), KeyReused> {
        let mut books = self.books();
        if let Some(key) = key
            && let Some(id) = books.keys.get(key)
        {
            let same = books
                .payments
                .get(id)
                .is_some_and(|payment| payment.product == product && payment.order == order);
            if !same {
                return Err(KeyReused);
            }
            Counters::count(&self.counters.replayed);
            return Ok((id.clone(), true));
        }
        let id = uuid::Uuid::new_v4().to_string();
        books.payments.insert(
            id.clone(),
            Payment {
                product: product.to_owned(),
                order,
                customer,
                stage: Stage::Received,
                created_at: self.now(),
                confirms,
                redirect_uris: None,
                wire: Value::Null,
                submitted: false,
            },
        );
        if let Some(key) = key {
            books.keys.insert(key.to_owned(), id.clone());
        }
        Counters::count(&self.counters.created);
        Ok((id, false))
    }

    /// Changes what a standard keeps of payment `id` beside its order and stage.
    pub fn annotate(&self, id: &str, change: impl FnOnce(&mut Payment)) {
        if let Some(payment) = self.books().payments.get_mut(id) {
            change(payment);
        }
    }

    /// A copy of payment `id`.
    pub fn get(&self, id: &str) -> Option<Payment> {
        self.books().payments.get(id).cloned()
    }

    /// Whether `id` names a payment of this bank.
    pub fn contains(&self, id: &str) -> bool {
        self.books().payments.contains_key(id)
    }

    /// Whether the customer may still approve payment `id`.
    pub fn approvable(&self, id: &str) -> bool {
        self.books()
            .payments
            .get(id)
            .is_some_and(|payment| matches!(payment.stage, Stage::Received))
    }

    /// The customer approved payment `id` (SCA): the account is chosen and, unless the bank
    /// waits for a confirmation, the payment executes. False if it could not be approved.
    pub fn approve(&self, id: &str, customer: &'static Customer) -> bool {
        let mut books = self.books();
        let Some(payment) = books.payments.get_mut(id) else {
            return false;
        };
        if !matches!(payment.stage, Stage::Received) {
            return false;
        }
        payment.customer = customer;
        let order = &payment.order;
        match ledger::debit_account(customer, &order.currency, order.debtor_iban.as_deref()) {
            Err(rejection) => self.reject(payment, rejection),
            Ok(debtor) if payment.confirms => payment.stage = Stage::Approved { debtor },
            Ok(debtor) => self.execute(payment, debtor),
        }
        true
    }

    /// The customer refused payment `id`.
    pub fn deny(&self, id: &str) {
        if let Some(payment) = self.books().payments.get_mut(id)
            && matches!(payment.stage, Stage::Received)
        {
            payment.stage = Stage::Rejected {
                reason: None,
                by_customer: true,
            };
            Counters::count(&self.counters.rejected);
        }
    }

    /// The TPP confirms payment `id`: it executes, once.
    pub fn confirm(&self, id: &str) -> Result<Payment, ConfirmError> {
        Counters::count(&self.counters.confirmations);
        let mut books = self.books();
        self.confirm_in(&mut books, id)
    }

    /// The TPP submits payment `id` under an idempotency `key` with `body`: it executes, once;
    /// the same key and body again answer the payment as it is now (`true`: replayed), the
    /// same key with another body or payment is refused.
    pub fn submit(
        &self,
        key: &str,
        id: &str,
        body: &Value,
    ) -> Result<(Payment, bool), SubmitError> {
        Counters::count(&self.counters.confirmations);
        let mut books = self.books();
        if let Some((seen_id, seen_body)) = books.submissions.get(key) {
            if seen_id != id || seen_body != body {
                return Err(SubmitError::KeyReused);
            }
            let payment = books
                .payments
                .get(id)
                .cloned()
                .ok_or(SubmitError::Confirm(ConfirmError::Unknown))?;
            Counters::count(&self.counters.replayed);
            return Ok((payment, true));
        }
        let payment = self
            .confirm_in(&mut books, id)
            .map_err(SubmitError::Confirm)?;
        books
            .submissions
            .insert(key.to_owned(), (id.to_owned(), body.clone()));
        Ok((payment, false))
    }

    fn confirm_in(&self, books: &mut Books, id: &str) -> Result<Payment, ConfirmError> {
        let payment = books.payments.get_mut(id).ok_or(ConfirmError::Unknown)?;
        match payment.stage {
            Stage::Approved { debtor } => {
                payment.submitted = true;
                self.execute(payment, debtor);
                Ok(payment.clone())
            }
            Stage::Received => Err(ConfirmError::NotApproved),
            _ => Err(ConfirmError::Final),
        }
    }

    /// The TPP cancels payment `id` before its approval; false if it is too late.
    pub fn cancel(&self, id: &str) -> Option<bool> {
        let mut books = self.books();
        let payment = books.payments.get_mut(id)?;
        if matches!(payment.stage, Stage::Received) {
            payment.stage = Stage::Cancelled;
            Some(true)
        } else {
            Some(false)
        }
    }

    fn execute(&self, payment: &mut Payment, debtor: &'static Account) {
        let order = &payment.order;
        let transfer = Transfer {
            debtor,
            debtor_name: &payment.customer.name,
            creditor_iban: &order.creditor_iban,
            creditor_name: &order.creditor_name,
            amount: order.amount,
            currency: &order.currency,
            remittance: order.remittance.as_deref(),
            instant: order.instant,
        };
        match self.ledger.execute(&transfer) {
            Ok(execution) => {
                payment.stage = Stage::Executed { debtor, execution };
                Counters::count(&self.counters.executed);
            }
            Err(rejection) => self.reject(payment, rejection),
        }
    }

    fn reject(&self, payment: &mut Payment, rejection: Rejection) {
        payment.stage = Stage::Rejected {
            reason: Some(rejection.0),
            by_customer: false,
        };
        Counters::count(&self.counters.rejected);
    }
}
