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
//! Amounts are presented at their currency's precision (the five-decimal interest accrual
//! becomes whole cents, rounded half away from zero).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::SandboxConfig;
use super::customers::{self, Account, AccountKind, AsOf, BalanceKind, Customer, Money};
use super::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use super::plumbing::{at_precision, header_text, parameters, today};

const ACCOUNTS_SCOPE: &str = "accounts:read";
const BALANCES_SCOPE: &str = "balances:read";
const TRANSACTIONS_SCOPE: &str = "transactions:read";
/// Movements per page.
pub const PAGE_SIZE: usize = 10;

/// The sandbox's routes; `origin` is where it listens.
pub fn router(config: &SandboxConfig, origin: &str) -> Router {
    let bank = Arc::new(Bank {
        auth: AuthServer::new(config, origin, "Nova Bank (sandbox)"),
        consents: Mutex::new(HashMap::new()),
    });
    Router::new()
        .merge(oauth::routes::<Bank>())
        .route("/api/v2/me/accounts", get(accounts))
        .route("/api/v2/me/accounts/{reference}/positions", get(positions))
        .route("/api/v2/me/accounts/{reference}/movements", get(movements))
        .fallback(not_found)
        .with_state(bank)
}

/// The bank: its authorization server and its consents.
struct Bank {
    auth: AuthServer,
    consents: Mutex<HashMap<String, Consent>>,
}

