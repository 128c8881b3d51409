//! A sandbox bank with a proprietary API (no standard at all), for the `mapping` profile: the
//! shared OAuth2 authorization server with its own scopes, and JSON shapes of its own, serving
//! the same synthetic customers as every other sandbox.
//!
//! What makes it proprietary, and what a mapping has to cope with:
//! - Scopes `accounts:read`, `balances:read`, `transactions:read`; calls need the headers
//!   `X-Api-Version: 2` and `X-Request-ID`.
//! - Every answer is an envelope `{"result": …, "error": null}`; errors are
//!   `{"result": null, "error": {"code", "message"}}`.
//! - `GET /api/v2/me/accounts`: products `GIRO`/`SAVE`/`CARD`, states `ACTIVE`/`LOCKED`,
//!   currency `MULTI` for a multi-currency account.
//! - `GET /api/v2/me/accounts/{ref}/positions`: balance kinds of its own (`LEDGER`,
//!   `AVAILABLE`, `PROJECTED`, …), amounts unsigned in minor units (`amountMinor`, a JSON
//!   number) with a debit/credit indicator `dc` (`D`/`C`), times as `dd.mm.yyyy HH:MM`, and
//!   `creditIncluded` as `Y`/`N`.
//! - `GET /api/v2/me/accounts/{ref}/movements?since=yyyymmdd`: states `POSTED`/`HELD`, dates
//!   as `dd.mm.yyyy`, amounts unsigned in minor units as strings with `dc`, pages of ten
//!   linked by `result.next` (an origin-relative URL).
//!
//! - Payments (`proprietary/payments.rs`): `POST /api/v2/payments` and
//!   `GET /api/v2/payments/{ref}`, authorised under the scope `payments:write` with
//!   `payment_ref`; states `NEW`, `BOOKING`, `DONE`, `FAILED` (with `reasonCode`),
//!   `CANCELLED`.
//!
//! Amounts are presented at their currency's precision (the five-decimal interest accrual
//! becomes whole cents, rounded half away from zero).

mod payments;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};

use crate::customers::{self, Account, AccountKind, BalanceKind, Customer, Money, Transaction};
use crate::oauth::BindError;
use crate::plumbing::{header_text, today};
use crate::scaffold::{self, ApiError, BadRequest, Query, Window, page};

const ACCOUNTS_SCOPE: &str = "accounts:read";
const BALANCES_SCOPE: &str = "balances:read";
const TRANSACTIONS_SCOPE: &str = "transactions:read";
/// Movements per page.
pub const PAGE_SIZE: usize = 10;
/// The ISO 4217 exponent of every currency the customers hold (EUR, GBP, USD).
const MINOR_UNIT_EXPONENT: u32 = 2;

/// Nova Bank's own API.
#[derive(Debug)]
pub struct Proprietary;

type Bank = scaffold::Bank<Proprietary>;
type NovaError = ApiError<Proprietary>;

impl scaffold::Standard for Proprietary {
    type Consent = Consent;
    const TITLE: &'static str = "Nova Bank (sandbox)";

    fn routes() -> Router<Arc<Bank>> {
        Router::new()
            .route("/api/v2/me/accounts", get(accounts))
            .route("/api/v2/me/accounts/{reference}/positions", get(positions))
            .route("/api/v2/me/accounts/{reference}/movements", get(movements))
            .route("/api/v2/payments", post(payments::create))
            .route("/api/v2/payments/{reference}", get(payments::read))
    }

    /// The authorization request creates the consent, from its scopes.
    fn bind(bank: &Bank, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        if let Some(bound) = payments::bind(bank, parameters) {
            return bound;
        }
        let scopes: Vec<&str> = parameters
            .get("scope")
            .map(|scope| scope.split_ascii_whitespace().collect())
            .unwrap_or_default();
        if !scopes.contains(&ACCOUNTS_SCOPE) {
            return Err(BindError::invalid_scope("scope must include accounts:read"));
        }
        Ok(bank.file(Consent {
            customer: customers::default_customer(),
            approved: false,
            rejected: false,
            balances: scopes.contains(&BALANCES_SCOPE),
            transactions: scopes.contains(&TRANSACTIONS_SCOPE),
        }))
    }

