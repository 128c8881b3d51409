//! The scaffold every sandbox bank stands on, whatever standard it speaks: the bank's state
//! ([`Bank`]: its authorization server and its consents), its router (the OAuth routes, the
//! standard's routes, a fallback, the DPoP sender constraint and the headers it plays back),
//! errors in the standard's shape ([`ApiError`]), and what data routes share ([`Query`],
//! [`Window`], [`page`]).
//!
//! A standard brings only what is its own: a [`Standard`] (routes, how an authorization request
//! names a consent, the error shape) and its [`Consent`] (the resource and its life).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde_json::{Map, Value};

use crate::SandboxConfig;
use crate::customers::{Customer, Transaction};
use crate::ledger::Ledger;
use crate::oauth::{self, ApprovalView, AuthServer, BearerError, BindError, ConsentBinding};
use crate::payments::{Counters, Payments};
use crate::plumbing::parameters;

mod admin;
mod vop;

/// A consent as one standard keeps it: whose it is, where it is in its life, and what the
/// approval page and the token answer say about it.
pub trait Consent: Clone + Send + Sync + 'static {
    /// The customer it is (or will be) approved as.
    fn customer(&self) -> &'static Customer;

    /// Whether the customer may (still) approve it.
    fn approvable(&self) -> bool;

    /// Marks it approved by `customer`.
    fn approve(&mut self, customer: &'static Customer);

    /// Marks it rejected.
    fn reject(&mut self);

    /// Whether tokens may be issued for it and data read under it.
    fn usable(&self) -> bool;

    /// Ends it on the bank's side, as if the customer revoked it in the bank's app
    /// ([`Ending::Revoked`]) or the bank expired it ([`Ending::Expired`]).
    fn end(&mut self, ending: Ending);

    /// What the approval page lists, one line per kind of data.
    fn items(&self) -> Vec<String>;

    /// How long and how often, as the approval page says it.
    fn terms(&self) -> String;

    /// The members a token answer adds for consent `id`; `scope` at least.
    fn token_fields(&self, id: &str) -> Map<String, Value>;
}

/// How a consent ends on the bank's side (`/sandbox/consents/{id}/revoke` and `…/expire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The customer revoked it in the bank's app.
    Revoked,
    /// The bank expired it.
    Expired,
}

/// What one API standard adds to the scaffold.
pub trait Standard: std::fmt::Debug + Sized + Send + Sync + 'static {
    type Consent: Consent;

    /// The bank's name on its pages.
    const TITLE: &'static str;

    /// Consent ids are this prefix and a UUID.
    const CONSENT_PREFIX: &'static str = "";

    /// Request headers the bank plays back on every answer.
    const ECHOED_HEADERS: &'static [&'static str] = &[];

    /// Whether a consent that ends at the bank takes its tokens with it (the bank's resource
    /// server then refuses them, and its token endpoint the refresh token). A standard whose
    /// data calls name the consent (Berlin Group) says so in its answer instead.
    const ENDING_REVOKES_TOKENS: bool = true;

    /// The standard's routes: data and, where it has them, consent resources.
    fn routes() -> Router<Arc<Bank<Self>>>;

    /// Starts what the bank does on its own while it runs (a standard whose banks push event
    /// notifications listens to the ledger here); called once, inside the runtime.
    fn start(bank: &Arc<Bank<Self>>) {
        let _ = bank;
    }

    /// The customer revoked consent `id` in the bank's app (a standard whose banks push
    /// event notifications tells the client here).
    fn revoked_in_app(bank: &Arc<Bank<Self>>, id: &str) {
        let _ = (bank, id);
    }

    /// The consent an authorization request asks the customer to approve (filed here when the
    /// standard creates it with the authorization request).
    fn bind(bank: &Bank<Self>, parameters: &HashMap<String, String>) -> Result<String, BindError>;

    /// The scope of a client credentials token asking for `requested`, or `None` if the
    /// standard has no use for that grant.
    fn client_credentials_scope(requested: Option<&str>) -> Option<Result<String, String>> {
        let _ = requested;
        None
    }

    /// The scope a token for payment `id` carries, where the standard initiates payments.
    fn payment_scope(id: &str) -> String {
        let _ = id;
        String::new()
    }

    /// Checks what a data request carries besides its token (a request id, an API version).
    fn admit(headers: &HeaderMap) -> Result<(), ApiError<Self>> {
        let _ = headers;
        Ok(())
    }

    /// The standard's error code for a status, where it has codes.
    fn error_code(status: StatusCode) -> &'static str;

    /// The standard's error body.
    fn error_body(error: &ApiError<Self>) -> Value;
}

/// What the sandbox banks of a process share (the ledger), and what one bank counts.
#[derive(Debug, Clone)]
pub struct Shared {
    pub ledger: Arc<Ledger>,
    pub counters: Arc<Counters>,
}