impl Bank {
    fn consents(&self) -> MutexGuard<'_, HashMap<String, Consent>> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone)]
struct Consent {
    customer: &'static Customer,
    approved: bool,
    rejected: bool,
    balances: bool,
    transactions: bool,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An error envelope.
struct NovaError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl NovaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> NovaError {
        NovaError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for NovaError {
    fn into_response(self) -> Response {
        let body = json!({
            "result": null,
            "error": {"code": self.code, "message": self.message},
        });
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> NovaError {
    NovaError::new(StatusCode::NOT_FOUND, "E404", "no such resource")
}

fn envelope(result: Value) -> Json<Value> {
    Json(json!({"result": result, "error": null}))
}

// ---------------------------------------------------------------------------------------------
// The consent: created by the authorization request, from its scopes

impl ConsentBinding for Bank {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        let scopes: Vec<&str> = parameters
            .get("scope")
            .map(|scope| scope.split_ascii_whitespace().collect())
            .unwrap_or_default();
        if !scopes.contains(&ACCOUNTS_SCOPE) {
            return Err(BindError::invalid_scope("scope must include accounts:read"));
        }
        let customer = customers::find(customers::DEFAULT_CUSTOMER)
            .ok_or_else(|| BindError::invalid_request("no default customer"))?;
        let id = uuid::Uuid::new_v4().to_string();
        self.consents().insert(
            id.clone(),
            Consent {
                customer,
                approved: false,
                rejected: false,
                balances: scopes.contains(&BALANCES_SCOPE),
                transactions: scopes.contains(&TRANSACTIONS_SCOPE),
            },
        );
        Ok(id)
    }

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        let consent = self.consents().get(consent_id).cloned()?;
        let mut items = vec!["your accounts".to_owned()];
        if consent.balances {
            items.push("their balances".into());
        }
        if consent.transactions {
            items.push("their movements".into());
        }
        Some(ApprovalView {
            customer: consent.customer,
            items,
            terms: "until you withdraw it".into(),
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        match self.consents().get_mut(consent_id) {
            Some(consent) if !consent.rejected => {
                consent.customer = customer;
                consent.approved = true;
                true
            }
            _ => false,
        }
    }

    fn deny(&self, consent_id: &str) {
        if let Some(consent) = self.consents().get_mut(consent_id) {
            consent.rejected = true;
        }
    }

    fn usable(&self, consent_id: &str) -> bool {
        self.consents()
            .get(consent_id)
            .is_some_and(|consent| consent.approved && !consent.rejected)
    }

    fn token_fields(&self, consent_id: &str) -> Map<String, Value> {
        let mut scopes = vec![ACCOUNTS_SCOPE];
        if let Some(consent) = self.consents().get(consent_id) {
            if consent.balances {
                scopes.push(BALANCES_SCOPE);
            }
            if consent.transactions {
                scopes.push(TRANSACTIONS_SCOPE);
            }
        }
        let mut fields = Map::new();
        fields.insert("scope".into(), scopes.join(" ").into());
        fields
    }
}

impl Bank {
    /// Checks the API version, request id and bearer token; returns the consent.
    fn authorise(&self, headers: &HeaderMap) -> Result<Consent, NovaError> {
        if header_text(headers, "x-api-version") != Some("2") {
            return Err(NovaError::new(
                StatusCode::BAD_REQUEST,
                "E400",
                "X-Api-Version: 2 is required",
            ));
        }
        if header_text(headers, "x-request-id").is_none_or(|id| id.trim().is_empty()) {
            return Err(NovaError::new(
                StatusCode::BAD_REQUEST,
                "E400",
                "X-Request-ID is required",
            ));
        }
        let unauthorised =
            |message: &str| NovaError::new(StatusCode::UNAUTHORIZED, "E401", message);
        let grant = self.auth.bearer(headers).map_err(|error| match error {
            BearerError::Missing => unauthorised("bearer token is missing"),
            BearerError::Unknown => unauthorised("unknown access token"),
            BearerError::Expired => unauthorised("access token expired"),
        })?;
        let forbidden = || NovaError::new(StatusCode::FORBIDDEN, "E403", "no valid consent");
        let consent_id = grant.consent_id.ok_or_else(forbidden)?;
        self.consents()
            .get(&consent_id)
            .filter(|consent| consent.approved && !consent.rejected)
            .cloned()
            .ok_or_else(forbidden)
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// The ISO 4217 exponent of every currency the customers hold (EUR, GBP, USD).
const MINOR_UNIT_EXPONENT: u32 = 2;

/// Unsigned minor units and the debit/credit indicator of an amount.
fn minor_units(money: &Money) -> Result<(i128, &'static str), NovaError> {
    let internal = || NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, "E500", "bad amount");
    let exponent = MINOR_UNIT_EXPONENT;
    let mut amount = at_precision(money, exponent).map_err(|_| internal())?;
    amount.rescale(exponent);
    let dc = if amount.is_sign_negative() && !amount.is_zero() {
        "D"
    } else {
        "C"
    };
    Ok((amount.mantissa().abs(), dc))
}

fn account_of(consent: &Consent, reference: &str) -> Result<&'static Account, NovaError> {
    consent
        .customer
        .account(reference)
        .ok_or_else(|| NovaError::new(StatusCode::NOT_FOUND, "E404", "no such account"))
}

async fn accounts(
    State(bank): State<Arc<Bank>>,
    headers: HeaderMap,
) -> Result<Json<Value>, NovaError> {
    let consent = bank.authorise(&headers)?;
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
                "ccy": if account.currency == "XXX" { "MULTI" } else { account.currency },
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
    let consent = bank.authorise(&headers)?;
    if !consent.balances {
        return Err(NovaError::new(
            StatusCode::FORBIDDEN,
            "E403",
            "the consent does not cover balances",
        ));
    }
    let account = account_of(&consent, &reference)?;
    let now = Utc::now();
    let positions = account
        .balances
        .iter()
        .map(|balance| {
            let (amount, dc) = minor_units(&balance.money)?;
            let as_of = match balance.as_of {
                AsOf::EndOfDay { days_ago } => format!(
                    "{} 23:59",
                    customers::days_before(today(), days_ago).format("%d.%m.%Y")
                ),
                AsOf::Intraday => now.format("%d.%m.%Y %H:%M").to_string(),
            };
            let mut position = Map::new();
            position.insert("kind".into(), position_kind(balance.kind).into());
            position.insert("amountMinor".into(), json!(amount));
            position.insert("ccy".into(), balance.money.currency.into());
            position.insert("dc".into(), dc.into());
            position.insert("asOf".into(), as_of.into());
            if let Some(included) = balance.credit_limit_included {
                position.insert(
                    "creditIncluded".into(),
                    if included { "Y" } else { "N" }.into(),
                );
            }
            Ok(Value::Object(position))
        })
        .collect::<Result<Vec<_>, NovaError>>()?;
    Ok(envelope(json!({ "positions": positions })))
}

async fn movements(
    State(bank): State<Arc<Bank>>,
    Path(reference): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, NovaError> {
    let consent = bank.authorise(&headers)?;
    if !consent.transactions {
        return Err(NovaError::new(
            StatusCode::FORBIDDEN,
            "E403",
            "the consent does not cover movements",
        ));
    }
    let account = account_of(&consent, &reference)?;
    let bad = |message: &str| NovaError::new(StatusCode::BAD_REQUEST, "E400", message);
    let query = parameters(query.unwrap_or_default().as_bytes()).map_err(|error| bad(&error))?;
    let since = query
        .get("since")
        .map(|text| NaiveDate::parse_from_str(text, "%Y%m%d"))
        .transpose()
        .map_err(|_| bad("since must be yyyymmdd"))?;
    let page: usize = query
        .get("page")
        .map_or(Ok(0), |page| page.parse())
        .map_err(|_| bad("page must be a whole number"))?;
    let today = today();
    let selected: Vec<&customers::Transaction> = account
        .transactions
        .iter()
        .filter(|transaction| since.is_none_or(|since| transaction.value_date(today) >= since))
        .collect();
    let start = page.saturating_mul(PAGE_SIZE).min(selected.len());
    let end = start.saturating_add(PAGE_SIZE).min(selected.len());
    let date = |day: NaiveDate| day.format("%d.%m.%Y").to_string();
    let listed = selected[start..end]
        .iter()
        .map(|transaction| {
            let (amount, dc) = minor_units(&transaction.money)?;
            Ok(json!({
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
            }))
        })
        .collect::<Result<Vec<_>, NovaError>>()?;
    let next = (end < selected.len()).then(|| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(since) = since {
            query.append_pair("since", &since.format("%Y%m%d").to_string());
        }
        query.append_pair("page", &(page + 1).to_string());
        format!(
            "/api/v2/me/accounts/{}/movements?{}",
            account.id,
            query.finish()
        )
    });
    Ok(envelope(json!({"movements": listed, "next": next})))
}
