//! Change detection without a data warehouse: bankgate keeps per account only what it needs to
//! see a change — a keyed hash of the balance set and, for each transaction already seen, a
//! keyed hash of its id and of its matching key — never the data itself.
//!
//! **Pending → booked.** The standards give a pending transaction and the booked one it
//! becomes different ids. A transaction whose id was never seen is *the same* as one seen
//! before when their matching keys are equal — amount, currency, date (value date, else
//! booking date), counterparty and reference (description), the texts trimmed, lower-cased and
//! with runs of blanks as one — and that earlier one is no longer listed (its id vanished:
//! the bank replaced it). Each vanished transaction stands for at most one new one, so two
//! equal coffees on one day are two transactions, and a booked transaction is not announced
//! again after its pending one was.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::crypto::Sealer;
use crate::model::{Balance, Transaction};

use super::Seen;

/// The keyed hashes of change detection (HMAC-SHA-256 under the gateway's MAC key, each
/// domain separated and bound to the consent and account).
#[derive(Clone)]
pub struct Keys {
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

fn message(domain: &str, parts: &[&str]) -> Vec<u8> {
    let mut message = format!("bankgate notify {domain}").into_bytes();
    for part in parts {
        message.push(0);
        message.extend_from_slice(part.as_bytes());
    }
    message
}

/// Trimmed, lower-case, runs of whitespace as one space.
fn normalise(text: Option<&str>) -> String {
    text.unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Keys {
    /// Keys under `sealer`'s MAC key.
    pub fn new(sealer: Arc<Sealer>) -> Keys {
        Keys { sealer }
    }

    /// The keyed hash of an account's balance set: type, amount and currency of each balance,
    /// in a canonical order (a bank's `as_of` stamp moves on every read and is left out).
    pub fn balance_digest(
        &self,
        consent_id: &str,
        account_id: &str,
        balances: &[Balance],
    ) -> String {
        let mut lines: Vec<String> = balances
            .iter()
            .map(|balance| {
                let kind = serde_json::to_string(&balance.kind).unwrap_or_default();
                format!("{kind}|{}|{}", balance.amount.normalize(), balance.currency)
            })
            .collect();
        lines.sort();
        let joined = lines.join("\n");
        self.sealer
            .mac(&message("balances", &[consent_id, account_id, &joined]))
    }

    /// A transaction's pseudonymised id and matching key (see the module docs).
    pub fn seen(&self, consent_id: &str, account_id: &str, transaction: &Transaction) -> Seen {
        Seen {
            pseudonym: self.sealer.mac(&message(
                "transaction",
                &[consent_id, account_id, &transaction.id],
            )),
            match_key: self.sealer.mac(&message(
                "match",
                &[consent_id, account_id, &match_key(transaction)],
            )),
        }
    }
}

/// The matching key of a transaction in the clear (hashed before it is stored): amount,
/// currency, date, counterparty and reference.
pub fn match_key(transaction: &Transaction) -> String {
    let date = transaction
        .value_date
        .or(transaction.booking_date)
        .map(|date| date.to_string())
        .unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}",
        transaction.amount.normalize(),
        transaction.currency,
        date,
        normalise(transaction.counterparty_name.as_deref()),
        normalise(transaction.description.as_deref()),
    )
}

/// What a refresh learnt about an account's transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sorted<'a> {
    /// Never seen, in the bank's order: to announce.
    pub new: Vec<(&'a Transaction, Seen)>,
    /// A new id for a transaction seen before (pending → booked): recorded, not announced;
    /// with the index in `seen` of the earlier one it replaces.
    pub renamed: Vec<(&'a Transaction, Seen, usize)>,
}

/// Sorts the transactions listed now (with their [`Seen`]) against those seen before.
pub fn sort<'a>(listed: Vec<(&'a Transaction, Seen)>, seen: &[Seen]) -> Sorted<'a> {
    let seen_ids: HashSet<&str> = seen.iter().map(|seen| seen.pseudonym.as_str()).collect();
    let listed_ids: HashSet<String> = listed
        .iter()
        .map(|(_, seen)| seen.pseudonym.clone())
        .collect();
    // Seen before and no longer listed, by matching key: each may stand for one new id.
    let mut vanished: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, earlier) in seen.iter().enumerate().rev() {
        if !listed_ids.contains(&earlier.pseudonym) {
            vanished
                .entry(earlier.match_key.as_str())
                .or_default()
                .push(index);
        }
    }
    let mut sorted = Sorted::default();
    for (transaction, key) in listed {
        if seen_ids.contains(key.pseudonym.as_str()) {
            continue;
        }
        match vanished
            .get_mut(key.match_key.as_str())
            .and_then(|earlier| earlier.pop())
        {
            Some(index) => sorted.renamed.push((transaction, key, index)),
            None => sorted.new.push((transaction, key)),
        }
    }
    sorted
}