/// A sandbox bank speaking standard `S`: its authorization server, its consents and the
/// payments it received.
pub struct Bank<S: Standard> {
    pub auth: AuthServer,
    consents: Mutex<HashMap<String, S::Consent>>,
    pub payments: Payments,
    pub ledger: Arc<Ledger>,
    /// The event notifications it pushes to its client, where the standard has them.
    pub events: crate::events::Publisher,
}

impl<S: Standard> Bank<S> {
    /// The bank of a sandbox listening at `origin`.
    pub fn new(config: &SandboxConfig, origin: &str, shared: &Shared) -> Bank<S> {
        Bank {
            auth: AuthServer::new(config, origin, S::TITLE),
            consents: Mutex::new(HashMap::new()),
            payments: Payments::new(shared.ledger.clone(), shared.counters.clone()),
            ledger: shared.ledger.clone(),
            events: crate::events::Publisher::new(),
        }
    }

    /// The consents, by id; a panic elsewhere while they were held leaves them usable.
    pub fn consents(&self) -> MutexGuard<'_, HashMap<String, S::Consent>> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of consent `id`.
    pub fn consent(&self, id: &str) -> Option<S::Consent> {
        self.consents().get(id).cloned()
    }

    /// Files a new consent and returns its fresh id.
    pub fn file(&self, consent: S::Consent) -> String {
        let id = format!("{}{}", S::CONSENT_PREFIX, uuid::Uuid::new_v4());
        self.consents().insert(id.clone(), consent);
        id
    }

    /// Ends consent `id` on the bank's side ([`Consent::end`]), with its tokens where the
    /// standard says so; `false` if there is no such consent.
    pub fn end(&self, id: &str, ending: Ending) -> bool {
        match self.consents().get_mut(id) {
            Some(consent) => consent.end(ending),
            None => return false,
        }
        if S::ENDING_REVOKES_TOKENS {
            self.auth.revoke_consent(id);
        }
        true
    }

    /// Admits a data request and returns the consent its bearer token reads under (with its
    /// id), if that is usable.
    pub fn reader(&self, headers: &HeaderMap) -> Result<(String, S::Consent), ApiError<S>> {
        S::admit(headers)?;
        let grant = self.auth.bearer(headers).map_err(|error| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                match error {
                    BearerError::Missing => "access token is missing",
                    BearerError::Unknown => "unknown access token",
                    BearerError::Expired => "access token expired",
                },
            )
        })?;
        let id = grant
            .consent_id
            .ok_or_else(|| ApiError::forbidden("the token is not bound to a consent"))?;
        let consent = self
            .consent(&id)
            .filter(Consent::usable)
            .ok_or_else(|| ApiError::forbidden("the consent is not valid"))?;
        Ok((id, consent))
    }
}

impl<S: Standard> ConsentBinding for Bank<S> {
    fn auth(&self) -> &AuthServer {
        &self.auth
    }

    fn bind(&self, parameters: &HashMap<String, String>) -> Result<String, BindError> {
        S::bind(self, parameters)
    }

    fn view(&self, consent_id: &str) -> Option<ApprovalView> {
        if let Some(payment) = self.payments.get(consent_id) {
            return Some(ApprovalView {
                customer: payment.customer,
                action: "make a payment",
                items: payment.items(),
                terms: "once".into(),
            });
        }
        let consent = self.consent(consent_id)?;
        Some(ApprovalView {
            customer: consent.customer(),
            action: "read",
            items: consent.items(),
            terms: consent.terms(),
        })
    }

    fn approve(&self, consent_id: &str, customer: &'static Customer) -> bool {
        if self.payments.contains(consent_id) {
            return self.payments.approve(consent_id, customer);
        }
        match self.consents().get_mut(consent_id) {
            Some(consent) if consent.approvable() => {
                consent.approve(customer);
                true
            }
            _ => false,
        }
    }

    fn deny(&self, consent_id: &str) {
        if self.payments.contains(consent_id) {
            return self.payments.deny(consent_id);
        }
        if let Some(consent) = self.consents().get_mut(consent_id) {
            consent.reject();
        }
    }

    fn usable(&self, consent_id: &str) -> bool {
        if let Some(payment) = self.payments.get(consent_id) {
            return payment.approved();
        }
        self.consents().get(consent_id).is_some_and(Consent::usable)
    }

    fn token_fields(&self, consent_id: &str) -> Map<String, Value> {
        if self.payments.contains(consent_id) {
            return Map::from_iter([("scope".into(), S::payment_scope(consent_id).into())]);
        }
        self.consents()
            .get(consent_id)
            .map(|consent| consent.token_fields(consent_id))
            .unwrap_or_default()
    }

    fn client_credentials_scope(&self, requested: Option<&str>) -> Option<Result<String, String>> {
        S::client_credentials_scope(requested)
    }
}

/// The routes of a sandbox bank speaking `S`, listening at `origin`.
pub fn router<S: Standard>(config: &SandboxConfig, origin: &str, shared: &Shared) -> Router {
    app(Arc::new(Bank::<S>::new(config, origin, shared)))
}

