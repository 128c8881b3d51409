//! The bundled customers hold what the sandboxes' and the gateway's tests rely on.

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

fn accounts() -> impl Iterator<Item = &'static Account> {
    CUSTOMERS.iter().flat_map(|customer| &customer.accounts)
}

#[test]
fn every_amount_is_exact_decimal_text() {
    let money = |text: &str| Money::try_from(text.to_owned());
    assert_eq!(money("-12.30 EUR").unwrap().amount.to_string(), "-12.30");
    for inexact in ["1e3 EUR", "12.30", "12.30 eur", "12,30 EUR", " EUR"] {
        assert!(money(inexact).is_err(), "{inexact}");
    }
    for account in accounts() {
        let monies = account
            .balances
            .iter()
            .map(|balance| &balance.money)
            .chain(account.transactions.iter().map(|tx| &tx.money))
            .chain(&account.credit_limit);
        for money in monies {
            // Cents, or up to five decimals (OBIE's precision) for accruals.
            assert!(
                (2..=5).contains(&money.amount.scale()),
                "{}: {}",
                account.id,
                money.amount
            );
            assert!(["EUR", "GBP", "USD"].contains(&money.currency.as_str()));
        }
    }
}

#[test]
fn amounts_are_rounded_only_beyond_the_standards_precision() {
    let at = |amount: &str, places| {
        let money = Money::try_from(format!("{amount} EUR")).unwrap();
        money.at_precision(places).to_string()
    };
    assert_eq!(at("1.23456", 5), "1.23456");
    assert_eq!(at("1.23456", 3), "1.235");
    assert_eq!(at("-1.23456", 2), "-1.23");
    assert_eq!(at("-0.005", 2), "-0.01");
    assert_eq!(at("12.30", 2), "12.30");
}

#[test]
fn ids_are_unique_and_ibans_valid() {
    let mut ids = HashSet::new();
    for customer in CUSTOMERS.iter() {
        assert!(ids.insert(&customer.id));
        assert!(
            (2..=4).contains(&customer.accounts.len()),
            "{}",
            customer.id
        );
        for account in &customer.accounts {
            assert!(ids.insert(&account.id), "{}", account.id);
            if let Some(iban) = &account.iban {
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
            for tx in &account.transactions {
                assert!(ids.insert(&tx.id), "{}", tx.id);
                if account.currency != "XXX" {
                    assert_eq!(tx.money.currency, account.currency, "{}", tx.id);
                }
            }
        }
    }
    assert_eq!(default_customer().id, DEFAULT_CUSTOMER);
}

#[test]
fn history_is_newest_first_and_spans_a_year_with_pending_items() {
    for customer in CUSTOMERS.iter() {
        for account in &customer.accounts {
            let days: Vec<u64> = account.transactions.iter().map(|tx| tx.days_ago).collect();
            assert!(days.windows(2).all(|w| w[0] <= w[1]), "{}", account.id);
            assert!(days.last().is_some_and(|d| (300..=400).contains(d)));
        }
        let n_pending = customer
            .accounts
            .iter()
            .flat_map(|account| &account.transactions)
            .filter(|tx| tx.status == TransactionStatus::Pending)
            .count();
        assert!(n_pending > 0, "{}", customer.id);
    }
}

#[test]
fn the_data_covers_what_tests_rely_on() {
    let balances: Vec<&Balance> = accounts().flat_map(|a| &a.balances).collect();
    assert!(balances.iter().any(|b| b.money.is_debit()));
    assert!(balances.iter().any(|b| b.kind == BalanceKind::NonInvoiced));
    assert!(accounts().any(|a| a.currency == "XXX"));
    assert!(accounts().any(|a| a.status == AccountStatus::Blocked));
    for kind in [
        AccountKind::Current,
        AccountKind::Savings,
        AccountKind::Card,
    ] {
        assert!(accounts().any(|a| a.kind == kind));
    }
}

#[test]
fn dates_count_back_from_today() {
    let today = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
    let giro = &default_customer().accounts[0];
    let tx = &giro.transactions[2];
    assert_eq!(tx.booking_date(today), NaiveDate::from_ymd_opt(2025, 2, 27));
    let pending = &giro.transactions[0];
    assert_eq!(pending.booking_date(today), None);
    assert_eq!(pending.value_date(today), today);
    let closing = &giro.balances[0];
    assert_eq!(
        closing.as_of.day(today),
        NaiveDate::from_ymd_opt(2025, 2, 28)
    );
    assert_eq!(giro.balances[2].as_of, AsOf::Intraday);
}

#[test]
fn data_without_the_default_customer_or_with_unknown_keys_is_refused() {
    let bob_only = "[[customer]]\nid = \"bob\"\nname = \"Bob\"\naccount = []\n";
    assert!(load(bob_only).unwrap_err().contains("alice"));
    let typo = "[[customer]]\nid = \"alice\"\nname = \"Alice\"\naccount = []\nnmae = \"x\"\n";
    assert!(load(typo).is_err());
}

#[test]
fn accounts_are_named_by_iban_or_card_in_their_currency() {
    let giro = &default_customer().accounts[0];
    assert!(giro.is_named_by(Some("de92 9999 0000 0012 3456 01"), None, None));
    assert!(giro.is_named_by(Some("DE92999900000012345601"), None, Some("eur")));
    assert!(!giro.is_named_by(Some("DE92999900000012345601"), None, Some("GBP")));
    assert!(!giro.is_named_by(None, None, Some("EUR")));
    let card = &default_customer().accounts[2];
    assert!(card.is_named_by(None, Some(" 489537******7421"), None));
}