    fn payment_scope(_: &str) -> String {
        payments::SCOPE.into()
    }

    fn admit(headers: &HeaderMap) -> Result<(), NovaError> {
        if header_text(headers, "x-api-version") != Some("2") {
            return Err(ApiError::bad_request("X-Api-Version: 2 is required"));
        }
        if header_text(headers, "x-request-id").is_none_or(|id| id.trim().is_empty()) {
            return Err(ApiError::bad_request("X-Request-ID is required"));
        }
        Ok(())
    }

    fn error_code(status: StatusCode) -> &'static str {
        match status {
            StatusCode::BAD_REQUEST => "E400",
            StatusCode::UNAUTHORIZED => "E401",
            StatusCode::FORBIDDEN => "E403",
            StatusCode::NOT_FOUND => "E404",
            _ => "E500",
        }
    }

    /// The error envelope.
    fn error_body(error: &NovaError) -> Value {
        json!({
            "result": null,
            "error": {"code": error.code, "message": error.message},
        })
    }
}

#[derive(Debug, Clone)]
pub struct Consent {
    customer: &'static Customer,
    approved: bool,
    rejected: bool,
    balances: bool,
    transactions: bool,
}

impl scaffold::Consent for Consent {
    fn customer(&self) -> &'static Customer {
        self.customer
    }

    fn approvable(&self) -> bool {
        !self.rejected
    }

    fn approve(&mut self, customer: &'static Customer) {
        self.customer = customer;
        self.approved = true;
    }

    fn reject(&mut self) {
        self.rejected = true;
    }

    fn usable(&self) -> bool {
        self.approved && !self.rejected
    }

    fn end(&mut self, _: scaffold::Ending) {
        self.rejected = true;
    }

    fn items(&self) -> Vec<String> {
        let mut items = vec!["your accounts".to_owned()];
        if self.balances {
            items.push("their balances".into());
        }
        if self.transactions {
            items.push("their movements".into());
        }
        items
    }

    fn terms(&self) -> String {
        "until you withdraw it".into()
    }

    fn token_fields(&self, _: &str) -> Map<String, Value> {
        let mut scopes = vec![ACCOUNTS_SCOPE];
        if self.balances {
            scopes.push(BALANCES_SCOPE);
        }
        if self.transactions {
            scopes.push(TRANSACTIONS_SCOPE);
        }
        Map::from_iter([("scope".into(), scopes.join(" ").into())])
    }
}

fn envelope(result: Value) -> Json<Value> {
    Json(json!({"result": result, "error": null}))
}

/// Unsigned minor units and the debit/credit indicator of an amount.
fn minor_units(money: &Money) -> (i128, &'static str) {
    let mut amount = money.at_precision(MINOR_UNIT_EXPONENT);
    amount.rescale(MINOR_UNIT_EXPONENT);
    let dc = if amount.is_sign_negative() && !amount.is_zero() {
        "D"
    } else {
        "C"
    };
    (amount.mantissa().abs(), dc)
}

fn account_of(consent: &Consent, reference: &str) -> Result<&'static Account, NovaError> {
    consent
        .customer
        .account(reference)
        .ok_or_else(|| ApiError::not_found("no such account"))
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
) -> Result<Json<Value>, NovaError> {
    let (_, consent) = bank.reader(&headers)?;
    let items: Vec<Value> = consent
        .customer
        .accounts
        .iter()
        .map(|account| {
            json!({
                "accountRef": account.id,
                "label": account.name,
                "product": match account.kind {
                    AccountKind::Current => "GIRO",
                    AccountKind::Savings => "SAVE",
                    AccountKind::Card => "CARD",
                },
                "ccy": if account.currency == "XXX" { "MULTI" } else { &account.currency },
                "ibanCode": account.iban,
                "maskedCard": account.masked_pan,
                "state": match account.status {
                    customers::AccountStatus::Enabled => "ACTIVE",
                    customers::AccountStatus::Blocked => "LOCKED",
                },
                "owner": consent.customer.name,
            })
        })
        .collect();
    Ok(envelope(json!({"items": items, "next": null})))
}