/// The routes of `bank`: the authorization server's, the standard's, the sandbox's own and a
/// fallback, behind the DPoP sender constraint, playing back the standard's echoed headers.
pub fn app<S: Standard>(bank: Arc<Bank<S>>) -> Router {
    if tokio::runtime::Handle::try_current().is_ok() {
        S::start(&bank);
    }
    S::routes()
        .merge(oauth::routes::<Bank<S>>())
        .merge(admin::routes::<S>())
        .merge(vop::routes::<S>())
        .fallback(not_found::<S>)
        .layer(middleware::from_fn_with_state(
            bank.clone(),
            oauth::sender_constraint::<Bank<S>>,
        ))
        .layer(middleware::from_fn(echo::<S>))
        .with_state(bank)
}

async fn not_found<S: Standard>() -> ApiError<S> {
    ApiError::not_found("no such endpoint")
}

/// Plays back the request headers the standard asks for.
async fn echo<S: Standard>(request: Request, next: Next) -> Response {
    let echoed: Vec<_> = S::ECHOED_HEADERS
        .iter()
        .filter_map(|name| Some((*name, request.headers().get(*name)?.clone())))
        .collect();
    let mut response = next.run(request).await;
    for (name, value) in echoed {
        response.headers_mut().insert(name, value);
    }
    response
}

/// An error of a bank speaking `S`, answered in the standard's shape.
#[derive(Debug)]
pub struct ApiError<S> {
    pub status: StatusCode,
    /// The standard's code (empty where it has none).
    pub code: &'static str,
    pub message: String,
    standard: PhantomData<fn() -> S>,
}

impl<S: Standard> ApiError<S> {
    /// An error with the standard's code for `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError<S> {
        ApiError::coded(status, S::error_code(status), message)
    }

    /// An error with its own code.
    pub fn coded(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError<S> {
        ApiError {
            status,
            code,
            message: message.into(),
            standard: PhantomData,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError<S> {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError<S> {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError<S> {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError<S> {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError<S> {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl<S: Standard> IntoResponse for ApiError<S> {
    fn into_response(self) -> Response {
        (self.status, Json(S::error_body(&self))).into_response()
    }
}

/// A malformed request, whatever the standard: a 400 in its shape.
#[derive(Debug)]
pub struct BadRequest(pub String);

impl<S: Standard> From<BadRequest> for ApiError<S> {
    fn from(BadRequest(message): BadRequest) -> ApiError<S> {
        ApiError::bad_request(message)
    }
}

/// A request's query parameters; a repeated one is a bad request.
pub struct Query(HashMap<String, String>);

impl Query {
    /// The parameters of a raw query string.
    pub fn parse(raw: Option<String>) -> Result<Query, BadRequest> {
        parameters(raw.unwrap_or_default().as_bytes())
            .map(Query)
            .map_err(BadRequest)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A whole number (a page, an offset); 0 when absent.
    pub fn number(&self, name: &str) -> Result<usize, BadRequest> {
        self.get(name).map_or(Ok(0), |text| {
            text.parse()
                .map_err(|_| BadRequest(format!("{name} must be a whole number")))
        })
    }

    /// A date `YYYY-MM-DD`.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, BadRequest> {
        self.get(name)
            .map(|text| parse_date(name, text))
            .transpose()
    }

    /// A date, or a date-time of which the date counts (`2025-03-01T10:00:00Z`).
    pub fn day(&self, name: &str) -> Result<Option<NaiveDate>, BadRequest> {
        self.get(name)
            .map(|text| {
                let day = text.split_once('T').map_or(text, |(day, _)| day);
                NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
                    BadRequest(format!("{name} must be an ISO 8601 date or date-time"))
                })
            })
            .transpose()
    }
}

/// A date `YYYY-MM-DD` named `name` in a request.
pub fn parse_date(name: &str, text: &str) -> Result<NaiveDate, BadRequest> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| BadRequest(format!("{name} must be a date (YYYY-MM-DD)")))
}

/// The days a transaction report covers, bounds included; an absent bound is open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl Window {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from.is_none_or(|from| day >= from) && self.to.is_none_or(|to| day <= to)
    }

    /// Those of `transactions` (an account's, newest first, as [`Ledger::transactions`]
    /// lists them) whose value date lies in the window.
    pub fn select(
        self,
        transactions: &[Transaction],
        today: NaiveDate,
    ) -> impl Iterator<Item = &Transaction> {
        transactions
            .iter()
            .filter(move |transaction| self.contains(transaction.value_date(today)))
    }
}

/// The page of `items` that starts at `start` and holds at most `size` of them, and where the
/// next page starts, if there is one.
pub fn page<T>(items: &[T], start: usize, size: usize) -> (&[T], Option<usize>) {
    let start = start.min(items.len());
    let end = start.saturating_add(size).min(items.len());
    (&items[start..end], (end < items.len()).then_some(end))
}