fn position_kind(kind: BalanceKind) -> &'static str {
    match kind {
        BalanceKind::ClosingBooked => "LEDGER",
        BalanceKind::OpeningBooked => "OPENING",
        BalanceKind::InterimBooked => "INTRADAY",
        BalanceKind::InterimAvailable => "AVAILABLE",
        BalanceKind::Expected => "PROJECTED",
        BalanceKind::ForwardAvailable => "FORWARD",
        BalanceKind::Authorised => "SPENDABLE",
        BalanceKind::NonInvoiced => "UNBILLED",
    }
}

async fn positions(
    State(bank): State<Arc<Bank>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, NovaError> {
    let (_, consent) = bank.reader(&headers)?;
    if !consent.balances {
        return Err(ApiError::forbidden("the consent does not cover balances"));
    }
    let account = account_of(&consent, &reference)?;
    let now = Utc::now();
    let positions: Vec<Value> = bank
        .ledger
        .balances(account)
        .iter()
        .map(|balance| {
            let (amount, dc) = minor_units(&balance.money);
            let as_of = match balance.as_of.day(today()) {
                Some(day) => format!("{} 23:59", day.format("%d.%m.%Y")),
                None => now.format("%d.%m.%Y %H:%M").to_string(),
            };
            let mut position = Map::new();
            position.insert("kind".into(), position_kind(balance.kind).into());
            position.insert("amountMinor".into(), json!(amount));
            position.insert("ccy".into(), balance.money.currency.clone().into());
            position.insert("dc".into(), dc.into());
            position.insert("asOf".into(), as_of.into());
            if let Some(included) = balance.credit_limit_included {
                position.insert(
                    "creditIncluded".into(),
                    if included { "Y" } else { "N" }.into(),
                );
            }
            Value::Object(position)
        })
        .collect();
    Ok(envelope(json!({ "positions": positions })))
}

async fn movements(
    State(bank): State<Arc<Bank>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, NovaError> {
    let (_, consent) = bank.reader(&headers)?;
    if !consent.transactions {
        return Err(ApiError::forbidden("the consent does not cover movements"));
    }
    let account = account_of(&consent, &reference)?;
    let query = Query::parse(query)?;
    let since = query
        .get("since")
        .map(|text| NaiveDate::parse_from_str(text, "%Y%m%d"))
        .transpose()
        .map_err(|_| BadRequest("since must be yyyymmdd".into()))?;
    let page_number = query.number("page")?;
    let today = today();
    let window = Window {
        from: since,
        to: None,
    };
    let all = bank.ledger.transactions(account);
    let selected: Vec<&Transaction> = window.select(&all, today).collect();
    let (listed, next) = page(&selected, page_number.saturating_mul(PAGE_SIZE), PAGE_SIZE);
    let date = |day: NaiveDate| day.format("%d.%m.%Y").to_string();
    let listed: Vec<Value> = listed
        .iter()
        .map(|transaction| {
            let (amount, dc) = minor_units(&transaction.money);
            json!({
                "movementId": transaction.id,
                "state": match transaction.status {
                    customers::TransactionStatus::Booked => "POSTED",
                    customers::TransactionStatus::Pending => "HELD",
                },
                "postedOn": transaction.booking_date(today).map(date),
                "valueOn": date(transaction.value_date(today)),
                "amountMinor": amount.to_string(),
                "ccy": transaction.money.currency,
                "dc": dc,
                "text": transaction.description,
                "party": transaction.counterparty,
                "mcc": transaction.mcc,
                "code": transaction.bank_code,
            })
        })
        .collect();
    let next = next.map(|_| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(since) = since {
            query.append_pair("since", &since.format("%Y%m%d").to_string());
        }
        query.append_pair("page", &(page_number + 1).to_string());
        format!(
            "/api/v2/me/accounts/{}/movements?{}",
            account.id,
            query.finish()
        )
    });
    Ok(envelope(json!({"movements": listed, "next": next})))
}
